"""Converting values to their column's type: strictly, fast when the data is clean.

Text becomes an integer only if it is an integer (``"1.5"`` and ``"1e3"`` are not), a
decimal only if it fits the declared scale; a float becomes an integer only if it has no
fraction. Each batch column is first converted whole by Arrow (strict, vectorised);
only a column where some value does not convert goes through DuckDB, row by row, so the
failing rows can be quarantined and the others kept.

Type inference (CSV columns the contract does not type) reads the whole file and picks
the narrowest type every value fits: int64, float64 (numbers with leading zeros, such as
``007``, are codes and stay text), bool (``true``/``false``), date, timestamp,
timestamp_tz, else string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shipyard.data.errors import SourceError
from shipyard.data.types import ColumnType, canonical_type_of, parse_type

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.data.sources import Scan

__all__ = ["cast_sql", "fast_cast", "infer_text_types", "is_text", "try_cast"]

_INT_TEXT = r"\s*[+-]?[0-9]+\s*"
_FLOAT_TEXT = (
    r"\s*[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
    r"|nan|NaN|NAN|inf|Inf|INF|infinity|Infinity)\s*"
)
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_CANDIDATES = ("int64", "float64", "bool", "date", "timestamp", "timestamp_tz")


_PROBE = 256
"""Values converted first: Arrow takes long to fail a whole column, little to fail a few."""


def try_cast(values: pa.Array, target: pa.DataType) -> pa.Array | None:
    """``values`` strictly converted to ``target`` by Arrow, or None if any does not convert."""
    import pyarrow as pa
    import pyarrow.compute as pc

    errors = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
    try:
        if len(values) > _PROBE:
            pc.cast(values.slice(0, _PROBE), target, safe=True)
        return pc.cast(values, target, safe=True)
    except errors:
        return None


def is_text(arrow_type: pa.DataType) -> bool:
    import pyarrow.types as t

    return bool(t.is_string(arrow_type) or t.is_large_string(arrow_type))


# --- Inference ---------------------------------------------------------------------------


def infer_text_types(scan: Scan, columns: Sequence[str]) -> dict[str, ColumnType]:
    """Read the whole (text) source once and give each column the narrowest type all its
    values fit (a candidate one batch rules out is not tried again)."""
    import pyarrow.compute as pc

    if not columns:
        return {}
    indexes = [scan.schema.names.index(name) for name in columns]
    alive = [list(_CANDIDATES) for _ in columns]
    seen = [0] * len(columns)
    for batch in scan.batches():
        for k, index in enumerate(indexes):
            if seen[k] and not alive[k]:
                continue
            values = batch.data.column(index).drop_null()
            if not len(values):
                continue
            seen[k] += len(values)
            trimmed = pc.utf8_trim_whitespace(values)
            alive[k] = [kind for kind in alive[k] if _fits(trimmed, kind)]
    return {
        name: parse_type(alive[k][0] if seen[k] and alive[k] else "string")
        for k, name in enumerate(columns)
    }


def _fits(values: pa.Array, kind: str) -> bool:
    """Whether every (non-null, trimmed) text value is a ``kind`` value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind == "bool":
        return bool(pc.all(pc.is_in(pc.utf8_lower(values), pa.array(["true", "false"]))).as_py())
    target = {
        "int64": pa.int64(),
        "float64": pa.float64(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
        "timestamp_tz": pa.timestamp("us", tz="UTC"),
    }[kind]
    if try_cast(values, target) is None:
        return False
    if kind in ("int64", "float64"):  # 007 and 0123 are codes, not numbers: keep them text
        return not pc.any(pc.match_substring_regex(values, r"^[+-]?0[0-9]")).as_py()
    return True


# --- Conversions -------------------------------------------------------------------------


def fast_cast(column: pa.Array, raw_type: pa.DataType, target: ColumnType) -> pa.Array | None:
    """The whole column converted by Arrow, or None if some value does not convert."""
    import pyarrow as pa
    import pyarrow.types as t

    if column.type.equals(target.arrow):
        return column
    if target.duckdb is None:
        return None
    if is_text(raw_type) and target.name == "binary":
        return None
    if t.is_floating(raw_type) and target.is_integer:
        return None  # fractions must fail row by row, not round
    if t.is_null(raw_type):
        return pa.nulls(len(column), target.arrow)
    converted = try_cast(column, target.arrow)
    if converted is None and (t.is_timestamp(raw_type) or t.is_time(raw_type)):
        if getattr(raw_type, "unit", "") == "ns" and target.is_temporal:
            raise SourceError(
                f"A column holds times with nanoseconds, which {target.name} would cut "
                "(Shipyard keeps microseconds unless told otherwise).",
                hint="Declare the column's type as 'timestamp_ns' to keep them.",
            )
    return converted


def cast_sql(ref: str, raw: pa.DataType, target: ColumnType, name: str) -> tuple[str, bool]:
    """DuckDB SQL converting raw column ``ref`` to ``target``, and whether it may fail
    (a value that does not convert becomes NULL, and the row is quarantined)."""
    import pyarrow.types as t

    if target.duckdb is None:
        return ref, False
    raw_type = canonical_type_of(raw, name) if not t.is_null(raw) else None
    if raw_type is not None and raw_type.name == target.name:
        return ref, False
    if target.is_string:
        return f"CAST({ref} AS VARCHAR)", False
    duck = target.duckdb
    if is_text(raw):
        if target.is_integer:
            pattern = _INT_TEXT
        elif target.name in ("float32", "float64"):
            pattern = _FLOAT_TEXT
        elif target.name.startswith("decimal"):
            scale = target.arrow.scale
            pattern = rf"\s*[+-]?[0-9]+(\.[0-9]{{0,{scale}}})?\s*" if scale else _INT_TEXT
        elif target.name == "bool":
            trues = ", ".join(f"'{v}'" for v in _TRUE)
            falses = ", ".join(f"'{v}'" for v in _FALSE)
            return (
                f"CASE WHEN lower(trim({ref})) IN ({trues}) THEN true "
                f"WHEN lower(trim({ref})) IN ({falses}) THEN false END",
                True,
            )
        elif target.name == "binary":
            return f"encode({ref})", False
        else:
            return f"TRY_CAST(trim({ref}) AS {duck})", True
        return (
            f"CASE WHEN regexp_full_match({ref}, '{pattern}') "
            f"THEN TRY_CAST(trim({ref}) AS {duck}) END",
            True,
        )
    if raw_type is not None and raw_type.name in ("float32", "float64") and target.is_integer:
        return f"CASE WHEN {ref} = trunc({ref}) THEN TRY_CAST({ref} AS {duck}) END", True
    return f"TRY_CAST({ref} AS {duck})", True
