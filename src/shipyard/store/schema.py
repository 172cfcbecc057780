"""The metadata database's tables, as SQLAlchemy Core, one section per subsystem.

These definitions are what the code reads and writes; the Alembic migrations in
``store/migrations/versions/`` are what creates them. The two must agree, which
``tests/store/test_metadata_conformance.py`` proves on every backend. To add a table:

1. define it here, in the section of the subsystem that owns it;
2. write the migration that creates it (``alembic -c src/shipyard/store/migrations/alembic.ini
   revision --rev-id 0002 -m "runs"``);
3. set ``SCHEMA_REVISION`` below to the new migration's revision id.

Timestamps are ``UtcDateTime``: timezone-aware UTC ``datetime`` values on every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)

__all__ = [
    "SCHEMA_REVISION",
    "UtcDateTime",
    "audit_events",
    "blob_refs",
    "metadata",
    "store_info",
    "utc_now",
]

SCHEMA_REVISION = "0001"
"""The Alembic revision these tables match: the head of ``migrations/versions``.

Opening a store whose database is at this revision skips loading Alembic entirely (it
costs ~0.2 s of start-up); a test keeps this constant equal to Alembic's head.
"""

# Constraint and index names are spelled out by convention rather than left to each
# backend, so a later migration can name the constraint it alters on SQLite and Postgres.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back timezone-aware on every backend.

    PostgreSQL keeps ``TIMESTAMP WITH TIME ZONE``; SQLite keeps an ISO-8601 string
    without an offset, so values are normalised to UTC on the way in and tagged UTC on
    the way out. Naive datetimes are refused: their meaning depends on the writer's clock.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value.isoformat()} has no time zone; use UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# --- The store itself --------------------------------------------------------------------

store_info = Table(
    "store_info",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)
"""Facts about the store: ``store_id``, ``created_at``, ``created_by_version``."""


# --- Artifacts: which records keep which blobs alive ------------------------------------

blob_refs = Table(
    "blob_refs",
    metadata,
    Column("blob_id", String(71), nullable=False),
    Column("owner_kind", String(32), nullable=False),
    Column("owner_id", String(64), nullable=False),
    Column("role", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    PrimaryKeyConstraint("blob_id", "owner_kind", "owner_id", "role"),
    Index(None, "owner_kind", "owner_id"),
)
"""One row per (blob, owning record, role); garbage collection keeps exactly these blobs."""


# --- Audit log ---------------------------------------------------------------------------

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False, default=utc_now),
    Column("actor", Text, nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_kind", String(32), nullable=False),
    Column("object_id", String(128), nullable=False),
    Column("detail", JSON(), nullable=False),
    Index(None, "object_kind", "object_id"),
    # SQLite would otherwise reuse the id of a deleted last row; Postgres never does.
    sqlite_autoincrement=True,
)
"""Append-only: who did what to which object, and when (alias moves, deletions...)."""
