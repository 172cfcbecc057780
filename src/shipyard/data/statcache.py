"""A machine-local cache of file hashes, keyed by what ``stat`` says of each file.

``path, size, mtime_ns, inode -> content id``: while those four are unchanged, the
file's bytes are taken as unchanged and not hashed again (git's index and DVC's state
database work the same way). It lives in ``<project>/.shipyard/cache/file-stats.sqlite``,
not in the metadata store: inode numbers and paths only mean something on this machine.
Each versioned root (a folder or file) keeps one row holding all its files' entries, so
checking 10,000 files reads one row, not 10,000.

A file modified within ``RACY_SECONDS`` of being hashed is not cached (its next change
could keep the same size and, on a coarse clock, the same mtime), so a quick
edit-after-version is never missed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CachedStat", "StatCache", "raw_matches"]

RACY_SECONDS = 2.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS roots (root TEXT PRIMARY KEY, entries TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS manifests (content_id TEXT PRIMARY KEY, entries TEXT NOT NULL)"
)
_MANIFESTS_KEPT = 32
"""Manifest snapshots kept (the most recent ones): status needs only the latest ones."""


@dataclass(frozen=True, slots=True)
class CachedStat:
    size: int
    mtime_ns: int
    inode: int
    content_id: str

    def matches(self, stat: os.stat_result) -> bool:
        return (
            stat.st_size == self.size
            and stat.st_mtime_ns == self.mtime_ns
            and stat.st_ino == self.inode
        )


def raw_matches(entry: list[Any], stat: os.stat_result) -> bool:
    """Whether a ``load_raw`` entry still describes the file ``stat`` describes."""
    return bool(
        entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns and entry[2] == stat.st_ino
    )


class StatCache:
    """The cache file at ``path`` (created on first write). A damaged or unreadable cache
    only costs re-hashing: every failure reads as "not cached"."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _connect(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, timeout=30)
        # A cache, so no fsync at all (WAL, synchronous=OFF): a crashed process loses
        # nothing; a power cut may lose the last writes (those files are hashed again)
        # or leave entries unreadable, which read as "not cached". An entry that does
        # read back still pairs a stat with the hash taken under that very stat.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(_SCHEMA)
        return conn

    def _read(self, conn: sqlite3.Connection, root: str) -> dict[str, Any]:
        row = conn.execute("SELECT entries FROM roots WHERE root = ?", (root,)).fetchone()
        if row is None:
            return {}
        entries = json.loads(row[0])
        return entries if isinstance(entries, dict) else {}

    def load(self, root: Path) -> dict[str, CachedStat]:
        """The cached files of ``root``, by absolute path."""
        return {
            path: CachedStat(int(size), int(mtime_ns), int(inode), content_id)
            for path, (size, mtime_ns, inode, content_id) in self.load_raw(root).items()
        }

    def load_raw(self, root: Path) -> dict[str, list[Any]]:
        """The cached files of ``root`` as ``path -> [size, mtime_ns, inode, content id]``
        lists, unconverted: ``status`` compares 10,000 of them, where building a
        ``CachedStat`` each costs more than the comparisons. Malformed entries are left
        out; use ``raw_matches`` to compare one with a stat."""
        if not self._path.exists():
            return {}
        try:
            conn = self._connect()
            try:
                entries = self._read(conn, str(root))
            finally:
                conn.close()
        except (sqlite3.Error, ValueError):
            return {}
        return {
            path: value
            for path, value in entries.items()
            if type(value) is list and len(value) == 4 and type(value[3]) is str
        }

    def store(self, root: Path, entries: Iterable[tuple[str, os.stat_result, str]]) -> None:
        """Remember (path, stat, content id) of files under ``root`` not modified in the
        last moments, merged with what the cache held for it."""
        cutoff = time.time_ns() - int(RACY_SECONDS * 1e9)
        fresh = {
            path: [stat.st_size, stat.st_mtime_ns, stat.st_ino, content_id]
            for path, stat, content_id in entries
            if stat.st_mtime_ns < cutoff
        }
        if not fresh:
            return
        try:
            conn = self._connect()
            try:
                with conn:
                    current = self._read(conn, str(root))
                    current.update(fresh)
                    conn.execute(
                        "INSERT OR REPLACE INTO roots VALUES (?, ?)",
                        (str(root), json.dumps(current, separators=(",", ":"))),
                    )
            finally:
                conn.close()
        except (sqlite3.Error, ValueError):
            return  # the cache is an optimisation; failing to write it changes no result

    def load_manifest(self, content_id: str) -> dict[str, tuple[int, str]] | None:
        """A file version's ``rel -> (size, content id)`` snapshot, if one is kept here."""
        if not self._path.exists():
            return None
        try:
            conn = self._connect()
            try:
                row = conn.execute(
                    "SELECT entries FROM manifests WHERE content_id = ?", (content_id,)
                ).fetchone()
            finally:
                conn.close()
            if row is None:
                return None
            entries = json.loads(row[0])
            return {str(rel): (int(size), str(cid)) for rel, (size, cid) in entries.items()}
        except (sqlite3.Error, ValueError, TypeError):
            return None

    def store_manifest(self, content_id: str, entries: dict[str, tuple[int, str]]) -> None:
        """Keep a snapshot of a file version's files, for ``status`` to compare with."""
        payload = json.dumps({rel: list(value) for rel, value in entries.items()})
        try:
            conn = self._connect()
            try:
                with conn:
                    conn.execute(
                        "INSERT OR REPLACE INTO manifests VALUES (?, ?)", (content_id, payload)
                    )
                    conn.execute(
                        "DELETE FROM manifests WHERE rowid NOT IN "
                        "(SELECT rowid FROM manifests ORDER BY rowid DESC LIMIT ?)",
                        (_MANIFESTS_KEPT,),
                    )
            finally:
                conn.close()
        except sqlite3.Error:
            return
