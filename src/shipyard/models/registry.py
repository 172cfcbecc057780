"""``ModelRegistry``: register immutable model versions, move aliases, load models.

>>> with ModelRegistry.open() as registry:
...     version = registry.register("churn", run_id=run.id, training_data="churn@v1")
...     registry.record_evaluation(version.reference, metrics={"auc": 0.91}, gate_results=gates)
...     registry.promote(version.reference, "champion", reason="beats v2 on holdout")
...     registry.load("churn@champion").predict([{"state": "KS", ...}]).labels

See ``shipyard.models`` for the whole API; the pieces live in ``catalog`` (versions and
evaluations in SQL), ``aliases`` (moves, audit, canary/shadow), ``registering`` (what a
registration stores), ``packaging`` (the stored folder) and ``loaded`` (predict).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from shipyard.core.config import Config, load_config
from shipyard.core.errors import IntegrityError
from shipyard.core.references import parse_reference, validate_name
from shipyard.models import aliases as alias_ops
from shipyard.models import catalog, stored_evaluations
from shipyard.models.errors import ModelInputError
from shipyard.models.loaded import LoadedModel
from shipyard.models.packaging import HOOKS, MODEL_FOLDER, download_package, upload_package
from shipyard.models.records import (
    AliasConfig,
    AliasMove,
    Evaluation,
    GateResult,
    ModelVersion,
    Signature,
    Task,
)
from shipyard.models.serialize import check_gate_results
from shipyard.store.schema.models import model_versions, models
from shipyard.store.stores import Stores, open_stores

if TYPE_CHECKING:
    from shipyard.data.client import DatasetClient

__all__ = ["ModelRegistry"]

logger = logging.getLogger("shipyard.models")

MAX_LOADED = 16
"""Loaded models kept in memory per registry (least recently loaded dropped first)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(actor: object) -> str:
    if actor is None:
        from shipyard.tracking.capture import current_user

        return current_user()
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 256:
        raise ModelInputError(f"actor must be a name of 1-256 characters, not {actor!r}.")
    return actor.strip()


class ModelRegistry:
    """The model registry of one project's stores. Close it (or use ``with``) when done."""

    def __init__(
        self,
        stores: Stores,
        config: Config | None = None,
        *,
        owns_stores: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        self.stores = stores
        self.config = config
        self._owns = owns_stores
        self._scratch: Path | None = None
        if cache_dir is None and config is not None:
            cache_dir = config.home / "cache" / "models"
        if cache_dir is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="shipyard-models-"))
            cache_dir = self._scratch
        self.cache_dir = cache_dir
        self._objects: dict[str, tuple[Any, Any, Any]] = {}  # content id -> model, hooks
        self._load_lock = threading.Lock()
        self._datasets: DatasetClient | None = None

    @classmethod
    def open(cls, config: Config | None = None) -> ModelRegistry:
        """The registry on the project's stores (``config`` None: the cwd's project)."""
        config = config or load_config()
        return cls(open_stores(config), config, owns_stores=True)

    def close(self) -> None:
        """Release the stores this registry opened and its scratch folders."""
        self._objects.clear()
        if self._datasets is not None:
            self._datasets.close()
            self._datasets = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        if self._owns:
            self.stores.close()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def datasets(self) -> DatasetClient:
        """A dataset client on the same stores (for training versions and profiles)."""
        if self._datasets is None:
            from shipyard.data.client import DatasetClient

            self._datasets = DatasetClient(self.stores, self.config)
        return self._datasets

    # --- Registering ----------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any = None,
        *,
        run_id: str | None = None,
        artifact_path: str = "model",
        signature: Signature | None = None,
        training_data: str | Sequence[str] | None = None,
        feature_service: str | None = None,
        preprocess: Callable[[Any], Any] | None = None,
        postprocess: Callable[[Any, Any], Any] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        allow_pickle: bool = False,
        input_example: Any = None,
        task: Task | None = None,
        model_type: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Register a new immutable version of model ``name``; return it.

        Give a fitted ``model`` or the ``run_id`` that logged one (``artifact_path``, the
        name it was logged under). The signature is inferred unless given: input columns
        from the model's feature names and an input example (given, saved with the model,
        or sampled from the training data), their types, rules and observed ranges from
        the training dataset version (``training_data``; for a run, its inputs with role
        ``train`` by default). Hooks: ``preprocess(frame)`` gets the rows as a pandas
        DataFrame (the signature's columns, in order) and returns what the model takes;
        ``postprocess(scores, frame)`` returns the final scores. Hooks are Python code:
        they need ``allow_pickle=True``, like generic Python models. The same package
        registered again under the same name returns the existing version.
        """
        from shipyard.models.registering import (
            build_package,
            check_feature_service,
            check_register_arguments,
            fetch_run_model,
            resolve_datasets,
            store_version,
        )

        checked_tags = check_register_arguments(
            name, model, run_id, description=description, allow_pickle=allow_pickle, tags=tags
        )
        who = _actor(actor)
        service_ref = check_feature_service(feature_service)
        scratch = Path(tempfile.mkdtemp(prefix="shipyard-register-"))
        try:
            run_model = (
                fetch_run_model(self.stores, run_id, artifact_path, scratch)
                if run_id is not None
                else None
            )
            run = run_model.run if run_model is not None else None
            training, lineage = resolve_datasets(self.datasets, training_data, run)
            built = build_package(
                scratch / "package",
                model=model,
                run_model=run_model,
                signature=signature,
                training=training,
                datasets=self.datasets,
                feature_service=service_ref,
                preprocess=preprocess,
                postprocess=postprocess,
                allow_pickle=allow_pickle,
                input_example=input_example,
                task=task,
                model_type=model_type,
            )
            files = upload_package(built.package, self.stores.artifacts)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        number = store_version(
            self.stores.metadata,
            name,
            built,
            files=files,
            run=run,
            lineage=lineage,
            feature_service=service_ref,
            description=description,
            tags=checked_tags,
            actor=who,
        )
        return self.get(f"{name}@v{number}")

    # --- Reading --------------------------------------------------------------------------

    def get(self, reference: str) -> ModelVersion:
        """The version ``name@v3``, ``name@alias``, ``name@<id prefix>`` or ``name`` (newest)."""
        with self.stores.metadata.connect() as conn:
            return catalog.load_version(conn, catalog.resolve(conn, reference))

    def list_models(self) -> list[str]:
        """Every model name, sorted."""
        with self.stores.metadata.connect() as conn:
            return list(conn.execute(select(models.c.name).order_by(models.c.name)).scalars())

    def list_versions(self, name: str) -> list[ModelVersion]:
        """A model's versions, newest first (``NotFoundError`` for an unknown model)."""
        validate_name(name, what="model name")
        with self.stores.metadata.connect() as conn:
            if not catalog.model_exists(conn, name):
                raise catalog.unknown_model(conn, name)
            rows = list(
                conn.execute(
                    select(model_versions)
                    .where(model_versions.c.name == name)
                    .order_by(model_versions.c.number.desc())
                ).mappings()
            )
            aliases = catalog.aliases_of(conn, name)
            thresholds = catalog.latest_thresholds(conn, name)
        return [
            catalog.version_from_row(
                row, aliases.get(row["number"], []), thresholds.get(row["number"])
            )
            for row in rows
        ]

    def versions_using_feature_service(self, feature_service: str) -> list[ModelVersion]:
        """Every version (of any model) whose signature reads feature service
        ``feature_service`` (a name, or a reference whose name is taken)."""
        name = parse_reference(feature_service).name
        with self.stores.metadata.connect() as conn:
            rows = list(
                conn.execute(
                    select(model_versions)
                    .where(model_versions.c.feature_service_name == name)
                    .order_by(model_versions.c.name, model_versions.c.number)
                ).mappings()
            )
            return [catalog.load_version(conn, row) for row in rows]

    def load(self, reference: str, *, allow_pickle: bool = False) -> LoadedModel:
        """The version ``reference`` names, loaded and ready to ``predict``.

        Files are downloaded once into the cache folder and checked against their
        content ids; the loaded model is cached per version id. A version that runs
        stored Python code (``ModelVersion.uses_pickle``) needs ``allow_pickle=True``.
        """
        from shipyard.formats import UnsafeModelError
        from shipyard.models.kinds import kind_named

        with self.stores.metadata.connect() as conn:
            row = catalog.resolve(conn, reference)
            version = catalog.load_version(conn, row)
        if version.uses_pickle and not allow_pickle:
            raise UnsafeModelError(
                f"{version.reference} runs stored Python code (model type "
                f"{version.model_type!r}, flavor {version.flavor!r}"
                + (", pre-/post-processing hooks" if row["package"].get("hooks") else "")
                + "); loading it unpickles that code.",
                hint="If you trust who registered it, pass allow_pickle=True "
                "(`--allow-pickle` on the command line).",
            )
        with self._load_lock:
            objects = self._objects.pop(version.id, None)
            if objects is None:
                hooks = row["package"].get("hooks") or []
                try:
                    objects = self._load_objects(row["files"], version.id, hooks, allow_pickle)
                except IntegrityError:
                    # The local copy changed since it was downloaded; the artifact store
                    # is the source of truth (and verifies what it hands out).
                    logger.warning(
                        "The cached files of %s failed their checks; downloading them again.",
                        version.reference,
                    )
                    objects = self._load_objects(
                        row["files"], version.id, hooks, allow_pickle, refresh=True
                    )
            self._objects[version.id] = objects  # newest last: the order is the LRU order
            while len(self._objects) > MAX_LOADED:
                self._objects.pop(next(iter(self._objects)))
        model, preprocess, postprocess = objects
        return LoadedModel(
            version,
            model,
            kind_named(version.model_type),
            preprocess=preprocess,
            postprocess=postprocess,
        )

    def _load_objects(
        self,
        files: Mapping[str, str],
        content_id: str,
        hooks: Sequence[str],
        allow_pickle: bool,
        *,
        refresh: bool = False,
    ) -> tuple[Any, Any, Any]:
        from shipyard.formats import load_model

        folder = download_package(
            files, content_id, self.stores.artifacts, self.cache_dir, refresh=refresh
        )
        model = load_model(folder / MODEL_FOLDER, allow_pickle=allow_pickle)
        loaded = [
            load_model(folder / hook, allow_pickle=True) if hook in hooks else None
            for hook in HOOKS
        ]
        return model, loaded[0], loaded[1]

    # --- Aliases --------------------------------------------------------------------------

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
        who = _actor(actor)
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
                _actor(actor),
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
        who = _actor(actor)
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
            name, alias, None, _actor(actor), alias_ops.check_reason(reason), (), False, "remove"
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
        who = _actor(actor)
        metadata = self.stores.metadata
        with metadata.transaction() as conn:
            alias_ops.set_traffic(
                conn, metadata, name, alias, values, actor=who, action=action, now=_now()
            )
        return self.alias_config(name, alias)

    # --- Evaluations ----------------------------------------------------------------------

    def record_evaluation(
        self,
        reference: str,
        *,
        dataset: str | None = None,
        metrics: Mapping[str, Any],
        gate_results: Sequence[GateResult] = (),
        threshold: float | None = None,
        plots: Mapping[str, str | bytes] | None = None,
        detail: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> Evaluation:
        """Store an evaluation of a version: metrics, gate results, the chosen threshold
        (which becomes the version's decision threshold), plots (SVG text) and detail
        (JSON: slices, confusion matrix...). Returns the stored record."""
        version = self.get(reference)
        evaluation_id = stored_evaluations.record_evaluation(
            self.stores,
            version,
            dataset=dataset,
            metrics=metrics,
            gate_results=gate_results,
            threshold=threshold,
            plots=plots,
            detail=detail,
            actor=_actor(actor),
        )
        found = stored_evaluations.read_evaluations(self.stores, version)
        return next(e for e in found if e.id == evaluation_id)

    def evaluations(self, reference: str, *, with_plots: bool = True) -> list[Evaluation]:
        """Every stored evaluation of a version, newest first, with its plots' SVG text."""
        version = self.get(reference)
        return stored_evaluations.read_evaluations(self.stores, version, with_plots=with_plots)

    def latest_evaluation(self, reference: str, *, with_plots: bool = False) -> Evaluation | None:
        """The newest stored evaluation of a version, or None."""
        found = self.evaluations(reference, with_plots=with_plots)
        return found[0] if found else None
