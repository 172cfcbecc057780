"""Monitoring tables: the prediction log and the labels that arrive after it.

Migrations: the ``monitoring`` branch (``o0001``...) in ``store/migrations/versions``.
Serving writes the log through ``shipyard.monitoring`` (asynchronously, in batches);
monitoring reads it for drift and performance windows.

- ``prediction_log``: one row per scored record and arm. ``request_id`` is the record's
  id (the ``X-Request-ID`` header, or generated; ``<id>:<index>`` for the records of a
  batch); a shadow version's answer to the same record is a second row with
  ``arm='shadow'``. ``inputs`` are the raw request fields (masked or dropped per the
  ``monitoring.log_mask`` / ``log_drop`` settings), ``features`` each looked-up feature
  with its view version, event time and status, ``flags`` the values outside what
  training saw. ``error`` is the kind of failure (the exception's class name) of a model
  call that raised on records that passed the contract: such a record has no score, so
  the canary's error rate counts it among its arm's requests; ``NULL`` when it scored.
- ``prediction_labels``: the ground truth of a record, by request id, however late it
  arrives (``sy.log_labels``, ``shipyard monitor labels FILE``); the last label wins.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)

from shipyard.store.schema._base import UtcDateTime, metadata, utc_now

__all__ = ["REVISION", "prediction_labels", "prediction_log"]

REVISION = "o0002"
"""The tip of the monitoring migration branch; these tables match it."""

REQUEST_ID = String(160)

prediction_log = Table(
    "prediction_log",
    metadata,
    Column("request_id", REQUEST_ID, nullable=False),
    Column("arm", String(16), nullable=False),  # champion | canary | shadow
    Column("logged_at", UtcDateTime(), nullable=False, default=utc_now),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("version_id", String(71), nullable=False),
    Column("alias", String(64), nullable=True),
    Column("entity_keys", JSON(none_as_null=True), nullable=True),
    Column(
        "features", JSON(none_as_null=True), nullable=True
    ),  # name -> {value, view, event_ts, status}
    Column("inputs", JSON(), nullable=False),  # the raw request fields, masked/dropped
    Column("score", Float, nullable=True),  # binary: positive-class probability; regression
    Column("scores", JSON(none_as_null=True), nullable=True),  # multiclass: the class probabilities
    Column("label", JSON(none_as_null=True), nullable=True),  # the predicted label (classifiers)
    Column("threshold", Float, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("flags", JSON(), nullable=False),  # [{field, value, reason}] outside training
    Column("error", String(128), nullable=True),  # a failed model call: the exception's class
    PrimaryKeyConstraint("request_id", "arm"),
    Index(None, "model", "logged_at"),
    Index(None, "logged_at"),
)

prediction_labels = Table(
    "prediction_labels",
    metadata,
    Column("request_id", REQUEST_ID, primary_key=True),
    Column("label", JSON(), nullable=False),
    Column("labeled_at", UtcDateTime(), nullable=False, default=utc_now),
    Column("source", String(256), nullable=True),  # the file or API that brought it
    Index(None, "labeled_at"),
)
