"""Datasets tables: datasets, their immutable versions, aliases and lineage edges.

Migrations: the ``datasets`` branch (``d0001``...) in ``store/migrations/versions``.

A version is one row of ``dataset_versions``: what it holds lives in artifact blobs (the
Parquet parts of a table, or the manifest of a file version; the profile, sample,
quarantine and contract report), each also recorded in ``blob_refs`` so GC keeps it.
The row is written in one transaction after every blob is stored: a failed ingestion
leaves no row behind. ``content_id`` hashes the canonical content (a table's schema and
values, a file version's manifest); the same content stored twice keeps the same id.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from shipyard.store.schema._base import UtcDateTime, metadata, utc_now

__all__ = ["REVISION", "dataset_aliases", "dataset_lineage", "dataset_versions", "datasets"]

REVISION = "d0001"
"""The tip of the datasets migration branch; these tables match it."""

ID = String(32)
"""Random record ids (``core.ids.new_id``)."""
CONTENT_ID = String(71)
"""Content ids (``sha256:`` + 64 hex)."""
NAME = String(128)
"""Dataset names (``core.references.validate_name``)."""

datasets = Table(
    "datasets",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", NAME, nullable=False),
    Column("kind", String(8), nullable=False),  # table | files
    Column("description", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    UniqueConstraint("name"),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("number", Integer, nullable=False),  # 1, 2, 3... per dataset
    Column("content_id", CONTENT_ID, nullable=False),
    Column("kind", String(8), nullable=False),  # table | files
    Column("schema", JSON(), nullable=False),  # [{"name", "type", "nullable"}]; [] for files
    Column("num_rows", BigInteger, nullable=False),  # rows of a table, files of a file version
    Column("num_bytes", BigInteger, nullable=False),  # stored Parquet bytes, or file bytes
    Column("data", JSON(), nullable=False),  # {"parts": [...]} or {"manifest": blob id, ...}
    Column("profile_blob", CONTENT_ID, nullable=True),
    Column("sample_blob", CONTENT_ID, nullable=True),
    Column("quarantine_blob", CONTENT_ID, nullable=True),
    Column("quarantined_rows", BigInteger, nullable=False),
    Column("report_blob", CONTENT_ID, nullable=True),
    Column("checks", JSON(), nullable=False),  # summary of the contract report
    Column("contract", JSON(), nullable=True),  # the contract the version passed
    Column("source", JSON(), nullable=False),  # lineage: path, files and hashes, query...
    Column("tags", JSON(), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    UniqueConstraint("dataset_id", "number"),
    Index(None, "content_id"),
)
"""Immutable once written; only aliases move."""

dataset_aliases = Table(
    "dataset_aliases",
    metadata,
    Column("dataset_id", ID, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("version_id", ID, ForeignKey("dataset_versions.id"), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False, default=utc_now),
    PrimaryKeyConstraint("dataset_id", "alias"),
)
"""``name@alias`` (``churn@prod``) -> a version; moving an alias is audited."""

dataset_lineage = Table(
    "dataset_lineage",
    metadata,
    Column("version_id", ID, ForeignKey("dataset_versions.id", ondelete="CASCADE"), nullable=False),
    Column("input_name", String(128), nullable=False),  # the name the transform used
    Column("upstream_dataset", NAME, nullable=False),
    Column("upstream_content_id", CONTENT_ID, nullable=False),
    Column("upstream_number", Integer, nullable=True),  # its version number, when known
    PrimaryKeyConstraint("version_id", "input_name"),
    Index(None, "upstream_content_id"),
)
"""The versions a derived version was computed from (by content id: an edge survives a
copy of the version into another store)."""
