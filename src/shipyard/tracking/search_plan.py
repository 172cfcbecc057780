"""How a run search runs: which rows it starts from, and how it reads one page of ids.

A page is found as run ids first (with their sort values, for the next page's keyset);
``queries.search_runs`` then loads just those runs. Two choices keep it fast at 100k runs:

- where to start. Scanning runs in the order's index (start time) stops after a page of
  matches: about page size / selectivity rows. Starting from an indexed ``and`` term
  (``params.model = 'gbm'``, ``metrics.auc > 0.8``) visits every row it matches.
  PostgreSQL weighs this with its own statistics; SQLite keeps none unless ANALYZE ran,
  so on SQLite each term's matches are counted from its index (capped) to pick. Those
  counts (and the scope's size) are kept per database until rows are added to the tables
  they count, or for a minute at most: they only steer the plan, never what it returns.
- ordering by a metric, param or tag: runs having the key are read in the order of the
  ``(key, value)`` index, so the first page costs a page, not a sort of every run; runs
  lacking it follow (they sort last), read only when the first part runs out.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, select
from sqlalchemy.engine import Connection, Engine

from shipyard.store.schema.tracking import runs
from shipyard.tracking import search_sql
from shipyard.tracking.search import And, Comparison, FilterNode, parse_filter, parse_order_by
from shipyard.tracking.search_sql import CompiledFilter, Dialect, Driver, SortColumn

__all__ = ["find_page"]

_ESTIMATE_CAP = 20_000
"""Rows counted per term at most; a term matching more never drives a search."""
_ESTIMATED_DRIVERS = 4
_CACHED_FILTER_CHARS = 10_000
"""Longer filters are compiled afresh each time rather than kept."""
_STATISTICS_MAX_AGE_S = 60.0
_STAMP_SQL = (
    "SELECT (SELECT max(rowid) FROM runs), (SELECT max(rowid) FROM run_params), "
    "(SELECT max(rowid) FROM run_tags), (SELECT max(rowid) FROM run_latest_metrics)"
)
"""Highest rowids of the tables counted (each O(log n)): they move when rows are added."""


@dataclass
class _Statistics:
    """Counts that steer SQLite plans, valid while ``stamp`` holds (and for a minute)."""

    stamp: tuple[Any, ...]
    taken: float
    counts: dict[Hashable, int] = field(default_factory=dict)


_STATISTICS: weakref.WeakKeyDictionary[Engine, _Statistics] = weakref.WeakKeyDictionary()
_STATISTICS_LOCK = threading.Lock()


def _statistics(conn: Connection) -> _Statistics:
    """This database's planning counts, started afresh if rows were added since."""
    stamp = tuple(conn.exec_driver_sql(_STAMP_SQL).one())
    now = time.monotonic()
    with _STATISTICS_LOCK:
        known = _STATISTICS.get(conn.engine)
        if known is None or known.stamp != stamp or now - known.taken > _STATISTICS_MAX_AGE_S:
            known = _STATISTICS[conn.engine] = _Statistics(stamp, now)
        return known


def _counted(statistics: _Statistics, key: Hashable, count: Callable[[], int]) -> int:
    found = statistics.counts.get(key)
    if found is None:
        found = statistics.counts[key] = count()
    return found


def find_page(
    conn: Connection,
    *,
    filter_string: str,
    order_by: Sequence[str],
    experiment_ids: Sequence[str] | None,
    include_deleted: bool,
    max_results: int,
    page_token: str | None,
    count_total: bool,
) -> tuple[list[str], str | None, int | None]:
    """The run ids of one page, the next page's token, and (if asked) the match count."""
    dialect: Dialect = "sqlite" if conn.dialect.name == "sqlite" else "postgresql"
    node, compiled = _compiled_filter(filter_string, dialect)
    order_keys = parse_order_by(order_by)
    fingerprint = search_sql.query_fingerprint(
        filter_string, order_by, experiment_ids, include_deleted
    )
    last = None
    if page_token is not None:  # checked before any query runs
        sort = search_sql.compile_order(order_keys, dialect)
        last = search_sql.decode_page_token(page_token, fingerprint, sort)
    if experiment_ids is not None and not experiment_ids:
        return [], None, 0 if count_total else None
    plan = _Plan(conn, compiled, experiment_ids, include_deleted, dialect)
    if isinstance(node, And) and len(plan.counts) > 1:  # test the rarest term first
        counts = plan.counts
        order = sorted(range(len(node.items)), key=lambda i: _rank(node.items[i], counts))
        if order != sorted(order):
            plan.compiled = _reordered_filter(filter_string, dialect, tuple(order))
    driver = plan.page_driver(search_sql.is_index_order(order_keys), max_results)
    sort = search_sql.compile_order(order_keys, dialect, hide_indexes=driver is not None)
    where = plan.where(driver)
    if driver is None and sort[0].join is not None:
        rows = _split_rows(conn, plan, sort, where, last, max_results + 1)
    else:
        rows = _rows(conn, sort, where, last, max_results + 1)
    page = rows[:max_results]
    next_token = None
    if len(rows) > max_results:
        next_token = search_sql.encode_page_token(fingerprint, sort, page[-1])
    total = None
    if count_total:
        counting = select(func.count()).select_from(runs).where(plan.where(plan.count_driver()))
        total = int(conn.execute(counting).scalar_one())
    return [str(row[-1]) for row in page], next_token, total  # the run id sorts last


def _compiled_filter(
    filter_string: str, dialect: Dialect
) -> tuple[FilterNode | None, CompiledFilter]:
    """The parsed and compiled filter; recent ones are reused (both are immutable)."""
    if isinstance(filter_string, str) and len(filter_string) <= _CACHED_FILTER_CHARS:
        return _cached_filter(filter_string, dialect)
    node = parse_filter(filter_string)  # raises a clear error for a non-string
    return node, search_sql.compile_filter(node, dialect)


@functools.lru_cache(maxsize=256)
def _cached_filter(
    filter_string: str, dialect: Dialect
) -> tuple[FilterNode | None, CompiledFilter]:
    node = parse_filter(filter_string)
    return node, search_sql.compile_filter(node, dialect)


@functools.lru_cache(maxsize=256)
def _reordered_filter(
    filter_string: str, dialect: Dialect, order: tuple[int, ...]
) -> CompiledFilter:
    """The filter with its top-level ``and`` terms in ``order`` (same rows, other plan)."""
    node, compiled = _compiled_filter(filter_string, dialect)
    assert isinstance(node, And)  # noqa: S101 - the caller checked
    reordered = And(tuple(node.items[index] for index in order))
    return replace(compiled, condition=search_sql.compile_filter(reordered, dialect).condition)


def _rank(item: FilterNode, counts: dict[tuple[Any, ...], int]) -> int:
    """An ``and`` term's estimated matches (SQLite tests ``EXISTS`` terms in order)."""
    if isinstance(item, Comparison):
        return counts.get(search_sql.term_signature(item), _ESTIMATE_CAP + 1)
    return _ESTIMATE_CAP + 1


def _rows(
    conn: Connection,
    sort: Sequence[SortColumn],
    where: ColumnElement[bool],
    last: Sequence[Any] | None,
    limit: int,
    *,
    inner: bool = False,
) -> list[tuple[Any, ...]]:
    """Sort values (run id last) of the first ``limit`` matches after ``last``.

    ``inner`` joins the first sort key's table instead of outer-joining it: only runs
    having that key, read in the order of its ``(key, value)`` index.
    """
    labels = [column.expression.label(f"sort_{i}") for i, column in enumerate(sort)]
    source: Any = runs
    for index, column in enumerate(sort):
        if column.join is not None:
            alias, on = column.join
            source = source.join(alias, on) if inner and index == 0 else source.outerjoin(alias, on)
    query = select(*labels).select_from(source).where(where)
    if last is not None:
        dialect: Dialect = "sqlite" if conn.dialect.name == "sqlite" else "postgresql"
        query = query.where(search_sql.keyset_after(sort, last, dialect))
    order = [part for column in sort for part in column.order_by()]
    return [tuple(row) for row in conn.execute(query.order_by(*order).limit(limit))]


def _split_rows(
    conn: Connection,
    plan: _Plan,
    sort: Sequence[SortColumn],
    where: ColumnElement[bool],
    last: Sequence[Any] | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    """Ordered by a metric, param or tag: runs having it, then (if the page is not full)
    runs lacking it, which sort last. Same rows and order as one query, but the first
    part walks an index instead of sorting every run."""
    first, rest = sort[0], sort[1:]
    rows: list[tuple[Any, ...]] = []
    if last is None or last[0] is not None:
        having = [replace(first, nullable=False), *rest]
        rows = _rows(conn, having, where, last, limit, inner=True)
    if len(rows) >= limit or not plan.some_runs_lack(first):
        return rows
    assert first.join is not None  # noqa: S101 - the caller checked
    alias, on = first.join
    lacking = and_(where, ~select(alias.c.run_id).where(on).exists())
    after = last[1:] if last is not None and last[0] is None else None
    more = _rows(conn, rest, lacking, after, limit - len(rows))
    return rows + [(None, *row) for row in more]


class _Plan:
    """Where a search starts: from runs in order, or from one selective indexed term."""

    def __init__(
        self,
        conn: Connection,
        compiled: CompiledFilter,
        experiment_ids: Sequence[str] | None,
        include_deleted: bool,
        dialect: Dialect,
    ) -> None:
        self._conn = conn
        self.compiled = compiled
        self._experiment_ids = experiment_ids
        self._include_deleted = include_deleted
        self._dialect = dialect
        self._scope_size: int | None = None
        self._counted: list[tuple[int, Driver]] = []
        self._statistics: _Statistics | None = None
        if dialect == "sqlite" and compiled.drivers:
            self._statistics = statistics = _statistics(conn)
            counts = [
                (
                    _counted(
                        statistics, ("term", driver.signature, _ESTIMATE_CAP), _count(conn, driver)
                    ),
                    driver,
                )
                for driver in compiled.drivers[:_ESTIMATED_DRIVERS]
            ]
            self._counted = sorted(counts, key=lambda pair: pair[0])

    @property
    def counts(self) -> dict[tuple[Any, ...], int]:
        """Estimated matches of the counted terms, by term signature (SQLite only)."""
        return {driver.signature: count for count, driver in self._counted}

    def where(self, driver: Driver | None) -> ColumnElement[bool]:
        """The search condition; started from ``driver``'s rows if given."""
        experiment: ColumnElement[Any] = runs.c.experiment_id
        conditions: list[ColumnElement[bool]] = [self.compiled.condition]
        if driver is not None:
            experiment = search_sql.unindexed(experiment)
            conditions.append(runs.c.id.in_(driver.run_ids()))
        if not self._include_deleted:
            conditions.append(runs.c.lifecycle == "active")
        if self._experiment_ids is not None:
            conditions.append(experiment.in_(list(self._experiment_ids)))
        return and_(*conditions)

    def page_driver(self, index_order: bool, page_size: int) -> Driver | None:
        """The term to start a page from, or ``None`` to scan runs (see the module doc)."""
        if not self._counted or self._counted[0][0] >= _ESTIMATE_CAP:
            return None
        smallest, driver = self._counted[0]
        total = self._runs_in_scope()
        if not index_order:  # every match is sorted anyway: visit the fewest rows
            return driver if smallest < total else None
        selectivity = 1.0
        for count, _ in self._counted:
            selectivity *= min(1.0, max(count, 1) / max(total, 1))
        return driver if smallest < min(total, (page_size + 1) / selectivity) else None

    def count_driver(self) -> Driver | None:
        """Counting visits every match: start from the smallest term if it beats a scan."""
        if not self._counted or self._counted[0][0] >= _ESTIMATE_CAP:
            return None
        smallest, driver = self._counted[0]
        return driver if smallest < self._runs_in_scope() else None

    def some_runs_lack(self, column: SortColumn) -> bool:
        """Whether any run lacks the metric, param or tag of ``column`` (two index counts,
        cheaper than looking for such runs when, as usual, every run has it)."""
        assert column.table is not None  # noqa: S101 - only called for such columns
        table = column.table
        having = select(func.count()).select_from(table).where(table.c.key == column.key)
        return int(self._conn.execute(having).scalar_one()) < self._all_runs()

    def _all_runs(self) -> int:
        return int(self._conn.execute(select(func.count()).select_from(runs)).scalar_one())

    def _runs_in_scope(self) -> int:
        """How many runs the scope holds: an estimate, counted no further than needed."""
        if self._scope_size is None and self._statistics is not None:
            scope: tuple[Any, ...] = (
                "scope",
                tuple(sorted(self._experiment_ids or ())),
                _ESTIMATE_CAP,
            )
            if self._experiment_ids is None:
                scope = ("all runs",)
            self._scope_size = _counted(self._statistics, scope, self._count_scope)
        if self._scope_size is None:
            self._scope_size = self._count_scope()
        return self._scope_size

    def _count_scope(self) -> int:
        """Runs in scope, counted up to a cap (SQLite: without an experiment, the top rowid)."""
        query: Select[Any]
        if self._experiment_ids is None:  # SQLite only: the highest rowid, O(log n)
            query = select(func.coalesce(func.max(literal_column("rowid")), 0))
            query = query.select_from(runs)
        else:
            rows = (
                select(literal_column("1"))
                .select_from(runs)
                .where(runs.c.experiment_id.in_(list(self._experiment_ids)))
                .limit(_ESTIMATE_CAP * 5)
                .subquery()
            )
            query = select(func.count()).select_from(rows)
        return int(self._conn.execute(query).scalar_one())


def _count(conn: Connection, driver: Driver) -> Callable[[], int]:
    return lambda: int(conn.execute(driver.count_at_most(_ESTIMATE_CAP)).scalar_one())
