"""Closed-loop tables: monitoring checks of served models, and closed-loop policy runs.

Migrations: the ``loop`` branch (``l0001``...) in ``store/migrations/versions``.

- ``monitor_checks``: one row per monitoring check of one model version
  (``shipyard.monitoring.monitor``): the window it looked at, whether it alerted, the
  drift and performance documents (JSON, ``shipyard.drift.v1`` /
  ``shipyard.performance.v1``) and the ids of the alerts it sent. ``shipyard monitor
  history`` and ``report`` read them back (drift and performance over time).
- ``loop_runs``: one row per closed-loop episode of a policy
  (``shipyard.pipelines.closed_loop``): what triggered it, where it stands (``stage``),
  the champion and challenger versions, and its outcome.
- ``loop_events``: every step of an episode, who did it, when, what happened and the
  figures it rested on (gate results, canary counts...), oldest first.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from shipyard.store.schema._base import UtcDateTime, metadata, utc_now

__all__ = ["REVISION", "loop_events", "loop_runs", "monitor_checks"]

REVISION = "l0001"
"""The tip of the loop migration branch; these tables match it."""

monitor_checks = Table(
    "monitor_checks",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("reference", String(256), nullable=False),  # the training dataset version
    Column("window", String(128), nullable=False),
    Column("window_start", UtcDateTime(), nullable=True),
    Column("window_end", UtcDateTime(), nullable=True),
    Column("rows", Integer, nullable=False),
    Column("alert", Boolean, nullable=False),
    Column("drifted", JSON(), nullable=False),  # names of the drifted columns
    Column("drift", JSON(), nullable=True),  # shipyard.drift.v1
    Column("performance", JSON(), nullable=True),  # shipyard.performance.v1
    Column("alerts", JSON(), nullable=False),  # [{id, event, severity, kind, subject}]
    Column("actor", String(256), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    Index(None, "model", "created_at"),
    sqlite_autoincrement=True,
)

loop_runs = Table(
    "loop_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("policy", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("trigger", String(512), nullable=False),  # "alert 12 data_drift/...", "schedule"
    Column("stage", String(32), nullable=False),  # training | canary | promoted | ...
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("champion_version", Integer, nullable=True),
    Column("challenger_version", Integer, nullable=True),
    Column("outcome", String(32), nullable=True),  # promoted | rejected | rolled_back
    Column("detail", JSON(), nullable=False),  # canary start, pipeline run id...
    Column("created_at", UtcDateTime(), nullable=False, default=utc_now),
    Column("updated_at", UtcDateTime(), nullable=False, default=utc_now),
    Index(None, "policy", "status"),
    Index(None, "model", "created_at"),
    sqlite_autoincrement=True,
)

loop_events = Table(
    "loop_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("run_id", BigInteger, ForeignKey("loop_runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(32), nullable=False),  # triggered | trained | evaluated | ...
    Column("outcome", String(16), nullable=False),  # ok | failed | waiting | skipped
    Column("message", Text, nullable=False),
    Column("figures", JSON(), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("at", UtcDateTime(), nullable=False, default=utc_now),
    Index(None, "run_id"),
    sqlite_autoincrement=True,
)
