"""Model registry tables: models, immutable versions, aliases, the alias audit log,
stored evaluations.

Migrations: the ``models`` branch (``m0001``...) in ``store/migrations/versions``.

- ``models``: one row per model name. It is the lock that serialises writers of one
  model (registrations and alias moves lock it ``FOR UPDATE`` on PostgreSQL; SQLite's
  ``BEGIN IMMEDIATE`` serialises every writer), and it carries ``serial``, which increases
  on every alias or alias-config change so serving polls one integer.
- ``model_versions``: immutable once written. ``content_id`` is the id of the stored model
  package (the same files give the same id); ``files`` maps each package file to its
  blob (also in ``blob_refs`` under ``owner_kind='model_version'``, ``owner_id=key``).
- ``model_aliases``: ``name@alias`` -> a version number, with the alias's canary and
  shadow configuration.
- ``model_alias_moves``: append-only audit of every alias move: who, when, from, to,
  why, the gate results, whether gates were overridden.
- ``model_evaluations``: metrics, gate results, threshold and plots (blobs) per version.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from shipyard.store.schema._base import UtcDateTime, metadata, utc_now

__all__ = [
    "REVISION",
    "model_alias_moves",
    "model_aliases",
    "model_evaluations",
    "model_versions",
    "models",
]

REVISION = "m0001"
"""The tip of the models migration branch; these tables match it."""

ID = String(32)
CONTENT_ID = String(71)
NAME = String(128)
ALIAS = String(64)

models = Table(
    "models",
    metadata,
    Column("name", NAME, primary_key=True),
    Column("serial", BigInteger, nullable=False),  # +1 on every alias/config change
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", NAME, ForeignKey("models.name"), nullable=False),
    Column("number", Integer, nullable=False),  # 1, 2, 3... per model
    Column("key", ID, nullable=False),  # random row id: the blob references' owner id
    Column("content_id", CONTENT_ID, nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("model_type", String(32), nullable=False),
    Column("signature", JSON(), nullable=False),
    Column("run_id", ID, nullable=True),
    Column("dataset_versions", JSON(), nullable=False),  # ["churn@v1", ...]
    Column("feature_service", String(200), nullable=True),  # "churn_features@v2"
    Column("feature_service_name", NAME, nullable=True),  # "churn_features", for lookups
    Column("code_commit", String(64), nullable=True),
    Column("description", Text, nullable=False),
    Column("tags", JSON(), nullable=False),
    Column("files", JSON(), nullable=False),  # package path -> blob id
    Column("package", JSON(), nullable=False),  # layout: model folder, hooks, pickle use
    Column("created_by", String(256), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    PrimaryKeyConstraint("name", "number"),
    UniqueConstraint("key"),
    UniqueConstraint("name", "content_id"),
    Index(None, "content_id"),
    Index(None, "feature_service_name"),
)
"""Immutable once written; only aliases move."""

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", NAME, ForeignKey("models.name"), nullable=False),
    Column("alias", ALIAS, nullable=False),
    Column("number", Integer, nullable=False),
    Column("canary_number", Integer, nullable=True),
    Column("canary_share", Float, nullable=True),
    Column("canary_sticky_by", String(16), nullable=True),
    Column("shadow_number", Integer, nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False, default=utc_now),
    PrimaryKeyConstraint("name", "alias"),
    ForeignKeyConstraint(["name", "number"], ["model_versions.name", "model_versions.number"]),
)

model_alias_moves = Table(
    "model_alias_moves",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", NAME, ForeignKey("models.name"), nullable=False),
    Column("alias", ALIAS, nullable=False),
    Column("kind", String(16), nullable=False),  # set | rollback | remove
    Column("from_number", Integer, nullable=True),
    Column("to_number", Integer, nullable=True),
    Column("actor", String(256), nullable=False),
    Column("at", UtcDateTime(), nullable=False, default=utc_now),
    Column("reason", Text, nullable=False),
    Column("gate_results", JSON(), nullable=False),
    Column("override", Boolean, nullable=False),
    Index(None, "name", "alias"),
    sqlite_autoincrement=True,
)
"""Append-only; the order of ``id`` is the order of the moves."""

model_evaluations = Table(
    "model_evaluations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", NAME, nullable=False),
    Column("number", Integer, nullable=False),
    Column("dataset", String(200), nullable=True),  # "churn_holdout@v1"
    Column("metrics", JSON(), nullable=False),
    Column("gate_results", JSON(), nullable=False),
    Column("threshold", Float, nullable=True),
    Column("plots", JSON(), nullable=False),  # plot name -> blob id (SVG)
    Column("detail", JSON(), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    ForeignKeyConstraint(["name", "number"], ["model_versions.name", "model_versions.number"]),
    Index(None, "name", "number"),
    sqlite_autoincrement=True,
)
