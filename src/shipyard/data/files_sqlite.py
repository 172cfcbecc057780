"""File versions recorded in the embedded SQLite store with the standard library only.

Recording a file version touches four tables (``datasets``, ``dataset_versions``,
``blob_refs``, ``audit_events``). Through ``catalog`` that costs importing SQLAlchemy and
every subsystem's table definitions, about half a second of start-up: more than the
rest of versioning 10,000 small files. ``EmbeddedFileCatalog`` writes the same rows with
``sqlite3``, in one ``BEGIN IMMEDIATE`` transaction, as ``catalog.insert_version`` does:
the same columns, the same JSON and timestamp encodings (``tests/data/test_files_sqlite``
reads what it writes back through ``catalog`` and compares).

It is used only when it can be: an existing SQLite database whose dataset and foundation
tables are at exactly the migration revisions this module was written for
(``SCHEMA_TIPS``), and a local artifact store. Anything else (PostgreSQL, a first use
that must create and migrate the database, a database written by another Shipyard) goes
through ``catalog`` as before; ``open_embedded_catalog`` then returns None.

>>> catalog = open_embedded_catalog(config)
>>> catalog is None or catalog.latest("images") is None
True
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from shipyard.core.config import Config
from shipyard.core.errors import AlreadyExistsError, BackendError, BackendUnavailableError
from shipyard.core.ids import new_id
from shipyard.core.references import validate_name
from shipyard.data.records import DatasetVersion, SchemaColumn
from shipyard.store.artifacts_local import LocalArtifactStore

__all__ = ["SCHEMA_TIPS", "EmbeddedFileCatalog", "embedded_database", "open_embedded_catalog"]

SCHEMA_TIPS = ("d0001", "0001")
"""The revisions of the datasets and foundation migration branches whose tables this
module writes. A test keeps them equal to ``store.schema.datasets.REVISION`` and
``store.schema.foundation.REVISION``: a migration on either branch must review the SQL
here (until then, the database's new revision sends every write through ``catalog``)."""

OWNER_KIND = "dataset_version"
"""``blob_refs.owner_kind`` of a dataset version's blobs (``catalog.OWNER_KIND``)."""

_BUSY_TIMEOUT_MS = 30_000
# The columns are listed in the order ``_version`` unpacks them.
_LATEST = (
    "SELECT id, number, content_id, kind, schema, num_rows, num_bytes, data, profile_blob, "
    "sample_blob, quarantine_blob, quarantined_rows, report_blob, checks, contract, source, "
    "tags, created_by, created_at FROM dataset_versions "
    "WHERE dataset_id = (SELECT id FROM datasets WHERE name = ?) ORDER BY number DESC LIMIT 1"
)
_BY_ID = (
    "SELECT id, number, content_id, kind, schema, num_rows, num_bytes, data, profile_blob, "
    "sample_blob, quarantine_blob, quarantined_rows, report_blob, checks, contract, source, "
    "tags, created_by, created_at FROM dataset_versions WHERE id = ?"
)
_INSERT = (
    "INSERT INTO dataset_versions (id, dataset_id, number, content_id, kind, schema, "
    "num_rows, num_bytes, data, profile_blob, sample_blob, quarantine_blob, quarantined_rows, "
    "report_blob, checks, contract, source, tags, created_by, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def embedded_database(config: Config) -> Path | None:
    """The file of an embedded SQLite metadata store if it exists, else None."""
    uri = config.store.metadata
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    database = Path(uri[len("sqlite:///") :]).expanduser()
    return database if database.is_file() else None


def open_embedded_catalog(config: Config) -> EmbeddedFileCatalog | None:
    """The project's stores as an ``EmbeddedFileCatalog``, or None if only ``catalog``
    can record a file version there (see the module docstring)."""
    database = embedded_database(config)
    if database is None or config.store.artifacts.startswith("s3://"):
        return None
    from shipyard.store.artifacts_factory import open_artifact_store

    artifacts = open_artifact_store(
        config.store.artifacts, base_dir=config.project_dir, s3_endpoint_url=None
    )
    if not isinstance(artifacts, LocalArtifactStore):
        return None
    try:
        conn = _connect(database)
    except sqlite3.Error:
        return None
    try:
        revisions = _revisions(conn)
    except sqlite3.Error:
        conn.close()
        return None
    if not set(SCHEMA_TIPS) <= revisions:
        conn.close()
        return None
    return EmbeddedFileCatalog(conn, database, artifacts)


def _connect(database: Path) -> sqlite3.Connection:
    # The settings of ``store.metadata`` for SQLite: autocommit (transactions are begun
    # explicitly), a 30 s wait for the write lock, WAL, foreign keys enforced.
    conn = sqlite3.connect(database, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _revisions(conn: sqlite3.Connection) -> set[str]:
    """The migration heads the database is at."""
    return {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}


def _timestamp(moment: datetime) -> str:
    """SQLAlchemy's SQLite encoding of a ``UtcDateTime``: UTC, no offset, microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _current_user() -> str:
    try:
        return getpass.getuser()[:256]
    except (KeyError, OSError):
        return "unknown"


class EmbeddedFileCatalog:
    """File versions in an embedded SQLite metadata store and a local artifact store.

    Use ``open_embedded_catalog``; close it (or use ``with``) when done.
    """

    def __init__(
        self, conn: sqlite3.Connection, database: Path, artifacts: LocalArtifactStore
    ) -> None:
        self._conn = conn
        self._database = database
        self.artifacts = artifacts

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EmbeddedFileCatalog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def latest(self, name: str) -> DatasetVersion | None:
        """The newest version of dataset ``name``, or None."""
        try:
            row = self._conn.execute(_LATEST, (name,)).fetchone()
            if row is None:
                return None
            aliases = [
                alias
                for (alias,) in self._conn.execute(
                    "SELECT alias FROM dataset_aliases WHERE version_id = ? ORDER BY alias",
                    (row[0],),
                )
            ]
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        return _version(row, name, aliases)

    def insert(
        self,
        name: str,
        *,
        content_id: str,
        num_rows: int,
        num_bytes: int,
        data: Mapping[str, Any],
        blobs: Sequence[tuple[str, str]],
        source: Mapping[str, Any],
        checks: Mapping[str, Any],
        tags: Mapping[str, str] | None = None,
    ) -> DatasetVersion:
        """Record a new file version (its blobs already stored), as
        ``catalog.insert_version(..., "files", ...)`` does; return it."""
        validate_name(name, what="dataset name")
        clean_tags = {str(k): str(v) for k, v in (tags or {}).items()}
        user = _current_user()
        version_id = new_id()
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # the write lock first: numbers one at a time
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        try:
            # Checked again under the write lock: a migration may have run since opening.
            if not set(SCHEMA_TIPS) <= _revisions(conn):
                raise BackendError(
                    f"Metadata store sqlite:///{self._database} was migrated while the files "
                    "were being versioned; nothing was recorded.",
                    hint="Run the command again.",
                )
            now = _timestamp(datetime.now(UTC))
            conn.execute(
                "INSERT INTO datasets (id, name, kind, description, created_at) "
                "VALUES (?, ?, 'files', NULL, ?) ON CONFLICT DO NOTHING",
                (new_id(), name, now),
            )
            dataset_id, kind = conn.execute(
                "SELECT id, kind FROM datasets WHERE name = ?", (name,)
            ).fetchone()
            if kind != "files":
                raise AlreadyExistsError(
                    f"Dataset '{name}' holds {kind} versions; this is a files version.",
                    hint="Use another dataset name for it.",
                )
            (latest,) = conn.execute(
                "SELECT max(number) FROM dataset_versions WHERE dataset_id = ?", (dataset_id,)
            ).fetchone()
            number = (latest or 0) + 1
            row = (
                version_id,
                dataset_id,
                number,
                content_id,
                "files",
                "[]",
                num_rows,
                num_bytes,
                json.dumps(dict(data)),
                None,
                None,
                None,
                0,
                None,
                json.dumps(dict(checks)),
                "null",
                json.dumps(dict(source)),
                json.dumps(clean_tags),
                user,
                now,
            )
            conn.execute(_INSERT, row)
            conn.executemany(
                "INSERT INTO blob_refs (blob_id, owner_kind, owner_id, role, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(blob, OWNER_KIND, version_id, role, now) for blob, role in dict.fromkeys(blobs)],
            )
            detail = {"dataset": name, "version": number, "content_id": content_id}
            conn.execute(
                "INSERT INTO audit_events (at, actor, action, object_kind, object_id, detail) "
                "VALUES (?, ?, 'dataset.version.create', ?, ?, ?)",
                (now, user, OWNER_KIND, version_id, json.dumps(detail)),
            )
            stored = conn.execute(_BY_ID, (version_id,)).fetchone()
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._unavailable(exc) from exc
            raise
        return _version(stored, name, ())

    def _unavailable(self, exc: sqlite3.Error) -> BackendError:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, sqlite3.OperationalError):
            return BackendUnavailableError(
                f"Metadata store sqlite:///{self._database} is unavailable: {reason}.",
                hint="If another process holds a long write transaction on it, retry when it "
                "ends; else check the file and its folder are writable.",
            )
        return BackendError(
            f"Recording a file version in metadata store sqlite:///{self._database} failed: "
            f"{reason}.",
            hint="Nothing was recorded; fix the cause and version the files again.",
        )


def _version(row: Sequence[Any], name: str, aliases: Sequence[str]) -> DatasetVersion:
    """A ``dataset_versions`` row, as ``_LATEST`` and ``_BY_ID`` select it, as a record."""
    (
        version_id,
        number,
        content_id,
        kind,
        _schema,
        num_rows,
        num_bytes,
        data,
        profile_blob,
        sample_blob,
        quarantine_blob,
        quarantined_rows,
        report_blob,
        checks,
        contract,
        source,
        tags,
        created_by,
        created_at,
    ) = row
    schema = json.loads(_schema)
    return DatasetVersion(
        id=version_id,
        dataset=name,
        number=int(number),
        content_id=content_id,
        kind=kind,
        schema=tuple(SchemaColumn(c["name"], c["type"], bool(c["nullable"])) for c in schema),
        num_rows=int(num_rows),
        num_bytes=int(num_bytes),
        data=json.loads(data),
        profile_blob=profile_blob,
        sample_blob=sample_blob,
        quarantine_blob=quarantine_blob,
        quarantined_rows=int(quarantined_rows),
        report_blob=report_blob,
        checks=json.loads(checks),
        contract=json.loads(contract) if contract is not None else None,
        source=json.loads(source),
        tags=json.loads(tags),
        created_by=created_by,
        created_at=_parse_timestamp(created_at),
        aliases=tuple(aliases),
    )
