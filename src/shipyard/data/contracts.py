"""Data contracts: what a dataset's columns and rows must be, declared once.

Row-level rules (a column's type and nullability, ranges, allowed values, regex, lengths,
custom checks) never drop a row silently: a failing row goes to the version's quarantine
table with the rule, column and value that failed. Dataset-level rules (row count,
uniqueness, freshness, the quarantined fraction, custom SQL over the whole table) carry a
severity: ``"error"`` stops the version, ``"warn"`` records the failure in the report.

>>> contract = Contract(
...     columns={
...         "Status": Column("string", nullable=False, allowed=["good", "bad"]),
...         "Income": Column("float64", min=0),
...         "Age": Column("int64", min=18, max=100),
...     },
...     row_count=RowCount(min=1000),
...     max_quarantine_fraction=0.05,
...     checks=[Check("amount_below_price", sql="Amount <= Price")],
... )

The same contract as a file (TOML; YAML and JSON take the same keys), for the CLI::

    max_quarantine_fraction = 0.05
    row_count = { min = 1000 }

    [columns.Status]
    type = "string"
    nullable = false
    allowed = ["good", "bad"]

    [[checks]]
    name = "amount_below_price"
    sql = "Amount <= Price"
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from shipyard.core.errors import DataContractError
from shipyard.data.types import parse_type

__all__ = [
    "Check",
    "Column",
    "Contract",
    "DatasetCheck",
    "Freshness",
    "QuarantineLimit",
    "RowCount",
    "Severity",
    "Unique",
    "load_contract",
    "parse_duration",
    "severity_of",
]

Severity = Literal["error", "warn"]
_SEVERITIES = ("error", "warn")
_CHECK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|s)\s*")
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def severity_of(value: object, where: str) -> Severity:
    """A severity from a contract, checked."""
    if value not in _SEVERITIES:
        raise DataContractError(f"{where}: severity must be 'error' or 'warn', not {value!r}.")
    return "error" if value == "error" else "warn"


def parse_duration(text: str | float | int | timedelta) -> timedelta:
    """``"2d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"1w"`` (or seconds, or a timedelta)."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float) and not isinstance(text, bool):
        return timedelta(seconds=float(text))
    if isinstance(text, str) and (match := _DURATION.fullmatch(text)):
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise DataContractError(
        f"Duration {text!r} is not understood.",
        hint="Write a number and a unit: '45s', '30m', '12h', '2d' or '1w'.",
    )


@dataclass(frozen=True, slots=True)
class Column:
    """What one column must hold. Every rule is optional.

    ``type`` None keeps the source's type (inferred for CSV); ``required`` False lets the
    column be absent from the source (it is then added, all null); ``sensitive`` masks the
    column's values in reports and in the quarantine's ``_value`` column.
    """

    type: str | None = None
    nullable: bool = True
    required: bool = True
    min: Any = None
    max: Any = None
    allowed: Sequence[Any] | None = None
    regex: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    unique: bool = False
    sensitive: bool = False
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in Column.__slots__:
            value = getattr(self, key)
            default = getattr(_DEFAULT_COLUMN, key)
            if value != default:
                out[key] = list(value) if key == "allowed" and value is not None else value
        return out


_DEFAULT_COLUMN = Column()


@dataclass(frozen=True, slots=True)
class Check:
    """A custom row-level rule: a DuckDB SQL expression or a vectorised Python function.

    ``sql`` is a boolean expression over the row's (typed) columns, true for a good row;
    NULL counts as passing, as in a SQL CHECK constraint. ``function`` takes an Arrow
    ``RecordBatch`` and returns one boolean per row (an Arrow array, NumPy array or list),
    true for a good row. ``columns`` names the columns the report shows for a failure.

    >>> Check("price_covers_amount", sql="Price >= Amount", columns=("Price", "Amount"))
    >>> Check("even_ids", function=lambda batch: pc.equal(pc.bit_wise_and(batch["id"], 1), 0))
    """

    name: str
    sql: str | None = None
    function: Callable[[Any], Any] | None = None
    columns: tuple[str, ...] = ()
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _CHECK_NAME.fullmatch(self.name):
            raise DataContractError(
                f"Check name {self.name!r} is invalid: use 1-64 letters, digits, '_' or '-', "
                "starting with a letter."
            )
        if (self.sql is None) == (self.function is None):
            raise DataContractError(f"Check {self.name!r} needs exactly one of sql= or function=.")
        object.__setattr__(self, "columns", tuple(self.columns))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.sql is not None:
            out["sql"] = self.sql
        if self.function is not None:
            function = self.function
            out["function"] = f"{function.__module__}:{getattr(function, '__qualname__', '?')}"
        if self.columns:
            out["columns"] = list(self.columns)
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class RowCount:
    """The version's row count (rows that passed) must be within [min, max]."""

    min: int | None = None
    max: int | None = None
    severity: Severity = "error"


@dataclass(frozen=True, slots=True)
class Unique:
    """No two rows share the same values of ``columns`` (rows with a null key are ignored)."""

    columns: tuple[str, ...]
    severity: Severity = "error"


@dataclass(frozen=True, slots=True)
class Freshness:
    """The newest value of a date/timestamp ``column`` is at most ``max_age`` old."""

    column: str
    max_age: timedelta
    severity: Severity = "error"


@dataclass(frozen=True, slots=True)
class QuarantineLimit:
    """At most ``max_fraction`` of the rows read may be quarantined."""

    max_fraction: float
    severity: Severity = "error"


@dataclass(frozen=True, slots=True)
class DatasetCheck:
    """A custom dataset-level rule: a DuckDB query over the table ``data`` returning one
    boolean, true when the dataset is good.

    >>> DatasetCheck("mean_income_sane", "SELECT avg(Income) BETWEEN 50 AND 500 FROM data")
    """

    name: str
    sql: str
    severity: Severity = "error"


@dataclass(frozen=True)
class Contract:
    """Columns, row-level checks and dataset-level rules a version must satisfy.

    Shorthands: ``row_count=(1000, None)``, ``unique=["id", ("a", "b")]``,
    ``max_quarantine_fraction=0.05``; ``Column(unique=True)`` adds a ``Unique`` rule.
    """

    columns: Mapping[str, Column] = field(default_factory=dict)
    row_count: RowCount | tuple[int | None, int | None] | None = None
    unique: Sequence[Unique | str | Sequence[str]] = ()
    freshness: Freshness | None = None
    max_quarantine_fraction: QuarantineLimit | float | None = None
    checks: Sequence[Check] = ()
    dataset_checks: Sequence[DatasetCheck] = ()
    allow_extra_columns: bool = True

    def __post_init__(self) -> None:
        columns = dict(self.columns)
        for name, column in columns.items():
            _validate_column(name, column)
        row_count = self.row_count
        if isinstance(row_count, tuple):
            row_count = RowCount(*row_count)
        if row_count is not None:
            _validate_row_count(row_count)
        uniques: list[Unique] = []
        for entry in self.unique:
            if isinstance(entry, Unique):
                uniques.append(Unique(tuple(entry.columns), severity_of(entry.severity, "unique")))
            elif isinstance(entry, str):
                uniques.append(Unique((entry,)))
            else:
                uniques.append(Unique(tuple(entry)))
        uniques.extend(Unique((name,)) for name, column in columns.items() if column.unique)
        limit = self.max_quarantine_fraction
        if isinstance(limit, int | float) and not isinstance(limit, bool):
            limit = QuarantineLimit(float(limit))
        if isinstance(limit, QuarantineLimit) and not 0.0 <= limit.max_fraction <= 1.0:
            raise DataContractError(
                f"max_quarantine_fraction must be between 0 and 1, not {limit.max_fraction}."
            )
        names = [check.name for check in self.checks] + [c.name for c in self.dataset_checks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise DataContractError(f"Check names must be unique; repeated: {duplicates}.")
        for dataset_check in self.dataset_checks:
            severity_of(dataset_check.severity, f"dataset check {dataset_check.name!r}")
        if self.freshness is not None:
            severity_of(self.freshness.severity, "freshness")
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "row_count", row_count)
        object.__setattr__(self, "unique", tuple(dict.fromkeys(uniques)))
        object.__setattr__(self, "max_quarantine_fraction", limit)
        object.__setattr__(self, "checks", tuple(self.checks))
        object.__setattr__(self, "dataset_checks", tuple(self.dataset_checks))

    @property
    def uniques(self) -> tuple[Unique, ...]:
        """The uniqueness rules, normalised."""
        return tuple(u for u in self.unique if isinstance(u, Unique))

    @property
    def quarantine_limit(self) -> QuarantineLimit | None:
        limit = self.max_quarantine_fraction
        return limit if isinstance(limit, QuarantineLimit) else None

    @property
    def row_count_rule(self) -> RowCount | None:
        return self.row_count if isinstance(self.row_count, RowCount) else None

    @property
    def sensitive_columns(self) -> frozenset[str]:
        return frozenset(name for name, column in self.columns.items() if column.sensitive)

    def to_dict(self) -> dict[str, Any]:
        """The contract as plain JSON-able data (``from_dict`` reads it back, except
        Python function checks, which are recorded by name only)."""
        out: dict[str, Any] = {
            "columns": {name: column.to_dict() for name, column in self.columns.items()},
            "allow_extra_columns": self.allow_extra_columns,
        }
        if (row_count := self.row_count_rule) is not None:
            out["row_count"] = {
                "min": row_count.min,
                "max": row_count.max,
                "severity": row_count.severity,
            }
        if self.uniques:
            out["unique"] = [
                {"columns": list(rule.columns), "severity": rule.severity} for rule in self.uniques
            ]
        if self.freshness is not None:
            out["freshness"] = {
                "column": self.freshness.column,
                "max_age": f"{self.freshness.max_age.total_seconds():g}s",
                "severity": self.freshness.severity,
            }
        if (limit := self.quarantine_limit) is not None:
            out["max_quarantine_fraction"] = {
                "max_fraction": limit.max_fraction,
                "severity": limit.severity,
            }
        if self.checks:
            out["checks"] = [check.to_dict() for check in self.checks]
        if self.dataset_checks:
            out["dataset_checks"] = [
                {"name": c.name, "sql": c.sql, "severity": c.severity} for c in self.dataset_checks
            ]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "contract") -> Contract:
        """Read a contract from plain data (a parsed TOML/YAML/JSON file)."""
        from shipyard.data.contract_files import contract_from_dict

        return contract_from_dict(data, origin)


def _validate_column(name: str, column: Column) -> None:
    where = f"Column {name!r}"
    if not isinstance(column, Column):
        raise DataContractError(f"{where}: expected a Column(...), got {type(column).__name__}.")
    if column.type is not None:
        parse_type(column.type)
    if column.regex is not None:
        try:
            re.compile(column.regex)
        except re.error as exc:
            raise DataContractError(f"{where}: regex {column.regex!r} is invalid: {exc}.") from exc
    if column.min is not None and column.max is not None:
        try:
            wrong = column.min > column.max
        except TypeError as exc:
            raise DataContractError(f"{where}: min and max cannot be compared.") from exc
        if wrong:
            raise DataContractError(f"{where}: min {column.min!r} is above max {column.max!r}.")
    for key in ("min_length", "max_length"):
        value = getattr(column, key)
        if value is not None and (not isinstance(value, int) or value < 0):
            raise DataContractError(f"{where}: {key} must be a non-negative integer.")
    if column.allowed is not None and isinstance(column.allowed, str | bytes):
        raise DataContractError(f"{where}: allowed must be a list of values, not a string.")


def _validate_row_count(rule: RowCount) -> None:
    for key in ("min", "max"):
        value = getattr(rule, key)
        if value is not None and (not isinstance(value, int) or value < 0):
            raise DataContractError(f"row_count {key} must be a non-negative integer.")
    if rule.min is not None and rule.max is not None and rule.min > rule.max:
        raise DataContractError(f"row_count min {rule.min} is above max {rule.max}.")
    severity_of(rule.severity, "row_count")


def load_contract(path: str | Path) -> Contract:
    """Read a contract file: ``.toml``, ``.yaml``/``.yml`` or ``.json``.

    >>> contract = load_contract("contracts/credit.toml")
    """
    from shipyard.data.contract_files import read_contract_file

    return read_contract_file(Path(path))
