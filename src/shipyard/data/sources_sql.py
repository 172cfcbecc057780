"""A SQL query against any SQLAlchemy database, streamed in batches (server-side cursor).

>>> SqlSource("SELECT * FROM customers WHERE region = :region",
...           "postgresql://reader@db/crm", params={"region": "EU"})

Column types come from the values: the first rows that settle every column's type fix
the schema (a column that is null in the first rows waits for its first value); a later
value of another type fails with the row number, so cast it in the query. The query is
run once (a result cannot be rewound), and its text, the database (password masked) and
the time it ran are the version's lineage.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import BackendUnavailableError, ConfigError
from shipyard.data.errors import SourceError
from shipyard.data.sources import BATCH_ROWS, Scan, Source, SourceBatch, SourceContext, row_numbers

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import Connection, Engine, Result

__all__ = ["SqlSource"]

_SETTLE_ROWS = 1_000_000
"""At most this many rows are held while waiting for a column's first non-null value."""


def _engine_url(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ConfigError(f"Database URI {uri!r} has no scheme.", hint="e.g. postgresql://...")
    if scheme.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return uri


@dataclass(frozen=True)
class SqlSource(Source):
    """The rows of ``query`` (SQL text, bound ``params``) on the database at ``uri``."""

    query: str
    uri: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def open(self, context: SourceContext | None = None) -> Scan:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import SQLAlchemyError

        try:
            url = make_url(_engine_url(self.uri))
            engine = create_engine(url)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise ConfigError(f"Cannot use database URI: {exc}.") from exc
        display = url.render_as_string(hide_password=True)
        try:
            conn = engine.connect()
        except SQLAlchemyError as exc:
            engine.dispose()
            reason = " ".join(str(getattr(exc, "orig", exc)).split())
            if url.password:
                reason = reason.replace(url.password, "***")
            raise BackendUnavailableError(
                f"Cannot connect to {display}: {reason}.",
                hint="Check the URI, the server and the credentials.",
            ) from exc
        try:
            result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
                text(self.query), dict(self.params)
            )
        except SQLAlchemyError as exc:
            conn.close()
            engine.dispose()
            reason = " ".join(str(getattr(exc, "orig", exc)).split())
            raise SourceError(f"The query failed on {display}: {reason}.") from exc
        return _SqlScan(self, engine, conn, result, display)


class _SqlScan(Scan):
    rewindable = False

    def __init__(
        self, source: SqlSource, engine: Engine, conn: Connection, result: Result[Any], display: str
    ) -> None:
        super().__init__(f"query on {display}")
        self._source = source
        self._engine = engine
        self._conn = conn
        self._result = result
        self._database = display
        self._ran_at = datetime.now(UTC)
        self._names = [str(name) for name in result.keys()]
        duplicates = sorted({n for n in self._names if self._names.count(n) > 1})
        if duplicates:
            self.close()
            raise SourceError(
                f"The query returns the columns {duplicates} more than once.",
                hint="Give each column a distinct name (AS ...).",
            )
        self._partitions = result.partitions(BATCH_ROWS)
        self._held: list[list[Any]] = []
        self._schema = self._settle_schema()
        self._rows = 0

    def _settle_schema(self) -> pa.Schema:
        import pyarrow as pa

        types: list[pa.DataType | None] = [None] * len(self._names)
        held = 0
        for partition in self._partitions:
            rows = [tuple(row) for row in partition]
            self._held.append(rows)
            held += len(rows)
            for index, kind in enumerate(types):
                if kind is None:
                    types[index] = _infer([row[index] for row in rows])
            if all(kind is not None for kind in types) or held >= _SETTLE_ROWS:
                break
        return pa.schema(
            [
                pa.field(name, kind if kind is not None else pa.string())
                for name, kind in zip(self._names, types, strict=True)
            ]
        )

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def _all_partitions(self) -> Iterator[list[Any]]:
        while self._held:
            yield self._held.pop(0)
        for partition in self._partitions:
            yield [tuple(row) for row in partition]

    def batches(self) -> Iterator[SourceBatch]:
        import pyarrow as pa

        for rows in self._all_partitions():
            if not rows:
                continue
            arrays = []
            for index, column in enumerate(self._schema):
                values = [row[index] for row in rows]
                try:
                    arrays.append(pa.array(values, type=column.type))
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                    where = _first_misfit(values, column.type)
                    raise SourceError(
                        f"Query result row {self._rows + where + 1:,}, column {column.name!r}: "
                        f"{values[where]!r} does not fit the column's type {column.type} "
                        "(set by its earlier rows).",
                        hint=f"Cast the column in the query (CAST({column.name} AS ...)).",
                    ) from exc
            batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
            yield SourceBatch(self.display, row_numbers(self._rows, len(rows)), batch)
            self._rows += len(rows)
            if self.progress:
                self.progress(self._rows, None)

    def lineage(self) -> dict[str, Any]:
        return {
            "kind": "sql",
            "display": self.display,
            "database": self._database,
            "query": self._source.query,
            "params": {key: str(value) for key, value in self._source.params.items()},
            "ran_at": self._ran_at.isoformat(),
            "rows": self._rows,
        }

    def close(self) -> None:
        try:
            self._result.close()
            self._conn.close()
        finally:
            self._engine.dispose()


def _infer(values: list[Any]) -> pa.DataType | None:
    """The Arrow type of a column's values, or None while they are all null."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, Decimal) for v in present):
        scale = max(max(-int(v.as_tuple().exponent), 0) for v in present if v.is_finite())
        return pa.decimal128(38, min(scale, 38))
    try:
        return pa.array(present).type
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(
            f"A query column mixes value types ({type(present[0]).__name__}, ...): {exc}.",
            hint="Cast the column to one type in the query.",
        ) from exc


def _first_misfit(values: list[Any], kind: pa.DataType) -> int:
    import pyarrow as pa

    for index, value in enumerate(values):
        try:
            pa.array([value], type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return index
    return 0
