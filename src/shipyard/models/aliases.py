"""Aliases: moving ``name@alias`` between versions, the audit log, canary and shadow.

Every change runs in one write transaction that locks the model's row, writes the alias,
appends an ``AliasMove`` (for moves) and increases the model's ``serial``, so serving's
poll of one integer sees every change, and concurrent movers queue instead of
interleaving their reads and writes.

Rollback replays the alias's moves: a ``set`` pushes the version it moved to, a
``rollback`` pops one; the alias goes back to the version under the top. So ``v1 -> v2
-> v3``, rollback (to v2), rollback (to v1), and a third rollback has nowhere to go.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from shipyard.core.errors import GateFailed, NotFoundError
from shipyard.core.references import parse_reference
from shipyard.models.catalog import lock_model, resolve
from shipyard.models.errors import ModelInputError
from shipyard.models.records import AliasConfig, AliasMove, CanaryConfig, GateResult
from shipyard.models.serialize import gate_result_from_dict, gate_result_to_dict
from shipyard.store.metadata import MetadataStore
from shipyard.store.schema.models import model_alias_moves, model_aliases, models

__all__ = [
    "alias_config",
    "bump_serial",
    "check_alias",
    "check_canary",
    "check_override",
    "check_reason",
    "history",
    "move_alias",
    "refuse_failed_gates",
    "refuse_unevaluated",
    "rollback_target",
    "set_traffic",
]

MAX_REASON = 2000


def check_alias(name: str, alias: object) -> str:
    """``alias`` if it is a valid alias name; ``ModelInputError`` saying why not."""
    if not isinstance(alias, str) or not alias:
        raise ModelInputError(
            f"An alias must be a non-empty string, not {alias!r}.",
            hint="Use a word such as champion or challenger.",
        )
    ref = parse_reference(f"{name}@{alias}")
    if ref.kind == "version":
        raise ModelInputError(
            f"{alias!r} cannot be an alias: it reads as a version number ({name}@{alias} "
            f"names version {ref.value}).",
            hint="Pick an alias that is not v followed by digits, e.g. champion.",
        )
    if ref.kind == "id":
        raise ModelInputError(
            f"{alias!r} cannot be an alias: it reads as a version id prefix (hex digits).",
            hint="Pick a word with a letter outside a-f, e.g. champion.",
        )
    if ref.kind != "alias" or ref.value != alias:
        raise ModelInputError(
            f"{alias!r} is not a valid alias.",
            hint="Use 1-64 letters, digits, '_' or '-', starting with a letter.",
        )
    return alias


def check_reason(reason: object, what: str = "reason") -> str:
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise ModelInputError(f"{what} must be text, not {type(reason).__name__}.")
    if len(reason) > MAX_REASON:
        raise ModelInputError(
            f"{what} is {len(reason):,} characters long; at most {MAX_REASON:,} are kept.",
            hint="Summarise it; link to a ticket for the details.",
        )
    return reason.strip()


def check_override(override_reason: object) -> str:
    """The override reason, stripped; an empty one (given but blank) is refused."""
    text = check_reason(override_reason, "override_reason")
    if override_reason is not None and not text:
        raise ModelInputError(
            "override_reason is empty; an override needs an explicit reason.",
            hint="Say why the gates may be skipped, e.g. 'hotfix for incident 123'.",
        )
    return text


def check_canary(share: object, sticky_by: object) -> float:
    """A canary's share (strictly between 0 and 1) as a float; its stickiness checked."""
    if isinstance(share, bool) or not isinstance(share, int | float):
        raise ModelInputError(f"share must be a number between 0 and 1, not {share!r}.")
    if not 0.0 < float(share) < 1.0:  # NaN fails this too
        raise ModelInputError(
            f"share must be strictly between 0 and 1, not {share}.",
            hint="e.g. share=0.1 sends 10% of the traffic to the canary.",
        )
    if sticky_by not in ("entity", "request"):
        raise ModelInputError(f"sticky_by must be 'entity' or 'request', not {sticky_by!r}.")
    return float(share)


def refuse_unevaluated(reference: str, alias: str) -> None:
    """``GateFailed``: a version never evaluated cannot be promoted without an override."""
    raise GateFailed(
        f"{reference} has no stored evaluation, so its gates were never checked; it cannot "
        f"become {alias!r}.",
        hint=f"Run `shipyard models evaluate {reference}` first, or force it with "
        "--override-reason TEXT.",
    )


def _bump(conn: Connection, name: str, serial: int) -> None:
    conn.execute(update(models).where(models.c.name == name).values(serial=serial + 1))


def _current(conn: Connection, name: str, alias: str) -> Any:
    return (
        conn.execute(
            select(model_aliases).where(
                model_aliases.c.name == name, model_aliases.c.alias == alias
            )
        )
        .mappings()
        .first()
    )


def move_alias(
    conn: Connection,
    store: MetadataStore,
    name: str,
    alias: str,
    to_number: int | None,
    *,
    actor: str,
    reason: str,
    gate_results: Sequence[GateResult],
    override: bool,
    kind: Literal["set", "rollback", "remove"],
    now: datetime,
) -> AliasMove:
    """Point ``alias`` at version ``to_number`` (None removes it) and audit the move.

    The caller checked the gates; the model row must be locked by the caller.
    """
    current = _current(conn, name, alias)
    from_number = int(current["number"]) if current is not None else None
    if to_number is None:
        if current is None:
            raise NotFoundError(f"Model {name!r} has no alias {alias!r} to remove.")
        conn.execute(
            delete(model_aliases).where(
                model_aliases.c.name == name, model_aliases.c.alias == alias
            )
        )
    elif current is None:
        conn.execute(
            insert(model_aliases).values(name=name, alias=alias, number=to_number, updated_at=now)
        )
    else:
        values: dict[str, Any] = {"number": to_number, "updated_at": now}
        # A canary or shadow of the version the alias now points at has nothing to compare.
        if current["canary_number"] == to_number:
            values.update(canary_number=None, canary_share=None, canary_sticky_by=None)
        if current["shadow_number"] == to_number:
            values["shadow_number"] = None
        conn.execute(
            update(model_aliases)
            .where(model_aliases.c.name == name, model_aliases.c.alias == alias)
            .values(**values)
        )
    conn.execute(
        insert(model_alias_moves).values(
            name=name,
            alias=alias,
            kind=kind,
            from_number=from_number,
            to_number=to_number,
            actor=actor,
            at=now,
            reason=reason,
            gate_results=[gate_result_to_dict(r) for r in gate_results],
            override=override,
        )
    )
    store.record_event(
        conn,
        actor,
        f"model.alias.{kind}",
        "model",
        name,
        {
            "alias": alias,
            "from": from_number,
            "to": to_number,
            "reason": reason,
            "override": override,
        },
    )
    return AliasMove(
        model=name,
        alias=alias,
        from_version=from_number,
        to_version=to_number,
        actor=actor,
        at=now,
        reason=reason,
        gate_results=tuple(gate_results),
        override=override,
        kind=kind,
    )


def refuse_failed_gates(reference: str, alias: str, gate_results: Sequence[GateResult]) -> None:
    """``GateFailed`` listing each failed gate with its figure and bound."""
    failed = [r for r in gate_results if not r.passed]
    if not failed:
        return
    lines = "; ".join(
        f"{r.gate} = {'n/a' if r.figure is None else f'{r.figure:.4g}'} (needs {r.bound})"
        for r in failed
    )
    raise GateFailed(
        f"{reference} cannot become {alias!r}: {len(failed)} gate(s) failed: {lines}.",
        hint="Improve the model and evaluate again, or force it with an override reason "
        "(`--override-reason TEXT`), which the audit log marks.",
    )


def rollback_target(conn: Connection, name: str, alias: str) -> tuple[int | None, int]:
    """(current version, the version a rollback goes back to) for ``name@alias``."""
    moves = conn.execute(
        select(model_alias_moves.c.kind, model_alias_moves.c.to_number)
        .where(model_alias_moves.c.name == name, model_alias_moves.c.alias == alias)
        .order_by(model_alias_moves.c.id)
    ).all()
    if not moves:
        raise NotFoundError(
            f"Model {name!r} has no alias {alias!r}; there is nothing to roll back.",
            hint=f"Promote a version first: `shipyard models promote {name}@vN {alias}`.",
        )
    stack: list[int | None] = []
    for kind, to_number in moves:
        if kind == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(to_number)
    current = stack[-1] if stack else None
    previous = [n for n in stack[:-1] if n is not None]
    if not previous:
        where = f"v{current}" if current is not None else "no version"
        raise NotFoundError(
            f"{name}@{alias} points at {where} and has no earlier version to roll back to.",
            hint=f"See its moves with `shipyard models show {name}@{alias}`; promote another "
            "version instead.",
        )
    return current, previous[-1]


def history(conn: Connection, name: str, alias: str | None) -> list[AliasMove]:
    """Moves of one alias (or all of the model's), newest first."""
    query = select(model_alias_moves).where(model_alias_moves.c.name == name)
    if alias is not None:
        query = query.where(model_alias_moves.c.alias == alias)
    rows = conn.execute(query.order_by(model_alias_moves.c.id.desc())).mappings()
    return [
        AliasMove(
            model=row["name"],
            alias=row["alias"],
            from_version=row["from_number"],
            to_version=row["to_number"],
            actor=row["actor"],
            at=row["at"],
            reason=row["reason"],
            gate_results=tuple(gate_result_from_dict(g) for g in row["gate_results"] or ()),
            override=bool(row["override"]),
            kind=row["kind"],
        )
        for row in rows
    ]


def alias_config(conn: Connection, name: str, alias: str) -> AliasConfig:
    """Where ``name@alias`` points, its canary and shadow, and the model's serial."""
    serial = conn.execute(select(models.c.serial).where(models.c.name == name)).scalar()
    row = _current(conn, name, alias)
    if serial is None or row is None:
        resolve(conn, f"{name}@{alias}")  # raises the precise NotFoundError
        raise NotFoundError(f"Model {name!r} has no alias {alias!r}.")  # pragma: no cover
    canary = None
    if row["canary_number"] is not None:
        canary = CanaryConfig(
            version=int(row["canary_number"]),
            share=float(row["canary_share"]),
            sticky_by=row["canary_sticky_by"] or "entity",
        )
    return AliasConfig(
        model=name,
        alias=alias,
        version=int(row["number"]),
        canary=canary,
        shadow=row["shadow_number"],
        serial=int(serial),
    )


def set_traffic(
    conn: Connection,
    store: MetadataStore,
    name: str,
    alias: str,
    values: dict[str, Any],
    *,
    actor: str,
    action: str,
    now: datetime,
) -> None:
    """Change an alias's canary or shadow columns, audit it and bump the serial."""
    serial = lock_model(conn, store, name, create=False, now=now)
    current = _current(conn, name, alias)
    if current is None:
        resolve(conn, f"{name}@{alias}")
        raise NotFoundError(f"Model {name!r} has no alias {alias!r}.")  # pragma: no cover
    for key in ("canary_number", "shadow_number"):
        if values.get(key) is not None and values[key] == current["number"]:
            raise ModelInputError(
                f"{name}@{alias} already points at v{values[key]}; a canary or shadow must "
                "be another version.",
                hint="Pick the version you want to compare with the alias's version.",
            )
    conn.execute(
        update(model_aliases)
        .where(model_aliases.c.name == name, model_aliases.c.alias == alias)
        .values(**values, updated_at=now)
    )
    _bump(conn, name, serial)
    store.record_event(conn, actor, action, "model", name, {"alias": alias, **values})


def bump_serial(conn: Connection, name: str, serial: int) -> None:
    """Increase the model's serial (the caller holds the model's lock)."""
    _bump(conn, name, serial)
