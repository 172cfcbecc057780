"""The prediction log: what every served prediction was, written off the request's path.

Serving builds one :class:`PredictionRecord` per scored record and arm and hands it to a
:class:`PredictionLogWriter`: ``log()`` appends it to an in-memory queue (about a
microsecond, no I/O, no lock the request path waits on). A background thread writes the
queue to the metadata store in one transaction per flush (every ``flush_interval``
seconds, or sooner when ``batch_size`` records wait), applying the configured masking
(``monitoring.log_mask``: the value becomes ``"***"``) and dropping
(``monitoring.log_drop``: the column is not stored) on the way, so a PII column never
reaches the store. The same thread deletes records older than
``monitoring.log_retention_days`` once an hour. A model call that raises is logged as
well (:func:`log_failed_call`): a record without a score whose ``error`` names the
failure, so failures count among the requests of their arm.

What can be lost, and how it shows: the queue holds at most ``max_pending`` records;
past it (the database cannot keep up) new records are dropped and counted in
``dropped`` (serving exports it as ``shipyard_prediction_log_dropped_total``), because a
prediction must never wait for its log. A failed write is retried at the next flush;
after ``max_retries`` failures in a row its records are dropped and counted in
``failed``, with the error kept in ``last_error``. A repeated request id (a client
retrying with the same ``X-Request-ID``) keeps the first record and counts in
``duplicates``. A kill loses at most the last flush interval.

>>> writer = PredictionLogWriter(stores.metadata, settings=LogSettings.from_config(config))
>>> writer.log(record)
>>> writer.close()  # flushes what is queued
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.models.records import ModelVersion
    from shipyard.store.metadata import MetadataStore

__all__ = [
    "MASK",
    "LogSettings",
    "PredictionLogWriter",
    "PredictionRecord",
    "log_failed_call",
    "purge_expired",
]

MASK = "***"
DEFAULT_RETENTION_DAYS = 90
_MAX_RETENTION_DAYS = 36_500
_RETENTION_EVERY_S = 3600.0
_COLUMN_NAME_MAX = 256
_ERROR_KIND_MAX = 128

_log = logging.getLogger("shipyard.monitoring")


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One scored record (one arm): the row of ``prediction_log`` before masking.

    ``features`` maps each looked-up feature to ``{"value", "view", "event_ts",
    "status"}``; ``flags`` lists the values outside what training saw, each
    ``{"field", "value", "reason"}``. ``error`` is the kind of failure (the exception's
    class name) of a model call that raised; such a record has no score (see
    :func:`log_failed_call`).
    """

    request_id: str
    arm: str
    model: str
    version: int
    version_id: str
    alias: str | None
    inputs: Mapping[str, Any]
    score: float | None
    latency_ms: float
    scores: Sequence[float] | None = None
    label: Any = None
    threshold: float | None = None
    entity_keys: Mapping[str, Any] | None = None
    features: Mapping[str, Mapping[str, Any]] | None = None
    flags: Sequence[Mapping[str, Any]] = ()
    logged_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: str | None = None


@dataclass(frozen=True)
class LogSettings:
    """What the log masks, drops and keeps, from ``[monitoring]`` in shipyard.toml."""

    mask: frozenset[str] = frozenset()
    drop: frozenset[str] = frozenset()
    retention_days: int = DEFAULT_RETENTION_DAYS

    @classmethod
    def from_config(cls, config: Config) -> LogSettings:
        """Parse ``monitoring.log_mask``, ``log_drop`` and ``log_retention_days``."""
        mask = _column_list(config.get("monitoring.log_mask"), "monitoring.log_mask")
        drop = _column_list(config.get("monitoring.log_drop"), "monitoring.log_drop")
        both = mask & drop
        if both:
            raise ConfigError(
                f"Columns {sorted(both)} are both masked (monitoring.log_mask) and dropped "
                "(monitoring.log_drop).",
                hint="List each column in one of the two settings only.",
            )
        raw_days = config.get("monitoring.log_retention_days", str(DEFAULT_RETENTION_DAYS))
        try:
            days = int(str(raw_days).strip())
        except ValueError:
            days = -1
        if not 1 <= days <= _MAX_RETENTION_DAYS:
            raise ConfigError(
                f"monitoring.log_retention_days is {raw_days!r}; expected a whole number of "
                f"days from 1 to {_MAX_RETENTION_DAYS}.",
                hint="e.g. log_retention_days = 90 under [monitoring] in shipyard.toml.",
            )
        return cls(mask=mask, drop=drop, retention_days=days)

    def scrub(self, values: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """``values`` with masked columns replaced by ``MASK`` and dropped ones removed."""
        if values is None:
            return None
        if not self.mask and not self.drop:
            return dict(values)
        return {
            key: (MASK if key in self.mask else value)
            for key, value in values.items()
            if key not in self.drop
        }

    def scrub_features(
        self, features: Mapping[str, Mapping[str, Any]] | None
    ) -> dict[str, Any] | None:
        if features is None:
            return None
        out: dict[str, Any] = {}
        for name, entry in features.items():
            if name in self.drop:
                continue
            out[name] = {**entry, "value": MASK} if name in self.mask else dict(entry)
        return out

    def scrub_flags(self, flags: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for flag in flags:
            name = flag.get("field")
            if name in self.drop:
                out.append({k: v for k, v in flag.items() if k != "value"})
            elif name in self.mask:
                out.append({**flag, "value": MASK})
            else:
                out.append(dict(flag))
        return out


def _column_list(raw: str | None, key: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    names = [part.strip() for part in str(raw).split(",")]
    if any(not name or len(name) > _COLUMN_NAME_MAX for name in names):
        raise ConfigError(
            f"{key} is {raw!r}; expected comma-separated column names (no empty entries).",
            hint=f'e.g. {key.split(".")[1]} = "email, phone" under [monitoring].',
        )
    return frozenset(names)


class PredictionLogWriter:
    """Queues prediction records and writes them in batches from a background thread."""

    def __init__(
        self,
        metadata: MetadataStore,
        *,
        settings: LogSettings | None = None,
        flush_interval: float = 0.5,
        batch_size: int = 2000,
        max_pending: int = 200_000,
        max_retries: int = 20,
    ) -> None:
        if flush_interval <= 0 or batch_size < 1 or max_pending < batch_size:
            raise ValueError("flush_interval > 0 and 1 <= batch_size <= max_pending")
        self._metadata = metadata
        self.settings = settings or LogSettings()
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.max_retries = max_retries
        self._queue: deque[PredictionRecord] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._flush_lock = threading.Lock()
        self._retry: list[PredictionRecord] = []
        self._failures_in_row = 0
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.duplicates = 0
        self.purged = 0
        self.last_error: BaseException | None = None
        self._next_purge = 0.0
        self._insert = _insert_ignoring_duplicates(metadata)
        self._sqlite = metadata.dialect == "sqlite"
        self._thread = threading.Thread(
            target=self._run, name="shipyard-prediction-log", daemon=True
        )
        self._thread.start()

    @property
    def pending(self) -> int:
        """Records queued and not yet written."""
        return len(self._queue) + len(self._retry)

    def log(self, record: PredictionRecord) -> None:
        """Queue one record; never blocks, never raises for a full queue (it counts it)."""
        if len(self._queue) >= self.max_pending:
            self.dropped += 1
            return
        self._queue.append(record)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    def log_many(self, records: Iterable[PredictionRecord]) -> None:
        for record in records:
            self.log(record)

    def flush(self) -> None:
        """Write everything queued now, from the caller's thread; raise if it fails."""
        while self._queue or self._retry:
            if not self._flush_once():
                if self.last_error is not None:
                    raise self.last_error
                return

    def close(self) -> None:
        """Stop the thread after a last flush. Idempotent."""
        if self._stop:
            return
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
        try:
            self.flush()
        except Exception as exc:  # the store is gone: say what was lost, do not crash exit
            _log.error("prediction log: %d records not written at close: %s", self.pending, exc)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                while self._queue or self._retry:
                    if not self._flush_once():
                        break
                if time.monotonic() >= self._next_purge:
                    self._next_purge = time.monotonic() + _RETENTION_EVERY_S
                    self.purged += purge_expired(self._metadata, self.settings.retention_days)
            except Exception as exc:  # keep the thread alive; the error is reported in stats
                self.last_error = exc
                _log.warning("prediction log: %s", exc)

    def _flush_once(self) -> bool:
        """Write one batch; False when it failed (records kept for the next try)."""
        with self._flush_lock:
            batch = self._retry
            self._retry = []
            queue = self._queue
            while queue and len(batch) < self.batch_size:
                batch.append(queue.popleft())
            if not batch:
                return True
            try:
                rows = [self._row(record) for record in batch]
                with self._metadata.transaction() as conn:
                    if self._sqlite:
                        _release_page_cache(conn)
                        # One prepared one-row INSERT run per row (see
                        # _insert_ignoring_duplicates); sqlite3 sums the rows it inserted.
                        inserted = conn.execute(self._insert, rows).rowcount
                    else:
                        # RETURNING counts the rows really inserted (psycopg's executemany
                        # rowcount is not reliable for that).
                        inserted = len(conn.execute(self._insert, rows).all())
            except Exception as exc:
                self.last_error = exc
                self._failures_in_row += 1
                if self._failures_in_row >= self.max_retries:
                    self.failed += len(batch)
                    self._failures_in_row = 0
                    _log.error("prediction log: dropped %d records after %s", len(batch), exc)
                else:
                    self._retry = batch
                return False
            self._failures_in_row = 0
            self.written += inserted
            self.duplicates += len(rows) - inserted
            return True

    def _row(self, record: PredictionRecord) -> dict[str, Any]:
        settings = self.settings
        return {
            "request_id": record.request_id,
            "arm": record.arm,
            "logged_at": record.logged_at,
            "model": record.model,
            "version": record.version,
            "version_id": record.version_id,
            "alias": record.alias,
            "entity_keys": settings.scrub(record.entity_keys),
            "features": settings.scrub_features(record.features),
            "inputs": settings.scrub(record.inputs),
            "score": record.score,
            "scores": list(record.scores) if record.scores is not None else None,
            "label": record.label,
            "threshold": record.threshold,
            "latency_ms": record.latency_ms,
            "flags": settings.scrub_flags(record.flags),
            "error": record.error[:_ERROR_KIND_MAX] if record.error is not None else None,
        }


def log_failed_call(
    writer: PredictionLogWriter | None,
    error: BaseException,
    *,
    model: str,
    alias: str | None,
    arm: str,
    version: ModelVersion,
    request_ids: Sequence[str],
    inputs: Sequence[Mapping[str, Any]],
    started: float,
) -> None:
    """Log the records of a model call that raised: one record per request id, without
    a score, with ``error`` the class name of what the model raised (the cause of a
    wrapped ``DataContractError``: ``RuntimeError``, ``ZeroDivisionError``...).

    The request's records passed the contract, so the failure is the model's: serving
    answers 422 ``model_error`` (or 500), and the arm's error rate must count it.

    ``started`` is the request's ``time.perf_counter()`` at arrival (the latency is up to
    the failure). Serving calls this on its failure path, so the canary's error rate is
    failures over every request of the arm. Never raises: the request's own error wins.

    >>> except Exception as exc:  # doctest: +SKIP
    ...     log_failed_call(writer, exc, model="churn", alias="champion", arm="canary",
    ...                     version=arm.version, request_ids=ids, inputs=rows, started=t0)
    ...     raise
    """
    if writer is None:
        return
    try:
        latency_ms = (time.perf_counter() - started) * 1000.0
        now = datetime.now(UTC)
        kind = type(error.__cause__ or error).__name__[:_ERROR_KIND_MAX]
        for request_id, record in zip(request_ids, inputs, strict=True):
            writer.log(
                PredictionRecord(
                    request_id=request_id,
                    arm=arm,
                    model=model,
                    version=version.number,
                    version_id=version.id,
                    alias=alias,
                    inputs=record if isinstance(record, Mapping) else {},
                    score=None,
                    latency_ms=latency_ms,
                    logged_at=now,
                    error=kind,
                )
            )
    except Exception as exc:  # noqa: BLE001 - logging a failure must not replace it
        _log.warning("prediction log: a failed call of %s was not logged: %s", model, exc)


def _release_page_cache(conn: Any) -> None:
    """Free the SQLite page cache of the pooled connection the writer got.

    The log is written, never read back by the service, yet each of its pages stays in
    the cache of the connection that wrote it, up to the store's 64 MiB per connection
    (``store.metadata``), and the writer gets whichever pooled connection is free: the
    service's memory grew with every logged record (measured: +50 MB after 60k records)
    until each pooled connection held 64 MiB of log pages. Run at the
    start of a write transaction, when every cached page is clean, it leaves at most one
    batch's pages per connection; the next batch reads the few index pages it needs from
    the OS's file cache.
    """
    conn.exec_driver_sql("PRAGMA shrink_memory")


def _insert_ignoring_duplicates(metadata: MetadataStore) -> Any:
    from shipyard.store.schema.monitoring import prediction_log

    if metadata.dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        # No RETURNING on SQLite: with it, SQLAlchemy renders each batch as one
        # INSERT ... VALUES with as many rows as the batch, a new SQL text for each batch
        # size, and the driver keeps the last 128 prepared per pooled connection (about
        # 0.4 MB each at 200 rows: +50 MB per connection, measured). Without it, the one
        # one-row statement is prepared once and run for every row (executemany).
        return sqlite_insert(prediction_log).on_conflict_do_nothing()
    from sqlalchemy.dialects.postgresql import insert as postgres_insert

    return (
        postgres_insert(prediction_log)
        .on_conflict_do_nothing()
        .returning(prediction_log.c.request_id)
    )


def purge_expired(
    metadata: MetadataStore, retention_days: int, *, now: datetime | None = None
) -> int:
    """Delete prediction records (and their labels) older than ``retention_days``."""
    from sqlalchemy import delete, select

    from shipyard.store.schema.monitoring import prediction_labels, prediction_log

    if retention_days < 1:
        raise ConfigError(f"Retention of {retention_days} days: keep at least 1 day.")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    with metadata.transaction() as conn:
        result = conn.execute(delete(prediction_log).where(prediction_log.c.logged_at < cutoff))
        still_logged = select(prediction_log.c.request_id)
        conn.execute(
            delete(prediction_labels).where(
                prediction_labels.c.labeled_at < cutoff,
                prediction_labels.c.request_id.not_in(still_logged),
            )
        )
    return int(result.rowcount or 0)
