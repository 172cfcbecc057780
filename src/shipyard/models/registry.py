"""``ModelRegistry``: register immutable model versions, move aliases, load models.

>>> with ModelRegistry.open() as registry:
...     version = registry.register("churn", run_id=run.id, training_data="churn@v1")
...     registry.record_evaluation(version.reference, metrics={"auc": 0.91}, gate_results=gates)
...     registry.promote(version.reference, "champion", reason="beats v2 on holdout")
...     registry.load("churn@champion").predict([{"state": "KS", ...}]).labels

See ``shipyard.models`` for the whole API; the pieces live in ``catalog`` (versions and
evaluations in SQL), ``promotion`` (the alias methods: moves, audit, canary/shadow) over
``aliases`` (their SQL), ``registering`` (what a registration stores), ``packaging`` (the
stored folder) and ``loaded`` (predict).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from shipyard.core.config import Config, load_config
from shipyard.core.errors import IntegrityError
from shipyard.core.references import parse_reference, validate_name
from shipyard.models import catalog, stored_evaluations
from shipyard.models.errors import ModelInputError
from shipyard.models.loaded import LoadedModel
from shipyard.models.packaging import HOOKS, MODEL_FOLDER, download_package, upload_package
from shipyard.models.promotion import Promotion, resolve_actor
from shipyard.models.records import Evaluation, GateResult, ModelVersion, Signature, Task
from shipyard.store.schema.models import model_versions, models
from shipyard.store.stores import Stores, open_stores

if TYPE_CHECKING:
    from shipyard.data.client import DatasetClient
    from shipyard.tracking.records import Run

__all__ = ["ModelRegistry"]

logger = logging.getLogger("shipyard.models")

MAX_LOADED = 16
"""Loaded models kept in memory per registry (least recently loaded dropped first)."""


class ModelRegistry(Promotion):
    """The model registry of one project's stores. Close it (or use ``with``) when done.

    Registering, reading, loading and evaluations are here; alias moves, the audit log,
    canary and shadow come from ``Promotion`` (``shipyard.models.promotion``).
    """

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
        source_run: str | None = None,
    ) -> ModelVersion:
        """Register a new immutable version of model ``name``; return it.

        Give a fitted ``model`` or the ``run_id`` that logged one (``artifact_path``, the
        name it was logged under). With a ``model``, ``source_run`` names the tracking run
        that produced it (a pipeline step's run): the version records that run and its git
        commit, and the run's dataset inputs join its lineage, as for ``run_id``.

        The signature is inferred unless given: input columns from the model's feature
        names and an input example (given, saved with the model, or sampled from the
        training data), their types, rules and observed ranges from the training dataset
        version (``training_data``; for a run, its inputs with role
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

        if source_run is not None and model is None:
            raise ModelInputError(
                "source_run= names the run that produced model=; no model was given.",
                hint="To register the model a run logged, pass run_id= instead.",
            )
        checked_tags = check_register_arguments(
            name, model, run_id, description=description, allow_pickle=allow_pickle, tags=tags
        )
        who = resolve_actor(actor)
        service_ref = check_feature_service(feature_service)
        scratch = Path(tempfile.mkdtemp(prefix="shipyard-register-"))
        try:
            run_model = (
                fetch_run_model(self.stores, run_id, artifact_path, scratch)
                if run_id is not None
                else None
            )
            run = run_model.run if run_model is not None else None
            if source_run is not None:
                run = self._source_run(source_run)
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

    def _source_run(self, run_id: object) -> Run:
        from shipyard.core.errors import NotFoundError
        from shipyard.tracking.queries import load_run

        if not isinstance(run_id, str) or not run_id.strip():
            raise ModelInputError(
                f"source_run must be a run id (hex text), not {run_id!r}.",
                hint="Pass the step_run_id of the pipeline step that trained the model.",
            )
        with self.stores.metadata.connect() as conn:
            run = load_run(conn, run_id)
        if run.lifecycle == "deleted":
            raise NotFoundError(
                f"Run {run.id} is deleted; it cannot be the lineage of a new version.",
                hint=f"Restore it first: `shipyard runs restore {run.id[:8]}`.",
            )
        return run

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
            actor=resolve_actor(actor),
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
