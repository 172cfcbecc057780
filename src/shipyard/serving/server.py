"""Build the service for a project's models and run it under uvicorn.

>>> service = create_service(["churn@champion"])      # an ASGI app; loads at startup
>>> serve(["churn@champion"], port=8000)              # blocks; 127.0.0.1 unless told

At startup (the ASGI lifespan), the registry and the prediction log open, then a thread
loads and warms every served version (two model calls each) while ``/healthz`` already
answers and ``/readyz`` says 503; once all answer, ``/readyz`` says 200, the micro-batching
calibration runs (requests are scored one by one meanwhile) and the registry watcher
starts. At
shutdown the watcher stops and the prediction log is flushed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError, ShipyardError
from shipyard.serving.app import ModelService
from shipyard.serving.metrics import Metrics
from shipyard.serving.runtime import (
    Arm,
    Predictor,
    ServedModel,
    Watcher,
    build_deployment,
)
from shipyard.serving.settings import ServingSettings

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.serving.runtime import ModelSource

__all__ = ["app_from_environment", "check_references", "create_service", "serve"]

_log = logging.getLogger("shipyard.serving")
_ENV_MODELS = "SHIPYARD_SERVE_MODELS"
_ENV_PROJECT = "SHIPYARD_SERVE_PROJECT"


def _served_models(references: Sequence[str]) -> dict[str, ServedModel]:
    if not references:
        raise ConfigError(
            "Name at least one model to serve.", hint="e.g. shipyard serve churn@champion"
        )
    models: dict[str, ServedModel] = {}
    for reference in references:
        served = ServedModel(reference)
        if served.name in models:
            raise ConfigError(
                f"Model {served.name!r} is named twice ({models[served.name].reference} and "
                f"{reference}); each model is served under its name.",
                hint="Serve one reference per model.",
            )
        models[served.name] = served
    return models


def check_references(references: Sequence[str], source: ModelSource) -> None:
    """Raise ``NotFoundError`` naming the first reference the registry cannot resolve."""
    for served in _served_models(references).values():
        source.get(str(served.reference))


def create_service(
    references: Sequence[str],
    config: Config | None = None,
    *,
    settings: ServingSettings | None = None,
    source: ModelSource | None = None,
    background: bool = True,
) -> ModelService:
    """The ASGI app serving ``references`` (``churn@champion``, ``fraud@v3``...).

    ``source`` is the model registry (opened from ``config`` at startup when None).
    ``background`` False loads the models inside startup instead of a thread (tests).
    """
    from shipyard.core.config import load_config

    config = config or load_config()
    settings = settings or ServingSettings.from_config(config)
    models = _served_models(references)
    metrics = Metrics()
    state: dict[str, Any] = {}

    def make_arm(model: Predictor) -> Arm:
        optional, extra = state["lookup_fields"].get(model.version.name, ((), ()))
        return Arm(
            model,
            metrics=metrics,
            budget_seconds=settings.latency_budget_ms / 1000.0,
            batching=settings.batching,
            optional_inputs=optional,
            extra_fields=extra,
        )

    def install_roles(served: ServedModel) -> None:
        deployment = served.deployment
        if deployment is None:
            return
        for role, arm in deployment.arms():
            arm.set_role(role)
        metrics.set_model_info(
            served.name,
            [
                (served.alias or "", role, arm.version.number, arm.version.id)
                for role, arm in deployment.arms()
            ],
        )

    def load_all() -> None:
        try:
            registry = state["source"]
            for served in models.values():
                reference = str(served.reference)
                version = registry.get(reference)
                lookup = _feature_lookup(config, version, state)
                if lookup is not None:
                    service.lookups[served.name] = lookup
                served.deployment = build_deployment(
                    registry,
                    served,
                    make_arm,
                    allow_pickle=settings.allow_pickle,
                    calibrate=False,
                )
                install_roles(served)
            watcher = Watcher(
                registry,
                models,
                make_arm,
                metrics,
                poll_seconds=settings.poll_seconds,
                allow_pickle=settings.allow_pickle,
                on_swap=install_roles,
            )
            state["watcher"] = watcher
            # Ready once every model answers; the batching calibration (a few model
            # calls each) comes after, while requests are already served one by one.
            service.ready = metrics.ready = True
            for served in models.values():
                if served.deployment is not None:
                    for _, arm in served.deployment.arms():
                        arm.calibrate()
            watcher.start()
        except Exception as exc:
            message = exc.message if isinstance(exc, ShipyardError) else repr(exc)
            service.load_error = message
            _log.error("serving: could not load the models: %s", message)

    def startup() -> None:
        from shipyard.monitoring.prediction_log import LogSettings, PredictionLogWriter
        from shipyard.store.stores import open_stores

        state["lookup_fields"] = {}
        if source is None:
            from shipyard.models.registry import ModelRegistry

            state["source"] = ModelRegistry.open(config)
            state["own_source"] = True
        else:
            state["source"] = source
        stores = open_stores(config)
        state["stores"] = stores
        writer = PredictionLogWriter(stores.metadata, settings=LogSettings.from_config(config))
        service.writer = writer
        metrics.log_stats = lambda: {
            "written": writer.written,
            "dropped": writer.dropped,
            "failed": writer.failed,
        }
        if background:
            threading.Thread(target=load_all, name="shipyard-load", daemon=True).start()
        else:
            load_all()

    def shutdown() -> None:
        watcher = state.get("watcher")
        if watcher is not None:
            watcher.stop()
        if service.writer is not None:
            service.writer.close()
        for lookup in service.lookups.values():
            lookup.close()
        if state.get("own_source"):
            state["source"].close()
        if "stores" in state:
            state["stores"].close()

    service = ModelService(
        models,
        settings=settings,
        metrics=metrics,
        writer=None,
        on_startup=startup,
        on_shutdown=shutdown,
    )
    return service


def _feature_lookup(config: Config, version: Any, state: dict[str, Any]) -> Any:
    """The online-feature lookup of a model that reads a feature service, else None."""
    if not version.signature.feature_service:
        return None
    from shipyard.serving.features import OnlineLookup

    lookup = OnlineLookup.open(config, version.signature)
    state["lookup_fields"][version.name] = lookup.contract_fields()
    return lookup


def app_from_environment() -> ModelService:
    """The app of one uvicorn worker process (``--workers N``), from the environment."""
    from pathlib import Path

    from shipyard.core.config import load_config

    references = [ref for ref in os.environ.get(_ENV_MODELS, "").split(",") if ref]
    project = os.environ.get(_ENV_PROJECT)
    config = load_config(Path(project) if project else None)
    return create_service(references, config)


def serve(
    references: Sequence[str],
    config: Config | None = None,
    *,
    settings: ServingSettings | None = None,
    log_level: str = "warning",
) -> None:
    """Run the service under uvicorn until interrupted (binds 127.0.0.1 by default)."""
    from shipyard.core.config import load_config

    try:
        import uvicorn
    except ImportError as exc:
        raise ConfigError(
            "Serving needs uvicorn, which is not installed.",
            hint="pip install 'shipyard[serving]'",
        ) from exc
    config = config or load_config()
    settings = settings or ServingSettings.from_config(config)
    # Before any model library loads (here and in worker processes); see
    # runtime.limit_native_threads. A value the user set is kept.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }
    if settings.workers > 1:
        os.environ[_ENV_MODELS] = ",".join(references)
        os.environ[_ENV_PROJECT] = str(config.project_dir)
        uvicorn.run(
            "shipyard.serving.server:app_from_environment",
            factory=True,
            workers=settings.workers,
            **options,
        )
        return
    uvicorn.run(create_service(references, config, settings=settings), **options)
