"""Alert tables: alerts raised by monitoring rules, and their deliveries to channels.

Migrations: the ``alerts`` branch (``a0001``...) in ``store/migrations/versions``.
``shipyard.monitoring.alerts`` writes them; one row per problem, not per check:

- ``alerts``: one row per alert. ``key`` identifies the problem (finding kind, model and
  subject, e.g. ``data_drift`` / ``churn`` / ``total_day_charge``); while an alert is
  ``firing``, later findings for the same key update it (``last_seen``, ``count``)
  instead of adding rows (deduplication), and it is sent again only after its rule's
  cool-down (``fired_at`` is when it was last sent) or when its severity rises. It is
  ``resolved`` once a check of the same key finds nothing.
- ``alert_deliveries``: each attempt to send an alert to a channel (log, webhook,
  command): whether it worked, how many tries it took, and the error if not.
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
    String,
    Table,
    Text,
)

from shipyard.store.schema._base import UtcDateTime, metadata, utc_now

__all__ = ["REVISION", "alert_deliveries", "alerts"]

REVISION = "a0001"
"""The tip of the alerts migration branch; these tables match it."""

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("key", String(64), nullable=False),  # sha256 of kind, model and subject
    Column("rule", String(128), nullable=False),
    Column("severity", String(16), nullable=False),  # info | warning | critical
    Column("kind", String(64), nullable=False),  # data_drift | performance | ...
    Column("model", String(128), nullable=False),
    Column("subject", String(256), nullable=False),  # a column, a metric, "dataset"
    Column("status", String(16), nullable=False),  # firing | resolved
    Column("message", Text, nullable=False),
    Column("value", Float, nullable=True),
    Column("bound", String(64), nullable=True),
    Column("window", String(128), nullable=True),
    Column("detail", JSON(), nullable=False),
    Column("first_seen", UtcDateTime(), nullable=False, default=utc_now),
    Column("last_seen", UtcDateTime(), nullable=False, default=utc_now),
    Column("fired_at", UtcDateTime(), nullable=False, default=utc_now),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("count", Integer, nullable=False),  # findings folded into this alert
    Column("notifications", Integer, nullable=False),  # times it was sent
    Index(None, "key", "status"),
    Index(None, "model", "first_seen"),
    sqlite_autoincrement=True,
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(16), nullable=False),  # fired | repeated | escalated | resolved
    Column("channel", String(128), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("elapsed_ms", Float, nullable=False),
    Column("at", UtcDateTime(), nullable=False, default=utc_now),
    Index(None, "alert_id"),
    sqlite_autoincrement=True,
)
