"""Transforms: a dataset defined from other datasets, in SQL (DuckDB) or Python.

A transform is a source: ingest it like a file, with a contract, and the new version
records the upstream versions it read (lineage edges) and the SQL text or the function's
name and code hash.

>>> client.ingest("churn_eu", SqlTransform(
...     "SELECT * FROM churn WHERE state IN ('NY', 'NJ') ORDER BY account_length",
...     inputs={"churn": "churn@v3"}))
>>> client.ingest("churn_scaled", PythonTransform(
...     lambda churn: churn.assign(minutes=churn.total_day_minutes / 60),
...     inputs={"churn": "churn@v3"}, kind="pandas"))

Row order is part of a table's content id: a query that groups or joins should end with
``ORDER BY`` so that running it again gives the same version.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from shipyard.data.engine import connect
from shipyard.data.errors import SourceError
from shipyard.data.sources import (
    BATCH_ROWS,
    ResolvedInput,
    Scan,
    Source,
    SourceBatch,
    SourceContext,
    normalize_raw,
    row_numbers,
)
from shipyard.data.sources_memory import to_arrow

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["PythonTransform", "SqlTransform"]

_INPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _resolve(
    inputs: Mapping[str, str], context: SourceContext | None, what: str
) -> list[ResolvedInput]:
    if context is None:
        raise SourceError(f"A {what} needs a datasets client to read its inputs.")
    if not inputs:
        raise SourceError(f"A {what} needs at least one input dataset.")
    resolved = []
    for name, reference in inputs.items():
        if not _INPUT_NAME.fullmatch(name):
            raise SourceError(
                f"Input name {name!r} is not a valid table name.",
                hint="Use letters, digits and '_', starting with a letter or '_'.",
            )
        resolved.append(context.resolve_input(name, reference))
    return resolved


def _input_lineage(resolved: list[ResolvedInput]) -> dict[str, Any]:
    return {
        i.name: {"dataset": i.dataset, "version": i.number, "content_id": i.content_id}
        for i in resolved
    }


@dataclass(frozen=True)
class SqlTransform(Source):
    """A DuckDB query over other datasets' versions; ``inputs`` maps the table names the
    query uses to references (``{"churn": "churn@v3"}``)."""

    sql: str
    inputs: Mapping[str, str] = field(default_factory=dict)

    def open(self, context: SourceContext | None = None) -> Scan:
        resolved = _resolve(self.inputs, context, "SQL transform")
        con = connect()
        try:
            for item in resolved:
                con.read_parquet([str(p) for p in item.paths]).create_view(item.name)
            reader = con.sql(self.sql).to_arrow_reader(BATCH_ROWS)
        except SourceError:
            con.close()
            raise
        except Exception as exc:  # DuckDB's parser and binder errors
            con.close()
            raise SourceError(
                f"The SQL transform failed: {exc}",
                hint=f"It may read the tables {sorted(self.inputs)}.",
            ) from exc
        return _SqlTransformScan(self, con, reader, resolved)


class _SqlTransformScan(Scan):
    rewindable = False

    def __init__(
        self,
        source: SqlTransform,
        con: duckdb.DuckDBPyConnection,
        reader: pa.RecordBatchReader,
        resolved: list[ResolvedInput],
    ) -> None:
        super().__init__("SQL transform")
        self._source = source
        self._con = con
        self._reader = reader
        self._resolved = resolved

    @property
    def schema(self) -> pa.Schema:
        return self._reader.schema

    def batches(self) -> Iterator[SourceBatch]:
        seen = 0
        for batch in self._reader:
            if batch.num_rows == 0:
                continue
            yield SourceBatch(self.display, row_numbers(seen, batch.num_rows), normalize_raw(batch))
            seen += batch.num_rows
            if self.progress:
                self.progress(seen, None)

    def lineage(self) -> dict[str, Any]:
        return {
            "kind": "sql_transform",
            "display": self.display,
            "sql": self._source.sql,
            "inputs": _input_lineage(self._resolved),
        }

    def inputs(self) -> list[ResolvedInput]:
        return list(self._resolved)

    def close(self) -> None:
        self._con.close()


@dataclass(frozen=True)
class PythonTransform(Source):
    """A Python function of other datasets' tables: called with one keyword argument per
    input (a pyarrow Table, pandas or Polars DataFrame, as ``kind`` says), it returns the
    new table (any of those three)."""

    function: Callable[..., Any]
    inputs: Mapping[str, str] = field(default_factory=dict)
    kind: Literal["arrow", "pandas", "polars"] = "arrow"

    def open(self, context: SourceContext | None = None) -> Scan:
        import pyarrow as pa
        import pyarrow.parquet as pq

        resolved = _resolve(self.inputs, context, "Python transform")
        tables: dict[str, Any] = {}
        for item in resolved:
            parts = [pq.read_table(p) for p in item.paths]
            table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            if self.kind == "pandas":
                tables[item.name] = table.to_pandas()
            elif self.kind == "polars":
                import polars as pl

                tables[item.name] = pl.from_arrow(table)
            else:
                tables[item.name] = table
        module = getattr(self.function, "__module__", "?")
        name = f"{module}:{getattr(self.function, '__qualname__', '?')}"
        try:
            result = self.function(**tables)
        except Exception as exc:
            raise SourceError(
                f"The Python transform {name} raised {type(exc).__name__}: {exc}"
            ) from exc
        return _FunctionScan(to_arrow(result), name, _code_hash(self.function), resolved)


def _code_hash(function: Callable[..., Any]) -> str | None:
    try:
        code = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    return "sha256:" + hashlib.sha256(code.encode()).hexdigest()


class _FunctionScan(Scan):
    def __init__(
        self, table: pa.Table, function: str, code: str | None, resolved: list[ResolvedInput]
    ) -> None:
        super().__init__(f"Python transform {function}")
        self._table = table
        self._function = function
        self._code = code
        self._resolved = resolved

    @property
    def schema(self) -> pa.Schema:
        return self._table.schema

    def batches(self) -> Iterator[SourceBatch]:
        seen = 0
        for batch in self._table.to_batches(max_chunksize=BATCH_ROWS):
            if batch.num_rows:
                yield SourceBatch(
                    self.display, row_numbers(seen, batch.num_rows), normalize_raw(batch)
                )
                seen += batch.num_rows

    def lineage(self) -> dict[str, Any]:
        return {
            "kind": "python_transform",
            "display": self.display,
            "function": self._function,
            "code_sha256": self._code,
            "inputs": _input_lineage(self._resolved),
        }

    def inputs(self) -> list[ResolvedInput]:
        return list(self._resolved)
