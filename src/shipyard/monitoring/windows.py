"""Current windows: the data drift is measured on, with a label saying which slice it is.

A :class:`Window` wraps an Arrow table. It comes from any table
(:func:`window_from_table`, which is also how the prediction log's reader hands its rows
over), from a dataset version (:func:`window_from_dataset`), or from slicing one table by
row count (:func:`windows_by_count`) or by time (:func:`windows_by_time`).

>>> windows = windows_by_time(log_table, "timestamp", timedelta(days=1))
>>> [w.label for w in windows][:2]
['2026-11-01T00:00:00+00:00', '2026-11-02T00:00:00+00:00']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shipyard.core.errors import DataContractError

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.core.config import Config
    from shipyard.data.client import DatasetClient

__all__ = [
    "Window",
    "window_from_dataset",
    "window_from_table",
    "windows_by_count",
    "windows_by_time",
]


@dataclass(frozen=True, slots=True, eq=False)
class Window:
    """One slice of current data: ``table``, its ``label`` and, for time windows, the
    half-open interval ``[start, end)`` it covers."""

    table: pa.Table
    label: str
    start: datetime | None = None
    end: datetime | None = None

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)


def window_from_table(
    table: pa.Table,
    label: str = "current",
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Window:
    """A window over an Arrow table (the prediction log reader's rows, a batch, a file)."""
    from shipyard.monitoring.reference import _require_table

    _require_table(table, "current window")
    return Window(table, label, start, end)


def window_from_dataset(
    reference: str,
    *,
    columns: list[str] | None = None,
    client: DatasetClient | None = None,
    config: Config | None = None,
) -> Window:
    """A dataset version (``churn@v4``) as one window, labelled with its reference."""
    from shipyard.data.client import DatasetClient

    own = client is None
    active = client or DatasetClient.open(config)
    try:
        version = active.get_version(reference)
        table = active.read_table(version.reference, columns)
    finally:
        if own:
            active.close()
    return Window(table, version.reference)


def windows_by_count(table: pa.Table, rows: int) -> list[Window]:
    """Consecutive windows of ``rows`` rows each, in table order (the last may be
    shorter); labelled ``rows 0-9999``, ``rows 10000-19999``..."""
    from shipyard.monitoring.reference import _require_table

    _require_table(table, "table to window")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise DataContractError(
            f"A count window needs a whole number of rows >= 1, got {rows!r}.",
            hint="Pass rows=10_000, for example.",
        )
    return [
        Window(table.slice(offset, rows), f"rows {offset}-{min(offset + rows, table.num_rows) - 1}")
        for offset in range(0, table.num_rows, rows)
    ]


def windows_by_time(table: pa.Table, column: str, every: timedelta) -> list[Window]:
    """Windows of ``every`` (a day, an hour...) by the timestamp ``column``, aligned to
    the Unix epoch in UTC, oldest first; empty intervals are skipped and rows without a
    timestamp left out. Each window's label is its start in ISO 8601."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from shipyard.monitoring.reference import _require_table

    _require_table(table, "table to window")
    if column not in table.column_names:
        raise DataContractError(
            f"Column {column!r} is not in the table; cannot window by time.",
            hint=f"Choose a timestamp column among {table.column_names}.",
        )
    if not isinstance(every, timedelta) or every <= timedelta(0):
        raise DataContractError(
            f"A time window needs a positive timedelta, got {every!r}.",
            hint="Pass every=timedelta(days=1), for example.",
        )
    times = table.column(column)
    if not pa.types.is_timestamp(times.type):
        raise DataContractError(
            f"Column {column!r} has type {times.type}, not a timestamp.",
            hint="Cast it to a timestamp first (pyarrow.compute.cast).",
        )
    micros = np.asarray(
        pc.cast(times, pa.timestamp("us", tz=times.type.tz), safe=False)
        .cast(pa.int64())
        .to_numpy(zero_copy_only=False)
    )
    valid = np.asarray(times.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    step = every // timedelta(microseconds=1)
    buckets = np.floor_divide(micros, step)
    order = np.flatnonzero(valid)
    order = order[np.argsort(buckets[order], kind="stable")]
    sorted_buckets = buckets[order]
    starts = np.flatnonzero(np.r_[True, sorted_buckets[1:] != sorted_buckets[:-1]])
    stops = np.r_[starts[1:], len(order)]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    windows: list[Window] = []
    for begin, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        bucket = int(sorted_buckets[begin])
        start = epoch + timedelta(microseconds=bucket * step)
        windows.append(
            Window(table.take(order[begin:stop]), start.isoformat(), start, start + every)
        )
    return windows
