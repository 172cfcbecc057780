"""The registry's rows: model versions and evaluations, read and written in SQL.

Writers of one model are serialised by its ``models`` row: ``lock_model`` creates it if
asked and locks it (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every write
transaction already holds the database's write lock from ``BEGIN IMMEDIATE``). Version
numbers are then ``max + 1`` under that lock, so concurrent registrations never collide;
the ``(name, number)`` primary key is the safety net.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, RowMapping

from shipyard.core.errors import AmbiguousReferenceError, NotFoundError
from shipyard.core.references import Reference, parse_reference
from shipyard.models.errors import ModelInputError
from shipyard.models.records import Evaluation, ModelVersion
from shipyard.models.serialize import gate_result_from_dict, signature_from_dict
from shipyard.store.metadata import MetadataStore
from shipyard.store.schema.models import (
    model_aliases,
    model_evaluations,
    model_versions,
    models,
)

__all__ = [
    "aliases_of",
    "evaluation_from_row",
    "find_by_content",
    "latest_thresholds",
    "lock_model",
    "model_exists",
    "next_number",
    "resolve",
    "version_from_row",
]


def model_exists(conn: Connection, name: str) -> bool:
    return conn.execute(select(models.c.name).where(models.c.name == name)).first() is not None


def lock_model(
    conn: Connection, store: MetadataStore, name: str, *, create: bool, now: datetime
) -> int:
    """Lock model ``name``'s row for this transaction; return its serial.

    ``create=True`` inserts the row first if it is missing; otherwise an unknown model
    raises ``NotFoundError``.
    """
    if create:
        if store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
        conn.execute(
            dialect_insert(models)
            .values(name=name, serial=0, created_at=now)
            .on_conflict_do_nothing(index_elements=[models.c.name])
        )
    query = select(models.c.serial).where(models.c.name == name)
    if store.dialect == "postgresql":
        query = query.with_for_update()
    serial = conn.execute(query).scalar()
    if serial is None:
        raise unknown_model(conn, name)
    return int(serial)


def unknown_model(conn: Connection, name: str) -> NotFoundError:
    """``NotFoundError`` for a model that does not exist, naming close matches."""
    import difflib

    names = list(conn.execute(select(models.c.name).order_by(models.c.name)).scalars())
    close = difflib.get_close_matches(name, names, n=3)
    suggestion = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return NotFoundError(
        f"Model {name!r} does not exist.{suggestion}",
        hint="List models with `shipyard models list`; register one with "
        "`shipyard models register NAME --run RUN_ID`.",
    )


def next_number(conn: Connection, name: str) -> int:
    latest = conn.execute(
        select(func.max(model_versions.c.number)).where(model_versions.c.name == name)
    ).scalar()
    return int(latest or 0) + 1


def find_by_content(conn: Connection, name: str, content_id: str) -> RowMapping | None:
    return (
        conn.execute(
            select(model_versions).where(
                model_versions.c.name == name, model_versions.c.content_id == content_id
            )
        )
        .mappings()
        .first()
    )


def resolve(conn: Connection, reference: str | Reference) -> RowMapping:
    """The version row ``name``, ``name@v3``, ``name@alias`` or ``name@<id prefix>`` names.

    A bare name means the newest version. ``NotFoundError`` says what exists instead.
    """
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    if not model_exists(conn, ref.name):
        raise unknown_model(conn, ref.name)
    query = select(model_versions).where(model_versions.c.name == ref.name)
    if ref.kind == "latest":
        row = conn.execute(query.order_by(model_versions.c.number.desc()).limit(1)).mappings()
    elif ref.kind == "version":
        row = conn.execute(query.where(model_versions.c.number == ref.version)).mappings()
    elif ref.kind == "alias":
        number = conn.execute(
            select(model_aliases.c.number).where(
                model_aliases.c.name == ref.name, model_aliases.c.alias == ref.value
            )
        ).scalar()
        row = conn.execute(query.where(model_versions.c.number == number)).mappings()
    else:
        rows = (
            conn.execute(
                query.where(
                    model_versions.c.content_id.startswith(f"sha256:{ref.value}", autoescape=True)
                ).limit(2)
            )
            .mappings()
            .all()
        )
        if len(rows) > 1:
            raise AmbiguousReferenceError(
                f"Reference '{ref}' matches several versions of model {ref.name!r} "
                f"(v{rows[0]['number']}, v{rows[1]['number']}...).",
                hint="Give more hex digits of the version id, or use NAME@vN.",
            )
        if rows:
            return rows[0]
        raise _missing(conn, ref)
    found = row.first()
    if found is None:
        raise _missing(conn, ref)
    return found


def _missing(conn: Connection, ref: Reference) -> NotFoundError:
    numbers = list(
        conn.execute(
            select(model_versions.c.number)
            .where(model_versions.c.name == ref.name)
            .order_by(model_versions.c.number)
        ).scalars()
    )
    if not numbers:
        return NotFoundError(
            f"Model {ref.name!r} has no versions yet.",
            hint=f"Register one: `shipyard models register {ref.name} --run RUN_ID`.",
        )
    if ref.kind == "alias":
        aliases = list(
            conn.execute(
                select(model_aliases.c.alias)
                .where(model_aliases.c.name == ref.name)
                .order_by(model_aliases.c.alias)
            ).scalars()
        )
        shown = ", ".join(aliases) if aliases else "none"
        return NotFoundError(
            f"Model {ref.name!r} has no alias {ref.value!r} (its aliases: {shown}).",
            hint=f"Promote a version first: `shipyard models promote {ref.name}@vN {ref.value}`.",
        )
    what = "version" if ref.kind == "version" else "version with id prefix"
    value = f"v{ref.value}" if ref.kind == "version" else ref.value
    return NotFoundError(
        f"Model {ref.name!r} has no {what} {value} (it has v{numbers[0]} to v{numbers[-1]}).",
        hint=f"List its versions with `shipyard models list {ref.name}`.",
    )


def aliases_of(conn: Connection, name: str) -> dict[int, list[str]]:
    """Every alias of a model, by the version number it points at."""
    found: dict[int, list[str]] = defaultdict(list)
    rows = conn.execute(
        select(model_aliases.c.number, model_aliases.c.alias)
        .where(model_aliases.c.name == name)
        .order_by(model_aliases.c.alias)
    )
    for number, alias in rows:
        found[int(number)].append(alias)
    return found


def latest_thresholds(
    conn: Connection, name: str, numbers: Sequence[int] | None = None
) -> dict[int, float]:
    """The threshold of each version's newest evaluation that chose one."""
    newest = (
        select(func.max(model_evaluations.c.id).label("id"))
        .where(model_evaluations.c.name == name, model_evaluations.c.threshold.is_not(None))
        .group_by(model_evaluations.c.number)
    )
    if numbers is not None:
        newest = newest.where(model_evaluations.c.number.in_(list(numbers)))
    rows = conn.execute(
        select(model_evaluations.c.number, model_evaluations.c.threshold).where(
            model_evaluations.c.id.in_(newest.scalar_subquery())
        )
    )
    return {int(number): float(threshold) for number, threshold in rows}


def version_from_row(
    row: RowMapping, aliases: Sequence[str] = (), threshold: float | None = None
) -> ModelVersion:
    """A version row as a record. ``threshold`` (the newest one an evaluation chose)
    becomes the version's decision threshold and its signature's."""
    signature = signature_from_dict(row["signature"])
    if threshold is not None:
        signature = dataclasses.replace(signature, threshold=threshold)
    else:
        threshold = signature.threshold
    package: Mapping[str, Any] = row["package"] or {}
    return ModelVersion(
        id=row["content_id"],
        name=row["name"],
        number=int(row["number"]),
        flavor=row["flavor"],
        model_type=row["model_type"],
        signature=signature,
        run_id=row["run_id"],
        dataset_versions=tuple(row["dataset_versions"] or ()),
        feature_service=row["feature_service"],
        code_commit=row["code_commit"],
        description=row["description"],
        tags=dict(row["tags"] or {}),
        created_by=row["created_by"],
        created_at=row["created_at"],
        aliases=tuple(aliases),
        threshold=threshold,
        uses_pickle=bool(package.get("uses_pickle", False)),
        model_class=str(package.get("model_class", "")),
    )


def load_version(conn: Connection, row: RowMapping) -> ModelVersion:
    """A version row as a record, with its aliases and evaluated threshold."""
    number = int(row["number"])
    aliases = aliases_of(conn, row["name"]).get(number, [])
    threshold = latest_thresholds(conn, row["name"], [number]).get(number)
    return version_from_row(row, aliases, threshold)


def evaluation_from_row(row: RowMapping, plots: Mapping[str, str]) -> Evaluation:
    return Evaluation(
        id=int(row["id"]),
        model=row["name"],
        version=int(row["number"]),
        dataset=row["dataset"],
        metrics=dict(row["metrics"] or {}),
        gate_results=tuple(gate_result_from_dict(g) for g in row["gate_results"] or ()),
        threshold=row["threshold"],
        plots=dict(plots),
        plot_blobs=dict(row["plots"] or {}),
        detail=dict(row["detail"] or {}),
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def insert_version(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(model_versions).values(**values))


def check_tags(tags: object) -> dict[str, str]:
    """Tags as ``{str: str}``; ``ModelInputError`` naming a bad one."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise ModelInputError(
            f"tags must be a mapping of strings, not {type(tags).__name__}.",
            hint="Pass tags={'team': 'churn'}.",
        )
    checked: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key or len(key) > 128:
            raise ModelInputError(f"Tag key {key!r} must be a string of 1-128 characters.")
        if not isinstance(value, str | int | float | bool) or len(str(value)) > 5000:
            raise ModelInputError(
                f"Tag {key!r} has a {type(value).__name__} value; tags hold short strings.",
                hint="Convert the value to a string of at most 5,000 characters.",
            )
        checked[key] = str(value)
    return checked
