"""Slices of an evaluation set: rows grouped by a column's value (or a numeric band).

>>> labels = slice_labels(table, "Age", bins=(30, 45))   # "< 30", "30 to < 45", ">= 45"
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["MAX_SLICES", "NULL_SLICE", "slice_labels"]

NULL_SLICE = "(null)"
MAX_SLICES = 50


def _band(value: float, bins: Sequence[float]) -> str:
    if value < bins[0]:
        return f"< {bins[0]:g}"
    for low, high in zip(bins, bins[1:], strict=False):
        if low <= value < high:
            return f"{low:g} to < {high:g}"
    return f">= {bins[-1]:g}"


def slice_labels(
    table: pa.Table, column: str, bins: Sequence[float] | None = None, *, where: str = "slice"
) -> np.ndarray[Any, Any]:
    """One slice label (a string) per row of ``table``, from ``column``.

    A numeric column is cut into bands at ``bins``; without ``bins`` its distinct values
    are the slices (at most ``MAX_SLICES``). Nulls form the ``(null)`` slice.
    """
    import pyarrow as pa

    if column not in table.column_names:
        close = difflib.get_close_matches(column, table.column_names, n=1)
        raise ConfigError(
            f"{where}: column {column!r} is not in the evaluation data.",
            hint=(f"Did you mean {close[0]!r}? " if close else "")
            + f"Columns: {', '.join(table.column_names[:30])}.",
        )
    values = table.column(column).to_pylist()
    if bins is not None:
        if not pa.types.is_integer(table.schema.field(column).type) and not pa.types.is_floating(
            table.schema.field(column).type
        ):
            raise ConfigError(
                f"{where}: bins need a numeric column; {column!r} holds "
                f"{table.schema.field(column).type}.",
                hint="Drop the bins to slice by each value of the column.",
            )
        labels = [NULL_SLICE if v is None or v != v else _band(float(v), bins) for v in values]
    else:
        labels = [NULL_SLICE if v is None else str(v) for v in values]
        distinct = len(set(labels))
        if distinct > MAX_SLICES:
            raise ConfigError(
                f"{where}: column {column!r} has {distinct} distinct values; at most "
                f"{MAX_SLICES} slices are compared.",
                hint="Slice by a categorical column, or give numeric bins (e.g. bins = [30, 45]).",
            )
    return np.asarray(labels, dtype=object)


def check_bins(bins: Any, *, where: str) -> tuple[float, ...] | None:
    """Validated, increasing numeric band edges (or None)."""
    if bins is None:
        return None
    if isinstance(bins, str | bytes) or not isinstance(bins, Sequence) or not bins:
        raise ConfigError(f"{where}: bins must be a non-empty list of numbers, not {bins!r}.")
    edges: list[float] = []
    for edge in bins:
        if isinstance(edge, bool) or not isinstance(edge, int | float) or edge != edge:
            raise ConfigError(f"{where}: bin edge {edge!r} is not a number.")
        edges.append(float(edge))
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ConfigError(f"{where}: bins must increase, got {edges}.")
    return tuple(edges)
