"""The default online store: one SQLite file (``.shipyard/online.db``), WAL, one table.

Rows live in ``online_values(ns, k, ts, val)``, clustered on ``(ns, k)`` (``WITHOUT
ROWID``): a read of one entity is one primary-key lookup, a read of many is one statement
whose key list is a JSON array expanded by ``json_each`` (a single prepared statement for
any count, cached by the sqlite3 module). Writes are one transaction of ``executemany``
upserts that keep the newer row.
"""

from __future__ import annotations

import itertools
import json
import operator
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core.errors import BackendError, BackendUnavailableError
from shipyard.features.online import EXPIRED, MISSING, PRESENT, OnlineRow, OnlineView

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SQLiteOnlineStore"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS online_values ("
    "ns TEXT NOT NULL, k TEXT NOT NULL, ts INTEGER NOT NULL, val BLOB NOT NULL, "
    "PRIMARY KEY (ns, k)) WITHOUT ROWID"
)
_READ_ONE = "SELECT ts, val FROM online_values WHERE ns = ? AND k = ?"
# json_each drives the loop (CROSS JOIN fixes the order): one primary-key probe per key,
# and j.key is the key's position in the request.
_READ_MANY = (
    "SELECT j.key, o.ts, o.val FROM json_each(?) AS j CROSS JOIN online_values AS o "
    "WHERE o.ns = ? AND o.k = j.value"
)
_UPSERT = (
    "INSERT INTO online_values (ns, k, ts, val) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (ns, k) DO UPDATE SET ts = excluded.ts, val = excluded.val "
    "WHERE excluded.ts >= online_values.ts"
)
_WRITE_CHUNK = 50_000
_by_key = operator.itemgetter(1)


class SQLiteOnlineStore:
    """Online values in a SQLite file. One connection per thread (reads never queue)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.identity = f"sqlite:{self.path}"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(
                f"Cannot create the folder of the online store {self.path}: {exc}",
                hint="Check the project folder is writable, or set [features] online.",
            ) from exc
        con = self._connection()
        with con:
            con.execute(_SCHEMA)

    # --- OnlineStore -----------------------------------------------------------------------

    def write_batch(self, view: OnlineView, rows: pa.Table, *, timestamp: str) -> int:
        """Upsert ``rows`` (newer-wins) in one transaction."""
        import pyarrow as pa

        if rows.num_rows == 0:
            return 0
        keys = view.keys.encode_columns([rows.column(k) for k in view.join_keys])
        stamps = rows.column(timestamp).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        values = view.values.encode_columns([rows.column(f.name) for f in view.features])
        namespace = view.namespace
        # Written in key order, the clustered B-tree grows at its end instead of splitting
        # pages all over: several times faster for large batches.
        records = sorted(
            zip(itertools.repeat(namespace), keys, stamps.to_pylist(), values, strict=False),
            key=_by_key,
        )
        con = self._connection()
        try:
            with con:
                for start in range(0, len(records), _WRITE_CHUNK):
                    con.executemany(_UPSERT, records[start : start + _WRITE_CHUNK])
        except sqlite3.Error as exc:
            raise self._error("write to", exc) from exc
        return len(keys)

    def read(self, view: OnlineView, keys: Sequence[str], as_of_micros: int) -> list[OnlineRow]:
        """Stored rows of ``keys`` with their status; one statement."""
        con = self._connection()
        ttl = view.ttl_micros
        decode = view.values.decode
        out: list[OnlineRow] = [(MISSING, None, None)] * len(keys)
        try:
            if len(keys) == 1:
                found = con.execute(_READ_ONE, (view.namespace, keys[0])).fetchone()
                stored = [] if found is None else [(0, found[0], found[1])]
            else:
                stored = con.execute(_READ_MANY, (json.dumps(keys), view.namespace)).fetchall()
        except sqlite3.Error as exc:
            raise self._error("read from", exc) from exc
        for index, ts, blob in stored:
            if ttl is not None and as_of_micros - ts > ttl:
                out[index] = (EXPIRED, ts, None)
            else:
                out[index] = (PRESENT, ts, decode(blob))
        return out

    def drop(self, view: OnlineView) -> None:
        """Delete every row of the view's namespace."""
        con = self._connection()
        try:
            with con:
                con.execute("DELETE FROM online_values WHERE ns = ?", (view.namespace,))
        except sqlite3.Error as exc:
            raise self._error("clear", exc) from exc

    def close(self) -> None:
        """Close every thread's connection."""
        with self._guard:
            self._closed = True
            for con in self._connections:
                con.close()
            self._connections.clear()

    # --- Internals -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None:
            return con
        with self._guard:
            if self._closed:
                raise BackendError(f"The online store {self.path} is closed.")
            try:
                con = sqlite3.connect(
                    self.path, timeout=30, check_same_thread=False, cached_statements=64
                )
                con.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: a crash may lose the last commits, never corrupt; online
                # values are re-materializable from the offline store.
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA mmap_size=268435456")
                con.execute("PRAGMA cache_size=-65536")  # 64 MB of page cache
            except sqlite3.Error as exc:
                raise BackendUnavailableError(
                    f"Cannot open the online store {self.path}: {exc}",
                    hint="Check the file is a SQLite database and the folder is writable.",
                ) from exc
            self._connections.append(con)
            self._local.con = con
            return con

    def _error(self, action: str, exc: sqlite3.Error) -> BackendError:
        return BackendError(
            f"Could not {action} the online store {self.path}: {exc}",
            hint="Check disk space and that no other program holds the file locked.",
        )
