"""Pipeline tables: pipeline runs, their steps, step outputs, the step cache, schedules.

Migrations: the ``pipelines`` branch (``p0001``...) in ``store/migrations/versions``. A
pipeline run *is* a tracking run: ``pipeline_runs.run_id`` is a ``runs.id``. There is no
foreign key to it, so that this branch stays independent of the tracking branch; readers
join on it and treat a run that was purged from tracking as gone.

- ``pipeline_runs``: what was run (pipeline, reference, params, seed, executor); the
  status, times and heartbeat live in the tracking run.
- ``pipeline_steps``: one row per step of a pipeline run: status, cache key and its
  parts, the child tracking run that executed it (or, for a cache hit, the run that
  produced the outputs it reused), inputs and outputs.
- ``pipeline_outputs``: a step output, by its content id: its kind and the blobs that
  hold it (each also in ``blob_refs`` under ``owner_kind='pipeline_output'``).
- ``pipeline_cache``: cache key -> outputs of the last successful execution.
- ``pipeline_schedules``: one row per schedule or trigger: the lease that keeps two
  schedulers from running it at once, when it last fired and what it last saw.
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
)

from shipyard.store.schema._base import UtcDateTime, metadata, utc_now

__all__ = [
    "REVISION",
    "pipeline_cache",
    "pipeline_outputs",
    "pipeline_runs",
    "pipeline_schedules",
    "pipeline_steps",
]

REVISION = "p0001"
"""The tip of the pipelines migration branch; these tables match it."""

ID = String(32)
CONTENT_ID = String(71)

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("run_id", ID, primary_key=True),  # the tracking run (``runs.id``)
    Column("pipeline", String(256), nullable=False),
    Column("reference", String(1024), nullable=True),  # "pkg.module:name", to re-import it
    Column("params", JSON(), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("executor", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),  # 1, then +1 per resume
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    Index(None, "pipeline", "created_at"),
)

pipeline_steps = Table(
    "pipeline_steps",
    metadata,
    Column("run_id", ID, ForeignKey("pipeline_runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("step", String(256), nullable=False),  # the invocation's name in the DAG
    Column("function", String(512), nullable=False),  # "module:qualname"
    Column("position", Integer, nullable=False),  # topological order
    Column("upstream", JSON(), nullable=False),  # names of the steps it reads from
    # pending | running | finished | cached | failed | killed | skipped
    Column("status", String(16), nullable=False),
    Column("cache_key", CONTENT_ID, nullable=True),
    Column("key_parts", JSON(), nullable=True),  # digest of each part of the key
    Column("step_run_id", ID, nullable=True),  # the child tracking run that executed it
    Column("source_run_id", ID, nullable=True),  # for a cache hit: who made its outputs
    Column("attempts", Integer, nullable=False),
    Column("inputs", JSON(), nullable=False),  # argument path -> output id
    Column("outputs", JSON(), nullable=False),  # output name -> output id
    Column("error", Text, nullable=True),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("ended_at", UtcDateTime(), nullable=True),
    PrimaryKeyConstraint("run_id", "step"),
    Index(None, "step_run_id"),
)

pipeline_outputs = Table(
    "pipeline_outputs",
    metadata,
    Column("id", CONTENT_ID, primary_key=True),
    Column("kind", String(16), nullable=False),  # table | model | json | numpy | pickle
    Column("python_type", String(64), nullable=False),  # what the step returned
    Column("blobs", JSON(), nullable=False),  # file name -> blob id
    Column("size", BigInteger, nullable=False),
    Column("detail", JSON(), nullable=False),  # rows/columns, flavor, shape...
    Column("run_id", ID, nullable=True),  # the step run that first produced it
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
)

pipeline_cache = Table(
    "pipeline_cache",
    metadata,
    Column("cache_key", CONTENT_ID, primary_key=True),
    Column("outputs", JSON(), nullable=False),  # output name -> output record (id, blobs...)
    Column("run_id", ID, nullable=False),  # the step run that produced them
    Column("pipeline_run_id", ID, nullable=False),
    Column("step", String(256), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
)

pipeline_schedules = Table(
    "pipeline_schedules",
    metadata,
    Column("name", String(256), primary_key=True),  # "schedule:NAME" | "trigger:NAME:..."
    Column("holder", String(128), nullable=True),  # the scheduler holding the lease
    Column("lease_expires_at", UtcDateTime(), nullable=True),
    Column("last_fire_at", UtcDateTime(), nullable=True),
    Column("cursor", Text, nullable=True),  # what a trigger last saw
    Column("last_run_id", ID, nullable=True),
    Column("last_status", String(16), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False, default=utc_now),
)
