"""Experiments: named groups of runs. Create, find by id or name, list.

Functions here take an open connection (``MetadataStore.connect()`` or a transaction);
``TrackingClient`` is the public way in.

>>> with store.transaction() as conn:
...     churn = create_experiment(conn, "churn", description="monthly churn model")
>>> with store.connect() as conn:
...     find_experiment(conn, "churn") == churn
True
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.engine import Connection

from shipyard.core.errors import AlreadyExistsError, NotFoundError
from shipyard.core.ids import new_id
from shipyard.store.schema.tracking import experiments
from shipyard.tracking.batches import dialect_insert
from shipyard.tracking.records import Experiment
from shipyard.tracking.validation import (
    RunStateError,
    TrackingInputError,
    param_value,
    validate_key,
    validate_name,
)

__all__ = [
    "DEFAULT_EXPERIMENT",
    "active_experiment",
    "create_experiment",
    "experiment_from_row",
    "find_experiment",
    "get_experiment",
    "insert_experiment_if_absent",
    "list_experiments",
    "validate_tags",
]

DEFAULT_EXPERIMENT = "Default"
_ID_LENGTH = 32


def experiment_from_row(row: Row[Any]) -> Experiment:
    return Experiment(
        id=row.id,
        name=row.name,
        description=row.description,
        tags=dict(row.tags or {}),
        lifecycle=row.lifecycle,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


def validate_tags(tags: Mapping[str, object] | None, what: str = "tag") -> dict[str, str]:
    """Tags as ``{key: text}``, every key and value checked."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise TrackingInputError(
            f"Tags must be a mapping of key to value, not a {type(tags).__name__}.",
            hint="Pass a dict, e.g. tags={'team': 'growth'}.",
        )
    return {
        validate_key(key, what): param_value(value, key=str(key), what=what)
        for key, value in tags.items()
    }


def find_experiment(conn: Connection, id_or_name: str) -> Experiment | None:
    """The experiment with this id, else this name, else ``None`` (deleted ones included)."""
    if not isinstance(id_or_name, str):
        raise TrackingInputError(
            f"An experiment is named by its id or name (text), not {id_or_name!r}.",
            hint="Pass the experiment's name, e.g. 'Default'.",
        )
    row = None
    if len(id_or_name) == _ID_LENGTH:
        row = conn.execute(select(experiments).where(experiments.c.id == id_or_name)).first()
    if row is None:
        row = conn.execute(select(experiments).where(experiments.c.name == id_or_name)).first()
    return experiment_from_row(row) if row is not None else None


def get_experiment(conn: Connection, id_or_name: str) -> Experiment:
    """The experiment with this id or name; ``NotFoundError`` with close names otherwise."""
    found = find_experiment(conn, id_or_name)
    if found is not None:
        return found
    names = list(conn.execute(select(experiments.c.name)).scalars())
    close = difflib.get_close_matches(id_or_name, names, n=3)
    suggestion = f" Did you mean {', '.join(repr(name) for name in close)}?" if close else ""
    raise NotFoundError(
        f"Experiment {id_or_name!r} does not exist.{suggestion}",
        hint="List experiments with TrackingClient().list_experiments() "
        "or `shipyard runs experiments`.",
    )


def create_experiment(
    conn: Connection,
    name: str,
    *,
    description: str | None = None,
    tags: Mapping[str, object] | None = None,
) -> Experiment:
    """Insert a new experiment; ``AlreadyExistsError`` if the name is taken."""
    name = validate_name(name, "experiment")
    if description is not None and not isinstance(description, str):
        raise TrackingInputError(
            f"The description of experiment {name!r} must be text, "
            f"not {type(description).__name__}."
        )
    checked_tags = validate_tags(tags)
    existing = find_experiment(conn, name)
    if existing is not None and existing.name == name:
        raise _name_taken(existing)
    statement = dialect_insert(conn.dialect.name, experiments).on_conflict_do_nothing()
    experiment = Experiment(
        id=new_id(),
        name=name,
        description=description,
        tags=checked_tags,
        lifecycle="active",
        created_at=datetime.now(UTC),
    )
    inserted = conn.execute(
        statement.values(
            id=experiment.id,
            name=experiment.name,
            description=experiment.description,
            tags=experiment.tags,
            lifecycle=experiment.lifecycle,
            created_at=experiment.created_at,
        )
    )
    if inserted.rowcount == 0:  # another process created it since we looked
        raise AlreadyExistsError(
            f"Experiment {name!r} already exists.",
            hint="Use get_or_create_experiment to reuse it, or pick another name.",
        )
    return experiment


def insert_experiment_if_absent(conn: Connection, name: str) -> None:
    """Create an experiment called ``name`` unless one exists (safe against racing creators)."""
    conn.execute(
        dialect_insert(conn.dialect.name, experiments)
        .values(
            id=new_id(),
            name=validate_name(name, "experiment"),
            description=None,
            tags={},
            lifecycle="active",
            created_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing()
    )


def list_experiments(conn: Connection, *, include_deleted: bool = False) -> list[Experiment]:
    """Experiments, oldest first."""
    query = select(experiments).order_by(experiments.c.created_at, experiments.c.name)
    if not include_deleted:
        query = query.where(experiments.c.lifecycle == "active")
    return [experiment_from_row(row) for row in conn.execute(query)]


def active_experiment(conn: Connection, id_or_name: str) -> Experiment:
    """The active experiment with this id or name, created (by name) if there is none."""
    found = find_experiment(conn, id_or_name)
    if found is None:
        insert_experiment_if_absent(conn, id_or_name)
        found = get_experiment(conn, id_or_name)
    if found.lifecycle == "deleted":
        raise RunStateError(
            f"Experiment {found.name!r} is deleted.",
            hint="Restore it (restore_experiment) or use another experiment.",
        )
    return found


def _name_taken(existing: Experiment) -> AlreadyExistsError:
    if existing.lifecycle == "deleted":
        return AlreadyExistsError(
            f"Experiment {existing.name!r} exists but is deleted.",
            hint="Restore it (restore_experiment), or purge it to reuse the name.",
        )
    return AlreadyExistsError(
        f"Experiment {existing.name!r} already exists (id {existing.id}).",
        hint="Use get_or_create_experiment to reuse it, or pick another name.",
    )
