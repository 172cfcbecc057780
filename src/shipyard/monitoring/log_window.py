"""Reading a model version's window of the prediction log, as a check compares it.

:func:`read_log_window` returns a :class:`LogWindow`: the newest ``window`` records (a
count) or those of the last ``window`` (a ``timedelta``) of one version on some arms,
oldest first, with their labels. Records of failed model calls (``error`` set) are left
out: they hold no score and their inputs were never scored, so drift and performance
judge what the model answered; the canary counts them as errors.

>>> logged = read_log_window(stores.metadata, version, window=timedelta(hours=6))  # doctest: +SKIP
>>> logged.rows, logged.label
(812, 'last 6h to 2026-11-26 12:00Z')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.models.records import ModelVersion
    from shipyard.store.metadata import MetadataStore

__all__ = ["DEFAULT_WINDOW", "SCORE_COLUMN", "LogWindow", "read_log_window"]

SCORE_COLUMN = "score"
DEFAULT_WINDOW = 1000
"""Records a check looks at when no window is given: the newest thousand."""
_MAX_WINDOW_ROWS = 5_000_000


@dataclass(frozen=True, eq=False)
class LogWindow:
    """Records of one model version read from the prediction log, oldest first.

    ``inputs`` holds the logged request fields (one column each, cast to the signature's
    types where they can be); ``labels`` the ground truth joined by request id (None
    where none arrived).
    """

    inputs: pa.Table
    request_ids: list[str]
    logged_at: list[datetime]
    scores: list[float | None]
    latency_ms: list[float]
    labels: list[Any]
    label: str
    start: datetime | None
    end: datetime | None

    @property
    def rows(self) -> int:
        return len(self.request_ids)

    def drift_table(self, score_column: str = SCORE_COLUMN) -> pa.Table:
        """The inputs plus the score column, as drift compares them."""
        import pyarrow as pa

        scores = pa.array(
            [math.nan if s is None else float(s) for s in self.scores], type=pa.float64()
        )
        return self.inputs.append_column(score_column, scores)


def read_log_window(
    metadata: MetadataStore,
    version: ModelVersion,
    *,
    window: timedelta | int = DEFAULT_WINDOW,
    until: datetime | None = None,
    arms: Sequence[str] = ("champion",),
) -> LogWindow:
    """The log's records of ``version`` on ``arms``: the newest ``window`` records (an
    int) or those logged in ``[until - window, until)`` (a timedelta), oldest first,
    with their labels. ``until`` defaults to now."""
    from sqlalchemy import select

    from shipyard.store.schema.monitoring import prediction_labels, prediction_log

    end = _aware(until, "until") if until is not None else datetime.now(UTC)
    log, labels = prediction_log, prediction_labels
    query = (
        select(
            log.c.request_id,
            log.c.logged_at,
            log.c.inputs,
            log.c.features,
            log.c.score,
            log.c.latency_ms,
            labels.c.label,
        )
        .select_from(log.outerjoin(labels, labels.c.request_id == log.c.request_id))
        .where(
            log.c.model == version.name,
            log.c.version == version.number,
            log.c.arm.in_(list(arms)),
            log.c.logged_at < end,
            log.c.error.is_(None),
        )
    )
    if isinstance(window, timedelta):
        if window <= timedelta(0):
            raise DataContractError(f"A time window must be positive, not {window}.")
        query = query.where(log.c.logged_at >= end - window).order_by(
            log.c.logged_at, log.c.request_id
        )
        label = f"last {_span(window)} to {end:%Y-%m-%d %H:%M}Z"
    elif isinstance(window, int) and not isinstance(window, bool):
        if not 1 <= window <= _MAX_WINDOW_ROWS:
            raise DataContractError(
                f"A count window holds 1 to {_MAX_WINDOW_ROWS:,} records, not {window}.",
                hint="Pass window=1000, for example.",
            )
        query = query.order_by(log.c.logged_at.desc(), log.c.request_id.desc()).limit(window)
        label = f"last {window} records"
    else:
        raise DataContractError(
            f"window must be a number of records or a timedelta, not {window!r}.",
            hint="Pass window=1000 or window=timedelta(hours=6).",
        )
    with metadata.connect() as conn:
        rows = list(conn.execute(query))
    if not isinstance(window, timedelta):
        rows.reverse()
    table = _inputs_table([_served_inputs(row) for row in rows], version)
    times = [row.logged_at for row in rows]
    return LogWindow(
        inputs=table,
        request_ids=[row.request_id for row in rows],
        logged_at=times,
        scores=[None if row.score is None else float(row.score) for row in rows],
        latency_ms=[float(row.latency_ms) for row in rows],
        labels=[row.label for row in rows],
        label=label,
        start=(end - window) if isinstance(window, timedelta) else (times[0] if times else None),
        end=end if isinstance(window, timedelta) else (times[-1] if times else None),
    )


def _served_inputs(row: Any) -> dict[str, Any]:
    """The inputs the model saw: the request's fields, plus the values serving looked up
    in the online store for a request that carried only entity keys."""
    inputs = dict(row.inputs or {})
    for name, entry in (row.features or {}).items():
        if name not in inputs and isinstance(entry, Mapping) and entry.get("value") is not None:
            inputs[name] = entry["value"]
    return inputs


def _inputs_table(records: list[Mapping[str, Any]], version: ModelVersion) -> pa.Table:
    import pyarrow as pa

    names = [spec.name for spec in version.signature.inputs]
    columns: dict[str, pa.Array] = {}
    for spec in version.signature.inputs:
        values = [record.get(spec.name) for record in records]
        try:
            columns[spec.name] = pa.array(values, type=pa.type_for_alias(spec.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, KeyError):
            # Logged values that do not fit the declared type are compared as they came.
            try:
                columns[spec.name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                columns[spec.name] = pa.array([None if v is None else str(v) for v in values])
    if not names:
        return pa.table({"__rows__": pa.nulls(len(records))}).drop_columns(["__rows__"])
    return pa.table(columns)


def _aware(moment: Any, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise DataContractError(
            f"{name} is {moment!r}; expected a timezone-aware datetime.",
            hint="e.g. datetime.now(UTC).",
        )
    return moment.astimezone(UTC)


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
