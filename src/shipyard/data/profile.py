"""A version's profile: what monitoring and diffs need later without the full data.

Per column: count, nulls, approximate distinct count, min/max, mean and standard
deviation (numeric), NaN count (float), lengths (string), true count (bool), category
counts (columns of at most ``CATEGORY_LIMIT`` distinct values: every value up to
``TOP_CATEGORIES``, then an ``other`` count), and for numeric and temporal columns a
mergeable KLL quantile sketch (Apache DataSketches, serialized) with its quantiles at 101
points. Plus a fixed-size uniform random sample of rows (``SAMPLE_ROWS``), stored as
Parquet, so exact tests (Kolmogorov-Smirnov, chi-squared) can run later against it.

The sketches and the sample are built in the same streaming pass that writes the data
(the sample by bottom-k sampling with a fixed seed: the same table gives the same
sample); the statistics by DuckDB over the written Parquet parts, read back through Arrow.
Memory is bounded.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.data.engine import quote_identifier

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

__all__ = [
    "CATEGORY_LIMIT",
    "PROFILE_FORMAT",
    "SAMPLE_ROWS",
    "QuantileSketches",
    "Sampler",
    "compute_profile",
]

PROFILE_FORMAT = "shipyard.profile.v1"
SAMPLE_ROWS = 10_000
CATEGORY_LIMIT = 1_000
TOP_CATEGORIES = 50
KLL_K = 200
QUANTILE_POINTS = [i / 100 for i in range(101)]
_SEED = 20_240_601
_SCAN_ROWS = 65_536


class Sampler:
    """A uniform sample of at most ``size`` rows of a stream (bottom-k, fixed seed)."""

    def __init__(self, schema: pa.Schema, size: int = SAMPLE_ROWS, seed: int = _SEED) -> None:
        import numpy as np

        self._schema = schema
        self._size = size
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._keys = np.zeros(0, dtype=np.float64)
        self._positions = np.zeros(0, dtype=np.int64)
        self._rows: list[pa.RecordBatch] = []
        self._seen = 0

    def update(self, batch: pa.RecordBatch) -> None:
        import numpy as np
        import pyarrow as pa

        n = batch.num_rows
        if n == 0:
            return
        keys = self._rng.random(n)
        if len(self._keys) >= self._size:
            chosen = np.flatnonzero(keys < self._keys.max())
        else:
            chosen = np.arange(n)
        if len(chosen):
            self._keys = np.concatenate([self._keys, keys[chosen]])
            self._positions = np.concatenate([self._positions, self._seen + chosen])
            self._rows.append(batch.take(pa.array(chosen)))
            if len(self._keys) > self._size:
                keep = np.argpartition(self._keys, self._size - 1)[: self._size]
                table = pa.Table.from_batches(self._rows, schema=self._schema).take(pa.array(keep))
                self._keys = self._keys[keep]
                self._positions = self._positions[keep]
                self._rows = table.combine_chunks().to_batches() or []
        self._seen += n

    def result(self) -> pa.Table:
        """The sample, rows in their original order."""
        import numpy as np
        import pyarrow as pa

        table = pa.Table.from_batches(self._rows, schema=self._schema)
        order = np.argsort(self._positions, kind="stable")
        return table.take(pa.array(order))


def _as_float(column: pa.Array, type_name: str) -> np.ndarray[Any, Any]:
    """Numeric or temporal values as float64 (nulls and NaN dropped) for a sketch."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    column = pc.drop_null(column)
    if type_name.startswith("timestamp") or type_name == "time":
        column = column.view(pa.int64()) if len(column) else pa.array([], pa.int64())
    elif type_name == "date":
        column = column.view(pa.int32()) if len(column) else pa.array([], pa.int32())
    values: np.ndarray[Any, Any] = column.cast(pa.float64(), safe=False).to_numpy(
        zero_copy_only=False
    )
    kept: np.ndarray[Any, Any] = values[~np.isnan(values)]
    return kept


class QuantileSketches:
    """KLL sketches of every numeric and temporal column, fed batch by batch."""

    def __init__(self, names: Sequence[str], type_names: Sequence[str]) -> None:
        from datasketches import kll_doubles_sketch

        self._columns = [
            (index, name, kind)
            for index, (name, kind) in enumerate(zip(names, type_names, strict=True))
            if _sketchable(kind)
        ]
        self._sketches = {name: kll_doubles_sketch(KLL_K) for _, name, _ in self._columns}

    def update(self, batch: pa.RecordBatch) -> None:
        for index, name, kind in self._columns:
            values = _as_float(batch.column(index), kind)
            if len(values):
                self._sketches[name].update(values)

    def to_json(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for _, name, _ in self._columns:
            sketch = self._sketches[name]
            if sketch.is_empty():
                out[name] = {"kll": None, "quantiles": None}
                continue
            out[name] = {
                "kll": base64.b64encode(sketch.serialize()).decode("ascii"),
                "quantiles": [_number(q) for q in sketch.get_quantiles(QUANTILE_POINTS)],
            }
        return out


def _sketchable(type_name: str) -> bool:
    return type_name.startswith(("int", "uint", "float", "decimal", "timestamp")) or type_name in (
        "date",
        "time",
    )


def _number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def compute_profile(
    con: duckdb.DuckDBPyConnection,
    parts: Sequence[Path],
    schema: pa.Schema,
    type_names: Sequence[str],
    sketches: QuantileSketches,
    num_rows: int,
    sensitive: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The profile of a version whose data is the Parquet ``parts`` (see the module doc).

    A ``sensitive`` column keeps its counts and numeric aggregates, but no values: no
    categories, and no min/max of text.

    Two scans in all: one query for every column's statistics, one for every categorical
    column's counts. Both read the parts through Arrow (streamed, a batch at a time):
    DuckDB's own Parquet reader does not see NaN as NaN (``isnan`` is false for every
    value read), which made a float column with NaN report a NaN max, mean and
    deviation and no NaN count.
    """
    columns: dict[str, dict[str, Any]] = {}
    inner: list[str] = []
    aggregates: list[str] = []
    layout: list[tuple[str, str, list[str]]] = []
    for index, (field, kind) in enumerate(zip(schema, type_names, strict=True)):
        ref = f"c{index}"
        inner.append(f"{quote_identifier(field.name)} AS {ref}")
        keys = ["count", "nulls"]
        exprs = [f"count({ref})", f"count(*) - count({ref})"]
        simple = kind in ("bool", "string", "binary", "date", "time") or _sketchable(kind)
        if simple:
            keys.append("distinct")
            exprs.append(f"approx_count_distinct({ref})")
        if kind.startswith("float"):
            # NaN as NULL once, in the scan, rather than a FILTER on every aggregate.
            valid = f"v{index}"
            inner.append(f"CASE WHEN isnan({ref}) THEN NULL ELSE {ref} END AS {valid}")
            keys += ["min", "max", "mean", "std", "nan"]
            exprs += [
                f"min({valid})",
                f"max({valid})",
                f"avg({valid})",
                f"stddev_samp({valid})",
                f"count({ref}) - count({valid})",
            ]
        elif kind.startswith(("int", "uint", "decimal")):
            keys += ["min", "max", "mean", "std"]
            exprs += [f"min({ref})", f"max({ref})", f"avg({ref})", f"stddev_samp({ref})"]
        elif kind.startswith("timestamp") or kind in ("date", "time"):
            keys += ["min", "max"]
            exprs += [f"min({ref})", f"max({ref})"]
        elif kind == "string":
            keys += ["min_length", "max_length", "mean_length"]
            exprs += [f"min(length({ref}))", f"max(length({ref}))", f"avg(length({ref}))"]
        elif kind == "bool":
            keys += ["true"]
            exprs += [f"count(*) FILTER (WHERE {ref})"]
        layout.append((field.name, kind, keys))
        aggregates += exprs
    values: tuple[Any, ...] = ()
    if parts and aggregates:
        query = f"SELECT {', '.join(aggregates)} FROM (SELECT {', '.join(inner)} FROM profile_data)"  # noqa: S608
        rows = _query_parts(con, parts, query)
        values = rows[0] if rows else ()
    position = 0
    sketched = sketches.to_json()
    wanted: list[tuple[int, str]] = []
    for index, (name, kind, keys) in enumerate(layout):
        stats: dict[str, Any] = {"type": kind}
        for key in keys:
            stats[key] = (
                _json_value(values[position])
                if values
                else (0 if key in ("count", "nulls") else None)
            )
            position += 1
        if not values:
            stats["nulls"] = 0
        stats["null_fraction"] = (stats["nulls"] / num_rows) if num_rows else 0.0
        if name in sketched:
            stats.update(sketched[name])
        distinct = stats.get("distinct")
        categorical = kind in ("string", "bool") or (
            kind.startswith(("int", "uint")) and distinct is not None and distinct <= TOP_CATEGORIES
        )
        if name in sensitive:
            stats["sensitive"] = True
            if kind in ("string", "binary"):
                stats.pop("min", None)
                stats.pop("max", None)
        elif parts and categorical and distinct is not None and distinct <= CATEGORY_LIMIT:
            wanted.append((index, name))
        columns[name] = stats
    if wanted:
        histograms = ", ".join(f"histogram({quote_identifier(name)})" for _, name in wanted)
        query = f"SELECT {histograms} FROM profile_data"  # noqa: S608
        counted = _query_parts(con, parts, query, [name for _, name in wanted])[0]
        for (_, name), counts in zip(wanted, counted, strict=True):
            columns[name]["categories"] = _categories(counts or {}, columns[name]["count"])
    return {"format": PROFILE_FORMAT, "rows": num_rows, "columns": columns}


def _query_parts(
    con: duckdb.DuckDBPyConnection,
    parts: Sequence[Path],
    query: str,
    columns: list[str] | None = None,
) -> list[tuple[Any, ...]]:
    """``query`` over the ``parts`` (only ``columns`` if given) as the view
    ``profile_data``, read a batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [pq.ParquetFile(path) for path in parts]
    schema = files[0].schema_arrow
    if columns is not None:
        schema = pa.schema([schema.field(name) for name in columns])

    def batches() -> Iterator[pa.RecordBatch]:
        for file in files:
            yield from file.iter_batches(batch_size=_SCAN_ROWS, columns=columns)

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    con.register("profile_data", reader)
    try:
        return con.execute(query).fetchall()
    finally:
        con.unregister("profile_data")
        for file in files:
            file.close()


def _categories(counts: dict[Any, int], non_null: int) -> dict[str, Any]:
    """The ``TOP_CATEGORIES`` most frequent values (ties by value), and the rest's count."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    listed_rows = ranked[:TOP_CATEGORIES]
    listed = sum(int(n) for _, n in listed_rows)
    return {
        "values": [[_json_value(value), int(n)] for value, n in listed_rows],
        "other": non_null - listed,
        "complete": len(ranked) <= TOP_CATEGORIES,
    }
