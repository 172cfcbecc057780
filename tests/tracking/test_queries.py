"""Reading runs, on SQLite and PostgreSQL alike: loading, histories, experiments,
artifacts, and search (filters, orderings, pages) checked against a Python oracle.

One store per backend per module holds ``fixtures.populate_sample``; tests only read it
(tests that write use a store of their own).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from datetime import timedelta
from functools import cmp_to_key
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.core.errors import AmbiguousReferenceError, NotFoundError
from shipyard.store.metadata import MetadataStore, open_metadata_store
from shipyard.store.schema.tracking import run_artifacts, run_metrics, run_params, runs
from shipyard.tracking import queries, search_plan
from shipyard.tracking.records import DatasetInput, Run
from shipyard.tracking.search import (
    And,
    Comparison,
    FilterNode,
    Not,
    Or,
    SearchSyntaxError,
    parse_filter,
    parse_order_by,
)
from shipyard.tracking.search_sql import InvalidPageTokenError
from shipyard.tracking.validation import TrackingInputError
from tests.tracking.fixtures import (
    BASE_TIME,
    PREFIX_TWINS,
    SAME_START,
    RunSpec,
    insert_experiment,
    insert_runs,
    populate_sample,
    postgres_database,
)

# --- The shared store and the oracle -----------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def sample(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MetadataStore, dict[str, str]]]:
    """The sample store of each backend, and ``{run or experiment name: id}``."""
    if request.param == "sqlite":
        uris: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('q') / 'm.db'}"])
    else:
        uris = postgres_database(request.getfixturevalue("postgres_admin_uri"))
    uri = next(uris)
    try:
        with open_metadata_store(uri) as opened:
            with opened.transaction() as conn:
                names = populate_sample(conn)
            yield opened, names
    finally:
        for _ in uris:  # finishing the generator drops the PostgreSQL database
            pass


@pytest.fixture(scope="module")
def store(sample: tuple[MetadataStore, dict[str, str]]) -> MetadataStore:
    return sample[0]


@pytest.fixture(scope="module")
def ids(sample: tuple[MetadataStore, dict[str, str]]) -> dict[str, str]:
    return sample[1]


@pytest.fixture(scope="module")
def everything(store: MetadataStore) -> list[Run]:
    with store.connect() as conn:
        all_ids = list(conn.execute(sa.select(runs.c.id)).scalars())
        return queries.load_runs(conn, all_ids)


def search(store: MetadataStore, **kwargs: Any) -> list[Run]:
    """Every run of a search, page after page."""
    found: list[Run] = []
    token = None
    with store.connect() as conn:
        while True:
            page = queries.search_runs(conn, page_token=token, **kwargs)
            found.extend(page.runs)
            token = page.next_page_token
            if token is None:
                return found


def _attribute(run: Run, key: str) -> Any:
    return run.id if key == "run_id" else getattr(run, key)


def _value(run: Run, kind: str, key: str) -> Any:
    if kind == "attribute":
        return _attribute(run, key)
    return {"metric": run.metrics, "param": run.params, "tag": run.tags}[kind].get(key)


def _like(pattern: str, *, insensitive: bool) -> re.Pattern[str]:
    parts, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if insensitive else 0))


def _order_value(value: Any) -> Any:
    """Both backends sort NaN above every number, infinity included."""
    if isinstance(value, float):
        return (1, 0.0) if math.isnan(value) else (0, value)
    return value


def matches(node: FilterNode, run: Run) -> bool:
    """The filter semantics, independently of SQL."""
    if isinstance(node, And):
        return all(matches(item, run) for item in node.items)
    if isinstance(node, Or):
        return any(matches(item, run) for item in node.items)
    if isinstance(node, Not):
        return not matches(node.item, run)
    assert isinstance(node, Comparison)
    value = _value(run, node.field.kind, node.field.key)
    if node.op == "is null":
        return value is None
    if node.op == "is not null":
        return value is not None
    if value is None:
        return False
    targets = [item.value for item in node.values]
    if "like" in node.op:
        found = _like(str(targets[0]), insensitive="ilike" in node.op).fullmatch(value)
        return (found is None) if node.op.startswith("not") else (found is not None)
    if node.op == "in":
        return any(value == target for target in targets)
    if node.op == "not in":
        return all(value != target for target in targets)
    left, right = _order_value(value), _order_value(targets[0])
    return {
        "=": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[node.op]


def oracle(
    everything: Sequence[Run],
    filter_string: str = "",
    order_by: Sequence[str] = (),
    experiment_ids: Sequence[str] | None = None,
    include_deleted: bool = False,
) -> list[str]:
    node = parse_filter(filter_string)
    chosen = [
        run
        for run in everything
        if (include_deleted or run.lifecycle == "active")
        and (experiment_ids is None or run.experiment_id in experiment_ids)
        and (node is None or matches(node, run))
    ]
    keys = parse_order_by(list(order_by)) or parse_order_by(["start_time DESC"])

    def compare(a: Run, b: Run) -> int:
        for key in keys:
            left = _value(a, key.field.kind, key.field.key)
            right = _value(b, key.field.kind, key.field.key)
            if (left is None) != (right is None):
                return 1 if left is None else -1  # missing keys last, either direction
            if left is None:
                continue
            left, right = _order_value(left), _order_value(right)
            if left != right:
                result = -1 if left < right else 1
                return -result if key.descending else result
        return -1 if a.id < b.id else (1 if a.id > b.id else 0)

    return [run.id for run in sorted(chosen, key=cmp_to_key(compare))]


# --- Filters ----------------------------------------------------------------------------------

FILTERS = [
    "",
    "metrics.auc > 0.8",
    "metrics.auc >= 0.86",
    "metrics.auc = 0.86",
    "metrics.auc != 0.86",
    "metrics.auc < 0.7",
    "metrics.auc <= 0.5",
    "metrics.auc > 1e300",  # infinity and NaN are above every number
    "metrics.auc in (0.5, 0.6, 0.9)",
    "metrics.auc not in (0.86)",
    "metrics.auc is null",
    "metrics.f1 is not null",
    "metrics.loss < 0",
    "metrics.loss > -1.5 and metrics.loss < -0.5",
    "params.model = 'gbm'",
    "params.model != 'gbm'",
    "params.model in ('gbm', 'rf')",
    "params.model not in ('gbm', 'rf')",
    "params.model like 'g%'",  # case-sensitive on both backends: not 'Gbm'
    "params.model ilike 'g%'",
    "params.model not like '%b%'",
    "params.model not ilike 'G%'",
    "params.model like '_bm'",
    "params.note like 'a_'",
    "name like 'gbm-_'",
    "params.note = 'it''s'",
    'params.note = "it\'s"',
    "params.note like '100\\%'",
    "params.note like '%\\_%'",
    "params.note = 'x*y?[z]'",
    "params.note like 'x*y?[z]'",
    "params.note like 'back\\\\slash'",
    "params.model = '日本'",
    "params.depth = 6",  # a number against a param compares as the text written
    "params.lr = 1e-3",
    "params.lr = 0.001",
    "params.depth is null",
    "params.missing is null",
    "params.missing is not null",
    "tags.team = 'churn'",
    "tags.team ilike 'CHURN'",
    "tags.team = 'データ'",
    "tags.`val loss` = 'high'",
    "tags.\"mlflow.runName\" = 'gbm-a'",
    "tags.mlflow.runName like 'gbm%'",
    "status = 'FAILED'",
    "status != 'finished'",
    "status in ('running', 'killed')",
    "name like 'gbm-%'",
    "run_name = 'unicode-ü'",
    "user = 'bo'",
    "git_commit = 'a1b2c3d'",
    "git_commit is null",
    "not git_commit = 'a1b2c3d'",  # runs without a commit match 'not =' too
    "parent_id is not null",
    "start_time >= '2026-01-01T10:00:00'",
    "start_time < '2026-01-01T03:00:00+00:00' and end_time is not null",
    "end_time is null",
    f"start_time = '{SAME_START.isoformat()}'",
    "start_time > 1767225600",
    "metrics.auc > 0.8 and params.model = 'gbm'",
    "metrics.auc > 0.8 or params.model = 'rf'",
    "(metrics.auc > 0.8 or params.model = 'rf') and tags.team = 'churn'",
    "not (metrics.auc > 0.8 or params.model = 'rf')",
    "not metrics.auc > 0.8",
    "not not params.model = 'gbm'",
    "params.model = 'gbm' and not tags.team = 'churn' and metrics.auc is not null",
    "metrics.auc > 0.5 and metrics.loss < 0.5 and params.model in ('gbm', 'logreg')",
    "params.x = ''' OR 1=1 --'",
    "params.x = '''; DROP TABLE runs; --'",
    "name = '\\'; DELETE FROM run_params; --'",
    "metrics.`a'; DROP TABLE runs; --` > 1",
]


@pytest.mark.parametrize("filter_string", FILTERS)
def test_filters_match_the_oracle(
    store: MetadataStore, everything: list[Run], filter_string: str
) -> None:
    expected = oracle(everything, filter_string)
    assert [run.id for run in search(store, filter_string=filter_string)] == expected


def test_hostile_filters_change_nothing(store: MetadataStore, ids: dict[str, str]) -> None:
    with store.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(run_params)).scalar()
    for hostile in FILTERS[-4:]:
        assert search(store, filter_string=hostile) == []
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(run_params)).scalar() == before
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar() == len(ids) - 3


def test_both_plans_give_the_same_runs(
    store: MetadataStore, everything: list[Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a selective term may drive the search; scanning must agree with it."""
    cases = [
        ("params.model = 'gbm' and metrics.auc > 0.6", ()),
        ("params.note = 'it''s'", ()),
        ("metrics.auc > 0.8 and tags.team = 'churn'", ("metrics.loss DESC",)),
        ("params.model in ('rf', 'svm')", ("name",)),
    ]
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        planned = [[r.id for r in search(store, filter_string=f, order_by=o)] for f, o in cases]
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    monkeypatch.setattr(search_plan, "_ESTIMATE_CAP", 0)  # never start from a term
    scanned = [[r.id for r in search(store, filter_string=f, order_by=o)] for f, o in cases]
    assert planned == scanned == [oracle(everything, f, o) for f, o in cases]
    if store.dialect == "sqlite":
        assert any("runs.id IN (SELECT" in statement for statement in statements)


def test_sqlite_planning_counts_are_reused_until_runs_are_added(tmp_path: Path) -> None:
    """Term counts steer SQLite's plan; kept per database, redone once rows are added,
    and a search reordering its terms by them still returns the same runs."""
    filter_string = "metrics.auc > 0.5 and params.model = 'gbm'"  # the param is rarer
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    def counts() -> int:
        found = sum("count(*)" in statement for statement in statements)
        statements.clear()
        return found

    def spec(index: int) -> RunSpec:
        model = "gbm" if index % 4 == 0 else "rf"
        start = BASE_TIME + timedelta(minutes=index)
        return RunSpec(f"r{index}", params={"model": model}, metrics={"auc": 0.9}, start_time=start)

    with open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}") as store:
        with store.transaction() as conn:
            experiment = insert_experiment(conn, "e")
            first = insert_runs(conn, experiment, [spec(index) for index in range(12)])
        sa.event.listen(store.engine, "before_cursor_execute", record)
        scoped = {"filter_string": filter_string, "experiment_ids": [experiment]}
        found = [run.id for run in search(store, **scoped)]
        assert found == [first[8], first[4], first[0]]
        [page] = [statement for statement in statements if "EXISTS" in statement]
        assert page.index("FROM run_params") < page.index("FROM run_latest_metrics")
        assert counts() == 3  # each term, then the experiment's runs
        assert [run.id for run in search(store, **scoped)] == found
        assert counts() == 0
        with store.transaction() as conn:
            [added] = insert_runs(conn, experiment, [spec(12)])
        statements.clear()
        assert [run.id for run in search(store, **scoped)] == [added, *found]
        assert counts() == 3


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_random_filters_match_the_oracle(
    store: MetadataStore, everything: list[Run], data: st.DataObject
) -> None:
    filter_string = data.draw(FILTER_STRATEGY)
    order = data.draw(st.lists(ORDER_STRATEGY, max_size=2))
    assert [r.id for r in search(store, filter_string=filter_string, order_by=order)] == oracle(
        everything, filter_string, order
    ), filter_string


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


_NUMBERS = st.sampled_from([-1.0, 0.0, 0.35, 0.5, 0.6, 0.72, 0.79, 0.86, 0.9, 1.0, 1e300])
_TEXTS = st.sampled_from(
    ["gbm", "Gbm", "rf", "logreg", "svm", "日本", "it's", "100%", "a_b", "churn", "growth", ""]
)
_PATTERNS = st.sampled_from(["g%", "%b%", "_b_", "%", "G%", "%\\%", "%\\_%", "x*%", "%[z]"])
_METRIC = st.tuples(
    st.sampled_from(["metrics.auc", "metrics.loss", "metrics.f1", "metrics.none"]),
    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    _NUMBERS.map(repr),
).map(" ".join)
_TEXT_FIELD = st.sampled_from(
    ["params.model", "params.note", "params.lr", "tags.team", "name", "status", "git_commit"]
)
_TEXT_COMPARISON = st.one_of(
    st.tuples(_TEXT_FIELD, st.sampled_from(["=", "!="]), _TEXTS.map(_quote)).map(" ".join),
    st.tuples(
        _TEXT_FIELD, st.sampled_from(["like", "ilike", "not like", "not ilike"]), _PATTERNS
    ).map(lambda parts: f"{parts[0]} {parts[1]} {_quote(parts[2])}"),
    st.tuples(_TEXT_FIELD, st.sampled_from(["in", "not in"]), st.lists(_TEXTS, min_size=1)).map(
        lambda parts: f"{parts[0]} {parts[1]} ({', '.join(map(_quote, parts[2]))})"
    ),
)
_NULL_CHECK = st.tuples(
    st.sampled_from(["metrics.f1", "params.depth", "tags.team", "parent_id", "end_time"]),
    st.sampled_from(["is null", "is not null"]),
).map(" ".join)
_LEAF = st.one_of(_METRIC, _TEXT_COMPARISON, _NULL_CHECK).filter(
    lambda text: not text.startswith("status") or "like" in text or "'" in text
)


def _valid(text: str) -> bool:
    try:
        parse_filter(text)
    except SearchSyntaxError:
        return False
    return True


FILTER_STRATEGY = st.recursive(
    _LEAF,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda parts: f"({parts[0]}) {parts[1]} ({parts[2]})"
        ),
        inner.map(lambda text: f"not ({text})"),
    ),
    max_leaves=5,
).filter(_valid)
ORDER_STRATEGY = st.sampled_from(
    ["metrics.auc DESC", "metrics.loss", "params.model", "tags.team DESC", "name", "end_time"]
)


# --- Scope: experiments and deleted runs --------------------------------------------------------


def test_experiments_and_deleted_runs(
    store: MetadataStore, everything: list[Run], ids: dict[str, str]
) -> None:
    fraud = ids["experiment:fraud"]
    assert [r.name for r in search(store, experiment_ids=[fraud])] == ["fraud-2", "fraud-1"]
    assert search(store, experiment_ids=[]) == []
    assert search(store, experiment_ids=["0" * 32]) == []
    everywhere = search(store, include_deleted=True)
    assert [r.id for r in everywhere] == oracle(everything, include_deleted=True)
    assert {"deleted-1", "archived-1"} <= {r.name for r in everywhere}
    assert "deleted-1" not in {r.name for r in search(store)}
    both = [ids["experiment:churn"], fraud, fraud]
    assert [r.id for r in search(store, experiment_ids=both)] == oracle(everything, "", (), both)


def test_count_total(store: MetadataStore, everything: list[Run]) -> None:
    with store.connect() as conn:
        for filter_string in ("", "params.model = 'gbm'", "metrics.auc > 0.8 or status = 'failed'"):
            page = queries.search_runs(
                conn, filter_string=filter_string, max_results=2, count_total=True
            )
            assert page.total == len(oracle(everything, filter_string))
        assert queries.search_runs(conn, max_results=2).total is None


# --- Ordering and pages -----------------------------------------------------------------------

ORDERS = [
    (),
    ("start_time",),
    ("metrics.auc DESC",),
    ("metrics.auc",),
    ("metrics.f1 DESC",),
    ("params.model", "metrics.loss DESC"),
    ("tags.team DESC", "name"),
    ("name DESC",),
    ("end_time DESC",),
    ("git_commit", "status"),
    ("parent_id DESC", "start_time"),
    ("params.missing",),
    ("run_id",),
]


@pytest.mark.parametrize("order_by", ORDERS, ids=lambda order: ", ".join(order) or "default")
@pytest.mark.parametrize("page_size", [1, 4, 100])
def test_pages_cover_every_run_once_in_order(
    store: MetadataStore, everything: list[Run], order_by: tuple[str, ...], page_size: int
) -> None:
    found = [r.id for r in search(store, order_by=order_by, max_results=page_size)]
    assert len(found) == len(set(found))
    assert found == oracle(everything, "", order_by)
    filtered = "params.model in ('gbm', 'rf', 'svm')"
    found = [r.id for r in search(store, filter_string=filtered, order_by=order_by, max_results=3)]
    assert found == oracle(everything, filtered, order_by)


def test_runs_lacking_the_order_key_sort_last(store: MetadataStore) -> None:
    ordered = search(store, order_by=["metrics.f1 DESC"])
    assert ordered[0].name == "logreg-a"
    assert all("f1" not in run.metrics for run in ordered[1:])
    by_auc = search(store, order_by=["metrics.auc DESC"])
    assert [run.name for run in by_auc[:2]] == ["logreg-b", "rf-a"]  # NaN, then infinity
    lacking = [run for run in by_auc if "auc" not in run.metrics]
    assert len(lacking) >= 3 and by_auc[-len(lacking) :] == lacking


def test_page_tokens_belong_to_their_search(store: MetadataStore) -> None:
    with store.connect() as conn:
        first = queries.search_runs(conn, filter_string="params.model = 'gbm'", max_results=2)
        assert first.next_page_token
        # The page size may change between pages; the search may not.
        more = queries.search_runs(
            conn, filter_string="params.model = 'gbm'", max_results=3,
            page_token=first.next_page_token,
        )  # fmt: skip
        assert not {r.id for r in more.runs} & {r.id for r in first.runs}
        with pytest.raises(InvalidPageTokenError, match="another search"):
            queries.search_runs(conn, filter_string="", page_token=first.next_page_token)
        with pytest.raises(InvalidPageTokenError, match="another search"):
            queries.search_runs(
                conn,
                filter_string="params.model = 'gbm'",
                order_by=["name"],
                page_token=first.next_page_token,
            )
        token = first.next_page_token
        for tampered in (token[:-3], token[:10] + "A" + token[11:], "x" * 40, "'; DROP TABLE runs"):
            with pytest.raises(InvalidPageTokenError):
                queries.search_runs(conn, filter_string="params.model = 'gbm'", page_token=tampered)


def test_deepest_and_widest_filters_run(store: MetadataStore) -> None:
    """The parser's limits keep every accepted search within what the databases take,
    with every order key and a page token on top."""
    deep = accepted = "params.model = 'gbm'"
    for index in range(60):  # the deepest alternation of and / or / not the parser accepts
        deep = f"params.model = 'x{index}' {'and' if index % 2 else 'or'} (not ({deep}))"
        try:
            parse_filter(deep)
        except SearchSyntaxError:
            break
        accepted = deep
    deep = "params.model != 'none' or " + accepted
    order = ["metrics.auc DESC", "params.lr", "tags.team DESC", "name", "end_time DESC",
             "git_commit", "metrics.loss", "parent_id"]  # fmt: skip
    wide = " or ".join(f"params.model = 'v{i}' and tags.t{i} != 'x{i:09}'" for i in range(99))
    wide += " or metrics.auc > 0"
    assert len(wide) > 4_000 and len(parse_filter(wide).items) == 100  # type: ignore[union-attr]
    with store.connect() as conn:
        for filter_string in (deep, wide):
            page = queries.search_runs(
                conn, filter_string=filter_string, order_by=order, max_results=2, count_total=True
            )
            assert page.next_page_token and page.total
            queries.search_runs(
                conn,
                filter_string=filter_string,
                order_by=order,
                max_results=2,
                page_token=page.next_page_token,
            )


@pytest.mark.parametrize("bad", [0, -1, 50_001, 2.5, "10", True])
def test_max_results_is_checked(store: MetadataStore, bad: object) -> None:
    with store.connect() as conn, pytest.raises(TrackingInputError, match="max_results"):
        queries.search_runs(conn, max_results=bad)  # type: ignore[arg-type]


def test_experiment_ids_must_be_a_list(store: MetadataStore) -> None:
    with store.connect() as conn, pytest.raises(TrackingInputError, match="experiment_ids"):
        queries.search_runs(conn, experiment_ids="churn")


def test_bad_filters_and_orderings_raise_syntax_errors(store: MetadataStore) -> None:
    with store.connect() as conn:
        with pytest.raises(SearchSyntaxError, match="position 13"):
            queries.search_runs(conn, filter_string="metrics.auc >> 0.8")
        with pytest.raises(SearchSyntaxError, match="Unknown attribute 'colour'"):
            queries.search_runs(conn, order_by=["colour DESC"])


# --- Loading runs -------------------------------------------------------------------------------


def test_load_run_by_id_and_prefix(store: MetadataStore, ids: dict[str, str]) -> None:
    gbm = ids["gbm-a"]
    with store.connect() as conn:
        run = queries.load_run(conn, gbm)
        assert queries.load_run(conn, gbm[:6]) == run
        assert queries.load_run(conn, " " + gbm[:10].upper() + " ") == run
    assert run.name == "gbm-a" and run.status == "finished" and run.lifecycle == "active"
    assert run.params == {"depth": "6", "lr": "0.1", "model": "gbm"}
    assert run.metrics == {"auc": 0.86, "loss": 0.35}  # the value at the highest step
    assert run.tags == {"mlflow.runName": "gbm-a", "team": "churn"}
    assert (run.git_commit, run.git_dirty, run.source) == ("a1b2c3d", True, "train.py")
    assert run.start_time == BASE_TIME and run.start_time.tzinfo is not None
    assert run.duration_seconds == 120


@pytest.mark.parametrize(
    ("reference", "error", "needle"),
    [
        ("abcdef", AmbiguousReferenceError, "matches several runs"),
        ("abcde", NotFoundError, "too short"),
        ("xyz123", NotFoundError, "not hexadecimal"),
        ("'; DROP TABLE runs; --", NotFoundError, "not hexadecimal"),
        ("0" * 32, NotFoundError, "does not exist"),
        ("fedcba98", NotFoundError, "No run id starts with 'fedcba98'"),
        ("", NotFoundError, "too short"),
    ],
)
def test_load_run_errors_name_the_id(
    store: MetadataStore, reference: str, error: type[Exception], needle: str
) -> None:
    with store.connect() as conn, pytest.raises(error, match=re.escape(needle)) as caught:
        queries.load_run(conn, reference)
    assert caught.value.hint  # type: ignore[attr-defined]


def test_load_run_refuses_a_non_string(store: MetadataStore) -> None:
    with store.connect() as conn, pytest.raises(TrackingInputError):
        queries.load_run(conn, 42)  # type: ignore[arg-type]


def test_ambiguity_lists_the_candidates(store: MetadataStore) -> None:
    with store.connect() as conn, pytest.raises(AmbiguousReferenceError) as caught:
        queries.load_run(conn, "abcdef0")
    assert PREFIX_TWINS[0] in caught.value.message and PREFIX_TWINS[1] in caught.value.message
    with store.connect() as conn:
        assert queries.load_run(conn, "abcdef01").id == PREFIX_TWINS[0]


def test_runs_load_with_their_inputs_in_order(store: MetadataStore, ids: dict[str, str]) -> None:
    inputs = [("b-set", "v2", "train"), ("a-set", "v3", "validation"), ("a-set", "v1", "train")]
    with store.connect() as conn:  # not committed: the shared sample is left as it was
        (run_id,) = insert_runs(
            conn, ids["experiment:fraud"], [RunSpec("with-inputs", inputs=inputs)]
        )
        loaded = queries.load_run(conn, run_id)
        (found,) = queries.search_runs(conn, filter_string="name = 'with-inputs'").runs
        bare = queries.load_run(conn, ids["gbm-a"])
    expected = (
        DatasetInput("a-set", "v1", "train"),
        DatasetInput("b-set", "v2", "train"),
        DatasetInput("a-set", "v3", "validation"),
    )
    assert loaded.inputs == found.inputs == expected  # by role, then dataset
    assert bare.inputs == ()


def test_load_runs_keeps_order_and_batches(store: MetadataStore, ids: dict[str, str]) -> None:
    names = ["rf-a", "gbm-a", "unicode-ü", "gbm-a"]
    statements: list[str] = []

    def record(*args: Any) -> None:
        if not args[2].startswith("BEGIN"):
            statements.append(args[2])

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.connect() as conn:
            found = queries.load_runs(conn, [ids[name] for name in names])
            one = len(statements)
            queries.load_runs(conn, [ids[name] for name in ids if not name.startswith("exp")])
            many = len(statements) - one
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    assert [run.name for run in found] == names
    assert one == many <= 6  # per batch, not per run
    with store.connect() as conn, pytest.raises(NotFoundError, match="0{32}"):
        queries.load_runs(conn, [ids["gbm-a"], "0" * 32])
    with store.connect() as conn, pytest.raises(TrackingInputError):
        queries.load_runs(conn, ids["gbm-a"])  # a string, not a list


def test_nan_and_infinite_metrics_come_back(store: MetadataStore, ids: dict[str, str]) -> None:
    with store.connect() as conn:
        assert math.isnan(queries.load_run(conn, ids["logreg-b"]).metrics["auc"])
        assert queries.load_run(conn, ids["rf-a"]).metrics["auc"] == math.inf
        assert math.isnan(queries.metric_history(conn, ids["logreg-b"], "auc")[0].value)


def test_metric_history(store: MetadataStore, ids: dict[str, str]) -> None:
    with store.connect() as conn:
        history = queries.metric_history(conn, ids["gbm-a"], "auc")
        assert [(m.step, m.value) for m in history] == [(0, 0.7), (1, 0.81), (2, 0.86)]
        assert queries.metric_history(conn, ids["gbm-a"][:8], "loss")[-1].value == 0.35
        assert queries.metric_history(conn, ids["gbm-a"], "no-such-metric") == []
        with pytest.raises(NotFoundError):
            queries.metric_history(conn, "0" * 32, "auc")


def test_metric_history_orders_by_step_then_timestamp(tmp_path: Path) -> None:
    with open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}") as store:
        with store.transaction() as conn:
            experiment = insert_experiment(conn, "e")
            [run_id] = insert_runs(conn, experiment, [RunSpec("r")])
            points = [(5, 100.0, 0.5), (1, 300.0, 0.3), (1, 200.0, 0.2), (0, 900.0, 0.9)]
            conn.execute(
                sa.insert(run_metrics),
                [
                    {"run_id": run_id, "key": "m", "step": s, "timestamp": t, "value": v}
                    for s, t, v in points
                ],
            )
        with store.connect() as conn:
            history = queries.metric_history(conn, run_id, "m")
    assert [(m.step, m.timestamp) for m in history] == [
        (0, 900.0),
        (1, 200.0),
        (1, 300.0),
        (5, 100.0),
    ]


# --- Experiments, artifacts, environments -------------------------------------------------------


def test_experiments(store: MetadataStore, ids: dict[str, str]) -> None:
    with store.connect() as conn:
        assert [e.name for e in queries.list_experiments(conn)] == ["churn", "fraud"]
        listed = queries.list_experiments(conn, include_deleted=True)
        assert {e.name for e in listed} == {"churn", "fraud", "archive"}
        churn = queries.get_experiment(conn, "churn")
        assert churn.id == ids["experiment:churn"] and churn.description == "monthly churn"
        assert queries.get_experiment(conn, churn.id) == churn
        assert queries.get_experiment(conn, churn.id[:8]) == churn
        assert queries.get_experiment(conn, "archive").lifecycle == "deleted"
        with pytest.raises(NotFoundError, match="Did you mean 'churn'"):
            queries.get_experiment(conn, "chrun")
        counts = queries.run_counts(conn)
        assert counts[ids["experiment:fraud"]] == 2
        assert ids["experiment:archive"] not in counts


def test_artifacts_and_environment(tmp_path: Path) -> None:
    blob = "sha256:" + "a" * 64
    with open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}") as store:
        with store.transaction() as conn:
            experiment = insert_experiment(conn, "e")
            from tests.tracking.fixtures import insert_environment

            environment = insert_environment(conn, "sha256:" + "e" * 64, {"numpy": "2.1"})
            [run_id] = insert_runs(
                conn,
                experiment,
                [
                    RunSpec(
                        "r",
                        environment_id=environment,
                        artifacts=[
                            ("plots/roc.png", blob, 10, "file"),
                            ("model/m.skops", blob, 7, "model"),
                        ],
                    )
                ],
            )  # fmt: skip
        with store.connect() as conn:
            files = queries.list_artifacts(conn, run_id[:6])
            assert [(a.path, a.size, a.kind) for a in files] == [
                ("model/m.skops", 7, "model"),
                ("plots/roc.png", 10, "file"),
            ]
            with pytest.raises(NotFoundError):
                queries.list_artifacts(conn, "f" * 32)
            described = queries.get_environment(conn, environment)
            assert described is not None and described["packages"] == {"numpy": "2.1"}
            assert queries.get_environment(conn, "sha256:" + "0" * 64) is None
            assert conn.execute(sa.select(sa.func.count()).select_from(run_artifacts)).scalar() == 2


# --- Tables ------------------------------------------------------------------------------


def test_runs_to_arrow(store: MetadataStore, ids: dict[str, str]) -> None:
    import pyarrow as pa

    with store.connect() as conn:
        chosen = queries.load_runs(conn, [ids["gbm-a"], ids["logreg-a"], ids["rf-b"]])
    table = queries.runs_to_arrow(chosen)
    assert table.column_names[:7] == [
        "run_id", "experiment_id", "name", "status", "user", "start_time", "end_time",
    ]  # fmt: skip
    assert "params.model" in table.column_names and "tags.val loss" in table.column_names
    assert table.schema.field("metrics.auc").type == pa.float64()
    assert table.schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert table.column("metrics.f1").to_pylist() == [None, 0.5, None]
    assert table.column("end_time").to_pylist()[2] is None
    assert table.column("run_id").to_pylist() == [run.id for run in chosen]
    empty = queries.runs_to_arrow([])
    assert empty.num_rows == 0 and empty.column_names[0] == "run_id"


def test_runs_to_pandas(store: MetadataStore, ids: dict[str, str]) -> None:
    import pandas as pd

    with store.connect() as conn:
        chosen = queries.load_runs(conn, [ids["gbm-a"], ids["logreg-a"]])
    frame = queries.runs_to_pandas(chosen)
    assert list(frame["name"]) == ["gbm-a", "logreg-a"]
    assert frame["metrics.auc"].dtype == "float64"
    assert math.isnan(frame["metrics.f1"][0]) and frame["metrics.f1"][1] == 0.5
    assert frame["params.depth"][0] == "6" and pd.isna(frame["params.depth"][1])
    assert str(frame["start_time"].dt.tz) == "UTC"
    assert frame["start_time"][0].to_pydatetime() == BASE_TIME
    assert (frame["end_time"] - frame["start_time"])[0] == timedelta(minutes=2)
    assert queries.runs_to_pandas([]).empty


def test_big_pages_load_in_batches(tmp_path: Path) -> None:
    """A page larger than one IN list (1,000 ids) still comes back whole and in order."""
    with open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}") as store:
        with store.transaction() as conn:
            experiment = insert_experiment(conn, "e")
            from tests.tracking.fixtures import insert_synthetic_runs

            insert_synthetic_runs(conn, experiment, 2_100, params=1, metrics=1, tags=0)
        with store.connect() as conn:
            page = queries.search_runs(conn, max_results=2_050, order_by=["metrics.m0 DESC"])
    values = [run.metrics["m0"] for run in page.runs]
    assert len(values) == 2_050 and values == sorted(values, reverse=True)
    assert all(run.params for run in page.runs)
    assert page.next_page_token is not None
