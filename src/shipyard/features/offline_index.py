"""Sorted (keys, event time) indexes of feature sources, and row gathers from Parquet.

The point-in-time join of :mod:`shipyard.features.offline_duckdb` is a search, not a
join: every source row gets one sortable int64, ``key code * span + time part``, where the
key code numbers the distinct join-key tuples and the time part orders event times within
a key; the rows are sorted once by it (then by created timestamp, nulls lowest). For an
entity row, the winner is the last sorted row at or below ``its key code * span + its
time part`` if that row has the same key code: the latest event time at or before the
entity time, the greatest created timestamp among equal event times. Only keys and
timestamps are read to build it; feature values are then read for the winning rows only,
row group by row group, so the wide columns of the source never sit in memory whole.

A dataset version's Parquet parts are immutable, so an index is kept per process (up to
4 sources and 512 MiB, least recently used first out; 12 bytes a source row) keyed by
each file's path, size and modification time; a
:class:`~shipyard.features.definitions.FileSource` rewritten in place gets a new index.
In-memory tables are indexed on each call.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import BackendError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from shipyard.features.offline import ViewQuery, ViewSource

__all__ = ["SourceIndex", "clear_index_cache", "gather_rows", "read_columns", "source_index"]

# Products of key and time ranges stay below this, so no int64 arithmetic can overflow.
_LIMIT = 2**62
# Integer keys spanning at most this many values per row are coded by offset, not hashing.
_OFFSET_DENSITY = 4
_CACHE_SIZE = 4
# 12 bytes a source row: the cache holds indexes of sources up to ~45M rows in all.
_CACHE_BYTES = 512 * 1024 * 1024
_cache: OrderedDict[tuple[Any, ...], SourceIndex] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class _KeyCoder:
    """Maps one join key's values to dense codes ``0 <= code < size``."""

    size: int
    offset: int | None = None
    """Integer keys in a narrow range: ``code = value - offset``."""
    values: pa.Array | None = None
    """Otherwise the distinct non-null values: ``code`` = position in it."""

    def encode(self, column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """Codes (0 where invalid) and a mask of values that have a code."""
        import numpy as np
        import pyarrow.compute as pc

        if self.offset is not None:
            raw, valid = int64_values(column)
            codes = raw - self.offset
            valid &= (codes >= 0) & (codes < self.size)
        else:
            found = pc.index_in(column, value_set=self.values)
            raw, valid = int64_values(found)
            codes = raw
        return (codes if valid.all() else np.where(valid, codes, 0)), valid


@dataclass(frozen=True, slots=True)
class SourceIndex:
    """One source's rows sorted by (key tuple, event time, created time); see module doc."""

    coders: tuple[_KeyCoder, ...]
    compactions: tuple[np.ndarray | None, ...]
    """Per key: the sorted distinct codes of the keys so far, renumbered densely before the
    next multiplication (by the next key's size, or by the time span for the last key) when
    it could overflow; ``None`` when it cannot."""
    codes: int
    tmin: int
    span: int
    ranks: np.ndarray | None
    """Sorted distinct event times, when ``codes * (tmax - tmin + 1)`` would overflow."""
    sorted_keys: np.ndarray
    rows: np.ndarray
    """Source row number of each sorted entry."""

    @property
    def nbytes(self) -> int:
        """Memory held by the index's arrays."""
        return int(self.sorted_keys.nbytes + self.rows.nbytes)

    def lookup(
        self, keys: Sequence[pa.ChunkedArray], stamps: pa.ChunkedArray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per entity row: the winning source row (-1: none) and its event time (micros)."""
        import numpy as np

        codes, valid = self._key_codes(keys)
        at, stamp_valid = int64_values(stamps)
        valid &= stamp_valid
        if self.ranks is not None:
            part = np.searchsorted(self.ranks, at, side="right") - 1
            valid &= part >= 0
        else:
            valid &= at >= self.tmin
            part = np.minimum(at, self.tmin + self.span - 1) - self.tmin
        target = np.where(valid, codes * self.span + np.where(valid, part, 0), 0)
        # Searching in ascending order lets each binary search start where the last ended
        # (numpy's sorted-needle shortcut): about 4x faster than in entity order.
        order = np.argsort(target)
        position = np.empty(len(target), dtype=np.int64)
        position[order] = np.searchsorted(self.sorted_keys, target[order], side="right") - 1
        valid &= position >= 0
        found = self.sorted_keys[np.maximum(position, 0)] if len(self.sorted_keys) else target
        valid &= found // self.span == codes
        winners = np.where(valid, self.rows[np.maximum(position, 0)] if len(self.rows) else 0, -1)
        time_part = found % self.span
        times = self.ranks[time_part] if self.ranks is not None else time_part + self.tmin
        return winners.astype(np.int64), np.where(valid, times, 0)

    def _key_codes(self, keys: Sequence[pa.ChunkedArray]) -> tuple[np.ndarray, np.ndarray]:
        codes, valid = self.coders[0].encode(keys[0])
        for step, compaction in enumerate(self.compactions):
            if compaction is not None:
                codes, found = _compacted(compaction, codes)
                valid &= found
            if step + 1 < len(self.coders):
                coder = self.coders[step + 1]
                more, more_valid = coder.encode(keys[step + 1])
                valid &= more_valid
                codes = codes * coder.size + more
        return _zero_invalid(codes, valid), valid


def _compacted(distinct: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``codes`` in the sorted ``distinct`` and whether each is there."""
    import numpy as np

    if not len(distinct):
        return np.zeros_like(codes), np.zeros(len(codes), dtype=bool)
    position = np.minimum(np.searchsorted(distinct, codes), len(distinct) - 1)
    return position, distinct[position] == codes


def _zero_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.where(valid, values, 0)


def int64_values(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """An integer or timestamp column as int64 numpy values (0 at nulls) and a validity mask."""
    import numpy as np
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    column = column.cast(pa.int64())
    if column.null_count:
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        return column.fill_null(0).to_numpy(), valid
    # Read-only when zero-copy: callers derive new arrays and never write into it.
    return column.to_numpy(zero_copy_only=False), np.ones(len(column), dtype=bool)


def _key_coder(column: pa.ChunkedArray) -> _KeyCoder:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(column.type) and len(column) - column.null_count:
        bounds = pc.min_max(column)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if high - low < max(1024, _OFFSET_DENSITY * len(column)):
            return _KeyCoder(size=high - low + 1, offset=low)
    values = pc.unique(column).drop_null()
    return _KeyCoder(size=max(1, len(values)), values=values)


def build_index(narrow: pa.Table, view: ViewQuery) -> SourceIndex:
    """Sort a source's keys and timestamps (``narrow`` holds those columns) into an index."""
    return _build(dict(zip(narrow.column_names, narrow.columns, strict=True)), view)


def _build(columns: dict[str, pa.ChunkedArray], view: ViewQuery) -> SourceIndex:
    # Columns are popped as they are consumed, so each buffer is freed as soon as it has
    # been turned into codes: building the index is the memory peak of a cold call.
    import numpy as np

    keys: list[pa.ChunkedArray | None] = [columns[k] for k in view.join_keys]
    created_column = columns[view.created_timestamp] if view.created_timestamp else None
    stamp_column = columns[view.timestamp]
    columns.clear()
    coders = tuple(_key_coder(key) for key in keys)
    codes, valid = coders[0].encode(keys[0])
    keys[0] = None
    count = len(valid)
    size = coders[0].size
    compactions: list[np.ndarray | None] = []
    stamps, stamp_valid = int64_values(stamp_column)
    del stamp_column
    valid &= stamp_valid
    if valid.any():
        tmin = int(stamps.min(where=valid, initial=np.iinfo(np.int64).max))
        span = int(stamps.max(where=valid, initial=np.iinfo(np.int64).min)) - tmin + 1
    else:
        tmin, span = 0, 1
    # Before each multiplication (by the next key's size, then by the time span), codes
    # that could overflow are renumbered densely (at most one code per row).
    for step in range(len(coders)):
        factor = coders[step + 1].size if step + 1 < len(coders) else span
        if size * factor >= _LIMIT:
            distinct = np.unique(codes[valid])
            codes = np.searchsorted(distinct, codes)
            compactions.append(distinct)
            size = max(1, len(distinct))
        else:
            compactions.append(None)
        if step + 1 < len(coders):
            more, more_valid = coders[step + 1].encode(keys[step + 1])
            keys[step + 1] = None
            valid &= more_valid
            codes = codes * factor + more
            size *= factor
    # Rows with a null or unknown key or time never win: leave them out (no copy when
    # every row is valid, the usual case; the index build is the call's memory peak).
    rows = None if valid.all() else np.flatnonzero(valid)
    if rows is not None:
        codes, stamps = codes[rows], stamps[rows]
    ranks = None
    if size * span < _LIMIT:
        sort_keys = codes * span
        sort_keys += stamps
        sort_keys -= tmin
    else:
        ranks = np.unique(stamps)
        span = max(1, len(ranks))
        sort_keys = codes * span
        sort_keys += np.searchsorted(ranks, stamps)
    del codes, stamps
    if created_column is not None:
        created, created_valid = int64_values(created_column)
        del created_column
        created = np.where(created_valid, created, np.iinfo(np.int64).min)
        if rows is not None:
            created = created[rows]
        order = np.lexsort((created, sort_keys))  # created ascending: the last one wins
        del created
    else:
        order = np.argsort(sort_keys)
    row_type = np.int32 if count < 2**31 else np.int64
    sorted_keys = sort_keys[order]
    del sort_keys
    return SourceIndex(
        coders=coders,
        compactions=tuple(compactions),
        codes=size,
        tmin=tmin,
        span=span,
        ranks=ranks,
        sorted_keys=sorted_keys,
        rows=(order if rows is None else rows[order]).astype(row_type),
    )


def source_index(view: ViewQuery) -> SourceIndex:
    """The view's index: from the process cache for Parquet files, else built now."""
    columns = _narrow_columns(view)
    if not isinstance(view.source, tuple):
        return build_index(view.source.select(columns), view)
    key = (_files_identity(view.source, view.name), tuple(columns), view.timestamp)
    with _cache_lock:
        index = _cache.get(key)
        if index is not None:
            _cache.move_to_end(key)
            return index
    narrow = read_columns(view.source, columns, view_name=view.name)
    arrays = dict(zip(narrow.column_names, narrow.columns, strict=True))
    del narrow
    index = _build(arrays, view)
    if index.nbytes > _CACHE_BYTES:
        return index  # too big to keep: rebuilt by each call rather than pinned in memory
    with _cache_lock:
        _cache[key] = index
        while len(_cache) > _CACHE_SIZE or sum(i.nbytes for i in _cache.values()) > _CACHE_BYTES:
            _cache.popitem(last=False)
    return index


def clear_index_cache() -> None:
    """Forget every cached index (tests, or to free memory)."""
    with _cache_lock:
        _cache.clear()


def _narrow_columns(view: ViewQuery) -> list[str]:
    columns = [*view.join_keys, view.timestamp]
    if view.created_timestamp:
        columns.append(view.created_timestamp)
    return list(dict.fromkeys(columns))


def _files_identity(paths: tuple[str, ...], view_name: str) -> tuple[tuple[str, int, int], ...]:
    identity = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError as exc:
            raise BackendError(
                f"Cannot read the source of feature view {view_name!r}: {exc}",
                hint="Check the Parquet files exist and have the view's columns.",
            ) from exc
        identity.append((os.path.abspath(path), stat.st_size, stat.st_mtime_ns))
    return tuple(identity)


def read_columns(source: ViewSource, columns: list[str], *, view_name: str) -> pa.Table:
    """Some columns of a source, every row (Parquet files read as one table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(source, tuple):
        return source.select(columns)
    try:
        # ParquetFile.read, not pq.read_table: the latter imports pandas (a second).
        tables = [pq.ParquetFile(path).read(columns=columns) for path in source]
    except (OSError, pa.ArrowInvalid) as exc:
        raise BackendError(
            f"Cannot read the source of feature view {view_name!r}: {exc}",
            hint="Check the Parquet files exist and have the view's columns.",
        ) from exc
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def gather_rows(
    source: ViewSource, columns: list[str], rows: np.ndarray, *, view_name: str
) -> pa.Table:
    """The given source rows' ``columns``, one output row per entry (-1: all null).

    From Parquet, only the row groups holding a wanted row are read, one at a time, and
    only the wanted rows of each are kept: peak memory is one row group, not the source.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys(columns))
    missing = rows < 0
    if not isinstance(source, tuple):
        return source.select(columns).take(pa.array(rows, mask=missing))
    wanted = rows[~missing]
    order = np.argsort(wanted, kind="stable")
    ordered = wanted[order]
    pieces: list[pa.Table] = []
    schema: pa.Schema | None = None
    base = 0
    try:
        for path in source:
            file = pq.ParquetFile(path)
            if schema is None:
                schema = pa.schema([file.schema_arrow.field(c) for c in columns])
            metadata = file.metadata
            for group in range(metadata.num_row_groups):
                count = metadata.row_group(group).num_rows
                low, high = np.searchsorted(ordered, [base, base + count])
                if high > low:
                    part = file.read_row_group(group, columns=columns)
                    pieces.append(part.take(pa.array(ordered[low:high] - base)))
                base += count
    except (OSError, KeyError, pa.ArrowInvalid) as exc:
        raise BackendError(
            f"Cannot read the source of feature view {view_name!r}: {exc}",
            hint="Check the Parquet files exist and have the view's columns.",
        ) from exc
    if schema is None:  # ViewQuery refuses an empty tuple of files; kept for direct callers
        raise BackendError(f"Feature view {view_name!r} has no source files.")
    picked = pa.concat_tables(pieces) if pieces else schema.empty_table()
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.arange(len(order), dtype=np.int64)
    positions = np.full(len(rows), -1, dtype=np.int64)
    positions[~missing] = inverse
    return picked.take(pa.array(positions, mask=missing))
