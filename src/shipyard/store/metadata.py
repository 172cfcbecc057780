"""The metadata database: one SQLAlchemy module serving SQLite (embedded) and PostgreSQL.

>>> store = open_metadata_store("sqlite:////tmp/project/.shipyard/metadata.db")
>>> with store.transaction() as conn:
...     store.add_blob_refs(conn, [BlobRef(blob_id, "run", run_id, "model")])
...     store.record_event(conn, "ana", "run.create", "run", run_id)
>>> store.close()

Opening a store applies pending migrations, safely: concurrent openers queue on a lock
(a PostgreSQL advisory lock; SQLite's write lock, taken by ``BEGIN IMMEDIATE``) and the
first one in upgrades for all. A database written by a newer Shipyard is refused and
left untouched. On SQLite every write transaction begins with ``BEGIN IMMEDIATE``, so
concurrent writers queue on the lock (for up to ``busy_timeout``) instead of failing when
a read transaction tries to become a write one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from sqlalchemy import Insert, Table, create_engine, delete, event, func, insert, inspect, select
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from shipyard.core.errors import BackendError, BackendUnavailableError, ConfigError, NotFoundError
from shipyard.core.ids import ContentId, parse_content_id
from shipyard.store import migrations
from shipyard.store.schema import SCHEMA_REVISION, audit_events, blob_refs, store_info

__all__ = ["BlobRef", "MetadataStore", "mask_password", "normalise_uri", "open_metadata_store"]

_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
_SUPPORTED = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "postgresql://user:password@host:5432/database (or postgres://, postgresql+psycopg://)"
)
_MIGRATION_LOCK_KEY = 0x5348495059415244  # b"SHIPYARD": one advisory lock per database
_BEGIN_RETRY_SECONDS = 60.0
_SQLITE_BUSY_TIMEOUT_MS = 30_000
_POSTGRES_CONNECT_TIMEOUT_S = 5
_WRITE_OPTION = "shipyard_write"
# sqlite3 primary result codes meaning "the file cannot be used" rather than "bad SQL".
_SQLITE_UNAVAILABLE = {3, 5, 6, 8, 10, 13, 14, 26}  # PERM BUSY LOCKED READONLY IOERR FULL...
_SQLITE_BUSY_OR_LOCKED = {5, 6}
# SQLSTATE classes/codes meaning the server or its resources, not the statement, failed.
_POSTGRES_UNAVAILABLE = ("08", "28", "3D", "53", "57P")
_POSTGRES_TRANSIENT = {"40001", "40P01"}  # serialization failure, deadlock detected


@dataclass(frozen=True, slots=True)
class BlobRef:
    """One metadata record's use of an artifact blob: GC keeps every referenced blob."""

    blob_id: str
    owner_kind: str
    owner_id: str
    role: str

    def __post_init__(self) -> None:
        parse_content_id(self.blob_id)
        for field, limit in (("owner_kind", 32), ("owner_id", 64), ("role", 128)):
            value = getattr(self, field)
            if not value or len(value) > limit:
                raise ValueError(f"BlobRef.{field} {value!r} must be 1 to {limit} characters")


def normalise_uri(uri: str) -> URL:
    """Parse a metadata URI into the SQLAlchemy URL Shipyard connects with.

    SQLite paths become absolute (relative ones are taken from the current folder);
    every PostgreSQL spelling uses the psycopg 3 driver. Other schemes raise ``ConfigError``.
    """
    scheme, separator, _ = uri.partition("://")
    scheme = scheme.lower()
    if not separator or (scheme != "sqlite" and scheme not in _POSTGRES_SCHEMES):
        problem = f"unsupported scheme '{scheme}'" if separator else "no scheme"
        raise ConfigError(
            f"Metadata store URI '{mask_password(uri)}' has {problem}.",
            hint=f"Use one of: {_SUPPORTED}.",
        )
    try:
        url = make_url(uri)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"Metadata store URI '{mask_password(uri)}' is malformed.",
            hint=f"Use one of: {_SUPPORTED}.",
        ) from exc
    if scheme != "sqlite":
        return url.set(drivername="postgresql+psycopg")
    if not url.database or url.database == ":memory:":
        raise ConfigError(
            f"Metadata store URI '{mask_password(uri)}' names no file; "
            "an in-memory store would vanish on close.",
            hint="Give a file path, e.g. sqlite:////path/to/metadata.db.",
        )
    path = Path(url.database).expanduser()
    return url.set(
        drivername="sqlite", database=str(path if path.is_absolute() else path.absolute())
    )


def mask_password(uri: str) -> str:
    """``uri`` with any password in it replaced by ``***``."""
    return re.sub(r"^([^:/]+://[^/@:]*:)[^/]*@", r"\1***@", uri)


def open_metadata_store(uri: str, *, migrate: bool = True) -> MetadataStore:
    """Open (creating it if needed) the metadata store at ``uri``, migrated to head.

    ``migrate=False`` opens without looking at or changing the schema (for status tools).
    Raises ``ConfigError`` (bad URI), ``BackendUnavailableError`` (cannot connect, cannot
    create or write the file) or ``SchemaVersionError`` (written by a newer Shipyard).
    """
    store = MetadataStore(normalise_uri(uri))
    try:
        store.ping()
        if migrate:
            store.migrate()
    except BaseException:
        store.close()
        raise
    return store


class MetadataStore:
    """A connection pool to the metadata database, and the foundation's record helpers.

    Use ``open_metadata_store``; writes go through ``transaction()``, reads ``connect()``.
    """

    def __init__(self, url: URL) -> None:
        self._url = url
        self._dialect: Literal["sqlite", "postgresql"] = (
            "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
        )
        self._store_id: str | None = None
        self._engine = self._create_engine()

    # --- Identity ------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The normalised URI, password included (to hand to another process)."""
        return self._url.render_as_string(hide_password=False)

    @property
    def display_uri(self) -> str:
        """The URI with its password masked: the only form that goes into messages."""
        return self._url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        return self._dialect

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def store_id(self) -> str:
        """The random id given to this store when it was created."""
        if self._store_id is None:
            with self.connect() as conn:
                if inspect(conn).has_table(store_info.name):
                    query = select(store_info.c.value).where(store_info.c.key == "store_id")
                    self._store_id = conn.execute(query).scalar_one_or_none()
            if self._store_id is None:
                raise NotFoundError(
                    f"Metadata store {self.display_uri} has no store_id: it is not initialised.",
                    hint="Open it with migrations enabled (open_metadata_store(uri)).",
                )
        return self._store_id

    def __repr__(self) -> str:
        return f"MetadataStore({self.display_uri!r})"

    # --- Connections and transactions ----------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads; whatever it began is rolled back when the block ends."""
        try:
            conn = self._engine.connect()
        except DBAPIError as exc:
            raise self._unavailable(exc) from exc
        with conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        Waiting for the write lock (SQLite) or retrying a transient failure to begin is
        bounded; the block itself runs once.
        """
        conn = self._begin_write()
        with conn:
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def ping(self) -> None:
        """Check the database answers; ``BackendUnavailableError`` says why not."""
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except DBAPIError as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        """Close every pooled connection. The store can be reopened by ``open_metadata_store``."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- Schema --------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The database's migration revision, or ``None`` for an empty database."""
        with self.connect() as conn:
            revisions = migrations.read_revisions(conn)
        return ",".join(revisions) if revisions else None

    def head_revision(self) -> str:
        """The newest migration revision this Shipyard knows."""
        return migrations.head_revision()

    def migrate(self) -> None:
        """Upgrade the schema to head; concurrent callers queue and the first one upgrades.

        A database at a revision this code does not know is refused, never touched.
        """
        with self.connect() as conn:
            current = migrations.read_revisions(conn)
        if ",".join(current) == SCHEMA_REVISION:
            return  # the common case, decided without loading Alembic
        migrations.refuse_unknown(current, self.display_uri)
        head = migrations.head_revision()
        try:
            with self.transaction() as conn:
                if self._dialect == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
                current = migrations.read_revisions(conn)  # someone may have upgraded meanwhile
                migrations.refuse_unknown(current, self.display_uri)
                if ",".join(current) != head:
                    migrations.upgrade(conn)
        except DBAPIError as exc:
            if _is_unavailable(exc):
                raise self._unavailable(exc) from exc
            raise BackendError(
                f"Migrating metadata store {self.display_uri} to revision {head} failed: "
                f"{_reason(exc, self._url.password)}.",
                hint="Nothing was changed; fix the cause and open the store again.",
            ) from exc

    # --- Blob references and the audit log ----------------------------------------------

    def add_blob_refs(self, conn: Connection, refs: Iterable[BlobRef]) -> None:
        """Record that records use blobs; adding a reference that exists is a no-op."""
        rows = [asdict(ref) for ref in dict.fromkeys(refs)]
        if rows:
            conn.execute(self._insert_or_ignore(blob_refs), rows)

    def remove_blob_refs(self, conn: Connection, owner_kind: str, owner_id: str) -> int:
        """Forget every blob reference of one record; return how many there were."""
        result = conn.execute(
            delete(blob_refs).where(
                blob_refs.c.owner_kind == owner_kind, blob_refs.c.owner_id == owner_id
            )
        )
        return result.rowcount

    def referenced_blob_ids(self) -> set[ContentId]:
        """Every blob some record references: what garbage collection must keep."""
        with self.connect() as conn:
            rows = conn.execute(select(blob_refs.c.blob_id).distinct()).scalars()
            return {ContentId(blob_id) for blob_id in rows}

    def record_event(
        self,
        conn: Connection,
        actor: str,
        action: str,
        object_kind: str,
        object_id: str,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an audit event (``detail`` must be JSON-serialisable); return its id."""
        result = conn.execute(
            insert(audit_events).values(
                actor=actor,
                action=action,
                object_kind=object_kind,
                object_id=object_id,
                detail=dict(detail or {}),
            )
        )
        key = result.inserted_primary_key
        if key is None:
            raise BackendError(f"Metadata store {self.display_uri} did not return the event's id.")
        return int(key[0])

    # --- Internals -----------------------------------------------------------------------

    def _insert_or_ignore(self, table: Table) -> Insert:
        if self._dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        return postgres_insert(table).on_conflict_do_nothing()

    def _begin_write(self) -> Connection:
        deadline = time.monotonic() + _BEGIN_RETRY_SECONDS
        pause = 0.01
        while True:
            conn: Connection | None = None
            try:
                conn = self._engine.connect()
                conn.execution_options(**{_WRITE_OPTION: True})
                conn.begin()
                return conn
            except DBAPIError as exc:
                if conn is not None:
                    conn.close()
                if not _is_transient(exc):
                    raise self._unavailable(exc) from exc
                if time.monotonic() >= deadline:
                    raise BackendError(
                        f"Metadata store {self.display_uri} stayed locked by other writers "
                        f"for {_BEGIN_RETRY_SECONDS:.0f} s.",
                        hint="Retry later, or find the process holding a long transaction.",
                    ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError:
        reason = _reason(exc, self._url.password)
        lowered = reason.lower()
        if self._dialect == "sqlite" and ("locked" in lowered or "busy" in lowered):
            hint = "Another process holds a long write transaction on it; retry when it ends."
        elif self._dialect == "sqlite":
            hint = (
                "Check that the file's folder exists or can be created and is writable, "
                "or point store.metadata at another path."
            )
        elif "role" in lowered or "authentication" in lowered or "password" in lowered:
            hint = "Check the user name and password in the URI."
        elif "database" in lowered and "does not exist" in lowered:
            hint = f"Create the database (createdb {self._url.database}) or fix its name."
        else:
            hint = "Check that the PostgreSQL server is running and the host and port are right."
        return BackendUnavailableError(
            f"Metadata store {self.display_uri} is unavailable: {reason}.", hint=hint
        )

    def _create_engine(self) -> Engine:
        if self._dialect == "postgresql":
            connect_args: dict[str, Any] = {}
            if "connect_timeout" not in self._url.query:
                connect_args["connect_timeout"] = _POSTGRES_CONNECT_TIMEOUT_S
            try:
                return create_engine(self._url, pool_pre_ping=True, connect_args=connect_args)
            except ImportError as exc:
                raise ConfigError(
                    f"Metadata store {self.display_uri} needs the psycopg driver.",
                    hint="Install it: pip install 'shipyard[postgres]'.",
                ) from exc
        path = Path(str(self._url.database))
        self._prepare_sqlite_file(path)
        engine = create_engine(self._url)
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine

    def _prepare_sqlite_file(self, path: Path) -> None:
        try:
            if not path.is_dir():
                path.parent.mkdir(parents=True, exist_ok=True)
                return
            reason = f"{path} is a folder, not a database file"
        except OSError as exc:
            reason = f"cannot create folder {path.parent}: {exc.strerror or exc}"
            with suppress(OSError):
                blocker = next((p for p in reversed(path.parents) if p.is_file()), None)
                if blocker is not None:
                    reason = f"{blocker} is a file, not a folder"
        raise BackendUnavailableError(
            f"Metadata store {self.display_uri} is unavailable: {reason}.",
            hint="Point store.metadata at a file path in a folder Shipyard can create and write.",
        )


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # SQLAlchemy's documented pysqlite recipe: stop the driver from emitting BEGIN itself
    # (it would skip it before SELECTs and DDL), and emit our own in _on_sqlite_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    # A 64 MiB page cache (the default is 2 MiB) keeps run search's index lookups in memory
    # at 100k runs: ~15-20% faster there; pages are only allocated as they are read.
    cursor.execute("PRAGMA cache_size = -65536")
    cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    # A write transaction takes the write lock up front: a deferred one that reads first
    # gets SQLITE_BUSY at its first write, without waiting, if another writer got in.
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _reason(exc: BaseException, password: str | None) -> str:
    """The cause of a driver error as one readable line, with the password masked."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else type(cause).__name__
    # libpq: 'connection failed: connection to server at "h", port 5432 failed: FATAL:  why'
    text = re.sub(r"^connection failed: (connection to server .*? failed: )?", "", text)
    text = re.sub(r"^(FATAL|ERROR):\s*", "", text).rstrip(".")
    if password:
        text = text.replace(password, "***")
    return text


def _primary_sqlite_code(exc: DBAPIError) -> int | None:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_transient(exc: DBAPIError) -> bool:
    """Whether beginning again later may succeed: a busy SQLite file, a Postgres conflict."""
    code = _primary_sqlite_code(exc)
    if code is not None:
        return code in _SQLITE_BUSY_OR_LOCKED
    return getattr(exc.orig, "sqlstate", None) in _POSTGRES_TRANSIENT


def _is_unavailable(exc: DBAPIError) -> bool:
    """Whether an error is about reaching or writing the database, not about the SQL."""
    if exc.connection_invalidated:
        return True
    code = _primary_sqlite_code(exc)
    if code is not None:
        return code in _SQLITE_UNAVAILABLE
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is None:  # libpq reports connection failures without a SQLSTATE
        return exc.orig is not None and type(exc.orig).__name__ == "OperationalError"
    return str(sqlstate).startswith(_POSTGRES_UNAVAILABLE)
