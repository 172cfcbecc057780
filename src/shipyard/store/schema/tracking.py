"""Tracking tables: experiments, runs, their params, metrics, tags, inputs and artifacts.

Migrations: the ``tracking`` branch (``t0001``...) in ``store/migrations/versions``.

Search stays fast at 100k runs because filters on params, tags and final metrics hit
narrow indexed tables (``run_params``, ``run_tags``, ``run_latest_metrics``) instead of
scanning the full metric history in ``run_metrics``. Each is read two ways, and on
SQLite both are one B-tree operation because the tables are ``WITHOUT ROWID`` (t0003):

- a run's value of a key: the primary key ``(run_id, key)`` is the table itself, so
  the value sits next to the key (a rowid table needs a second lookup, from the key's
  index into the table);
- the runs whose key has a value in a range: a ``WITHOUT ROWID`` table's indexes end
  with its primary key, so ``(key, value, start_time)`` holds ``run_id`` and a term's
  runs come from one index range without touching rows. (PostgreSQL plans by its own
  statistics, with the same indexes.)

Runs are walked newest first through ``(experiment_id, start_time, id, lifecycle)`` or
``(start_time, id, lifecycle)``, which hold all a search's walk needs (t0003).

The narrow tables also hold their run's ``start_time`` (t0004): written with each row by
the tracking writer (required since t0005), and kept by a trigger when a run's start
time changes. Their ``(key, value, start_time)`` index then yields one term's runs
(``params.model = 'gbm'``) newest first, so a default-ordered search reads a page from
that index and stops.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
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

__all__ = [
    "REVISION",
    "environments",
    "experiments",
    "run_artifacts",
    "run_inputs",
    "run_latest_metrics",
    "run_metrics",
    "run_params",
    "run_tags",
    "runs",
]

REVISION = "t0005"
"""The tip of the tracking migration branch; these tables match it."""

ID = String(32)
"""Random record ids (``core.ids.new_id``)."""
CONTENT_ID = String(71)
"""Content ids (``sha256:`` + 64 hex)."""

experiments = Table(
    "experiments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("description", Text, nullable=True),
    Column("tags", JSON(), nullable=False),
    Column("lifecycle", String(16), nullable=False),  # active | deleted
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    Column("deleted_at", UtcDateTime(), nullable=True),
    UniqueConstraint("name"),
)

environments = Table(
    "environments",
    metadata,
    Column("id", CONTENT_ID, primary_key=True),  # content id of the canonical description
    Column("python_version", String(64), nullable=False),
    Column("platform", String(256), nullable=False),
    Column("packages", JSON(), nullable=False),  # {"numpy": "2.4.6", ...}
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
)
"""A Python environment, stored once however many runs used it."""

runs = Table(
    "runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("experiment_id", ID, ForeignKey("experiments.id"), nullable=False),
    Column("parent_id", ID, ForeignKey("runs.id"), nullable=True),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # running | finished | failed | killed
    Column("lifecycle", String(16), nullable=False),  # active | deleted
    Column("user", String(256), nullable=False),
    Column("source", Text, nullable=True),  # entry point: script path or notebook
    Column("git_commit", String(64), nullable=True),
    Column("git_dirty", Boolean, nullable=True),
    Column("code_diff_blob", CONTENT_ID, nullable=True),
    Column("environment_id", CONTENT_ID, ForeignKey("environments.id"), nullable=True),
    Column("error", Text, nullable=True),  # why a failed run failed
    Column("start_time", UtcDateTime(), nullable=False),
    Column("end_time", UtcDateTime(), nullable=True),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime(), nullable=True),
    # Search walks runs newest first in these; they cover the id and lifecycle (t0003), so
    # the walk reads no rows of this (wide) table: scope, order and probes come from them.
    Index(None, "experiment_id", "start_time", "id", "lifecycle"),
    Index(None, "parent_id"),
    Index(None, "status", "heartbeat_at"),
    Index(None, "start_time", "id", "lifecycle"),  # searches across experiments (t0002)
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Text, nullable=False),
    Column("start_time", UtcDateTime(), nullable=False),  # the run's (t0004, t0005)
    PrimaryKeyConstraint("run_id", "key"),
    Index(None, "key", "value", "start_time"),  # holds run_id too on SQLite, see above
    sqlite_with_rowid=False,  # t0003
)
"""Params are immutable once logged: the same key with another value is an error."""

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Text, nullable=False),
    Column("start_time", UtcDateTime(), nullable=False),  # the run's (t0004, t0005)
    PrimaryKeyConstraint("run_id", "key"),
    Index(None, "key", "value", "start_time"),  # holds run_id too on SQLite, see above
    sqlite_with_rowid=False,  # t0003
)

run_metrics = Table(
    "run_metrics",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),  # seconds since the epoch, from the caller
    Column("value", Float, nullable=False),  # NaN and +-inf allowed (stored as such)
    Index(None, "run_id", "key", "step"),
    sqlite_autoincrement=True,
)
"""Every logged metric value: the history behind the curves."""

run_latest_metrics = Table(
    "run_latest_metrics",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("start_time", UtcDateTime(), nullable=False),  # the run's (t0004, t0005)
    PrimaryKeyConstraint("run_id", "key"),
    Index(None, "key", "value", "start_time"),  # holds run_id too on SQLite, see above
    sqlite_with_rowid=False,  # t0003
)
"""The value at the highest step (latest timestamp on ties) of each metric of each run:
what search filters and sorts on, kept up to date in the same transaction as the history."""

run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("dataset", String(256), nullable=False),  # dataset name
    Column("version_id", CONTENT_ID, nullable=False),  # the dataset version's content id
    Column("role", String(64), nullable=False),  # train | validation | test | other
    PrimaryKeyConstraint("run_id", "version_id", "role"),
)
"""Which dataset versions a run read (a link: the datasets subsystem owns the versions)."""

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("path", String(1024), nullable=False),  # relative, '/'-separated
    Column("blob_id", CONTENT_ID, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),  # file | model | diff | ...
    PrimaryKeyConstraint("run_id", "path"),
)
"""A run's artifact tree; each file is a blob (also recorded in ``blob_refs`` for GC)."""
