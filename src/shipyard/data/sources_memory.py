"""In-memory tables as sources: pyarrow, pandas and Polars, row numbers from 1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.data.errors import SourceError
from shipyard.data.sources import (
    BATCH_ROWS,
    Scan,
    Source,
    SourceBatch,
    SourceContext,
    normalize_raw,
    row_numbers,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TableSource", "to_arrow"]


def to_arrow(table: object) -> pa.Table:
    import pyarrow as pa

    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if isinstance(table, pa.RecordBatchReader):
        return table.read_all()
    module = type(table).__module__
    if module.startswith("pandas"):
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]

        if isinstance(table, pd.DataFrame):
            # A named index is data (set_index("customer_id")); an unnamed one is position.
            named = any(name is not None for name in table.index.names)
            return pa.Table.from_pandas(table, preserve_index=named)
    if module.startswith("polars"):
        import polars as pl

        if isinstance(table, pl.LazyFrame):
            table = table.collect()
        if isinstance(table, pl.DataFrame):
            return table.to_arrow()
    raise SourceError(
        f"Cannot ingest a {type(table).__module__}.{type(table).__name__}.",
        hint="Pass a path, a pyarrow Table, a pandas or Polars DataFrame, or a Source.",
    )


def _kind_of(table: object) -> str:
    module = type(table).__module__.split(".")[0]
    return {"pandas": "pandas", "polars": "polars"}.get(module, "arrow")


@dataclass(frozen=True)
class TableSource(Source):
    """An in-memory table: pyarrow, pandas (its index kept as columns if it is named) or
    Polars. ``name`` labels it in reports and lineage."""

    table: Any
    name: str | None = None

    def open(self, context: SourceContext | None = None) -> Scan:
        kind = _kind_of(self.table)
        label = self.name or f"<{kind} table>"
        return _TableScan(to_arrow(self.table), label, kind)


class _TableScan(Scan):
    def __init__(self, table: pa.Table, display: str, kind: str) -> None:
        super().__init__(display)
        self._table = table
        self._kind = kind
        names = table.schema.names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SourceError(f"{display} has duplicate column names: {duplicates}.")

    @property
    def schema(self) -> pa.Schema:
        return self._table.schema

    def batches(self) -> Iterator[SourceBatch]:
        seen = 0
        total = self._table.num_rows
        for batch in self._table.to_batches(max_chunksize=BATCH_ROWS):
            if batch.num_rows == 0:
                continue
            yield SourceBatch(self.display, row_numbers(seen, batch.num_rows), normalize_raw(batch))
            seen += batch.num_rows
            if self.progress:
                self.progress(seen, total)

    def lineage(self) -> dict[str, Any]:
        return {"kind": self._kind, "display": self.display, "rows": self._table.num_rows}
