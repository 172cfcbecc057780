"""In-memory tables as sources: pyarrow, pandas and Polars, row numbers from 1.

``CanonicalTable`` is a table already in the types ingestion stores, with its content id
computed once: a caller can look the id up (is this content stored already?) and, if
not, ingest the same object without the table being hashed a second time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ShipyardError
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

__all__ = ["CanonicalTable", "TableSource", "to_arrow"]


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


@dataclass(frozen=True)
class CanonicalTable(Source):
    """A table in the canonical types ingestion without a contract stores (every column
    nullable), and its content id, computed once when made by :meth:`of`.

    Ingested without a contract, its rows pass through unchanged, so ingestion takes
    ``content_id`` as computed here instead of hashing the rows again.

    >>> canonical = CanonicalTable.of(table, name="training set of churn")
    >>> canonical.content_id
    'sha256:...'
    """

    table: pa.Table
    type_names: tuple[str, ...]
    content_id: str
    name: str | None = None

    @classmethod
    def of(cls, table: object, name: str | None = None) -> CanonicalTable | None:
        """``table`` in canonical types, hashed; None when its types need ingestion's
        own conversion (nested and duration columns) or do not convert."""
        import pyarrow as pa

        from shipyard.data.canonical import TableHasher
        from shipyard.data.sources import normalize_raw
        from shipyard.data.types import canonical_type_of

        arrow = to_arrow(table)
        try:
            types = [canonical_type_of(field.type, field.name) for field in arrow.schema]
            if any(t.duckdb is None for t in types):
                return None
            schema = pa.schema(
                [
                    pa.field(f.name, t.arrow, nullable=True)
                    for f, t in zip(arrow.schema, types, strict=True)
                ]
            )
            columns = [
                column if column.type == t.arrow else column.cast(t.arrow)
                for column, t in zip(arrow.columns, types, strict=True)
            ]
            canonical = pa.Table.from_arrays(columns, schema=schema)
            if any(normalize_raw(batch) is not batch for batch in canonical.to_batches()[:1]):
                return None  # a type the scan would still normalise: let ingestion hash
            hasher = TableHasher(schema, [t.name for t in types])
            hasher.update(canonical)
        except (ShipyardError, pa.ArrowException):
            return None
        return cls(canonical, tuple(t.name for t in types), str(hasher.content_id()), name)

    def open(self, context: SourceContext | None = None) -> Scan:
        return _TableScan(self.table, self.name or "<arrow table>", "arrow", known=self)


class _TableScan(Scan):
    def __init__(
        self, table: pa.Table, display: str, kind: str, known: CanonicalTable | None = None
    ) -> None:
        super().__init__(display)
        self._table = table
        self._kind = kind
        self.known = known
        """Set when the rows are a ``CanonicalTable``, whose content id is known."""
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
