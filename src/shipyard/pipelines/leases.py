"""Leases on schedules: at most one scheduler runs a schedule or trigger at a time.

A lease is the ``holder`` and ``lease_expires_at`` of a ``pipeline_schedules`` row, taken
by one conditional ``UPDATE`` (atomic on SQLite and PostgreSQL alike): it succeeds only
if nobody holds the row, or the holder's lease expired, or it is the caller's already.
A holder renews its lease while its run goes on; a scheduler that dies stops renewing
and its leases expire after ``ttl`` seconds.

Taking a lease for a cron fire time also requires that fire time to be later than the
row's ``last_fire_at`` and records it, so one fire time runs once however many
schedulers watch the schedule.

>>> if acquire(store, "schedule:nightly", "host-1:4242", ttl=60, now=now, fire_at=fire):
...     ...  # run it, renew() meanwhile, release() at the end
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from shipyard.store.metadata import MetadataStore
from shipyard.store.schema.pipelines import pipeline_schedules

__all__ = ["ScheduleState", "acquire", "read_state", "release", "renew", "set_cursor"]


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """One row of ``pipeline_schedules``."""

    name: str
    holder: str | None
    lease_expires_at: datetime | None
    last_fire_at: datetime | None
    cursor: str | None
    last_run_id: str | None
    last_status: str | None
    last_error: str | None


def acquire(
    store: MetadataStore,
    name: str,
    holder: str,
    *,
    ttl: float,
    now: datetime,
    fire_at: datetime | None = None,
) -> bool:
    """Take the lease on ``name`` for ``ttl`` seconds; ``False`` if someone else holds it.

    With ``fire_at``, also require ``last_fire_at < fire_at`` and set it to ``fire_at``.
    """
    with store.transaction() as conn:
        conn.execute(_insert_or_ignore(store).values(name=name, updated_at=now))
        condition = or_(
            pipeline_schedules.c.holder.is_(None),
            pipeline_schedules.c.lease_expires_at < now,
            pipeline_schedules.c.holder == holder,
        )
        values: dict[str, object] = {
            "holder": holder,
            "lease_expires_at": now + timedelta(seconds=ttl),
            "updated_at": now,
        }
        statement = update(pipeline_schedules).where(pipeline_schedules.c.name == name, condition)
        if fire_at is not None:
            statement = statement.where(
                or_(
                    pipeline_schedules.c.last_fire_at.is_(None),
                    pipeline_schedules.c.last_fire_at < fire_at,
                )
            )
            values["last_fire_at"] = fire_at
        result = conn.execute(statement.values(**values))
        return result.rowcount == 1


def renew(store: MetadataStore, name: str, holder: str, *, ttl: float, now: datetime) -> bool:
    """Extend a lease this holder has; ``False`` if it lost it (expired and taken)."""
    with store.transaction() as conn:
        result = conn.execute(
            update(pipeline_schedules)
            .where(pipeline_schedules.c.name == name, pipeline_schedules.c.holder == holder)
            .values(lease_expires_at=now + timedelta(seconds=ttl), updated_at=now)
        )
        return result.rowcount == 1


def release(
    store: MetadataStore,
    name: str,
    holder: str,
    *,
    now: datetime,
    status: str | None = None,
    run_id: str | None = None,
    error: str | None = None,
) -> None:
    """Give a lease back, recording how the run it guarded ended."""
    with store.transaction() as conn:
        conn.execute(
            update(pipeline_schedules)
            .where(pipeline_schedules.c.name == name, pipeline_schedules.c.holder == holder)
            .values(
                holder=None,
                lease_expires_at=None,
                updated_at=now,
                last_status=status,
                last_run_id=run_id,
                last_error=None if error is None else error[:4000],
            )
        )


def set_cursor(store: MetadataStore, name: str, holder: str, cursor: str, now: datetime) -> bool:
    """Record what a trigger has seen (only by the lease holder)."""
    with store.transaction() as conn:
        result = conn.execute(
            update(pipeline_schedules)
            .where(pipeline_schedules.c.name == name, pipeline_schedules.c.holder == holder)
            .values(cursor=cursor, updated_at=now)
        )
        return result.rowcount == 1


def read_state(store: MetadataStore, name: str) -> ScheduleState | None:
    """The row of ``name``, or ``None`` if no scheduler has touched it yet."""
    with store.connect() as conn:
        row = conn.execute(
            select(pipeline_schedules).where(pipeline_schedules.c.name == name)
        ).first()
    if row is None:
        return None
    return ScheduleState(
        row.name,
        row.holder,
        row.lease_expires_at,
        row.last_fire_at,
        row.cursor,
        row.last_run_id,
        row.last_status,
        row.last_error,
    )


def _insert_or_ignore(store: MetadataStore) -> Any:
    if store.dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(pipeline_schedules).on_conflict_do_nothing()
    from sqlalchemy.dialects.postgresql import insert as postgres_insert

    return postgres_insert(pipeline_schedules).on_conflict_do_nothing()
