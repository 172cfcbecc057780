"""Reading tracked runs: load by id, metric histories, experiments, artifacts, search.

Functions take an open connection (``MetadataStore.connect()``); ``TrackingClient``
wraps them. Loading runs is batched: a run's params, tags, latest metrics and inputs come
from one query per table for a whole batch of runs, never one query per run.

>>> with store.connect() as conn:
...     page = search_runs(conn, filter_string="metrics.auc > 0.8", order_by=["metrics.auc DESC"])
...     best = page.runs[0]
...     curve = metric_history(conn, best.id, "loss")

``runs_to_arrow`` / ``runs_to_pandas`` (``shipyard.tracking.frames``) turn runs into a table.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from shipyard.core.errors import AmbiguousReferenceError, NotFoundError
from shipyard.store.schema.tracking import (
    environments,
    experiments,
    run_artifacts,
    run_inputs,
    run_latest_metrics,
    run_metrics,
    run_params,
    run_tags,
    runs,
)
from shipyard.tracking import experiments as experiment_records
from shipyard.tracking.frames import runs_to_arrow, runs_to_pandas
from shipyard.tracking.records import ArtifactEntry, DatasetInput, Experiment, Metric, Run, RunPage
from shipyard.tracking.search_plan import find_page
from shipyard.tracking.validation import TrackingInputError

__all__ = [
    "MAX_RESULTS",
    "get_environment",
    "get_experiment",
    "list_artifacts",
    "list_experiments",
    "load_run",
    "load_runs",
    "metric_histories",
    "metric_history",
    "resolve_run_id",
    "run_counts",
    "runs_to_arrow",
    "runs_to_pandas",
    "search_runs",
]

MAX_RESULTS = 50_000
"""The largest page ``search_runs`` returns."""
MIN_PREFIX = 6
"""Hex characters an abbreviated run id needs."""
_CHUNK = 1_000  # ids per IN list: well under every backend's bound-parameter limit
_FULL_ID = re.compile(r"[0-9a-f]{32}")
_PREFIX = re.compile(rf"[0-9a-f]{{{MIN_PREFIX},31}}")
# Built once: SQLAlchemy then reuses their compiled form (the ids are one expanding param).
_RUN_COLUMN_NAMES = tuple(f.name for f in fields(Run) if f.name in runs.c)
"""The run's own columns, id first (Run's field order)."""
_RUN_COLUMNS_SQL = ", ".join(f'"{name}"' for name in _RUN_COLUMN_NAMES)
_RUNS_BY_ID_SQL = f"SELECT {_RUN_COLUMNS_SQL} FROM runs WHERE id IN ({{marks}})"  # noqa: S608 - our columns; the ids are bound
_FIRST = operator.itemgetter(0)
_PROCESSORS: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {}
"""Converters of run columns' values, by dialect name (``_run_processors``)."""
_INPUTS_OF_RUNS_SQL = (
    f"SELECT run_id, dataset, version_id, role FROM {run_inputs.name} "  # noqa: S608 - our table; the ids are bound
    "WHERE run_id IN ({marks}) ORDER BY run_id, role, dataset"
)
_LIST_HINT = "`shipyard runs list` shows run ids; give the full id or at least 6 of its hex digits."


# --- Runs by id ------------------------------------------------------------------------


def resolve_run_id(conn: Connection, run_id: str) -> str:
    """The full id of the run ``run_id`` names (a full id, or a unique prefix of 6+ hex)."""
    if not isinstance(run_id, str):
        raise TrackingInputError(
            f"A run id is text (32 hex digits), not {type(run_id).__name__} {run_id!r}.",
            hint="Pass run.id.",
        )
    wanted = run_id.strip().lower()
    if _FULL_ID.fullmatch(wanted):
        if conn.execute(select(runs.c.id).where(runs.c.id == wanted)).first() is None:
            raise NotFoundError(f"Run {run_id!r} does not exist.", hint=_LIST_HINT)
        return wanted
    if not _PREFIX.fullmatch(wanted):
        problem = "is too short" if re.fullmatch(r"[0-9a-f]*", wanted) else "is not hexadecimal"
        raise NotFoundError(f"Run id {_clip(run_id)!r} {problem}.", hint=_LIST_HINT)
    # A range on the primary key, not LIKE: an index seek on every backend and collation.
    query = (
        select(runs.c.id)
        .where(runs.c.id >= wanted, runs.c.id < wanted + "g")
        .order_by(runs.c.id)
        .limit(6)
    )
    matches = list(conn.execute(query).scalars())
    if not matches:
        raise NotFoundError(f"No run id starts with {run_id!r}.", hint=_LIST_HINT)
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise AmbiguousReferenceError(
            f"Run id prefix {run_id!r} matches several runs: {shown}.",
            hint="Give more hex digits of the id.",
        )
    return str(matches[0])


def load_run(conn: Connection, run_id: str) -> Run:
    """The run with its params, tags, latest metrics and inputs (deleted runs too).

    ``run_id`` is the full id or a unique prefix of at least 6 hex digits; raises
    ``NotFoundError`` (or ``AmbiguousReferenceError``) naming it otherwise.

    >>> load_run(conn, "3f9a1c").params["learning_rate"]
    '0.1'
    """
    return _load(conn, [resolve_run_id(conn, run_id)])[0]


def load_runs(conn: Connection, run_ids: Sequence[str]) -> list[Run]:
    """The runs ``run_ids`` name, in that order, in a constant number of queries per
    1,000 runs; ``NotFoundError`` lists ids that match no run. Prefixes are resolved first.
    """
    if isinstance(run_ids, str):
        raise TrackingInputError(
            "load_runs takes a list of run ids, not one string.", hint="Use load_run for one."
        )
    full = [
        run_id if isinstance(run_id, str) and _FULL_ID.fullmatch(run_id) else None
        for run_id in run_ids
    ]
    wanted = [
        found or resolve_run_id(conn, given) for found, given in zip(full, run_ids, strict=True)
    ]
    loaded = {run.id: run for run in _load(conn, list(dict.fromkeys(wanted)))}
    missing = [run_id for run_id in wanted if run_id not in loaded]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise NotFoundError(f"No run has the id {shown}.", hint=_LIST_HINT)
    return [loaded[run_id] for run_id in wanted]


def _load(conn: Connection, run_ids: Sequence[str]) -> list[Run]:
    """Existing runs among ``run_ids``, in that order (missing ones skipped).

    Read through the driver's cursor: the values are plain, so SQLAlchemy's result
    machinery (most of the time of loading a page of runs) is skipped; the run columns'
    types still convert their values (``_run_processors``).
    """
    loaded: dict[str, Run] = {}
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    processors = _run_processors(conn)
    # Keys in code point order, as Python sorts them (PostgreSQL's default collation may not).
    collate = ' COLLATE "C"' if conn.dialect.name == "postgresql" else ""
    cursor = conn.connection.cursor()
    try:
        for start in range(0, len(run_ids), _CHUNK):
            chunk = tuple(run_ids[start : start + _CHUNK])
            marks = ", ".join([mark] * len(chunk))
            params = _key_values(cursor, run_params, marks, chunk, collate)
            tags = _key_values(cursor, run_tags, marks, chunk, collate)
            metrics = _key_values(cursor, run_latest_metrics, marks, chunk, collate, float)
            inputs: dict[str, list[DatasetInput]] = defaultdict(list)
            cursor.execute(_INPUTS_OF_RUNS_SQL.format(marks=marks), chunk)
            for run_id, dataset, version_id, role in cursor.fetchall():
                inputs[run_id].append(DatasetInput(dataset, version_id, role))
            cursor.execute(_RUNS_BY_ID_SQL.format(marks=marks), chunk)
            for row in cursor.fetchall():
                values = dict(zip(_RUN_COLUMN_NAMES, row, strict=True))
                for name, process in processors:
                    values[name] = process(values[name])
                run_id = values["id"]
                loaded[run_id] = Run(
                    **values,
                    params=params.get(run_id, {}),
                    tags=tags.get(run_id, {}),
                    metrics=metrics.get(run_id, {}),
                    inputs=tuple(inputs.get(run_id, ())),
                )
    finally:
        cursor.close()
    return [loaded[run_id] for run_id in run_ids if run_id in loaded]


def _key_values(
    cursor: Any,
    table: Table,
    marks: str,
    run_ids: Sequence[str],
    collate: str,
    convert: Callable[[Any], Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{run_id: {key: value}}`` of a narrow table, keys sorted (one query, bound ids)."""
    values: dict[str, dict[str, Any]] = {}
    sql = (
        f'SELECT run_id, "key", value FROM {table.name} WHERE run_id IN ({marks}) '  # noqa: S608 - our table name, bound ids
        f'ORDER BY run_id, "key"{collate}'
    )
    cursor.execute(sql, run_ids)
    for run_id, group in itertools.groupby(cursor.fetchall(), _FIRST):
        if convert is None:
            values[run_id] = {key: value for _, key, value in group}
        else:  # metric values: SQLite holds NaN as text
            values[run_id] = {key: convert(value) for _, key, value in group}
    return values


def _run_processors(conn: Connection) -> list[tuple[str, Callable[[Any], Any]]]:
    """The run columns whose values the driver returns in another form than the record's
    (SQLite: timestamps as text, booleans as integers), with their types' converters."""
    found = _PROCESSORS.get(conn.dialect.name)
    if found is None:
        found = []
        for name in _RUN_COLUMN_NAMES:
            column_type = runs.c[name].type.dialect_impl(conn.dialect)
            process = column_type.result_processor(conn.dialect, None)
            if process is not None:
                found.append((name, process))
        _PROCESSORS[conn.dialect.name] = found
    return found


# --- Metric histories, artifacts, environments -------------------------------------------


def metric_history(conn: Connection, run_id: str, key: str) -> list[Metric]:
    """Every logged value of one metric of a run, by step, then timestamp.

    An unknown key gives an empty list; an unknown run raises ``NotFoundError``.

    >>> [point.value for point in metric_history(conn, run.id, "loss")]
    [0.9, 0.5, 0.31]
    """
    full_id = resolve_run_id(conn, run_id)
    return metric_histories(conn, [full_id], [key]).get(full_id, {}).get(key, [])


def metric_histories(
    conn: Connection, run_ids: Sequence[str], keys: Sequence[str] | None = None
) -> dict[str, dict[str, list[Metric]]]:
    """``{run_id: {key: [Metric...]}}`` for full run ids (all keys unless given), batched."""
    histories: dict[str, dict[str, list[Metric]]] = defaultdict(lambda: defaultdict(list))
    for start in range(0, len(run_ids), _CHUNK):
        query = select(run_metrics).where(run_metrics.c.run_id.in_(run_ids[start : start + _CHUNK]))
        if keys is not None:
            query = query.where(run_metrics.c.key.in_(list(keys)))
        query = query.order_by(
            run_metrics.c.run_id,
            run_metrics.c.key,
            run_metrics.c.step,
            run_metrics.c.timestamp,
            run_metrics.c.id,
        )
        for row in conn.execute(query):
            point = Metric(row.key, float(row.value), int(row.step), float(row.timestamp))
            histories[row.run_id][row.key].append(point)
    return {run_id: dict(by_key) for run_id, by_key in histories.items()}


def list_artifacts(conn: Connection, run_id: str) -> list[ArtifactEntry]:
    """A run's artifact files, by path; ``NotFoundError`` for an unknown run."""
    full_id = resolve_run_id(conn, run_id)
    query = select(run_artifacts).where(run_artifacts.c.run_id == full_id)
    return [
        ArtifactEntry(row.path, row.blob_id, int(row.size), row.kind)
        for row in conn.execute(query.order_by(run_artifacts.c.path))
    ]


def get_environment(conn: Connection, environment_id: str) -> dict[str, Any] | None:
    """The Python environment a run recorded (version, platform, packages), or ``None``."""
    row = conn.execute(select(environments).where(environments.c.id == environment_id)).first()
    if row is None:
        return None
    return {
        "id": row.id,
        "python_version": row.python_version,
        "platform": row.platform,
        "packages": dict(row.packages or {}),
    }


# --- Experiments -----------------------------------------------------------------------


def list_experiments(conn: Connection, include_deleted: bool = False) -> list[Experiment]:
    """Experiments, oldest first (deleted ones too if asked)."""
    return experiment_records.list_experiments(conn, include_deleted=include_deleted)


def get_experiment(conn: Connection, id_or_name: str) -> Experiment:
    """The experiment with this id, name, or unique id prefix (6+ hex); deleted ones too.

    >>> get_experiment(conn, "churn").id
    '5b0c...'
    """
    found = experiment_records.find_experiment(conn, id_or_name)
    if found is not None:
        return found
    wanted = id_or_name.strip().lower()
    if _PREFIX.fullmatch(wanted):
        query = select(experiments.c.id).where(
            experiments.c.id >= wanted, experiments.c.id < wanted + "g"
        )
        matches = list(conn.execute(query.limit(2)).scalars())
        if len(matches) == 1:
            return experiment_records.get_experiment(conn, matches[0])
        if len(matches) > 1:
            raise AmbiguousReferenceError(
                f"Experiment id prefix {id_or_name!r} matches several experiments.",
                hint="Give more hex digits, or the experiment's name.",
            )
    return experiment_records.get_experiment(conn, id_or_name)  # raises, with close names


def run_counts(conn: Connection, include_deleted: bool = False) -> dict[str, int]:
    """How many runs each experiment holds (active ones unless asked), by experiment id."""
    query = select(runs.c.experiment_id, func.count()).group_by(runs.c.experiment_id)
    if not include_deleted:
        query = query.where(runs.c.lifecycle == "active")
    return {experiment_id: int(count) for experiment_id, count in conn.execute(query).all()}


# --- Search ----------------------------------------------------------------------------


def search_runs(
    conn: Connection,
    *,
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    order_by: Sequence[str] | None = (),
    max_results: int = 100,
    page_token: str | None = None,
    include_deleted: bool = False,
    count_total: bool = False,
) -> RunPage:
    """One page of the runs matching a filter (``shipyard.tracking.search``), in order.

    ``experiment_ids`` limits the search to those experiments (``None``: all of them);
    ``order_by`` takes clauses like ``"metrics.auc DESC"`` (default: newest first; runs
    lacking a key sort last; ties are broken by run id). Pass ``next_page_token`` back
    as ``page_token`` for the next page; ``count_total`` also counts every match.
    Raises ``SearchSyntaxError`` for a malformed filter or ordering,
    ``InvalidPageTokenError`` for a token this search did not return.

    >>> page = search_runs(conn, filter_string="params.model = 'gbm' and metrics.auc > 0.8")
    >>> [run.name for run in page.runs]
    ['gbm-7', 'gbm-3']
    """
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise TrackingInputError(f"max_results must be an integer, not {max_results!r}.")
    if not 1 <= max_results <= MAX_RESULTS:
        raise TrackingInputError(
            f"max_results is {max_results}; it must be between 1 and {MAX_RESULTS:,}.",
            hint="Page through larger results with next_page_token.",
        )
    if isinstance(experiment_ids, str) or (
        experiment_ids is not None and not all(isinstance(i, str) for i in experiment_ids)
    ):
        raise TrackingInputError(
            f"experiment_ids must be a list of experiment ids, not {experiment_ids!r}.",
            hint="Pass e.g. [experiment.id], or None for every experiment.",
        )
    clauses = [order_by] if isinstance(order_by, str) else list(order_by or ())
    if experiment_ids is not None:
        experiment_ids = list(dict.fromkeys(experiment_ids))
    run_ids, next_token, total = find_page(
        conn,
        filter_string=filter_string,
        order_by=clauses,
        experiment_ids=experiment_ids,
        include_deleted=include_deleted,
        max_results=max_results,
        page_token=page_token,
        count_total=count_total,
    )
    return RunPage(tuple(_load(conn, run_ids)), next_token, total)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
