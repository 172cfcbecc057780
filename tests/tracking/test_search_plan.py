"""How a search finds its runs: the four SQLite plans (scan, walk a set, drive, read in
order) return exactly what a brute-force filter returns, page after page, on both
backends; SQLite reads the covering keys of migrations t0003 and t0004; those migrations
keep every row both ways, t0004's triggers keep the narrow tables' start times, and t0005
hands that copy to the writers (required, no insert trigger) and keeps every row.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shipyard.store.metadata import MetadataStore, open_metadata_store
from shipyard.store.migrations import alembic_config
from shipyard.store.schema.tracking import runs as runs_table
from shipyard.tracking import queries
from shipyard.tracking.records import Run
from tests.tracking.fixtures import (
    BASE_TIME,
    RunSpec,
    insert_experiment,
    insert_runs,
    insert_synthetic_runs,
    postgres_database,
)

RUNS = 2_000

# (filter, page size, the plan SQLite's cost model picks at 2,000 runs)
CASES = [
    # Half the runs pass each term: the param's runs, newest first from its index, give
    # a page within ~200 of them.
    ("params.p0 = 'v0' and metrics.m0 > 0.5", 100, "ordered"),
    ("params.p0 = 'v0' and metrics.m0 > 0.5", 5, "ordered"),
    # No equality: a page is found within the newest ~400 runs, and the first metric's
    # 1,000 runs are cheap to gather into a set first.
    ("metrics.m0 > 0.5 and metrics.m1 > 0.5", 100, "walk"),
    # A small page is found within the newest ~20 runs: probing them is cheapest.
    ("metrics.m0 > 0.5 and metrics.m1 > 0.5", 5, "scan"),
    # ~20 runs pass the metric term: start from them.
    ("params.p0 = 'v0' and metrics.m0 > 0.99", 100, "drive"),
    # One rare term: start from its ~40 runs.
    ("metrics.m1 < 0.02", 10, "drive"),
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MetadataStore]:
    if request.param == "sqlite":
        uris: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('p') / 'm.db'}"])
    else:
        uris = postgres_database(request.getfixturevalue("postgres_admin_uri"))
    uri = next(uris)
    try:
        with open_metadata_store(uri) as opened:
            with opened.transaction() as conn:
                experiment = insert_experiment(conn, "plans")
                insert_synthetic_runs(
                    conn, experiment, RUNS, params=2, metrics=2, tags=0, distinct_values=2
                )
            if opened.dialect == "postgresql":
                # As autovacuum would: without statistics its planner takes every table
                # for one row and may nest index range scans (seconds per page).
                with opened.transaction() as conn:
                    conn.exec_driver_sql("ANALYZE")
            yield opened
    finally:
        for _ in uris:  # finishing the generator drops the PostgreSQL database
            pass


@pytest.fixture(scope="module")
def everything(store: MetadataStore) -> list[Run]:
    with store.connect() as conn:
        return list(queries.search_runs(conn, max_results=RUNS).runs)  # newest first


def brute_force(everything: list[Run], filter_string: str) -> list[str]:
    """The runs ``filter_string`` (one of CASES') matches, newest first, in Python."""
    terms = [term.split() for term in filter_string.split(" and ")]

    def matches(run: Run) -> bool:
        for field, op, literal in terms:
            kind, key = field.split(".")
            if kind == "params" and run.params.get(key) != literal.strip("'"):
                return False
            if kind == "metrics":
                value, bound = run.metrics[key], float(literal)
                if not (value > bound if op == ">" else value < bound):
                    return False
        return True

    return [run.id for run in everything if matches(run)]


def plan_of(statements: list[str]) -> str:
    [page] = [s for s in statements if "AS sort_0" in s]
    if "AS walked JOIN runs" in page:
        return "ordered"
    if "(+ runs.id) IN (SELECT" in page:
        return "walk"
    return "drive" if "runs.id IN (SELECT" in page else "scan"


@pytest.mark.parametrize(("filter_string", "page_size", "plan"), CASES)
def test_each_plan_pages_through_exactly_the_matching_runs(
    store: MetadataStore, everything: list[Run], filter_string: str, page_size: int, plan: str
) -> None:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    found: list[str] = []
    token = None
    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.connect() as conn:
            while True:
                statements.clear()
                page = queries.search_runs(
                    conn,
                    filter_string=filter_string,
                    max_results=page_size,
                    page_token=token,
                    count_total=token is None,
                )
                if token is None:
                    first_plan, total = plan_of(statements), page.total
                found.extend(run.id for run in page.runs)
                token = page.next_page_token
                if token is None:
                    break
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    expected = brute_force(everything, filter_string)
    assert 0 < len(expected) < RUNS
    assert found == expected
    assert total == len(expected)
    if store.dialect == "sqlite":  # PostgreSQL plans by its own statistics
        assert first_plan == plan


def test_sqlite_walks_covering_indexes_and_probes_primary_keys(
    store: MetadataStore,
) -> None:
    """The access path of a walk: runs from the covering (experiment, start time) index,
    the first metric's runs from its (key, value, start_time) index (covering: it ends
    with the primary key of a WITHOUT ROWID table) into a set, the other metric probed by
    primary key; no row of ``runs`` is read."""
    if store.dialect != "sqlite":
        pytest.skip("SQLite's access path (PostgreSQL plans by its own statistics)")
    [(filter_string, page_size)] = [(f, size) for f, size, plan in CASES if plan == "walk"]
    text = _query_plan(store, filter_string, page_size)
    assert "USING COVERING INDEX ix_runs_experiment_id_start_time_id_lifecycle" in text, text
    assert "LIST SUBQUERY" in text, text
    assert "run_latest_metrics USING COVERING INDEX ix_run_latest_metrics_key_value" in text, text
    assert "run_latest_metrics USING PRIMARY KEY (run_id=? AND key=?)" in text, text


def test_sqlite_reads_an_equality_newest_first_from_its_index(store: MetadataStore) -> None:
    """The access path of reading in order: the param's runs from ``(key, value,
    start_time)`` backwards (no sort but of ties), each run by id, the metric by key."""
    if store.dialect != "sqlite":
        pytest.skip("SQLite's access path (PostgreSQL plans by its own statistics)")
    text = _query_plan(store, CASES[0][0], CASES[0][1])
    assert "walked USING COVERING INDEX ix_run_params_key_value_start_time (key=? AND value=?)" in (
        text
    ), text
    assert "runs USING INDEX sqlite_autoindex_runs_1 (id=?)" in text, text
    assert "run_latest_metrics USING PRIMARY KEY (run_id=? AND key=?)" in text, text
    assert "TEMP B-TREE FOR ORDER BY" not in text, text  # only ties are sorted (RIGHT PART)


def _query_plan(store: MetadataStore, filter_string: str, page_size: int) -> str:
    """SQLite's EXPLAIN QUERY PLAN of the page query of a search in the one experiment."""
    statements: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        statements.append((args[2], args[3]))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.connect() as conn:
            experiment = conn.execute(sa.text("SELECT id FROM experiments")).scalar_one()
            queries.search_runs(
                conn,
                experiment_ids=[experiment],
                filter_string=filter_string,
                max_results=page_size,
            )
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    [(page, parameters)] = [
        (statement, parameters) for statement, parameters in statements if "AS sort_0" in statement
    ]
    with store.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + page, parameters)]
    return "\n".join(plan)


@pytest.mark.parametrize("order_by", [[], ["start_time ASC"]])
def test_reading_in_order_breaks_start_time_ties_by_run_id(
    backend_uri: str, order_by: list[str]
) -> None:
    """Runs sharing a start time come in run id order, page after page, in both
    directions, when the page is read from a param's index (the index's copy of the start
    time and run id stand in for the run's)."""
    with open_metadata_store(backend_uri) as store:
        with store.transaction() as conn:
            experiment = insert_experiment(conn, "ties")
            specs = [
                RunSpec(
                    f"r{index}",
                    start_time=BASE_TIME + timedelta(seconds=index // 4),  # 4 runs per second
                    params={"model": "gbm" if index % 3 else "rf"},
                    metrics={"auc": (index * 7 % 10) / 10},
                )
                for index in range(40)
            ]
            insert_runs(conn, experiment, specs)
        with store.connect() as conn:
            everything = queries.search_runs(conn, max_results=100).runs
        descending = not order_by
        matching = [r for r in everything if r.params["model"] == "gbm" and r.metrics["auc"] > 0.3]
        matching.sort(key=lambda run: run.id)
        matching.sort(key=lambda run: run.start_time, reverse=descending)
        statements: list[str] = []
        sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        found: list[str] = []
        token = None
        with store.connect() as conn:
            while True:
                page = queries.search_runs(
                    conn,
                    filter_string="params.model = 'gbm' and metrics.auc > 0.3",
                    order_by=order_by,
                    max_results=3,
                    page_token=token,
                )
                found.extend(run.id for run in page.runs)
                token = page.next_page_token
                if token is None:
                    break
    assert found == [run.id for run in matching] and len(found) > 6
    if store.dialect == "sqlite":
        assert all(plan_of([s]) == "ordered" for s in statements if "AS sort_0" in s)


@pytest.fixture(params=["sqlite", "postgres"])
def backend_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return str(request.getfixturevalue("postgres_uri"))


# --- Migrations t0003, t0004 and t0005 -------------------------------------------------------


def _migrate(store: MetadataStore, direction: str, revision: str) -> None:
    from alembic import command

    with store.transaction() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        getattr(command, direction)(config, revision)


def _rows(store: MetadataStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.connect() as conn:
        return {
            table: sorted(tuple(row) for row in conn.exec_driver_sql(f"SELECT * FROM {table}"))  # noqa: S608 - our table names
            for table in ("runs", "run_params", "run_tags", "run_latest_metrics")
        }


def _shape(store: MetadataStore) -> tuple[set[str], set[str]]:
    """Tracking index names, and the narrow tables that are ``WITHOUT ROWID`` (SQLite)."""
    with store.connect() as conn:
        inspector = sa.inspect(conn)
        tables = ("runs", "run_params", "run_tags", "run_latest_metrics")
        indexes = {index["name"] for table in tables for index in inspector.get_indexes(table)}
        without_rowid: set[str] = set()
        if store.dialect == "sqlite":
            for name, sql in conn.exec_driver_sql("SELECT name, sql FROM sqlite_master"):
                if name in tables and "WITHOUT ROWID" in (sql or ""):
                    without_rowid.add(name)
    return {name for name in indexes if name}, without_rowid


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_t0003_keeps_every_row_up_and_down(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    uri = (
        f"sqlite:///{tmp_path / 'm.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_uri")
    )
    with open_metadata_store(uri, migrate=False) as store:
        _migrate(store, "upgrade", "t0002")
        with store.transaction() as conn:
            experiment = insert_experiment(conn, "m")
            insert_synthetic_runs(conn, experiment, 30, params=3, metrics=2, tags=2)
        before = _rows(store)
        old_indexes, old_without = _shape(store)
        assert "ix_run_params_key_value" in old_indexes and not old_without

        _migrate(store, "upgrade", "t0003")
        assert _rows(store) == before
        indexes, without_rowid = _shape(store)
        assert indexes == old_indexes - {
            "ix_runs_experiment_id_start_time",
            "ix_runs_start_time",
        } | {"ix_runs_experiment_id_start_time_id_lifecycle", "ix_runs_start_time_id_lifecycle"}
        if backend == "sqlite":
            assert without_rowid == {"run_params", "run_tags", "run_latest_metrics"}
        with store.connect() as conn:  # the rebuilt tables answer (searching needs t0004)
            found = conn.exec_driver_sql(
                "SELECT p.value FROM run_params p JOIN runs r ON r.id = p.run_id "
                "WHERE p.key = 'p0' AND p.value = 'v1'"
            ).all()
        assert found and {value for (value,) in found} == {"v1"}

        _migrate(store, "downgrade", "t0002")
        assert _rows(store) == before
        assert _shape(store) == (old_indexes, old_without)


def _start_times(store: MetadataStore) -> dict[str, list[tuple[str, bool]]]:
    """Per narrow table, per row: (run id, whether the row's start time is its run's)."""
    with store.connect() as conn:
        return {
            table: [
                (run_id, bool(same))
                for run_id, same in conn.exec_driver_sql(
                    f"SELECT t.run_id, t.start_time = r.start_time FROM {table} t "  # noqa: S608 - our table names
                    "JOIN runs r ON r.id = t.run_id"
                )
            ]
            for table in ("run_params", "run_tags", "run_latest_metrics")
        }


def _insert_without_start_times(conn: sa.Connection, run_id: str) -> None:
    """A param ``a``, a tag ``b`` and a metric ``c`` of the run, as t0004's writers wrote
    them: without the run's start time."""
    for statement in (
        "INSERT INTO run_params (run_id, \"key\", value) VALUES (:id, 'a', '1')",
        "INSERT INTO run_tags (run_id, \"key\", value) VALUES (:id, 'b', '2')",
        'INSERT INTO run_latest_metrics (run_id, "key", value, step, "timestamp") '
        "VALUES (:id, 'c', 0.5, 0, 0)",
    ):
        conn.execute(sa.text(statement), {"id": run_id})


def test_migration_t0004_copies_start_times_and_keeps_them(backend_uri: str) -> None:
    with open_metadata_store(backend_uri, migrate=False) as store:
        _migrate(store, "upgrade", "t0003")
        with store.transaction() as conn:
            experiment = insert_experiment(conn, "m")
            insert_synthetic_runs(conn, experiment, 20, params=3, metrics=2, tags=2)
        before = _rows(store)
        old_shape = _shape(store)

        _migrate(store, "upgrade", "t0004")  # existing rows: copied
        copies = _start_times(store)
        assert all(same for rows in copies.values() for _, same in rows)
        assert sorted(len(rows) for rows in copies.values()) == [20 * 2, 20 * 2, 20 * 3]
        indexes, without_rowid = _shape(store)
        assert {"ix_run_params_key_value_start_time", "ix_run_tags_key_value_start_time"} <= (
            indexes
        )
        assert "ix_run_params_key_value" not in indexes
        assert without_rowid == old_shape[1]

        with store.transaction() as conn:  # new rows, written without a start time: filled
            (run_id,) = insert_runs(conn, experiment, [RunSpec("new")])
            _insert_without_start_times(conn, run_id)
        with store.connect() as conn:
            new_rows = conn.execute(
                sa.text(
                    "SELECT p.start_time = r.start_time FROM run_params p "
                    "JOIN runs r ON r.id = p.run_id WHERE p.run_id = :id"
                ),
                {"id": run_id},
            ).all()
        assert [bool(row[0]) for row in new_rows] == [True]
        assert all(same for rows in _start_times(store).values() for _, same in rows)

        with store.transaction() as conn:  # a run's start time changes: its copies follow
            conn.execute(
                sa.text("UPDATE runs SET start_time = :t WHERE id = :id"),
                {"t": BASE_TIME - timedelta(days=1), "id": run_id},
            )
        assert all(same for rows in _start_times(store).values() for _, same in rows)
        with store.connect() as conn:  # and a search reads it in its new place
            page = queries.search_runs(
                conn, filter_string="params.a = '1'", order_by=["start_time"]
            )
        assert [run.name for run in page.runs] == ["new"]
        assert page.runs[0].start_time == BASE_TIME - timedelta(days=1)

        with store.transaction() as conn:
            conn.execute(sa.delete(runs_table).where(runs_table.c.id == run_id))
        _migrate(store, "downgrade", "t0003")
        assert _rows(store) == before
        assert _shape(store) == old_shape


def test_migration_t0005_requires_start_times_and_keeps_every_row(backend_uri: str) -> None:
    with open_metadata_store(backend_uri, migrate=False) as store:
        _migrate(store, "upgrade", "t0004")
        with store.transaction() as conn:
            experiment = insert_experiment(conn, "m")
            insert_synthetic_runs(conn, experiment, 20, params=3, metrics=2, tags=2)
            (old_run,) = insert_runs(conn, experiment, [RunSpec("old")])
            _insert_without_start_times(conn, old_run)  # filled by t0004's trigger
        before = _rows(store)
        old_shape = _shape(store)

        _migrate(store, "upgrade", "t0005")
        assert _rows(store) == before  # every row, with its copy of the start time
        assert _shape(store) == old_shape  # the same indexes, still WITHOUT ROWID
        with pytest.raises(sa.exc.IntegrityError), store.transaction() as conn:
            _insert_without_start_times(conn, old_run)  # a writer must give it now
        with store.transaction() as conn:  # a run's start time changes: its copies follow
            conn.execute(
                sa.text("UPDATE runs SET start_time = :t WHERE id = :id"),
                {"t": BASE_TIME - timedelta(days=1), "id": old_run},
            )
        assert all(same for rows in _start_times(store).values() for _, same in rows)
        with store.connect() as conn:
            page = queries.search_runs(conn, filter_string="params.a = '1'")
        assert [run.name for run in page.runs] == ["old"]
        assert page.runs[0].start_time == BASE_TIME - timedelta(days=1)

        with store.transaction() as conn:
            conn.execute(sa.delete(runs_table).where(runs_table.c.id == old_run))
        _migrate(store, "downgrade", "t0004")
        assert _rows(store) == {
            table: [row for row in rows if row[0] != old_run] for table, rows in before.items()
        }
        assert _shape(store) == old_shape
        with store.transaction() as conn:  # t0004's insert triggers are back
            (new_run,) = insert_runs(conn, experiment, [RunSpec("new")])
            _insert_without_start_times(conn, new_run)
        copies = [same for rows in _start_times(store).values() for run, same in rows]
        assert all(copies)
        assert sum(run == new_run for rows in _start_times(store).values() for run, _ in rows) == 3
