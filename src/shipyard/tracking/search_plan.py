"""How a run search runs: which rows it starts from, and how it reads one page of ids.

A page is found as run ids first (with their sort values, for the next page's keyset);
``queries.search_runs`` then loads just those runs. Two choices keep it fast at 100k runs:

- where to start. PostgreSQL weighs this with its own statistics; SQLite keeps none
  unless ANALYZE ran, so on SQLite each indexed ``and`` term's matches
  (``params.model = 'gbm'``, ``metrics.auc > 0.8``) are counted from its ``(key, value)``
  index (capped; the index holds the run id too, see ``store/schema/tracking.py``), and
  the cheapest of three plans is taken:

  - scan: walk runs in the order's index (start time) and probe each run's values until
    a page matches: about page size / selectivity runs, one B-tree probe each;
  - walk a set: read the rarest term's run ids from its index into a temporary set
    once (sequential, cheap per row), then walk runs in order as above, testing each in
    the set (in memory) and probing only the runs in it for the other terms. At 100k
    runs this visits the same runs as a scan at a fraction of the cost per run;
  - drive: start from the rarest term's runs, look each up, sort the matches. Best when
    the term matches few runs, or when every match is sorted anyway;
  - read in order: an equality term's runs (``params.model = 'gbm'``) come newest first
    from its ``(key, value, start_time)`` index (the narrow tables hold their run's
    start time, t0004); each is looked up and probed for the other terms until a page
    matches: about page size / (the other terms' selectivity) runs, all of the term.

  The counts (and the scope's size) are kept per database until runs or metric values
  are added, or for a minute at most: they only steer the plan, never what it returns.
- ordering by a metric, param or tag: runs having the key are read in the order of the
  ``(key, value)`` index, so the first page costs a page, not a sort of every run; runs
  lacking it follow (they sort last), read only when the first part runs out.
"""

from __future__ import annotations

import functools
import math
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, select, true
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
_STAMP_SQL = "SELECT (SELECT max(rowid) FROM runs), (SELECT max(id) FROM run_metrics)"
"""Highest row ids of runs and of the metric history (each O(log n)): they move when runs
or metric values are added. The narrow tables are ``WITHOUT ROWID`` (no such cheap
marker): params or tags added to older runs are seen once the minute is up."""
# Relative costs of the SQLite plans, per row (measured at 100k runs: a probe is a
# B-tree descent that misses the CPU caches, ~2 us; a set is built from one index range
# and probed in memory).
_PROBE_COST = 4.0
"""Probing a run's value of a key (a primary key descent)."""
_SET_BUILD_COST = 0.5
"""Adding a run id read from a covering index range to a temporary set."""
_SET_TEST_COST = 1.0
"""Walking one run in order and testing it against that set."""
_SET_SETUP_COST = 50.0
"""Building the set at all (a temporary table and a subquery), however few its rows."""
_LOOKUP_COST = 6.0
"""Looking up a run by id (driving from a term), plus sorting it among the matches."""
_ORDERED_LOOKUP_COST = 3.0
"""Looking up a run by id while reading a term's runs in start-time order (no sort)."""

Start = Literal["scan", "walk", "drive", "ordered"]
"""How a page is found (see the module doc)."""


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
    plan = _Plan(conn, filter_string, node, compiled, experiment_ids, include_deleted, dialect)
    driver, start = plan.page_start(search_sql.is_index_order(order_keys), max_results)
    sort = search_sql.compile_order(order_keys, dialect, hide_indexes=start == "drive")
    if driver is not None and start == "ordered":
        rows = _ordered_rows(conn, plan, driver, sort, last, max_results + 1)
    elif driver is None and sort[0].join is not None:
        rows = _split_rows(conn, plan, sort, plan.where(None), last, max_results + 1)
    else:
        rows = _rows(conn, sort, plan.where(driver, start), last, max_results + 1)
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
) -> ColumnElement[bool]:
    """The filter with its top-level ``and`` terms in ``order`` (other plan); terms left
    out of ``order`` are left out of the condition (a driver tests them)."""
    node, _ = _compiled_filter(filter_string, dialect)
    assert isinstance(node, And)  # noqa: S101 - the caller checked
    items = tuple(node.items[index] for index in order)
    reordered = And(items) if len(items) > 1 else items[0] if items else None
    return search_sql.compile_filter(reordered, dialect).condition


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
    source: Any = runs,
) -> list[tuple[Any, ...]]:
    """Sort values (run id last) of the first ``limit`` matches after ``last``.

    ``inner`` joins the first sort key's table instead of outer-joining it: only runs
    having that key, read in the order of its ``(key, value)`` index. ``source`` is what
    the runs are read from (``runs``, or ``runs`` joined to what yields them in order).
    """
    labels = [column.expression.label(f"sort_{i}") for i, column in enumerate(sort)]
    for index, column in enumerate(sort):
        if column.join is not None:
            alias, on = column.join
            source = source.join(alias, on) if inner and index == 0 else source.outerjoin(alias, on)
    query = select(*labels).select_from(source).where(where)
    if last is not None:
        dialect: Dialect = "sqlite" if conn.dialect.name == "sqlite" else "postgresql"
        query = query.where(search_sql.keyset_after(sort, last, dialect))
    order = [part for column in sort for part in column.order_by()]
    return [tuple(row) for row in conn.execute(query.order_by(*order).limit(limit)).all()]


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


def _ordered_rows(
    conn: Connection,
    plan: _Plan,
    driver: Driver,
    sort: Sequence[SortColumn],
    last: Sequence[Any] | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    """Ordered by start time (then run id): the runs of ``driver``'s equality, read in
    that order from its ``(key, value, start_time)`` index. The index's copies of the
    start time and run id stand in for the run's own (the same values, t0004), so
    SQLite follows the index and stops after a page."""
    assert driver.in_start_order is not None  # noqa: S101 - the caller checked
    walked, term = driver.in_start_order
    first, *middle, run_id = sort
    ordered = [
        replace(first, expression=walked.c.start_time),
        *middle,
        replace(run_id, expression=walked.c.run_id),
    ]
    source = walked.join(runs, runs.c.id == walked.c.run_id)
    where = and_(term, plan.where(driver, "ordered"))
    return _rows(conn, ordered, where, last, limit, source=source)


class _Plan:
    """Where a search starts: from runs in order, or from one selective indexed term."""

    def __init__(
        self,
        conn: Connection,
        filter_string: str,
        node: FilterNode | None,
        compiled: CompiledFilter,
        experiment_ids: Sequence[str] | None,
        include_deleted: bool,
        dialect: Dialect,
    ) -> None:
        self._conn = conn
        self._filter_string = filter_string
        self._node = node
        self._compiled = compiled
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

    def where(self, driver: Driver | None, start: Start = "drive") -> ColumnElement[bool]:
        """The search condition, for a page found as ``start`` says from ``driver``'s
        rows (if given): started from them ("drive"), walking runs in order and testing
        them against their set ("walk"), or without the driver's term ("ordered": the
        caller reads only its rows)."""
        experiment: ColumnElement[Any] = runs.c.experiment_id
        conditions: list[ColumnElement[bool]] = []
        if driver is not None and start == "walk":
            # Not indexable, so SQLite builds the set once and tests each run against it.
            conditions.append(search_sql.unindexed(runs.c.id).in_(driver.run_ids()))
        elif driver is not None:
            # Runs come from the driver's rows: not from walking an experiment's runs.
            experiment = search_sql.unindexed(experiment)
            if start != "ordered":
                conditions.append(runs.c.id.in_(driver.run_ids()))
        conditions.append(self._condition(driver))
        if not self._include_deleted:
            conditions.append(runs.c.lifecycle == "active")
        if self._experiment_ids is not None:
            conditions.append(experiment.in_(list(self._experiment_ids)))
        return and_(*conditions)

    def _condition(self, driver: Driver | None) -> ColumnElement[bool]:
        """The filter as a condition on runs, its terms tested rarest first, without the
        term of ``driver`` (whose runs are all that is searched)."""
        node, counts = self._node, self.counts
        if isinstance(node, And) and (len(counts) > 1 or driver is not None):
            order = sorted(range(len(node.items)), key=lambda i: _rank(node.items[i], counts))
            if driver is not None:
                order.remove(driver.term)
            if order != list(range(len(node.items))):
                return _reordered_filter(self._filter_string, self._dialect, tuple(order))
        elif driver is not None:  # the filter is the driver's one comparison
            return true()
        return self._compiled.condition

    def page_start(self, index_order: bool, page_size: int) -> tuple[Driver | None, Start]:
        """How to find a page (see the module doc), and from which term's rows:
        ``(None, "scan")``, or a driver with ``"walk"``, ``"drive"`` or ``"ordered"``."""
        if not self._counted or self._counted[0][0] >= _ESTIMATE_CAP:
            return None, "scan"
        smallest, driver = self._counted[0]
        total = max(self._runs_in_scope(), 1)
        if not index_order:  # every match is sorted anyway: visit the fewest rows
            return (driver, "drive") if smallest < total else (None, "scan")
        fractions = [min(1.0, max(count, 1) / total) for count, _ in self._counted]
        walked = min(float(total), (page_size + 1) / math.prod(fractions))
        scan = walked * _PROBE_COST * _probes(fractions)
        walk = (
            _SET_SETUP_COST
            + smallest * _SET_BUILD_COST
            + walked * _SET_TEST_COST
            + walked * fractions[0] * _PROBE_COST * _probes(fractions[1:])
        )
        drive = smallest * (_LOOKUP_COST + _PROBE_COST * _probes(fractions[1:]))
        costs: list[tuple[float, Driver | None, Start]] = [
            (scan, None, "scan"),
            (walk, driver, "walk"),
            (drive, driver, "drive"),
        ]
        costs.extend(self._ordered_costs(fractions, total, page_size))
        _, best, start = min(costs, key=lambda option: option[0])  # the first of equals
        return best, start

    def _ordered_costs(
        self, fractions: Sequence[float], total: int, page_size: int
    ) -> list[tuple[float, Driver | None, Start]]:
        """The cost of reading each counted equality term's runs in start-time order:
        its runs are visited (runs of other experiments too) until a page passes the
        other terms."""
        in_scope = 1.0
        if self._experiment_ids is not None:
            in_scope = min(1.0, total / max(self._all_runs_estimate(), 1))
        costs: list[tuple[float, Driver | None, Start]] = []
        for index, (count, driver) in enumerate(self._counted):
            if not driver.in_start_order:
                continue
            others = [*fractions[:index], *fractions[index + 1 :]]
            passing = math.prod(others) * in_scope
            visited = min(float(count), (page_size + 1) / max(passing, 1e-12))
            cost = visited * (_ORDERED_LOOKUP_COST + _PROBE_COST * _probes(others))
            costs.append((cost, driver, "ordered"))
        return costs

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

    def _all_runs_estimate(self) -> int:
        """How many runs the database holds, about (the highest rowid, O(log n))."""
        if self._statistics is None:
            return self._highest_rowid()
        return _counted(self._statistics, ("all runs",), self._highest_rowid)

    def _highest_rowid(self) -> int:
        query: Select[Any] = select(func.coalesce(func.max(literal_column("rowid")), 0))
        return int(self._conn.execute(query.select_from(runs)).scalar_one())

    def _count_scope(self) -> int:
        """Runs in scope, counted up to a cap (SQLite: without an experiment, the top rowid)."""
        if self._experiment_ids is None:  # SQLite only
            return self._highest_rowid()
        rows = (
            select(literal_column("1"))
            .select_from(runs)
            .where(runs.c.experiment_id.in_(list(self._experiment_ids)))
            .limit(_ESTIMATE_CAP * 5)
            .subquery()
        )
        return int(self._conn.execute(select(func.count()).select_from(rows)).scalar_one())


def _probes(fractions: Sequence[float]) -> float:
    """Probes per run tested against terms matching these fractions of runs, rarest
    first: every run is probed for the first term, those passing it for the next..."""
    return sum(math.prod(fractions[:index]) for index in range(len(fractions)))


def _count(conn: Connection, driver: Driver) -> Callable[[], int]:
    return lambda: int(conn.execute(driver.count_at_most(_ESTIMATE_CAP)).scalar_one())
