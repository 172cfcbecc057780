"""Feature store tables: versioned definitions, materialization runs, pushed rows.

Migrations: the ``features`` branch (``f0001``...) in ``store/migrations/versions``.

- ``feature_definitions``: one row per version of an entity, feature view, on-demand
  feature or feature service: its canonical spec (JSON) and the spec's SHA-256. A changed
  spec is a new version; an unchanged one is not re-recorded.
- ``feature_materializations``: one row per materialization of a view into an online
  store: the event-time window it covered and how many rows it wrote. Incremental
  materialization starts where the last one for the same view and store ended.
- ``feature_pushes``: rows pushed to the offline store, one Parquet blob per push (also in
  ``blob_refs`` under ``owner_kind='feature_push'``); the view's offline source is its
  dataset or files plus these parts.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)

from shipyard.store.schema._base import UtcDateTime, metadata, utc_now

__all__ = ["REVISION", "feature_definitions", "feature_materializations", "feature_pushes"]

REVISION = "f0001"
"""The tip of the features migration branch; these tables match it."""

NAME = String(128)

feature_definitions = Table(
    "feature_definitions",
    metadata,
    Column("kind", String(16), nullable=False),  # entity | view | on_demand | service
    Column("name", NAME, nullable=False),
    Column("version", Integer, nullable=False),  # 1, 2, ... per (kind, name)
    Column("fingerprint", String(64), nullable=False),  # sha256 hex of the canonical spec
    Column("spec", JSON(), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    PrimaryKeyConstraint("kind", "name", "version"),
)

feature_materializations = Table(
    "feature_materializations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("view", NAME, nullable=False),
    Column("view_version", Integer, nullable=False),
    Column("online_store", String(256), nullable=False),  # the store's identity, no secrets
    Column("window_start", UtcDateTime(), nullable=True),  # None: from the beginning
    Column("window_end", UtcDateTime(), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    Index(None, "view", "online_store", "window_end"),
)

feature_pushes = Table(
    "feature_pushes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("view", NAME, nullable=False),
    Column("blob_id", String(71), nullable=False),  # Parquet, the view's source schema
    Column("rows", BigInteger, nullable=False),
    Column("min_event_ts", UtcDateTime(), nullable=True),
    Column("max_event_ts", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    Index(None, "view", "created_at"),
)
