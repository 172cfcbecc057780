"""Foundation tables: the store's own facts, blob references, the audit log.

Migrations: the ``foundation`` branch (``0001``...) in ``store/migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, PrimaryKeyConstraint, String, Table, Text

from shipyard.store.schema._base import UtcDateTime, metadata, utc_now

__all__ = ["REVISION", "audit_events", "blob_refs", "store_info"]

REVISION = "0001"
"""The tip of the foundation's migration branch; these tables match it."""

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
