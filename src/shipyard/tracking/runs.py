"""Runs as the write side sees them: starting, reopening and ending runs in the database,
and the client's cache of the runs it writes to.

A client creates a run without a round trip: ``prepare_run`` builds the ``Run`` record
(its id is made here) and the ``QueuedRun`` the writer inserts with the next flush, in
the same transaction as the run's values and end (``insert_queued_runs`` first,
``write_run_records`` last). ``TrackingClient`` is the public way in; the other
functions take an open transaction.

A run created and ended within one flush (a short run, or many runs logged in a loop)
is inserted ended, with no update of its row afterwards.

>>> run, queued = prepare_run(RunStart(experiment, name="gbm", user="ana"))
>>> with store.transaction() as conn:
...     batch, created = insert_queued_runs(
...         conn, store, Statements(store.dialect), Batch(runs=[queued]), Outcome()
...     )
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Insert, Table, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from shipyard.core.errors import AlreadyExistsError
from shipyard.core.ids import new_id, parse_content_id
from shipyard.core.references import validate_name as validate_object_name
from shipyard.store.metadata import BlobRef, MetadataStore
from shipyard.store.schema.tracking import (
    environments,
    experiments,
    run_inputs,
    run_params,
    run_tags,
    runs,
)
from shipyard.tracking import artifacts as artifact_tree
from shipyard.tracking.batches import (
    RUN_COLUMNS,
    RUN_TIMES,
    STALE_ERROR_PREFIX,
    Batch,
    Outcome,
    QueuedRun,
    Statements,
    dialect_insert,
)
from shipyard.tracking.capture import CodeVersion, Environment
from shipyard.tracking.lifecycle import run_row
from shipyard.tracking.records import (
    TERMINAL_STATUSES,
    ArtifactEntry,
    DatasetInput,
    Experiment,
    Run,
)
from shipyard.tracking.validation import RunStateError, TrackingInputError, validate_key

__all__ = [
    "CODE_DIFF_PATH",
    "MAX_ERROR_LENGTH",
    "RunStart",
    "RunState",
    "RunStates",
    "check_input",
    "check_status",
    "check_writable",
    "end_run",
    "insert_or_ignore",
    "insert_queued_runs",
    "not_writable",
    "prepare_run",
    "reopen_run",
    "stored_params",
    "write_run_records",
]

CODE_DIFF_PATH = "code.diff"
"""Where a dirty run's ``git diff HEAD`` appears in its artifact tree (kind ``diff``)."""
MAX_ERROR_LENGTH = 10_000
"""A run's error text is cut at this many characters."""
_MAX_ROLE_LENGTH = 64


@dataclass(frozen=True)
class RunStart:
    """Everything a new run row is made of."""

    experiment: Experiment
    user: str
    name: str | None = None
    parent_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    code: CodeVersion | None = None
    diff_blob: str | None = None
    """The blob holding ``code.diff``, already put into the artifact store."""
    environment: Environment | None = None
    store_environment: bool = True
    """Insert the environment row (skipped when this client already stored it)."""


@dataclass
class RunState:
    """What a client knows of a run it writes to."""

    experiment_id: str
    writable: bool
    params: dict[str, str] = field(default_factory=dict)


class RunStates:
    """A client's cache of the runs it writes to: their state and their logged params.

    ``get`` is the hot path (one dict lookup); ``load`` asks the database for a run this
    client has not seen and raises why it cannot be written to.
    """

    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata
        self._states: dict[str, RunState] = {}
        self.lock = threading.RLock()

    def get(self, run_id: str) -> RunState | None:
        return self._states.get(run_id) if run_id.__class__ is str else None

    def put(self, run_id: str, state: RunState) -> None:
        with self.lock:
            self._states[run_id] = state

    def load(self, run_id: str) -> RunState:
        """The state of a run that can be written to; ``RunStateError`` / ``NotFoundError``."""
        with self._metadata.connect() as conn:
            experiment_id, status, lifecycle, _ = run_row(conn, run_id)
            writable = status == "running" and lifecycle == "active"
            params = stored_params(conn, run_id) if writable else {}
        if not writable:
            raise not_writable(run_id, status, lifecycle)
        with self.lock:
            state = self._states.get(run_id)
            if state is None or not state.writable:
                state = self._states[run_id] = RunState(experiment_id, True, params)
        return state

    def claim_params(
        self, run_id: str, state: RunState, params: Mapping[str, str]
    ) -> dict[str, str]:
        """Record ``params`` as logged; return the new ones. A different value is refused."""
        with self.lock:
            for key, value in params.items():
                known = state.params.get(key)
                if known is not None and known != value:
                    raise AlreadyExistsError(
                        f"Param {key!r} of run {run_id} is already {_short(known)!r}; "
                        f"cannot log {_short(value)!r}.",
                        hint="Params are immutable: log the new value under another key, "
                        "or start a new run.",
                    )
            new = {key: value for key, value in params.items() if key not in state.params}
            state.params.update(new)
        return new

    def writable_ids(self) -> set[str]:
        with self.lock:
            return {run_id for run_id, state in self._states.items() if state.writable}

    def forget(self, which: Callable[[str, RunState], bool]) -> list[str]:
        """Drop the states ``which`` selects (the next write reloads them); return their ids."""
        with self.lock:
            gone = [run_id for run_id, state in self._states.items() if which(run_id, state)]
            for run_id in gone:
                del self._states[run_id]
        return gone


def insert_or_ignore(dialect: str, table: Table) -> Insert:
    return dialect_insert(dialect, table).on_conflict_do_nothing()


def prepare_run(start: RunStart) -> tuple[Run, QueuedRun]:
    """A new running run (its id made here) and the rows the writer will insert for it."""
    run_id = new_id()
    now = datetime.now(UTC)
    code, environment = start.code, start.environment
    run = Run(
        id=run_id,
        experiment_id=start.experiment.id,
        name=start.name or f"run-{run_id[:8]}",
        status="running",
        lifecycle="active",
        user=start.user,
        start_time=now,
        end_time=None,
        heartbeat_at=now,
        parent_id=start.parent_id,
        source=start.source,
        git_commit=code.commit if code else None,
        git_dirty=code.dirty if code else None,
        code_diff_blob=start.diff_blob,
        environment_id=environment.id if environment else None,
        tags=dict(start.tags),
    )
    environment_row = None
    if environment is not None and start.store_environment:
        environment_row = {
            "id": environment.id,
            "python_version": environment.python_version,
            "platform": environment.platform,
            "packages": environment.packages,
            "created_at": now,
        }
    diff = None
    if start.diff_blob is not None and code is not None:
        diff = ArtifactEntry(CODE_DIFF_PATH, start.diff_blob, len(code.diff), "diff")
    queued = QueuedRun(
        row={column: getattr(run, column) for column in RUN_COLUMNS},
        experiment_name=start.experiment.name,
        tags=dict(start.tags),
        environment=environment_row,
        diff=diff,
    )
    return run, queued


def insert_queued_runs(
    conn: Connection,
    metadata: MetadataStore,
    statements: Statements,
    batch: Batch,
    outcome: Outcome,
) -> tuple[Batch, dict[str, Any]]:
    """Insert the runs ``batch`` creates (in queue order), with their tags, environment
    and code diff. Returns the batch without the runs that could not be created and
    without the ends written here, and the runs created, by id, with their start time as
    ``statements.stored_time`` gives it (for ``write_batch``).

    A run that the batch also ends is inserted ended (its values, written after it in
    the same transaction, were logged before its end). A run whose experiment or parent
    run was deleted (or purged) since the client checked is not created: it and
    everything queued for it are dropped, and the error says so (reported to the client
    by its next call).
    """
    queued = batch.runs
    experiment_ids = sorted({run.row["experiment_id"] for run in queued})
    active = set(
        conn.execute(
            select(experiments.c.id).where(
                experiments.c.id.in_(experiment_ids), experiments.c.lifecycle == "active"
            )
        ).scalars()
    )
    created_here = {run.id for run in queued}
    outside = sorted(
        {run.row["parent_id"] for run in queued if run.row["parent_id"] is not None} - created_here
    )
    parents = set()
    if outside:
        parents = set(
            conn.execute(
                select(runs.c.id).where(runs.c.id.in_(outside), runs.c.lifecycle == "active")
            ).scalars()
        )
    accepted: list[QueuedRun] = []
    refused: dict[str, str] = {}
    for run in queued:
        parent_id = run.row["parent_id"]
        if run.row["experiment_id"] not in active:
            refused[run.id] = f"its experiment {run.experiment_name!r} was deleted"
            outcome.gone_experiments.append(run.row["experiment_id"])
        elif parent_id is not None and parent_id not in parents:
            refused[run.id] = f"its parent run {parent_id} was deleted"
        else:
            accepted.append(run)
            parents.add(run.id)
    if refused:
        batch, lost = batch.without(set(refused))
        for run_id, reason in refused.items():
            outcome.closed_runs.append(run_id)
            outcome.errors.append(
                RunStateError(
                    f"Run {run_id} was not created: {reason} (by another client) before "
                    f"it was written; it and {lost[run_id]} logged to it were dropped.",
                    hint="Restore the experiment or parent run, or start the run elsewhere.",
                )
            )
    if not accepted:
        return batch, {}
    environment_rows = {
        run.environment["id"]: run.environment for run in accepted if run.environment
    }
    if environment_rows:
        conn.execute(
            insert_or_ignore(metadata.dialect, environments),
            [environment_rows[key] for key in sorted(environment_rows)],
        )
    ends = batch.ends
    rows = []
    for run in accepted:
        end = ends.get(run.id)
        if end is None:
            rows.append(run.row)
            continue
        status, error, ended_at = end
        rows.append(
            {
                **run.row,
                "status": status,
                "error": error,
                "end_time": ended_at,
                "heartbeat_at": ended_at,
            }
        )
    stored_time = statements.stored_time
    if statements.driver_insert_run is not None:  # SQLite: plain tuples, as write_batch's
        conn.exec_driver_sql(
            statements.driver_insert_run,
            [
                tuple(
                    stored_time(row[column]) if column in RUN_TIMES else row[column]
                    for column in RUN_COLUMNS
                )
                for row in rows
            ],
        )
    else:
        conn.execute(insert(runs), rows)
    created = {run.id: stored_time(run.row["start_time"]) for run in accepted}
    tag_rows = [
        {"run_id": run.id, "key": key, "value": value, "start_time": run.row["start_time"]}
        for run in accepted
        for key, value in run.tags.items()
    ]
    if tag_rows:
        conn.execute(insert(run_tags), tag_rows)
    for run in accepted:
        if run.diff is not None:
            artifact_tree.record_entries(conn, metadata, run.id, [run.diff])
            # Its own role too: replacing the artifact at code.diff must not orphan the column.
            metadata.add_blob_refs(conn, [BlobRef(run.diff.blob_id, "run", run.id, "code_diff")])
    ended_here = [run.id for run in accepted if run.id in ends]
    if ended_here:
        outcome.closed_runs.extend(ended_here)
        # A copy: the writer retries the batch it was given when a transaction fails.
        batch = replace(batch, ends={k: v for k, v in ends.items() if k not in created})
    return batch, created


_END_RUN = (
    update(runs)
    .where(runs.c.id == bindparam("ended_id"))
    .values(
        status=bindparam("new_status"),
        end_time=bindparam("ended_at"),
        heartbeat_at=bindparam("ended_at"),
        error=bindparam("new_error"),
    )
)


def write_run_records(
    conn: Connection, metadata: MetadataStore, batch: Batch, outcome: Outcome
) -> None:
    """Write the artifact and input records of ``batch``, then end the runs it ends.

    ``batch`` holds only runs that can take writes (``write_batch`` dropped the others),
    so every run ended here is running.
    """
    for run_id, entries in batch.artifacts:
        artifact_tree.record_entries(conn, metadata, run_id, entries)
    if batch.inputs:
        conn.execute(
            insert_or_ignore(metadata.dialect, run_inputs),
            [
                {"run_id": run_id, "dataset": dataset, "version_id": version, "role": role}
                for run_id, dataset, version, role in batch.inputs
            ],
        )
    if batch.ends:
        conn.execute(
            _END_RUN,
            [
                {
                    "ended_id": run_id,
                    "new_status": status,
                    "ended_at": ended_at,
                    "new_error": error,
                }
                for run_id, (status, error, ended_at) in sorted(batch.ends.items())
            ],
        )
        outcome.closed_runs.extend(sorted(batch.ends))


def reopen_run(conn: Connection, run_id: str) -> RunState:
    """Set an ended run running again; return its state. Deleted runs are refused."""
    experiment_id, status, lifecycle, _ = run_row(conn, run_id)
    if lifecycle == "deleted":
        raise RunStateError(f"Run {run_id} is deleted.", hint="Restore it first (restore_run).")
    if status != "running":
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(status="running", end_time=None, error=None, heartbeat_at=datetime.now(UTC))
        )
    return RunState(experiment_id, True, stored_params(conn, run_id))


def check_status(run_id: str, status: str) -> None:
    """Refuse a status a run cannot end with."""
    if status not in TERMINAL_STATUSES:
        raise TrackingInputError(
            f"Cannot end run {run_id} with status {status!r}.",
            hint=f"Use one of: {', '.join(sorted(TERMINAL_STATUSES))}.",
        )


def end_run(conn: Connection, run_id: str, status: str, error: str | None) -> str:
    """End a running run with ``status``; return its experiment id."""
    check_status(run_id, status)
    experiment_id, current, lifecycle, _ = run_row(conn, run_id)
    if lifecycle == "deleted":
        raise RunStateError(f"Run {run_id} is deleted; it cannot be ended.")
    if current != "running" and not (current == "failed" and _is_stale(conn, run_id)):
        raise RunStateError(
            f"Run {run_id} already ended ({current}).",
            hint="Resume it first (resume_run) to log to it again.",
        )
    now = datetime.now(UTC)
    conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            status=status,
            end_time=now,
            heartbeat_at=now,
            error=error[:MAX_ERROR_LENGTH] if error else None,
        )
    )
    return experiment_id


def check_input(dataset: str, version_id: str, role: str) -> DatasetInput:
    """A checked link to a dataset version (``version_id``: its content id)."""
    validate_object_name(dataset, what="dataset name")
    parse_content_id(version_id)
    validate_key(role, "input role")
    if len(role) > _MAX_ROLE_LENGTH:
        raise TrackingInputError(
            f"The input role {role[:70]!r}... is longer than {_MAX_ROLE_LENGTH} characters.",
            hint="Use train, validation, test or another short word.",
        )
    return DatasetInput(dataset=dataset, version_id=version_id, role=role)


def check_writable(conn: Connection, run_id: str) -> None:
    """Raise why a run cannot take writes (unknown, ended, deleted); pass if it can."""
    _, status, lifecycle, _ = run_row(conn, run_id)
    if status != "running" or lifecycle != "active":
        raise not_writable(run_id, status, lifecycle)


def stored_params(conn: Connection, run_id: str) -> dict[str, str]:
    rows = conn.execute(
        select(run_params.c.key, run_params.c.value).where(run_params.c.run_id == run_id)
    )
    return {row.key: row.value for row in rows}


def not_writable(run_id: str, status: str, lifecycle: str) -> RunStateError:
    if lifecycle == "deleted":
        return RunStateError(
            f"Run {run_id} is deleted; nothing more can be logged to it.",
            hint="Restore it (restore_run) first, or start a new run.",
        )
    return RunStateError(
        f"Run {run_id} is {status}; nothing more can be logged to it.",
        hint="Start a new run, or resume this one (resume_run / start_run(run_id=...)).",
    )


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _is_stale(conn: Connection, run_id: str) -> bool:
    error = conn.execute(select(runs.c.error).where(runs.c.id == run_id)).scalar_one()
    return bool(error) and str(error).startswith(STALE_ERROR_PREFIX)
