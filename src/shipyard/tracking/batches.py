"""What one flush of the background writer writes, in one transaction.

A flush drains the queue into a ``Batch``: run creations (``QueuedRun``), metric values,
params, tags, artifact and input records, and run ends, each in the order they were
queued. The writer writes it in one transaction, in dependency order: the new runs first
(``runs.insert_queued_runs``; one the batch also ends is inserted ended), then
``write_batch`` (below), then the records that depend on a run and the other ends
(``runs.write_run_records``), so a run created, logged to and ended within one flush
interval costs one transaction, shared with every other run, and no update of its row.

``write_batch``, inside the caller's transaction:

1. refreshes the heartbeat of the runs the client writes to (and revives those of them
   that ``mark_stale_runs`` failed while the process was merely stalled);
2. drops the values of runs that cannot take them (ended, deleted, purged), reporting it;
   runs this transaction created are known to take them and are not looked up;
3. inserts params (insert-or-ignore, then reads them back to find a different value
   stored by another writer), upserts tags (last value wins), appends the metric history
   in bulk (``COPY`` on PostgreSQL, one ``executemany`` on SQLite) and upserts
   ``run_latest_metrics`` (highest step wins, then the latest timestamp) with
   ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``. Params, tags and latest metrics are
   written with their run's start time (t0005: the writer's to give, no trigger fills
   it), taken from the runs created here or read with the others' state in step 2.

Rows are sorted by key so that concurrent writers lock them in the same order (no
deadlocks on PostgreSQL). What it found (errors, conflicts) comes back as an ``Outcome``
that the writer acts on only once the transaction committed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Insert,
    Table,
    Text,
    and_,
    bindparam,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.engine import Connection

from shipyard.core.errors import AlreadyExistsError, NotFoundError, ShipyardError
from shipyard.store.schema.tracking import (
    run_latest_metrics,
    run_metrics,
    run_params,
    run_tags,
    runs,
)
from shipyard.tracking.records import ArtifactEntry
from shipyard.tracking.validation import RunStateError

__all__ = [
    "ARTIFACTS",
    "Batch",
    "END",
    "INPUT",
    "Item",
    "METRIC",
    "Outcome",
    "PARAM",
    "QueuedRun",
    "RUN",
    "RUN_COLUMNS",
    "STALE_ERROR_PREFIX",
    "Statements",
    "TAG",
    "dialect_insert",
    "write_batch",
]

STALE_ERROR_PREFIX = "Stale:"
"""How ``mark_stale_runs`` starts the error of a run it failed (a heartbeat revives those)."""

METRIC = 0
PARAM = 1
TAG = 2
RUN = 3
END = 4
ARTIFACTS = 5
INPUT = 6

Item = tuple[Any, ...]
"""``(METRIC, run_id, key, value, step, timestamp)``, ``(PARAM|TAG, run_id, key, value)``,
``(RUN, run_id, QueuedRun)``, ``(END, run_id, status, error, end_time)``,
``(ARTIFACTS, run_id, entries)``, ``(INPUT, run_id, dataset, version_id, role)``."""


@dataclass(frozen=True, slots=True)
class QueuedRun:
    """A run created by a client, waiting in its writer's queue to be inserted."""

    row: dict[str, Any]
    """The ``runs`` row (``id``, ``experiment_id``, ``parent_id``, ``name``...)."""
    experiment_name: str
    tags: dict[str, str]
    environment: dict[str, Any] | None = None
    """The ``environments`` row to insert-or-ignore (once per client and environment)."""
    diff: ArtifactEntry | None = None
    """The code diff's artifact entry (its blob is already in the artifact store)."""

    @property
    def id(self) -> str:
        return str(self.row["id"])


def dialect_insert(dialect: str, table: Table) -> SqliteInsert | PostgresInsert:
    """An INSERT with the dialect's ``ON CONFLICT`` clauses (SQLite and PostgreSQL)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    from sqlalchemy.dialects.postgresql import insert as postgres_insert

    return postgres_insert(table)


@dataclass
class Batch:
    """The writes of one transaction, grouped by kind (each kind in queue order).

    An end always follows every other write of its run that was queued before it (the
    client refuses writes to a run it ended until the end is committed), so writing the
    ends last keeps the order the caller saw.
    """

    metrics: list[Item] = field(default_factory=list)
    params: dict[tuple[str, str], str] = field(default_factory=dict)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    runs: list[QueuedRun] = field(default_factory=list)
    ends: dict[str, tuple[str, str | None, datetime]] = field(default_factory=dict)
    """``run_id -> (status, error, end_time)``."""
    artifacts: list[tuple[str, tuple[ArtifactEntry, ...]]] = field(default_factory=list)
    inputs: list[tuple[str, str, str, str]] = field(default_factory=list)
    """``(run_id, dataset, version_id, role)``."""

    @classmethod
    def of(cls, items: Iterable[Item]) -> Batch:
        batch = cls()
        for item in items:
            kind = item[0]
            if kind == METRIC:
                batch.metrics.append(item)
            elif kind == PARAM:
                batch.params.setdefault((item[1], item[2]), item[3])
            elif kind == TAG:
                batch.tags[(item[1], item[2])] = item[3]
            elif kind == RUN:
                batch.runs.append(item[2])
            elif kind == END:
                batch.ends.setdefault(item[1], (item[2], item[3], item[4]))
            elif kind == ARTIFACTS:
                batch.artifacts.append((item[1], item[2]))
            else:
                batch.inputs.append((item[1], item[2], item[3], item[4]))
        return batch

    def __len__(self) -> int:
        return (
            len(self.metrics)
            + len(self.params)
            + len(self.tags)
            + len(self.runs)
            + len(self.ends)
            + len(self.artifacts)
            + len(self.inputs)
        )

    def run_ids(self) -> set[str]:
        """Every run this batch writes to (created ones included)."""
        ids = {item[1] for item in self.metrics}
        ids.update(run_id for run_id, _ in self.params)
        ids.update(run_id for run_id, _ in self.tags)
        ids.update(run.id for run in self.runs)
        ids.update(self.ends)
        ids.update(run_id for run_id, _ in self.artifacts)
        ids.update(item[0] for item in self.inputs)
        return ids

    def without(self, dropped: set[str]) -> tuple[Batch, dict[str, str]]:
        """A copy without the writes of ``dropped`` runs, and what each lost (in words)."""
        values: dict[str, int] = dict.fromkeys(dropped, 0)
        records: dict[str, int] = dict.fromkeys(dropped, 0)
        kept = Batch()
        for item in self.metrics:
            if item[1] in dropped:
                values[item[1]] += 1
            else:
                kept.metrics.append(item)
        for source, target in ((self.params, kept.params), (self.tags, kept.tags)):
            for key, value in source.items():
                if key[0] in dropped:
                    values[key[0]] += 1
                else:
                    target[key] = value
        kept.runs = [run for run in self.runs if run.id not in dropped]
        kept.ends = {key: end for key, end in self.ends.items() if key not in dropped}
        for run_id, entries in self.artifacts:
            if run_id in dropped:
                records[run_id] += len(entries)
            else:
                kept.artifacts.append((run_id, entries))
        for entry in self.inputs:
            if entry[0] in dropped:
                records[entry[0]] += 1
            else:
                kept.inputs.append(entry)
        lost = {}
        for run_id in dropped:
            parts = [f"{values[run_id]:,} values"] if values[run_id] else []
            if records[run_id]:
                parts.append(f"{records[run_id]:,} artifact or input records")
            if run_id in self.ends:
                parts.append(f"its end ({self.ends[run_id][0]})")
            lost[run_id] = " and ".join(parts) or "nothing"
        return kept, lost

    def describe(self) -> str:
        named = sorted(self.run_ids())
        which = ", ".join(named[:3]) + (" ..." if len(named) > 3 else "")
        others = ""
        if self.runs or self.ends or self.artifacts or self.inputs:
            others = (
                f", {len(self.runs):,} run creations, {len(self.ends):,} run ends, "
                f"{len(self.artifacts) + len(self.inputs):,} artifact or input records"
            )
        return (
            f"{len(self.metrics):,} metric values, {len(self.params):,} params and "
            f"{len(self.tags):,} tags{others} of run(s) {which or '-'}"
        )


@dataclass
class Outcome:
    """What a committed batch found: errors to raise, runs that closed, param conflicts."""

    errors: list[ShipyardError] = field(default_factory=list)
    closed_runs: list[str] = field(default_factory=list)
    """Runs the client can no longer write to: ended by this batch, or refused by it."""
    gone_experiments: list[str] = field(default_factory=list)
    """Experiments found deleted (or missing) while creating runs in them."""
    param_conflicts: list[tuple[str, str, str]] = field(default_factory=list)
    """``(run_id, key, stored value)``."""


class Statements:
    """The dialect's statements, built once per writer."""

    def __init__(self, dialect: str) -> None:
        sqlite = dialect == "sqlite"
        # SQLite stores NaN as NULL (refused: NOT NULL), so NaN goes in as the text 'NaN',
        # which SQLite sorts above every number, as PostgreSQL sorts its NaN.
        self.nan: float | str = "NaN" if sqlite else math.nan
        value = bindparam("value", type_=Text) if sqlite else bindparam("value")
        # Params, tags and latest metrics carry their run's start time (t0004), written
        # here as the run's row holds it: on SQLite its stored text, copied byte for byte
        # (``stored_time``, ``start_time``); on PostgreSQL the timestamp.
        start = bindparam("start_time", type_=Text) if sqlite else bindparam("start_time")
        self.start_time: ColumnElement[Any] = (
            type_coerce(runs.c.start_time, Text) if sqlite else runs.c.start_time
        )
        """A run's start time, selected as the narrow tables' rows take it."""
        self.stored_time: Callable[[datetime | None], Any] = _stored_time(dialect)
        """A run's timestamp as the driver stores it: what ``start_time`` reads back."""
        columns = {
            "run_id": bindparam("run_id"),
            "key": bindparam("key"),
            "step": bindparam("step"),
            "timestamp": bindparam("timestamp"),
            "value": value,
            "start_time": start,
        }
        # The history is the bulk of every flush, so it skips SQLAlchemy's per-row work:
        # PostgreSQL takes it by COPY, SQLite by the driver's executemany of plain tuples
        # (each 2-3x faster than an executemany of parameter dicts).
        self.copy_history = dialect == "postgresql"
        columns_sql = f'{run_metrics.name} (run_id, "key", step, "timestamp", value)'
        self.insert_history = (
            f"COPY {columns_sql} FROM STDIN"
            if self.copy_history
            else f"INSERT INTO {columns_sql} VALUES (?, ?, ?, ?, ?)"  # noqa: S608 - constants
        )
        latest = dialect_insert(dialect, run_latest_metrics).values(**columns)
        table = run_latest_metrics.c
        self.upsert_latest: Insert = latest.on_conflict_do_update(
            index_elements=[table.run_id, table.key],
            set_={
                "value": latest.excluded.value,
                "step": latest.excluded.step,
                "timestamp": latest.excluded.timestamp,
            },
            where=or_(
                latest.excluded.step > table.step,
                and_(
                    latest.excluded.step == table.step,
                    latest.excluded.timestamp >= table.timestamp,
                ),
            ),
        )
        text_columns = {
            "run_id": bindparam("run_id"),
            "key": bindparam("key"),
            "value": bindparam("value"),
            "start_time": start,
        }
        self.insert_param: Insert = (
            dialect_insert(dialect, run_params).values(**text_columns).on_conflict_do_nothing()
        )
        tag = dialect_insert(dialect, run_tags).values(**text_columns)
        self.upsert_tag: Insert = tag.on_conflict_do_update(
            index_elements=[run_tags.c.run_id, run_tags.c.key],
            set_={"value": tag.excluded.value},
        )
        # On SQLite the per-row statements of a flush go to the driver as plain tuples too
        # (SQLAlchemy's processing of parameter dicts was most of a flush's CPU).
        self.driver_upsert_latest: str | None = None
        self.driver_insert_param: str | None = None
        self.driver_upsert_tag: str | None = None
        self.driver_insert_run: str | None = None
        if sqlite:
            self.driver_insert_run = _positional_sql(
                insert(runs).values({column: bindparam(column) for column in RUN_COLUMNS}),
                RUN_COLUMNS,
            )
            self.driver_upsert_latest = _positional_sql(self.upsert_latest, _LATEST_ORDER)
            self.driver_insert_param = _positional_sql(self.insert_param, _TEXT_ORDER)
            self.driver_upsert_tag = _positional_sql(self.upsert_tag, _TEXT_ORDER)


RUN_COLUMNS = (
    "id",
    "experiment_id",
    "parent_id",
    "name",
    "status",
    "lifecycle",
    "user",
    "source",
    "git_commit",
    "git_dirty",
    "code_diff_blob",
    "environment_id",
    "error",
    "start_time",
    "end_time",
    "heartbeat_at",
    "deleted_at",
)
"""The columns of a ``QueuedRun``'s row, in the order ``driver_insert_run`` takes them."""
RUN_TIMES = frozenset({"start_time", "end_time", "heartbeat_at", "deleted_at"})
_LATEST_ORDER = ("run_id", "key", "value", "step", "timestamp", "start_time")
_TEXT_ORDER = ("run_id", "key", "value", "start_time")


def _stored_time(dialect: str) -> Callable[[datetime | None], Any]:
    """What the driver is given for a ``runs.start_time`` on this dialect."""
    if dialect != "sqlite":
        return lambda value: value
    from sqlalchemy.dialects import sqlite

    engine_dialect = sqlite.dialect()
    process = runs.c.start_time.type.dialect_impl(engine_dialect).bind_processor(engine_dialect)
    if process is None:  # pragma: no cover - SQLite's DATETIME always has one
        raise RuntimeError("SQLite's DATETIME has no bind processor")
    return cast(Callable[[datetime | None], Any], process)


def _positional_sql(statement: Insert, order: tuple[str, ...]) -> str:
    """``statement`` as SQLite SQL whose ``?`` parameters come in ``order``."""
    from sqlalchemy.dialects import sqlite

    compiled = statement.compile(dialect=sqlite.dialect())
    if tuple(compiled.positiontup or ()) != order:
        raise RuntimeError(f"{statement} takes {compiled.positiontup}, not {order}")
    return str(compiled)


def write_batch(
    conn: Connection,
    statements: Statements,
    batch: Batch,
    *,
    heartbeat: Sequence[str],
    watched: set[str],
    outcome: Outcome,
    created: Mapping[str, Any] | None = None,
) -> Batch:
    """Write the values of ``batch`` (and heartbeats) in the caller's transaction.

    See the module docstring. ``created`` holds the runs this transaction inserted (by
    id: their start time as ``statements.stored_time`` gives it): they take writes, so
    only the other runs are looked up. Returns the batch without the writes of runs that
    cannot take them (reported in ``outcome``): its records and ends are the caller's to
    write.
    """
    if heartbeat:
        refresh_heartbeats(conn, heartbeat)
    starts: dict[str, Any] = dict(created or {})
    others = batch.run_ids().difference(starts)
    if others:
        batch = _drop_unwritable(conn, statements, batch, others, watched, outcome, starts)
    if batch.params:
        _write_params(conn, statements, batch.params, starts, outcome)
    if batch.tags:
        _write_tags(conn, statements, batch.tags, starts)
    if batch.metrics:
        _write_metrics(conn, statements, batch.metrics, starts)
    return batch


def refresh_heartbeats(conn: Connection, run_ids: Sequence[str]) -> None:
    """Fresh heartbeat for running runs, and revival of those marked stale meanwhile."""
    conn.execute(
        update(runs)
        .where(
            runs.c.id.in_(sorted(run_ids)),
            or_(
                runs.c.status == "running",
                and_(runs.c.status == "failed", runs.c.error.startswith(STALE_ERROR_PREFIX)),
            ),
            runs.c.lifecycle == "active",
        )
        .values(heartbeat_at=datetime.now(UTC), status="running", error=None, end_time=None)
    )


def _drop_unwritable(
    conn: Connection,
    statements: Statements,
    batch: Batch,
    run_ids: set[str],
    watched: set[str],
    outcome: Outcome,
    starts: dict[str, Any],
) -> Batch:
    """``batch`` without the writes of runs that cannot take them; notes in ``starts``
    the start time of each run found."""
    rows = conn.execute(
        select(
            runs.c.id,
            runs.c.status,
            runs.c.lifecycle,
            runs.c.error,
            statements.start_time.label("start_time"),
        ).where(runs.c.id.in_(sorted(run_ids)))
    ).all()
    state = {row.id: (row.status, row.lifecycle) for row in rows}
    starts.update((row.id, row.start_time) for row in rows)
    stale = [
        row.id
        for row in rows
        if row.id in watched
        and row.lifecycle == "active"
        and row.status == "failed"
        and (row.error or "").startswith(STALE_ERROR_PREFIX)
    ]
    if stale:  # ours, marked stale while this process was stalled: alive after all
        refresh_heartbeats(conn, stale)
        state.update((run_id, ("running", "active")) for run_id in stale)
    dropped = {run_id for run_id in run_ids if state.get(run_id) != ("running", "active")}
    if not dropped:
        return batch
    kept, lost = batch.without(dropped)
    for run_id, what_was_lost in sorted(lost.items()):
        outcome.closed_runs.append(run_id)
        if run_id not in state:
            outcome.errors.append(
                NotFoundError(
                    f"Run {run_id} no longer exists (purged?); {what_was_lost} logged "
                    "to it were dropped.",
                    hint="Log to a run that exists.",
                )
            )
            continue
        status, lifecycle = state[run_id]
        what = "was deleted" if lifecycle != "active" else f"is {status}"
        outcome.errors.append(
            RunStateError(
                f"Run {run_id} {what} before {what_was_lost} logged to it were written; "
                "they were dropped.",
                hint="Log to a running run: restore it, or start a new run.",
            )
        )
    return kept


def _write_params(
    conn: Connection,
    statements: Statements,
    params: dict[tuple[str, str], str],
    starts: dict[str, Any],
    outcome: Outcome,
) -> None:
    # Sorted by (run id, key): the order concurrent writers lock rows in (see above).
    rows = [(run_id, key, value, starts.get(run_id)) for (run_id, key), value in params.items()]
    rows.sort()
    if statements.driver_insert_param is not None:
        inserted = conn.exec_driver_sql(statements.driver_insert_param, rows).rowcount
        if inserted == len(params):  # SQLite sums an executemany's rows: none was there
            return
    else:
        conn.execute(statements.insert_param, _dicts(_TEXT_ORDER, rows))
    stored = conn.execute(
        select(run_params.c.run_id, run_params.c.key, run_params.c.value).where(
            run_params.c.run_id.in_(sorted({run_id for run_id, _ in params})),
            run_params.c.key.in_(sorted({key for _, key in params})),
        )
    ).all()
    for row in stored:
        wanted = params.get((row.run_id, row.key))
        if wanted is None or wanted == row.value:
            continue
        outcome.param_conflicts.append((row.run_id, row.key, row.value))
        outcome.errors.append(
            AlreadyExistsError(
                f"Param {row.key!r} of run {row.run_id} was already logged as "
                f"{_short(row.value)!r} (by another writer); {_short(wanted)!r} was not stored.",
                hint="Params are immutable: log the new value under another key, "
                "or start a new run.",
            )
        )


def _write_tags(
    conn: Connection,
    statements: Statements,
    tags: dict[tuple[str, str], str],
    starts: dict[str, Any],
) -> None:
    rows = [(run_id, key, value, starts.get(run_id)) for (run_id, key), value in tags.items()]
    rows.sort()
    if statements.driver_upsert_tag is not None:
        conn.exec_driver_sql(statements.driver_upsert_tag, rows)
    else:
        conn.execute(statements.upsert_tag, _dicts(_TEXT_ORDER, rows))


def _write_metrics(
    conn: Connection, statements: Statements, metrics: list[Item], starts: dict[str, Any]
) -> None:
    nan = statements.nan
    history = [
        (run_id, key, step, timestamp, nan if value != value else value)
        for _, run_id, key, value, step, timestamp in metrics
    ]
    latest: dict[tuple[str, str], tuple[int, float, float]] = {}
    for _, run_id, key, value, step, timestamp in metrics:
        best = latest.get((run_id, key))
        if best is None or step > best[0] or (step == best[0] and timestamp >= best[1]):
            latest[(run_id, key)] = (step, timestamp, value)
    if statements.copy_history:
        cursor = cast(Any, conn.connection.dbapi_connection).cursor()
        with cursor.copy(statements.insert_history) as copy:
            for row in history:
                copy.write_row(row)
    else:
        conn.exec_driver_sql(statements.insert_history, history)
    rows = [
        (run_id, key, nan if value != value else value, step, timestamp, starts.get(run_id))
        for (run_id, key), (step, timestamp, value) in latest.items()
    ]
    rows.sort()  # (run id, key) is unique: values are never compared
    if statements.driver_upsert_latest is not None:
        conn.exec_driver_sql(statements.driver_upsert_latest, rows)
    else:
        conn.execute(statements.upsert_latest, _dicts(_LATEST_ORDER, rows))


def _dicts(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows as the parameter dicts of a SQLAlchemy statement (PostgreSQL's path)."""
    return [dict(zip(names, row, strict=True)) for row in rows]


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
