"""Reading and writing pipeline run records (``pipeline_runs``, ``pipeline_steps``).

A pipeline run's status, times and error are its tracking run's: reads join ``runs``.
When that run ended (a crash detected by the heartbeat check, Ctrl-C, a failure) while
some of its steps were still recorded as running or pending, reads report those steps as
ended the same way, so ``shipyard pipelines show`` never shows a step running forever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection, Row

from shipyard.core.errors import NotFoundError
from shipyard.pipelines.graph import Plan
from shipyard.pipelines.records import PipelineRun, StepRecord
from shipyard.store.schema.pipelines import pipeline_runs, pipeline_steps
from shipyard.store.schema.tracking import runs

__all__ = [
    "find_run_ids",
    "get_run",
    "insert_run",
    "last_key_parts",
    "list_runs",
    "start_attempt",
    "update_step",
    "update_steps",
]

_DEAD_STEP = {"running": None, "pending": "skipped"}


def insert_run(
    conn: Connection,
    *,
    run_id: str,
    plan: Plan,
    reference: str | None,
    seed: int,
    executor: str,
) -> None:
    """Record a new pipeline run and all its steps as pending."""
    conn.execute(
        insert(pipeline_runs).values(
            run_id=run_id,
            pipeline=plan.pipeline,
            reference=reference,
            params=dict(plan.params),
            seed=seed,
            executor=executor,
            attempt=1,
        )
    )
    conn.execute(
        insert(pipeline_steps), [_pending_row(run_id, plan, node.name) for node in plan.nodes]
    )


def _pending_row(run_id: str, plan: Plan, name: str) -> dict[str, Any]:
    node = plan.node(name)
    return {
        "run_id": run_id,
        "step": node.name,
        "function": node.step.reference[:512],
        "position": node.position,
        "upstream": list(node.upstream),
        "status": "pending",
        "attempts": 0,
        "inputs": {},
        "outputs": {},
    }


def start_attempt(
    conn: Connection, run_id: str, plan: Plan, executor: str, keep: Sequence[str]
) -> None:
    """Prepare a resumed run: count the attempt, reset every step but ``keep`` to pending."""
    current = conn.execute(
        select(pipeline_runs.c.attempt).where(pipeline_runs.c.run_id == run_id)
    ).scalar_one()
    conn.execute(
        update(pipeline_runs)
        .where(pipeline_runs.c.run_id == run_id)
        .values(attempt=current + 1, executor=executor)
    )
    kept = set(keep)
    conn.execute(
        delete(pipeline_steps).where(
            pipeline_steps.c.run_id == run_id, pipeline_steps.c.step.not_in(kept)
        )
    )
    fresh = [_pending_row(run_id, plan, node.name) for node in plan.nodes if node.name not in kept]
    if fresh:
        conn.execute(insert(pipeline_steps), fresh)


def update_step(conn: Connection, run_id: str, step: str, values: Mapping[str, Any]) -> None:
    update_steps(conn, run_id, {step: values})


def update_steps(conn: Connection, run_id: str, changes: Mapping[str, Mapping[str, Any]]) -> None:
    """Apply ``{step: {column: value}}``, one executemany per set of columns changed."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for step, values in changes.items():
        columns = tuple(sorted(values))
        row = {f"v_{column}": value for column, value in values.items()}
        groups.setdefault(columns, []).append({"b_run": run_id, "b_step": step, **row})
    for columns, rows in groups.items():
        statement = (
            update(pipeline_steps)
            .where(
                pipeline_steps.c.run_id == bindparam("b_run"),
                pipeline_steps.c.step == bindparam("b_step"),
            )
            .values({column: bindparam(f"v_{column}") for column in columns})
        )
        conn.execute(statement, rows)


def last_key_parts(
    conn: Connection, pipeline: str, step: str, before_run: str
) -> Mapping[str, Any] | None:
    """The key parts of the latest earlier execution of ``pipeline``'s step ``step``."""
    query = (
        select(pipeline_steps.c.key_parts)
        .join(pipeline_runs, pipeline_runs.c.run_id == pipeline_steps.c.run_id)
        .where(
            pipeline_runs.c.pipeline == pipeline,
            pipeline_steps.c.step == step,
            pipeline_steps.c.run_id != before_run,
            pipeline_steps.c.key_parts.is_not(None),
            pipeline_steps.c.status.in_(("finished", "cached", "failed")),
        )
        .order_by(pipeline_steps.c.started_at.desc())
        .limit(1)
    )
    parts = conn.execute(query).scalar_one_or_none()
    return dict(parts) if parts else None


def get_run(conn: Connection, run_id: str) -> PipelineRun:
    """A pipeline run with its steps; ``NotFoundError`` if there is none with that id."""
    row = conn.execute(_runs_query().where(pipeline_runs.c.run_id == run_id)).first()
    if row is None:
        raise NotFoundError(
            f"No pipeline run {run_id!r}.",
            hint="`shipyard pipelines history` lists pipeline runs and their ids.",
        )
    steps = conn.execute(
        select(pipeline_steps)
        .where(pipeline_steps.c.run_id == run_id)
        .order_by(pipeline_steps.c.position)
    ).all()
    return _run_record(row, tuple(_step_record(step, row.status) for step in steps))


def find_run_ids(conn: Connection, prefix: str) -> list[str]:
    """Pipeline run ids starting with ``prefix`` (at most 2, to detect ambiguity)."""
    query = select(pipeline_runs.c.run_id).where(pipeline_runs.c.run_id.startswith(prefix)).limit(2)
    return list(conn.execute(query).scalars())


def list_runs(conn: Connection, pipeline: str | None = None, limit: int = 20) -> list[PipelineRun]:
    """Pipeline runs, newest first (without their steps)."""
    query = _runs_query().order_by(pipeline_runs.c.created_at.desc()).limit(limit)
    if pipeline is not None:
        query = query.where(pipeline_runs.c.pipeline == pipeline)
    return [_run_record(row, ()) for row in conn.execute(query)]


def _runs_query() -> Any:
    return select(
        pipeline_runs,
        runs.c.status,
        runs.c.start_time,
        runs.c.end_time,
        runs.c.error,
    ).join(runs, and_(runs.c.id == pipeline_runs.c.run_id), isouter=True)


def _run_record(row: Row[Any], steps: tuple[StepRecord, ...]) -> PipelineRun:
    return PipelineRun(
        run_id=row.run_id,
        pipeline=row.pipeline,
        reference=row.reference,
        params=dict(row.params),
        seed=int(row.seed),
        executor=row.executor,
        attempt=int(row.attempt),
        status=row.status or "deleted",
        start_time=row.start_time,
        end_time=row.end_time,
        error=row.error,
        steps=steps,
    )


def _step_record(row: Row[Any], run_status: str | None) -> StepRecord:
    status = row.status
    error = row.error
    ended_at: datetime | None = row.ended_at
    if run_status in ("failed", "killed") and status in _DEAD_STEP:
        status = _DEAD_STEP[status] or run_status
        if status != "skipped" and error is None:
            error = f"the pipeline run ended {run_status} while this step was running"
    return StepRecord(
        run_id=row.run_id,
        step=row.step,
        function=row.function,
        position=row.position,
        upstream=tuple(row.upstream),
        status=status,
        attempts=row.attempts,
        inputs=dict(row.inputs),
        outputs=dict(row.outputs),
        cache_key=row.cache_key,
        key_parts=dict(row.key_parts) if row.key_parts else None,
        step_run_id=row.step_run_id,
        source_run_id=row.source_run_id,
        error=error,
        started_at=row.started_at,
        ended_at=ended_at,
    )
