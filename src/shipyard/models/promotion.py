"""Promotion: moving a model's aliases behind gates, rolling back, the audit log, and
the canary and shadow traffic of an alias.

``Promotion`` is the alias half of ``ModelRegistry`` (which inherits it): each method
checks its arguments, then runs one write transaction through ``aliases`` (the SQL). It
reads versions and evaluations through the registry's ``get`` and ``latest_evaluation``.

>>> with ModelRegistry.open() as registry:  # doctest: +SKIP
...     registry.promote("churn@v3", "champion", reason="beats v2 on holdout")
...     registry.set_canary("churn", "champion", version=4, share=0.1)
...     registry.rollback("churn@champion", reason="complaints")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from shipyard.core.references import parse_reference, validate_name
from shipyard.models import aliases as alias_ops
from shipyard.models import catalog
from shipyard.models.errors import ModelInputError
from shipyard.models.records import AliasConfig, AliasMove, Evaluation, GateResult, ModelVersion
from shipyard.models.serialize import check_gate_results
from shipyard.store.schema.models import models

if TYPE_CHECKING:
    from shipyard.store.stores import Stores

__all__ = ["Promotion", "resolve_actor"]


def _now() -> datetime:
    """The time stamped on alias moves and registrations (UTC)."""
    return datetime.now(UTC)


def resolve_actor(actor: object) -> str:
    """Who acts: ``actor`` checked, or the current user when it is None."""
    if actor is None:
        from shipyard.tracking.capture import current_user

        return current_user()
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 256:
        raise ModelInputError(f"actor must be a name of 1-256 characters, not {actor!r}.")
    return actor.strip()


class Promotion:
    """Alias moves (set, promote, rollback, remove), their audit log, canary and shadow.

    A mixin of ``ModelRegistry``: it needs the registry's ``stores``, ``get`` and
    ``latest_evaluation``.
    """

    if TYPE_CHECKING:
        stores: Stores

        def get(self, reference: str) -> ModelVersion: ...

        def latest_evaluation(
            self, reference: str, *, with_plots: bool = False
        ) -> Evaluation | None: ...

    def set_alias(
        self,
        reference: str,
        alias: str,
        *,
        reason: str = "",
        gate_results: Sequence[GateResult] = (),
        override_reason: str | None = None,
        actor: str | None = None,
    ) -> AliasMove:
        """Point ``name@alias`` at the version ``reference`` names; audit the move.

        Refuses (``GateFailed``) when a gate result failed, unless ``override_reason``
        says why it must happen anyway (the move is then marked as an override).
        """
        results = check_gate_results(gate_results)
        why = alias_ops.check_reason(reason)
        override_text = alias_ops.check_override(override_reason)
        who = resolve_actor(actor)
        version = self.get(reference)
        alias_ops.check_alias(version.name, alias)
        override = False
        if not all(r.passed for r in results):
            if not override_text:
                alias_ops.refuse_failed_gates(version.reference, alias, results)
            override = True
        if override:
            why = f"{why} (override: {override_text})" if why else f"override: {override_text}"
        return self._move(version.name, alias, version.number, who, why, results, override)

    def promote(
        self,
        reference: str,
        alias: str,
        *,
        reason: str = "",
        override_reason: str | None = None,
        actor: str | None = None,
    ) -> AliasMove:
        """Point ``alias`` at a version whose newest stored evaluation passed every gate.

        Refuses (``GateFailed``) when a gate failed or the version was never evaluated,
        unless ``override_reason`` is given (the audit log marks the override).
        """
        version = self.get(reference)
        alias_ops.check_alias(version.name, alias)
        evaluation = self.latest_evaluation(version.reference)
        override_text = alias_ops.check_override(override_reason)
        if evaluation is None:
            if not override_text:
                alias_ops.refuse_unevaluated(version.reference, alias)
            why = alias_ops.check_reason(reason)
            text = f"override: {override_text} (not evaluated)"
            return self._move(
                version.name,
                alias,
                version.number,
                resolve_actor(actor),
                f"{why} ({text})" if why else text,
                (),
                True,
            )
        return self.set_alias(
            version.reference,
            alias,
            reason=reason,
            gate_results=evaluation.gate_results,
            override_reason=override_reason,
            actor=actor,
        )

    def rollback(self, reference: str, *, reason: str = "", actor: str | None = None) -> AliasMove:
        """Move ``name@alias`` back to the version it pointed at before its last move."""
        ref = parse_reference(reference)
        if ref.kind != "alias" or ref.value is None:
            raise ModelInputError(
                f"rollback takes NAME@ALIAS (e.g. churn@champion), not {reference!r}.",
                hint="Name the alias to move back.",
            )
        why = alias_ops.check_reason(reason) or "rollback to the previous version"
        who = resolve_actor(actor)
        metadata = self.stores.metadata
        with metadata.transaction() as conn:
            serial = catalog.lock_model(conn, metadata, ref.name, create=False, now=_now())
            _, target = alias_ops.rollback_target(conn, ref.name, ref.value)
            move = alias_ops.move_alias(
                conn,
                metadata,
                ref.name,
                ref.value,
                target,
                actor=who,
                reason=why,
                gate_results=(),
                override=False,
                kind="rollback",
                now=_now(),
            )
            alias_ops.bump_serial(conn, ref.name, serial)
        return move

    def remove_alias(
        self, name: str, alias: str, *, reason: str = "", actor: str | None = None
    ) -> AliasMove:
        """Delete ``name@alias`` (audited); serving of it stops at the next poll."""
        validate_name(name, what="model name")
        alias_ops.check_alias(name, alias)
        return self._move(
            name,
            alias,
            None,
            resolve_actor(actor),
            alias_ops.check_reason(reason),
            (),
            False,
            "remove",
        )

    def _move(
        self,
        name: str,
        alias: str,
        number: int | None,
        actor: str,
        reason: str,
        results: Sequence[GateResult],
        override: bool,
        kind: Literal["set", "rollback", "remove"] = "set",
    ) -> AliasMove:
        metadata = self.stores.metadata
        now = _now()
        with metadata.transaction() as conn:
            serial = catalog.lock_model(conn, metadata, name, create=False, now=now)
            move = alias_ops.move_alias(
                conn,
                metadata,
                name,
                alias,
                number,
                actor=actor,
                reason=reason,
                gate_results=results,
                override=override,
                kind=kind,
                now=now,
            )
            alias_ops.bump_serial(conn, name, serial)
        return move

    def alias_history(self, name: str, alias: str) -> list[AliasMove]:
        """Every move of ``name@alias``, newest first."""
        validate_name(name, what="model name")
        alias_ops.check_alias(name, alias)
        with self.stores.metadata.connect() as conn:
            if not catalog.model_exists(conn, name):
                raise catalog.unknown_model(conn, name)
            return alias_ops.history(conn, name, alias)

    def audit_log(self, name: str) -> list[AliasMove]:
        """Every alias move of model ``name``, newest first."""
        validate_name(name, what="model name")
        with self.stores.metadata.connect() as conn:
            if not catalog.model_exists(conn, name):
                raise catalog.unknown_model(conn, name)
            return alias_ops.history(conn, name, None)

    def alias_config(self, name: str, alias: str) -> AliasConfig:
        """Where ``name@alias`` points, its canary and shadow, and the model's serial."""
        validate_name(name, what="model name")
        alias_ops.check_alias(name, alias)
        with self.stores.metadata.connect() as conn:
            return alias_ops.alias_config(conn, name, alias)

    def serial(self, name: str) -> int:
        """A number that increases on every alias or alias-config change of the model."""
        with self.stores.metadata.connect() as conn:
            value = conn.execute(select(models.c.serial).where(models.c.name == name)).scalar()
            if value is None:
                raise catalog.unknown_model(conn, name)
            return int(value)

    def set_canary(
        self,
        name: str,
        alias: str,
        *,
        version: int,
        share: float,
        sticky_by: Literal["entity", "request"] = "entity",
        actor: str | None = None,
    ) -> AliasConfig:
        """Send ``share`` (0 < share < 1) of ``name@alias``'s traffic to ``version``."""
        share = alias_ops.check_canary(share, sticky_by)
        number = self._version_number(name, version)
        return self._traffic(
            name,
            alias,
            {"canary_number": number, "canary_share": share, "canary_sticky_by": sticky_by},
            actor,
            "model.canary.set",
        )

    def clear_canary(self, name: str, alias: str, *, actor: str | None = None) -> AliasConfig:
        """Stop the canary of ``name@alias``."""
        values = {"canary_number": None, "canary_share": None, "canary_sticky_by": None}
        return self._traffic(name, alias, values, actor, "model.canary.clear")

    def set_shadow(
        self, name: str, alias: str, *, version: int, actor: str | None = None
    ) -> AliasConfig:
        """Send a copy of ``name@alias``'s traffic to ``version`` (answers only logged)."""
        number = self._version_number(name, version)
        return self._traffic(name, alias, {"shadow_number": number}, actor, "model.shadow.set")

    def clear_shadow(self, name: str, alias: str, *, actor: str | None = None) -> AliasConfig:
        """Stop the shadow of ``name@alias``."""
        return self._traffic(name, alias, {"shadow_number": None}, actor, "model.shadow.clear")

    def _version_number(self, name: str, version: object) -> int:
        if isinstance(version, bool) or not isinstance(version, int):
            raise ModelInputError(f"version must be a version number (int), not {version!r}.")
        return self.get(f"{name}@v{version}").number

    def _traffic(
        self, name: str, alias: str, values: dict[str, Any], actor: str | None, action: str
    ) -> AliasConfig:
        validate_name(name, what="model name")
        alias_ops.check_alias(name, alias)
        who = resolve_actor(actor)
        metadata = self.stores.metadata
        with metadata.transaction() as conn:
            alias_ops.set_traffic(
                conn, metadata, name, alias, values, actor=who, action=action, now=_now()
            )
        return self.alias_config(name, alias)
