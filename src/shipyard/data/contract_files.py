"""Contract files: TOML, YAML or JSON with the same keys, read strictly.

An unknown key is an error that names the file, the key and the closest known key; so is
a value of the wrong kind. See ``contracts`` for the keys.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError, DataContractError
from shipyard.data.contracts import (
    Check,
    Column,
    Contract,
    DatasetCheck,
    Freshness,
    QuarantineLimit,
    RowCount,
    Unique,
    parse_duration,
    severity_of,
)

__all__ = ["contract_from_dict", "read_contract_file"]

_MAX_CONTRACT_BYTES = 1 << 20

_TOP_KEYS = {
    "columns",
    "row_count",
    "unique",
    "freshness",
    "max_quarantine_fraction",
    "checks",
    "dataset_checks",
    "allow_extra_columns",
}
_COLUMN_KEYS = set(Column.__slots__)


def _unknown(key: str, known: set[str], where: str) -> DataContractError:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    suggestion = f" Did you mean '{close[0]}'?" if close else ""
    return DataContractError(
        f"{where}: unknown key '{key}'.{suggestion}",
        hint=f"Known keys: {', '.join(sorted(known))}.",
    )


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DataContractError(f"{where} must be a table of keys, not {type(value).__name__}.")
    return value


def contract_from_dict(data: Mapping[str, Any], origin: str) -> Contract:
    """A contract from parsed file data; errors name ``origin`` (the file)."""
    try:
        return _build(data, origin)
    except DataContractError as exc:
        if exc.message.startswith(origin):
            raise
        raise DataContractError(f"{origin}: {exc.message}", hint=exc.hint) from exc


def _build(data: Mapping[str, Any], origin: str) -> Contract:
    data = _table(data, origin)
    for key in data:
        if key not in _TOP_KEYS:
            raise _unknown(str(key), _TOP_KEYS, origin)
    columns: dict[str, Column] = {}
    for name, spec in _table(data.get("columns", {}), f"{origin}: columns").items():
        spec = _table(spec, f"{origin}: columns.{name}")
        for key in spec:
            if key not in _COLUMN_KEYS:
                raise _unknown(str(key), _COLUMN_KEYS, f"{origin}: columns.{name}")
        try:
            columns[str(name)] = Column(**spec)
        except TypeError as exc:
            raise DataContractError(f"{origin}: columns.{name}: {exc}.") from exc
    row_count = data.get("row_count")
    if isinstance(row_count, Mapping):
        row_count = RowCount(
            row_count.get("min"), row_count.get("max"), row_count.get("severity", "error")
        )
    elif isinstance(row_count, list):
        row_count = RowCount(*row_count)
    uniques: list[Unique] = []
    for entry in data.get("unique", []):
        if isinstance(entry, Mapping):
            cols = entry.get("columns")
            cols = [cols] if isinstance(cols, str) else list(cols or [])
            uniques.append(
                Unique(tuple(cols), severity_of(entry.get("severity", "error"), "unique"))
            )
        else:
            uniques.append(Unique((entry,) if isinstance(entry, str) else tuple(entry)))
    freshness = data.get("freshness")
    if freshness is not None:
        spec = _table(freshness, f"{origin}: freshness")
        freshness = Freshness(
            str(spec.get("column")),
            parse_duration(spec.get("max_age", "")),
            severity_of(spec.get("severity", "error"), "freshness"),
        )
    limit = data.get("max_quarantine_fraction")
    if isinstance(limit, Mapping):
        limit = QuarantineLimit(
            float(limit.get("max_fraction", 0.0)), severity_of(limit.get("severity", "error"), "")
        )
    checks = []
    for index, spec in enumerate(data.get("checks", [])):
        spec = _table(spec, f"{origin}: checks[{index}]")
        if "function" in spec:
            raise DataContractError(
                f"{origin}: checks[{index}] names a Python function; a contract file can only "
                "hold SQL checks.",
                hint="Pass function checks from Python: Contract(checks=[Check(..., function=f)]).",
            )
        checks.append(
            Check(
                str(spec.get("name")),
                sql=spec.get("sql"),
                columns=tuple(spec.get("columns", ())),
                description=spec.get("description"),
            )
        )
    dataset_checks = [
        DatasetCheck(str(spec.get("name")), str(spec.get("sql")), spec.get("severity", "error"))
        for spec in data.get("dataset_checks", [])
    ]
    return Contract(
        columns=columns,
        row_count=row_count,
        unique=uniques,
        freshness=freshness,
        max_quarantine_fraction=limit,
        checks=checks,
        dataset_checks=dataset_checks,
        allow_extra_columns=bool(data.get("allow_extra_columns", True)),
    )


def read_contract_file(path: Path) -> Contract:
    """Read a contract file: ``.toml``, ``.yaml``/``.yml`` or ``.json``."""
    try:
        size = path.stat().st_size
        if size > _MAX_CONTRACT_BYTES:
            raise ConfigError(f"Contract {path} is {size:,} bytes; the limit is 1 MiB.")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"Contract file {path} does not exist.", hint="Check the path.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Contract {path} is not UTF-8 text.", hint="Save it as UTF-8.") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read contract {path}: {exc.strerror}.") from exc
    suffix = path.suffix.lower()
    data: Any
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped, unused-ignore]
            except ImportError as exc:
                raise ConfigError(
                    f"Reading {path} needs PyYAML.", hint="pip install pyyaml, or use TOML."
                ) from exc
            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(
                f"Contract {path}: unknown format '{suffix}'.",
                hint="Use a .toml, .yaml, .yml or .json file.",
            )
    except ConfigError:
        raise
    except Exception as exc:  # each parser has its own error type; all mean "malformed"
        raise ConfigError(f"Contract {path} is not valid {suffix[1:].upper()}: {exc}") from exc
    return contract_from_dict(data, str(path))
