"""Configuration: ``shipyard.toml`` in the project folder, ``SHIPYARD_*`` variables over it.

Resolution, lowest to highest precedence:

1. defaults: everything embedded under ``<project>/.shipyard/`` (SQLite metadata, local
   artifact folder);
2. ``<project>/shipyard.toml``;
3. environment variables ``SHIPYARD_<SECTION>_<KEY>`` (``SHIPYARD_STORE_METADATA``...).

The project folder is ``SHIPYARD_PROJECT_DIR`` if set, else the nearest folder at or above
the working directory that holds a ``shipyard.toml``, else the working directory.

A minimal ``shipyard.toml``::

    [project]
    name = "churn"

    [store]
    metadata = "postgresql://shipyard@db.internal/shipyard"
    artifacts = "s3://ml-artifacts/churn"

    [s3]
    endpoint_url = "http://127.0.0.1:9000"
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "HOME_FOLDER",
    "SCHEMA",
    "STRUCTURED_SECTIONS",
    "Config",
    "S3Config",
    "StoreConfig",
    "find_project_dir",
    "load_config",
    "render_config_toml",
]

CONFIG_FILE = "shipyard.toml"
HOME_FOLDER = ".shipyard"
_ENV_PREFIX = "SHIPYARD_"
_MAX_CONFIG_BYTES = 1 << 20

# section -> key -> description. The single source of truth for what may be configured.
SCHEMA: dict[str, dict[str, str]] = {
    "project": {"name": "the project's name"},
    "store": {
        "metadata": "metadata database URI: sqlite:///PATH or postgresql://USER@HOST/DB",
        "artifacts": "artifact store: a folder path, file://PATH or s3://BUCKET/PREFIX",
    },
    "s3": {
        "endpoint_url": "S3-compatible endpoint (MinIO, moto, Ceph...); empty for AWS",
        "region": "S3 region",
    },
    "features": {
        "offline": "offline engine: duckdb (default), duckdb-asof or spark",
        "online": "online store: sqlite (default, under .shipyard/) or redis://HOST:PORT/DB",
        "spark_master": "Spark master URL for the spark engine (default local[2])",
    },
    "serving": {
        "host": "address to bind (default 127.0.0.1)",
        "port": "port to listen on (default 8000)",
        "api_key": "if set, requests must send it as the X-API-Key header",
        "workers": "worker processes (default 1)",
        "poll_seconds": "how often the service polls the registry for alias moves (default 2)",
    },
    "monitoring": {
        "log_retention_days": "days to keep prediction log records (default 90)",
        "log_mask": "comma-separated input columns whose values the prediction log masks",
        "log_drop": "comma-separated input columns the prediction log does not store",
    },
}

# Sections whose tables are free-form (nested, typed values): kept raw in
# ``Config.sections`` and validated by the package that owns them.
STRUCTURED_SECTIONS: dict[str, str] = {
    "gates": "promotion gates per model ([gates.MODEL]); validated by shipyard.evaluation",
    "alerts": "alert rules and channels ([alerts.rules], [alerts.channels]); "
    "validated by shipyard.monitoring",
    "policies": "closed-loop policies ([policies.NAME]); validated by shipyard.pipelines",
}

# Sections whose numbers and booleans may be written bare (port = 8000).
_TYPED_SECTIONS = frozenset({"features", "serving", "monitoring"})

_SCHEMES_METADATA = ("sqlite", "postgresql", "postgres", "postgresql+psycopg")
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


@dataclass(frozen=True, slots=True)
class S3Config:
    endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class StoreConfig:
    metadata: str
    """Metadata database URI, absolute (relative SQLite paths resolved against the project)."""
    artifacts: str
    """Artifact store: an absolute folder path or ``s3://bucket/prefix``."""


@dataclass(frozen=True, slots=True)
class Config:
    """The resolved configuration of one project."""

    project_dir: Path
    name: str
    store: StoreConfig
    s3: S3Config = S3Config()
    config_file: Path | None = None
    origins: Mapping[str, str] = field(default_factory=dict)
    """For each ``section.key``: where its value came from (default, file, or env var)."""
    values: Mapping[str, str] = field(default_factory=dict)
    """Every configured ``section.key`` value (file or env), e.g. ``values["serving.port"]``."""
    sections: Mapping[str, Any] = field(default_factory=dict)
    """The raw tables of the structured sections (``STRUCTURED_SECTIONS``), e.g. ``gates``."""

    def get(self, dotted: str, default: str | None = None) -> str | None:
        """A configured value by ``section.key`` (``serving.port``), or ``default``."""
        if dotted.split(".", 1)[0] not in SCHEMA:
            raise ConfigError(f"Unknown configuration section in {dotted!r}.")
        value = self.values.get(dotted)
        return value if value not in (None, "") else default

    @property
    def home(self) -> Path:
        """The embedded home folder, ``<project>/.shipyard``."""
        return self.project_dir / HOME_FOLDER

    def with_store(self, metadata: str | None = None, artifacts: str | None = None) -> Config:
        """A copy pointing at other stores (used by ``shipyard store migrate``)."""
        store = StoreConfig(
            metadata=_normalize_metadata(metadata, self.project_dir, "--to")
            if metadata
            else self.store.metadata,
            artifacts=_normalize_artifacts(artifacts, self.project_dir, "--to")
            if artifacts
            else self.store.artifacts,
        )
        return Config(
            self.project_dir,
            self.name,
            store,
            self.s3,
            self.config_file,
            self.origins,
            self.values,
            self.sections,
        )


def find_project_dir(start: Path | None = None) -> Path:
    """The project folder: ``SHIPYARD_PROJECT_DIR``, else nearest ``shipyard.toml`` upward."""
    explicit = os.environ.get(f"{_ENV_PREFIX}PROJECT_DIR")
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(
                f"SHIPYARD_PROJECT_DIR={explicit} is not a folder.",
                hint="Point it at a project folder (see `shipyard init`) or unset it.",
            )
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return here


def load_config(
    project_dir: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Resolve the configuration for ``project_dir`` (default: found from the cwd)."""
    env = os.environ if environ is None else environ
    project = project_dir.resolve() if project_dir else find_project_dir()
    config_path = project / CONFIG_FILE
    file_values, sections = _read_file(config_path) if config_path.is_file() else ({}, {})

    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    for section, keys in SCHEMA.items():
        for key in keys:
            dotted = f"{section}.{key}"
            env_name = f"{_ENV_PREFIX}{section}_{key}".upper()
            if env_name in env:
                values[dotted] = env[env_name]
                origins[dotted] = f"env {env_name}"
            elif dotted in file_values:
                values[dotted] = file_values[dotted]
                origins[dotted] = str(config_path)
            else:
                origins[dotted] = "default"

    home = project / HOME_FOLDER
    metadata = _normalize_metadata(
        values.get("store.metadata", f"sqlite:///{home / 'metadata.db'}"),
        project,
        origins["store.metadata"],
    )
    artifacts = _normalize_artifacts(
        values.get("store.artifacts", str(home / "artifacts")),
        project,
        origins["store.artifacts"],
    )
    return Config(
        project_dir=project,
        name=values.get("project.name") or project.name or "shipyard",
        store=StoreConfig(metadata=metadata, artifacts=artifacts),
        s3=S3Config(
            endpoint_url=values.get("s3.endpoint_url") or None,
            region=values.get("s3.region") or None,
        ),
        config_file=config_path if config_path.is_file() else None,
        origins=origins,
        values=values,
        sections=sections,
    )


def render_config_toml(name: str) -> str:
    """The ``shipyard.toml`` that ``shipyard init`` writes: every key, commented."""
    return (
        "# Shipyard project configuration. Every key is optional; environment variables\n"
        "# SHIPYARD_<SECTION>_<KEY> override it (e.g. SHIPYARD_STORE_METADATA).\n\n"
        f"[project]\nname = {_toml_string(name)}\n\n"
        "[store]\n"
        "# Embedded default: everything under ./.shipyard/\n"
        '# metadata = "postgresql://shipyard@127.0.0.1:5432/shipyard"\n'
        '# artifacts = "s3://my-bucket/shipyard"\n\n'
        "[s3]\n"
        '# endpoint_url = "http://127.0.0.1:9000"\n'
        '# region = "us-east-1"\n'
    )


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _read_file(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    try:
        size = path.stat().st_size
        if size > _MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path} is {size:,} bytes; a shipyard.toml is at most 1 MiB.",
                hint="Is this the right file?",
            )
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}).", hint="Save it as UTF-8."
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"Cannot read {path}: {exc.strerror}.", hint="Check the file's permissions."
        ) from exc
    try:
        document = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}.",
            hint="Fix the line it names; `shipyard init` shows a valid example.",
        ) from exc
    structured = {name: document.pop(name) for name in STRUCTURED_SECTIONS if name in document}
    for name, table in structured.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{path}: '{name}' must be a table ([{name}]), not a {type(table).__name__}."
            )
    return _flatten(document, path), structured


def _flatten(document: dict[str, Any], path: Path) -> dict[str, str]:
    flat: dict[str, str] = {}
    known_sections = [*SCHEMA, *STRUCTURED_SECTIONS]
    for section, table in document.items():
        if section not in SCHEMA:
            raise ConfigError(
                f"{path}: unknown section [{section}].{_suggest(section, known_sections)}",
                hint=f"Known sections: {', '.join(sorted(known_sections))}.",
            )
        if not isinstance(table, dict):
            raise ConfigError(
                f"{path}: '{section}' must be a table ([{section}]), not a {type(table).__name__}."
            )
        for key, value in table.items():
            known = SCHEMA[section]
            if key not in known:
                raise ConfigError(
                    f"{path}: unknown key '{section}.{key}'.{_suggest(key, list(known))}",
                    hint=f"Keys of [{section}]: {', '.join(sorted(known))}.",
                )
            if section in _TYPED_SECTIONS and isinstance(value, bool):
                value = "true" if value else "false"
            elif section in _TYPED_SECTIONS and isinstance(value, int | float):
                value = str(value)  # port = 8000: its owner parses and checks it
            if not isinstance(value, str):
                raise ConfigError(
                    f"{path}: '{section}.{key}' must be a string, "
                    f"got {type(value).__name__} {value!r}.",
                    hint=f'Quote it: {key} = "...". ({known[key]})',
                )
            flat[f"{section}.{key}"] = value
    return flat


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _normalize_metadata(uri: str, project: Path, origin: str) -> str:
    uri = uri.strip()
    match = _URI_SCHEME.match(uri)
    if not match:
        raise ConfigError(
            f"store.metadata ({origin}) = {uri!r} is not a database URI.",
            hint="Use sqlite:///PATH (embedded) or postgresql://USER@HOST:PORT/DATABASE.",
        )
    scheme = match.group(1).lower()
    if scheme not in _SCHEMES_METADATA:
        raise ConfigError(
            f"store.metadata ({origin}): unknown database scheme '{scheme}://'.",
            hint="Supported: sqlite:///PATH and postgresql://USER@HOST:PORT/DATABASE.",
        )
    if scheme == "sqlite":
        rest = uri[len("sqlite://") :]
        if not rest.startswith("/") or rest in ("/", "/:memory:"):
            raise ConfigError(
                f"store.metadata ({origin}) = {uri!r} names no database file.",
                hint="Write sqlite:///relative/path.db or sqlite:////absolute/path.db.",
            )
        path = Path(rest[1:]).expanduser()
        if not path.is_absolute():
            path = project / path
        return f"sqlite:///{path}"
    return uri


def _normalize_artifacts(uri: str, project: Path, origin: str) -> str:
    uri = uri.strip()
    if not uri:
        raise ConfigError(f"store.artifacts ({origin}) is empty.", hint="Name a folder or s3://.")
    match = _URI_SCHEME.match(uri)
    if match:
        scheme = match.group(1).lower()
        if scheme == "s3":
            return uri
        if scheme == "file":
            uri = uri[len("file://") :]
        else:
            raise ConfigError(
                f"store.artifacts ({origin}): unknown artifact store scheme '{scheme}://'.",
                hint="Supported: a folder path, file://PATH, s3://BUCKET/PREFIX.",
            )
    path = Path(uri).expanduser()
    if not path.is_absolute():
        path = project / path
    return str(path)
