"""The embedded DuckDB engine the datasets subsystem computes with, memory-capped.

Every connection is in-memory, spills to a temporary folder past ``memory_limit``, and
works in UTC, so results never depend on the machine's time zone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

__all__ = ["MEMORY_LIMIT", "connect", "quote_identifier"]

MEMORY_LIMIT = os.environ.get("SHIPYARD_DUCKDB_MEMORY", "256MB")
"""DuckDB's memory cap; joins, sorts and aggregations past it spill to disk."""


def connect(spill_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection with Shipyard's limits."""
    import duckdb

    threads = max(1, min(os.cpu_count() or 1, 4))
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": MEMORY_LIMIT,
        "threads": threads,
        "preserve_insertion_order": True,
    }
    if spill_dir is not None:
        config["temp_directory"] = str(spill_dir)
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    return con


def quote_identifier(name: str) -> str:
    """A name as a quoted SQL identifier (embedded quotes doubled), for DuckDB."""
    return '"' + name.replace('"', '""') + '"'
