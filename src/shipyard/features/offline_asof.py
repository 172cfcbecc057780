"""DuckDB ``ASOF JOIN`` point-in-time winners: the DuckDB engine's ``join="asof"`` mode.

Each source is reduced once to a narrow DuckDB table, sorted by (join keys, event time):
the keys, the event time as int64 microseconds, and the source row number. Rows with a
null key or time are left out (they never win) and, when the view has a created
timestamp, rows equal on keys and event time are reduced to the one with the greatest
created timestamp (nulls lowest), so the ASOF JOIN's pick among equal times is the
protocol's. Per call, only the entity rows' keys and times meet that table in one
``ASOF JOIN``; TTL is applied to the winners' times afterwards (the latest value at or
before the entity time is expired exactly when every older one is), and the feature
values are gathered for the winning rows only, as in the index mode.

Parquet sources are immutable per (path, size, modification time): their table is
persisted as a DuckDB file under the engine's cache folder (``.shipyard/cache/features``
for a project's store) and attached read-only by later calls and processes, or kept in
the connection (up to 4 sources) when the engine has no cache folder. In-memory tables
are reduced on each call.

This mode is selectable (``[features] offline = "duckdb-asof"``) and passes the same
conformance suite as the default index mode; the index is the default because it is
faster on the feature store benchmark (figures in ``docs/features.md``).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import BackendError
from shipyard.features.offline_index import int64_values, read_columns

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

    from shipyard.features.offline import ViewQuery

__all__ = ["AsofTables"]

_ROW = "__sy_row"
_SRC = "__sy_src"
_TS = "__sy_ts"
_AT = "__sy_at"
_CREATED = "__sy_created"
_IN_CONNECTION = 4
# Changes whenever the layout of a persisted table changes, so old files are not read.
_LAYOUT = "asof-v1"

Fetch = Callable[["duckdb.DuckDBPyConnection", str], "pa.Table"]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class AsofTables:
    """The sorted source tables of one DuckDB connection, and the ASOF JOIN over them.

    Not thread-safe on its own: the engine calls it under its connection lock.
    """

    def __init__(self, cache_dir: Path | None) -> None:
        self.cache_dir = cache_dir
        self._tables: OrderedDict[str, str] = OrderedDict()
        """Identity digest -> qualified table name in the connection (LRU order)."""

    def winners(
        self,
        con: duckdb.DuckDBPyConnection,
        fetch: Fetch,
        entity_rows: pa.Table,
        view: ViewQuery,
        entity_timestamp: str,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per entity row: the winning source row (-1: none) and its event time (micros).

        TTL is not applied here (the caller filters on the returned times).
        """
        import duckdb
        import numpy as np
        import pyarrow as pa

        count = entity_rows.num_rows
        winners = np.full(count, -1, dtype=np.int64)
        micros = np.zeros(count, dtype=np.int64)
        at, valid = int64_values(entity_rows.column(entity_timestamp))
        left = pa.table(
            [
                *(entity_rows.column(k) for k in view.join_keys),
                pa.array(at, pa.int64(), mask=~valid),
                pa.array(np.arange(count, dtype=np.int64)),
            ],
            names=[*view.join_keys, _AT, _ROW],
        )
        table, temporary = self._table(con, view)
        conditions = [f"e.{_q(k)} = s.{_q(k)}" for k in view.join_keys]
        conditions.append(f"e.{_AT} >= s.{_TS}")
        sql = (
            f"SELECT e.{_ROW}, s.{_SRC}, s.{_TS} FROM __sy_entities e "  # noqa: S608
            f"ASOF JOIN {table} s ON {' AND '.join(conditions)}"
        )
        con.register("__sy_entities", left)
        try:
            pairs = fetch(con, sql)
        finally:
            with suppress(duckdb.Error):  # already gone: nothing to release
                con.unregister("__sy_entities")
            if temporary:
                con.execute(f"DROP TABLE IF EXISTS {table}")
        if pairs.num_rows:
            rows = pairs.column(0).to_numpy()
            winners[rows] = pairs.column(1).to_numpy()
            micros[rows] = pairs.column(2).to_numpy()
        return winners, micros

    def clear(self, con: duckdb.DuckDBPyConnection | None) -> None:
        """Forget the connection's tables (detaching persisted ones)."""
        if con is not None:
            for name in self._tables.values():
                _drop(con, name)
        self._tables.clear()

    # --- Tables ----------------------------------------------------------------------------

    def _table(self, con: duckdb.DuckDBPyConnection, view: ViewQuery) -> tuple[str, bool]:
        """The qualified name of the view's sorted table, and whether to drop it after use."""
        if not isinstance(view.source, tuple):
            name = "__sy_asof_call"
            _build(con, view, name, temporary=True)
            return name, True
        digest = _digest(view, view.source)
        known = self._tables.get(digest)
        if known is not None:
            self._tables.move_to_end(digest)
            return known, False
        if self.cache_dir is not None:
            name = _attach(con, view, self.cache_dir / f"{digest}.duckdb", digest)
        else:
            name = f"__sy_asof_{digest[:16]}"
            _build(con, view, name, temporary=True)
        self._tables[digest] = name
        while len(self._tables) > _IN_CONNECTION:
            _, evicted = self._tables.popitem(last=False)
            _drop(con, evicted)
        return name, False


def _attach(con: duckdb.DuckDBPyConnection, view: ViewQuery, path: Path, digest: str) -> str:
    """Attach the view's persisted sorted table (written first if missing); its name."""
    import duckdb

    if not path.exists():
        _persist(view, path)
    alias = f"__sy_asof_{digest[:16]}"
    literal = str(path).replace("'", "''")
    try:
        con.execute(f"ATTACH '{literal}' AS {alias} (READ_ONLY)")
    except duckdb.Error as exc:
        raise BackendError(
            f"Cannot open the sorted table of feature view {view.name!r} at {path}: {exc}",
            hint=f"Delete {path}; it is rebuilt on the next call.",
        ) from exc
    return f"{alias}.main.source"


def _persist(view: ViewQuery, path: Path) -> None:
    """Write the sorted table to ``path`` atomically (a temporary file, then rename)."""
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    try:
        with duckdb.connect(str(partial)) as writer:
            _build(writer, view, "source", temporary=False)
            writer.execute("CHECKPOINT")
        os.replace(partial, path)
    except (duckdb.Error, OSError) as exc:
        raise BackendError(
            f"Cannot write the sorted table of feature view {view.name!r} to {path}: {exc}",
            hint="Check the project's .shipyard/cache folder is writable.",
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
        Path(f"{partial}.wal").unlink(missing_ok=True)


def _digest(view: ViewQuery, files: tuple[str, ...]) -> str:
    """Names a Parquet source's sorted table: its files' identity and the columns used."""
    parts: list[str] = [_LAYOUT, *view.join_keys, "|", view.timestamp]
    parts.append(view.created_timestamp or "")
    for file in files:
        try:
            stat = os.stat(file)
        except OSError as exc:
            raise BackendError(
                f"Cannot read the source of feature view {view.name!r}: {exc}",
                hint="Check the Parquet files exist and have the view's columns.",
            ) from exc
        parts.append(f"{os.path.abspath(file)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _build(con: duckdb.DuckDBPyConnection, view: ViewQuery, name: str, *, temporary: bool) -> None:
    """Create ``name``: the view's valid rows, deduplicated by created time, sorted."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    columns = list(dict.fromkeys([*view.join_keys, view.timestamp]))
    if view.created_timestamp:
        columns.append(view.created_timestamp)
    source = read_columns(view.source, list(dict.fromkeys(columns)), view_name=view.name)
    stamps, valid = int64_values(source.column(view.timestamp))
    arrays: list[Any] = [source.column(k) for k in view.join_keys]
    names = [*view.join_keys, _TS, _SRC]
    arrays += [
        pa.array(stamps, pa.int64(), mask=~valid),
        pa.array(np.arange(source.num_rows, dtype=np.int64)),
    ]
    if view.created_timestamp:
        created, created_valid = int64_values(source.column(view.created_timestamp))
        arrays.append(pa.array(created, pa.int64(), mask=~created_valid))
        names.append(_CREATED)
    narrow = pa.table(arrays, names=names)
    del source, arrays
    keys = ", ".join(_q(k) for k in view.join_keys)
    where = " AND ".join([f"{_TS} IS NOT NULL", *(f"{_q(k)} IS NOT NULL" for k in view.join_keys)])
    dedupe = (
        f" QUALIFY row_number() OVER (PARTITION BY {keys}, {_TS} "
        f"ORDER BY {_CREATED} DESC NULLS LAST) = 1"
        if view.created_timestamp
        else ""
    )
    kind = "TEMP TABLE" if temporary else "TABLE"
    sql = (
        f"CREATE OR REPLACE {kind} {name} AS SELECT {keys}, {_TS}, {_SRC} "  # noqa: S608
        f"FROM __sy_narrow WHERE {where}{dedupe} ORDER BY {keys}, {_TS}"
    )
    con.register("__sy_narrow", narrow)
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        raise BackendError(
            f"DuckDB could not sort the source of feature view {view.name!r}: {exc}",
            hint="Check that the source's key columns are integers or strings.",
        ) from exc
    finally:
        with suppress(duckdb.Error):
            con.unregister("__sy_narrow")


def _drop(con: duckdb.DuckDBPyConnection, qualified: str) -> None:
    import duckdb

    with suppress(duckdb.Error):
        if qualified.endswith(".main.source"):
            con.execute(f"DETACH {qualified.split('.')[0]}")
        else:
            con.execute(f"DROP TABLE IF EXISTS {qualified}")
