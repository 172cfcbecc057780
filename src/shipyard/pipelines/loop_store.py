"""Closed-loop episodes as stored (``store/schema/loop.py``): the :class:`LoopRun` record,
reading and writing episodes and their events, and :func:`loop_history`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import BackendError, DataContractError, NotFoundError

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.models.registry import ModelRegistry
    from shipyard.store.metadata import MetadataStore

__all__ = [
    "LoopRun",
    "add_event",
    "create_run",
    "get_run",
    "list_runs",
    "loop_history",
    "running_run",
    "update_run",
]


@dataclass(frozen=True)
class LoopRun:
    """One episode of a policy as stored, with its events (oldest first)."""

    id: int
    policy: str
    model: str
    trigger: str
    stage: str
    status: str
    champion_version: int | None
    challenger_version: int | None
    outcome: str | None
    detail: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    events: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "policy": self.policy,
            "model": self.model,
            "trigger": self.trigger,
            "stage": self.stage,
            "status": self.status,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "outcome": self.outcome,
            "detail": dict(self.detail),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "events": [{**event, "at": event["at"].isoformat()} for event in self.events],
        }


def _json(value: Mapping[str, Any]) -> Any:
    from shipyard.evaluation.report import clean_json

    return clean_json(dict(value))


def create_run(
    metadata: MetadataStore,
    *,
    policy: str,
    model: str,
    trigger: str,
    champion: int | None,
    detail: Mapping[str, Any],
    now: datetime,
) -> int:
    from sqlalchemy import insert

    from shipyard.store.schema.loop import loop_runs

    values = {
        "policy": policy[:128],
        "model": model[:128],
        "trigger": trigger[:512],
        "stage": "triggered",
        "status": "running",
        "champion_version": champion,
        "challenger_version": None,
        "outcome": None,
        "detail": _json(detail),
        "created_at": now,
        "updated_at": now,
    }
    with metadata.transaction() as conn:
        key = conn.execute(insert(loop_runs).values(**values)).inserted_primary_key
    if key is None:
        raise BackendError(f"Metadata store {metadata.display_uri} returned no episode id.")
    return int(key[0])


def update_run(
    metadata: MetadataStore,
    run_id: int,
    now: datetime,
    *,
    stage: str | None = None,
    status: str | None = None,
    outcome: str | None = None,
    challenger: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    from sqlalchemy import update

    from shipyard.store.schema.loop import loop_runs

    changes = {
        "stage": stage,
        "status": status,
        "outcome": outcome,
        "challenger_version": challenger,
    }
    values: dict[str, Any] = {
        "updated_at": now,
        **{name: value for name, value in changes.items() if value is not None},
    }
    if detail is not None:
        values["detail"] = _json(detail)
    with metadata.transaction() as conn:
        conn.execute(update(loop_runs).where(loop_runs.c.id == run_id).values(**values))


def add_event(
    metadata: MetadataStore,
    run_id: int,
    *,
    step: str,
    outcome: str,
    message: str,
    figures: Mapping[str, Any],
    actor: str,
    now: datetime,
) -> None:
    from sqlalchemy import insert

    from shipyard.store.schema.loop import loop_events

    with metadata.transaction() as conn:
        conn.execute(
            insert(loop_events).values(
                run_id=run_id,
                step=step[:32],
                outcome=outcome[:16],
                message=message[:4000],
                figures=_json(figures),
                actor=actor[:256],
                at=now,
            )
        )


def _record(row: Any, events: list[Mapping[str, Any]]) -> LoopRun:
    return LoopRun(
        id=int(row["id"]),
        policy=str(row["policy"]),
        model=str(row["model"]),
        trigger=str(row["trigger"]),
        stage=str(row["stage"]),
        status=str(row["status"]),
        champion_version=row["champion_version"],
        challenger_version=row["challenger_version"],
        outcome=row["outcome"],
        detail=dict(row["detail"] or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        events=tuple(events),
    )


def _events(conn: Any, run_ids: list[int]) -> dict[int, list[Mapping[str, Any]]]:
    from sqlalchemy import select

    from shipyard.store.schema.loop import loop_events

    found: dict[int, list[Mapping[str, Any]]] = {run_id: [] for run_id in run_ids}
    if not run_ids:
        return found
    query = select(loop_events).where(loop_events.c.run_id.in_(run_ids)).order_by(loop_events.c.id)
    for row in conn.execute(query).mappings():
        event = dict(row)
        found[int(event.pop("run_id"))].append(event)
    return found


def get_run(metadata: MetadataStore, run_id: int) -> LoopRun:
    from sqlalchemy import select

    from shipyard.store.schema.loop import loop_runs

    with metadata.connect() as conn:
        row = conn.execute(select(loop_runs).where(loop_runs.c.id == run_id)).mappings().first()
        if row is None:
            raise NotFoundError(
                f"Closed-loop episode {run_id!r} does not exist.",
                hint="List episodes with `shipyard monitor history`.",
            )
        return _record(row, _events(conn, [run_id])[run_id])


def running_run(metadata: MetadataStore, policy: str) -> LoopRun | None:
    from sqlalchemy import select

    from shipyard.store.schema.loop import loop_runs

    query = (
        select(loop_runs.c.id)
        .where(loop_runs.c.policy == policy, loop_runs.c.status == "running")
        .order_by(loop_runs.c.id.desc())
        .limit(1)
    )
    with metadata.connect() as conn:
        found = conn.execute(query).scalar()
    return None if found is None else get_run(metadata, int(found))


def list_runs(
    metadata: MetadataStore, *, model: str | None = None, limit: int = 50
) -> list[LoopRun]:
    from sqlalchemy import select

    from shipyard.store.schema.loop import loop_runs

    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise DataContractError(f"limit must be an integer from 1 to 100000, not {limit!r}.")
    query = select(loop_runs).order_by(loop_runs.c.id.desc()).limit(limit)
    if model is not None:
        query = query.where(loop_runs.c.model == model)
    with metadata.connect() as conn:
        rows = list(conn.execute(query).mappings())
        events = _events(conn, [int(r["id"]) for r in rows])
    return [_record(row, events[int(row["id"])]) for row in rows]


def loop_history(
    source: Config | ModelRegistry, *, model: str | None = None, limit: int = 50
) -> list[LoopRun]:
    """Episodes, newest first, each with its events."""
    from shipyard.models.registry import ModelRegistry

    if isinstance(source, ModelRegistry):
        return list_runs(source.stores.metadata, model=model, limit=limit)
    with ModelRegistry.open(source) as registry:
        return list_runs(registry.stores.metadata, model=model, limit=limit)
