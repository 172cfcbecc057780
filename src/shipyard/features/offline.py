"""The offline engine interface: point-in-time joins and latest values, Arrow in and out.

An engine knows nothing of Shipyard's stores or definitions: the feature store resolves a
feature view to a :class:`ViewQuery` (source data, key and timestamp columns, features,
TTL), validates and normalises the inputs, and hands them to the engine. Two engines
implement it: ``offline_duckdb.DuckDBEngine`` (default; a sorted-index join, or DuckDB's
ASOF JOIN with ``join="asof"``) and ``offline_spark.SparkEngine``. One conformance suite
(``tests/features/test_offline_conformance.py``) runs over all three, and they must return
identical tables on the same inputs.

Semantics every engine implements exactly
-----------------------------------------

Inputs the caller guarantees (the feature store validates and casts before calling, so an
engine need not re-check them):

- The entity table's timestamp column is ``timestamp[us, tz=UTC]``. A source's event and
  created timestamp columns are ``timestamp[us, tz=UTC]`` or ``timestamp[us]`` (naive:
  the value is UTC; datasets store naive timestamps this way). All compare as instants.
- Each join key column has the same Arrow type in the entity table and in the source, one
  of: a signed integer type (``int8``-``int64``) or ``string``. Key equality is value
  equality; a null key never matches anything.
- Feature columns exist in the source; their Arrow type is kept in the output.
- ``ViewQuery.source`` is either a ``pyarrow.Table`` or a non-empty tuple of local Parquet
  file paths that share one schema (read as one table, the union of their rows).

Point-in-time join (:meth:`OfflineEngine.point_in_time_join`): for each entity row ``e``
and each view ``v``, among the source rows ``s`` of ``v`` with

1. every join key equal (``s.k == e.k`` for all of ``v.join_keys``, nulls never equal),
2. ``s.ts`` not null and ``s.ts <= e.ts`` (a value stamped exactly at the entity
   timestamp is visible: **inclusive**),
3. if ``v.ttl`` is set: ``s.ts >= e.ts - v.ttl`` (a value exactly ``ttl`` old is still
   valid: **inclusive**; one microsecond older is expired),
4. if ``v.created_as_of`` and ``v.created_timestamp`` are set: ``coalesce(s.created,
   s.ts) <= e.ts`` (the row existed at ``e.ts``; used to replay what serving could see),

the winner is the row with the greatest ``s.ts``; among rows with that ``s.ts``, the one
with the greatest created timestamp, a null created timestamp ranking below any value.
Rows equal on keys, ``ts`` and created timestamp are duplicates: which one wins is
unspecified (callers must not plant such ties and the conformance suite does not).
If no row qualifies, every output column of ``v`` is null for ``e``. A winner's null
feature value is returned as null (no fall back to an older row). An entity row whose
timestamp is null gets nulls.

Output: every column of the entity table, unchanged and in the same order, then for each
view in order its ``output_names`` (default: the feature names) and, if
``event_timestamp_output`` is set, one more ``timestamp[us, tz=UTC]`` column with the
winner's event timestamp (null when there is no winner). Exactly one output row per entity
row, **in the entity table's row order**; duplicate entity rows stay duplicated. The caller
ensures output names do not collide with each other or with entity columns.

Latest values (:meth:`OfflineEngine.latest_values`, used by materialization): among the
source rows with ``start <= s.ts <= end`` (both **inclusive**; ``None`` = unbounded) and
non-null keys and ``s.ts``, one row per distinct key tuple: the winner by the same rule
(greatest ``s.ts``, then greatest created timestamp, nulls lowest). TTL is not applied
(the online store enforces it at read time). Output columns, in this order: the join
keys, the event timestamp, the created timestamp (if the view has one), then the
features (named by ``output_names``), with the source's types. Row order is unspecified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["OfflineEngine", "ViewQuery", "ViewSource"]

ViewSource: TypeAlias = "pa.Table | tuple[str, ...]"
"""A source's rows: an Arrow table, or local Parquet files sharing one schema."""


@dataclass(frozen=True, slots=True)
class ViewQuery:
    """One feature view as an engine sees it: where its rows are and how to read them.

    ``output_names``, when given, has one name per feature (same order) and renames the
    output columns (the source columns keep their names); empty means "the feature names".
    """

    name: str
    source: ViewSource
    join_keys: tuple[str, ...]
    timestamp: str
    features: tuple[str, ...]
    created_timestamp: str | None = None
    ttl: timedelta | None = None
    output_names: tuple[str, ...] = ()
    event_timestamp_output: str | None = None
    created_as_of: bool = False

    def __post_init__(self) -> None:
        if self.output_names and len(self.output_names) != len(self.features):
            raise ValueError(
                f"ViewQuery {self.name!r}: {len(self.output_names)} output names for "
                f"{len(self.features)} features."
            )
        if not self.join_keys:
            raise ValueError(f"ViewQuery {self.name!r} has no join keys.")
        if isinstance(self.source, tuple) and not self.source:
            raise ValueError(f"ViewQuery {self.name!r} has an empty tuple of source files.")

    @property
    def outputs(self) -> tuple[str, ...]:
        """The output column names of the features."""
        return self.output_names or self.features


@runtime_checkable
class OfflineEngine(Protocol):
    """Computes point-in-time joins and latest values over Arrow data (see module doc)."""

    name: str

    def point_in_time_join(
        self,
        entity_rows: pa.Table,
        views: Sequence[ViewQuery],
        *,
        entity_timestamp: str,
    ) -> pa.Table:
        """Entity rows plus, for each view, the latest valid feature values at each row's time.

        ``entity_rows`` has every view's join key columns and ``entity_timestamp``; any
        other column (labels...) is passed through. See the module docstring for the exact
        rules (inclusive timestamp, inclusive TTL bound, created-timestamp tie break, nulls,
        row order).
        """
        ...

    def latest_values(
        self,
        view: ViewQuery,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.Table:
        """One row per key: the winning row among those with ``start <= ts <= end``.

        ``start`` and ``end`` are timezone-aware datetimes (or ``None`` for unbounded).
        """
        ...

    def close(self) -> None:
        """Release the engine's resources (connections, sessions). Idempotent."""
        ...
