"""Deleting, restoring and purging runs and experiments; failing runs whose process died.

Deletion is soft (``lifecycle = 'deleted'`` and ``deleted_at``) and keeps two invariants
that make restoring and purging safe:

- an active run has an active parent and an active experiment: deleting a run deletes
  its descendants, deleting an experiment deletes its runs, and restoring a run whose
  parent or experiment is deleted is refused;
- restoring brings back what was deleted *together* (same ``deleted_at``): restoring an
  experiment restores the runs its deletion deleted, not runs deleted earlier on their own.

``purge`` removes deleted records for good: their rows (params, metrics, tags, inputs and
artifact rows go with the run by ``ON DELETE CASCADE``) and their blob references, so the
next ``store.gc.collect_garbage`` frees artifact bytes no other record uses.

>>> with store.transaction() as conn:
...     delete_run(conn, run_id, actor="ana")
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from shipyard.core.errors import NotFoundError
from shipyard.store.metadata import MetadataStore
from shipyard.store.schema import blob_refs
from shipyard.store.schema.tracking import experiments, runs
from shipyard.tracking.batches import STALE_ERROR_PREFIX
from shipyard.tracking.records import Experiment
from shipyard.tracking.validation import RunStateError, TrackingInputError

__all__ = [
    "DEFAULT_STALE_AFTER_SECONDS",
    "any_stale",
    "delete_experiment",
    "delete_run",
    "mark_stale_runs",
    "purge",
    "restore_experiment",
    "restore_run",
    "run_row",
]

DEFAULT_STALE_AFTER_SECONDS = 300.0
"""A running run whose heartbeat is older than this is taken for dead (heartbeats: 5 s)."""
_CHUNK = 500


def run_row(conn: Connection, run_id: str) -> tuple[str, str, str, str | None]:
    """``(experiment_id, status, lifecycle, parent_id)`` of a run; ``NotFoundError`` if none."""
    if not isinstance(run_id, str):
        raise TrackingInputError(
            f"A run id is text (32 hex digits), not {type(run_id).__name__} {run_id!r}.",
            hint="Pass run.id.",
        )
    row = conn.execute(
        select(runs.c.experiment_id, runs.c.status, runs.c.lifecycle, runs.c.parent_id).where(
            runs.c.id == run_id
        )
    ).first()
    if row is None:
        raise NotFoundError(
            f"Run {run_id!r} does not exist.",
            hint="Check the id; `shipyard runs list` shows the runs of an experiment.",
        )
    return row.experiment_id, row.status, row.lifecycle, row.parent_id


def delete_run(conn: Connection, run_id: str, *, actor: str, store: MetadataStore) -> list[str]:
    """Soft-delete a run and its active descendants; return their ids."""
    _, _, lifecycle, _ = run_row(conn, run_id)
    if lifecycle == "deleted":
        return []
    subtree = [run_id, *_descendants(conn, [run_id])]
    now = datetime.now(UTC)
    deleted: list[str] = []
    for chunk in _chunks(subtree):
        result = conn.execute(
            update(runs)
            .where(runs.c.id.in_(chunk), runs.c.lifecycle == "active")
            .values(lifecycle="deleted", deleted_at=now)
            .returning(runs.c.id)
        )
        deleted.extend(result.scalars())
    store.record_event(conn, actor, "run.delete", "run", run_id, {"runs": len(deleted)})
    return deleted


def restore_run(conn: Connection, run_id: str, *, actor: str, store: MetadataStore) -> list[str]:
    """Restore a deleted run and the descendants deleted with it; return their ids."""
    experiment_id, _, lifecycle, parent_id = run_row(conn, run_id)
    if lifecycle == "active":
        return []
    experiment = conn.execute(
        select(experiments.c.name, experiments.c.lifecycle).where(experiments.c.id == experiment_id)
    ).one()
    if experiment.lifecycle == "deleted":
        raise RunStateError(
            f"Run {run_id} belongs to experiment {experiment.name!r}, which is deleted.",
            hint="Restore the experiment first (restore_experiment).",
        )
    if parent_id is not None:
        _, _, parent_lifecycle, _ = run_row(conn, parent_id)
        if parent_lifecycle == "deleted":
            raise RunStateError(
                f"Run {run_id} is nested in run {parent_id}, which is deleted.",
                hint=f"Restore the parent run {parent_id} first.",
            )
    deleted_at = conn.execute(select(runs.c.deleted_at).where(runs.c.id == run_id)).scalar_one()
    subtree = [run_id, *_descendants(conn, [run_id])]
    restored: list[str] = []
    for chunk in _chunks(subtree):
        result = conn.execute(
            update(runs)
            .where(runs.c.id.in_(chunk), runs.c.deleted_at == deleted_at)
            .values(lifecycle="active", deleted_at=None)
            .returning(runs.c.id)
        )
        restored.extend(result.scalars())
    store.record_event(conn, actor, "run.restore", "run", run_id, {"runs": len(restored)})
    return restored


def delete_experiment(
    conn: Connection, experiment: Experiment, *, actor: str, store: MetadataStore
) -> int:
    """Soft-delete an experiment and its active runs; return how many runs were deleted."""
    if experiment.lifecycle == "deleted":
        return 0
    now = datetime.now(UTC)
    conn.execute(
        update(experiments)
        .where(experiments.c.id == experiment.id)
        .values(lifecycle="deleted", deleted_at=now)
    )
    result = conn.execute(
        update(runs)
        .where(runs.c.experiment_id == experiment.id, runs.c.lifecycle == "active")
        .values(lifecycle="deleted", deleted_at=now)
    )
    store.record_event(
        conn,
        actor,
        "experiment.delete",
        "experiment",
        experiment.id,
        {"name": experiment.name, "runs": result.rowcount},
    )
    return int(result.rowcount)


def restore_experiment(
    conn: Connection, experiment: Experiment, *, actor: str, store: MetadataStore
) -> int:
    """Restore a deleted experiment and the runs deleted with it; return how many runs."""
    if experiment.lifecycle == "active":
        return 0
    conn.execute(
        update(experiments)
        .where(experiments.c.id == experiment.id)
        .values(lifecycle="active", deleted_at=None)
    )
    result = conn.execute(
        update(runs)
        .where(
            runs.c.experiment_id == experiment.id,
            runs.c.lifecycle == "deleted",
            runs.c.deleted_at == experiment.deleted_at,
        )
        .values(lifecycle="active", deleted_at=None)
    )
    store.record_event(
        conn,
        actor,
        "experiment.restore",
        "experiment",
        experiment.id,
        {"name": experiment.name, "runs": result.rowcount},
    )
    return int(result.rowcount)


def purge(
    conn: Connection, *, older_than_seconds: float, actor: str, store: MetadataStore
) -> tuple[int, int]:
    """Permanently remove runs and experiments deleted at least ``older_than_seconds`` ago.

    Returns ``(runs removed, experiments removed)``. A run is kept while a run nested in
    it is still active (which the invariants above prevent, short of concurrent writers).
    """
    if older_than_seconds < 0:
        raise TrackingInputError(
            f"older_than_seconds must be >= 0, not {older_than_seconds}.",
            hint="Pass 0 to purge everything deleted, or an age such as 30 * 86400.",
        )
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    gone_experiments = list(
        conn.execute(
            select(experiments.c.id, experiments.c.name).where(
                experiments.c.lifecycle == "deleted", experiments.c.deleted_at <= cutoff
            )
        )
    )
    candidates = set(
        conn.execute(
            select(runs.c.id).where(runs.c.lifecycle == "deleted", runs.c.deleted_at <= cutoff)
        ).scalars()
    )
    for chunk in _chunks([row.id for row in gone_experiments]):
        candidates.update(
            conn.execute(select(runs.c.id).where(runs.c.experiment_id.in_(chunk))).scalars()
        )
    candidates.update(_descendants(conn, sorted(candidates)))
    ordered = _deepest_first(conn, candidates)
    for chunk in _chunks(ordered):
        conn.execute(
            delete(blob_refs).where(
                blob_refs.c.owner_kind == "run", blob_refs.c.owner_id.in_(chunk)
            )
        )
        conn.execute(delete(runs).where(runs.c.id.in_(chunk)))
    removed_experiments = 0
    for row in gone_experiments:
        left = conn.execute(
            select(runs.c.id).where(runs.c.experiment_id == row.id).limit(1)
        ).first()
        if left is not None:
            continue
        conn.execute(delete(experiments).where(experiments.c.id == row.id))
        store.record_event(
            conn, actor, "experiment.purge", "experiment", row.id, {"name": row.name}
        )
        removed_experiments += 1
    for run_id in ordered:
        store.record_event(conn, actor, "run.purge", "run", run_id)
    return len(ordered), removed_experiments


def any_stale(conn: Connection, *, max_silence_seconds: float) -> bool:
    """Whether some running run's heartbeat is older than ``max_silence_seconds`` (a read)."""
    _check_silence(max_silence_seconds)
    cutoff = datetime.now(UTC) - timedelta(seconds=max_silence_seconds)
    query = select(runs.c.id).where(runs.c.status == "running", runs.c.heartbeat_at < cutoff)
    return conn.execute(query.limit(1)).first() is not None


def mark_stale_runs(
    conn: Connection, *, max_silence_seconds: float, exclude: Collection[str] = ()
) -> list[str]:
    """Fail running runs whose heartbeat is older than ``max_silence_seconds``; return them.

    Their ``end_time`` becomes their last heartbeat and their error says why. Runs in
    ``exclude`` (the caller's own, known to be alive) are left alone.
    """
    _check_silence(max_silence_seconds)
    cutoff = datetime.now(UTC) - timedelta(seconds=max_silence_seconds)
    stale = [
        run_id
        for run_id in conn.execute(
            select(runs.c.id).where(runs.c.status == "running", runs.c.heartbeat_at < cutoff)
        ).scalars()
        if run_id not in exclude
    ]
    marked: list[str] = []
    error = (
        f"{STALE_ERROR_PREFIX} no heartbeat for over {max_silence_seconds:g} s; the process "
        "running it stopped without ending it (killed, crashed or lost its machine)."
    )
    for chunk in _chunks(stale):
        result = conn.execute(
            update(runs)
            .where(runs.c.id.in_(chunk), runs.c.status == "running", runs.c.heartbeat_at < cutoff)
            .values(status="failed", error=error, end_time=runs.c.heartbeat_at)
            .returning(runs.c.id)
        )
        marked.extend(result.scalars())
    return sorted(marked)


def _check_silence(max_silence_seconds: float) -> None:
    if not max_silence_seconds >= 0:  # also refuses NaN
        raise TrackingInputError(
            f"max_silence_seconds must be >= 0, not {max_silence_seconds}.",
            hint=f"The default is {DEFAULT_STALE_AFTER_SECONDS:.0f} s.",
        )


def _descendants(conn: Connection, roots: Sequence[str]) -> list[str]:
    found: list[str] = []
    seen = set(roots)
    frontier = list(roots)
    while frontier:
        children: list[str] = []
        for chunk in _chunks(frontier):
            children.extend(
                child
                for child in conn.execute(
                    select(runs.c.id).where(runs.c.parent_id.in_(chunk))
                ).scalars()
                if child not in seen
            )
        seen.update(children)
        found.extend(children)
        frontier = children
    return found


def _deepest_first(conn: Connection, run_ids: set[str]) -> list[str]:
    """The runs of ``run_ids`` that can go, children before parents (the FK needs it)."""
    parents: dict[str, str | None] = {}
    for chunk in _chunks(sorted(run_ids)):
        parents.update(
            (row.id, row.parent_id)
            for row in conn.execute(select(runs.c.id, runs.c.parent_id).where(runs.c.id.in_(chunk)))
        )
    # A run with a child outside the set (an active run nested in it) must stay, and so
    # must its ancestors.
    blocked: set[str] = set()
    for chunk in _chunks(sorted(parents)):
        blocked.update(
            row.parent_id
            for row in conn.execute(
                select(runs.c.id, runs.c.parent_id).where(runs.c.parent_id.in_(chunk))
            )
            if row.id not in parents
        )
    for run_id in list(blocked):
        parent = parents.get(run_id)
        while parent is not None and parent not in blocked:
            blocked.add(parent)
            parent = parents.get(parent)

    def depth(run_id: str) -> int:
        level, parent = 0, parents.get(run_id)
        while parent is not None and parent in parents:
            level, parent = level + 1, parents.get(parent)
        return level

    keep = [run_id for run_id in parents if run_id not in blocked]
    return sorted(keep, key=lambda run_id: (-depth(run_id), run_id))


def _chunks(items: Iterable[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch
