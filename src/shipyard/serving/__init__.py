"""Serving: registered models as a strict, fast HTTP service, and in batch.

::

    shipyard serve churn@champion            # 127.0.0.1:8000; OpenAPI at /openapi.json
    shipyard predict churn@champion --input in.parquet --output out.parquet
    shipyard build churn@champion            # Dockerfile + Kubernetes manifests

In Python, ``create_service(["churn@champion"])`` is the ASGI app (run it under any
ASGI server) and ``serve([...])`` runs it under uvicorn. The request contract is
compiled from each version's signature (``Contract``); online features are read
in-process for requests that carry entity keys; every prediction goes to the prediction
log of ``shipyard.monitoring``; alias moves, canaries and shadows in the registry are
picked up without a restart.

Heavy libraries load on first use: importing this package costs almost nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.serving.app import ModelService
    from shipyard.serving.batch import BatchReport, predict_file
    from shipyard.serving.build import BuildReport, build_deployment_files
    from shipyard.serving.contract import Contract, FieldError
    from shipyard.serving.server import create_service, serve
    from shipyard.serving.settings import ServingSettings

__all__ = [
    "BatchReport",
    "BuildReport",
    "Contract",
    "FieldError",
    "ModelService",
    "ServingSettings",
    "build_deployment_files",
    "create_service",
    "predict_file",
    "serve",
]

_LAZY: dict[str, str] = {
    "ModelService": "shipyard.serving.app",
    "BatchReport": "shipyard.serving.batch",
    "predict_file": "shipyard.serving.batch",
    "BuildReport": "shipyard.serving.build",
    "build_deployment_files": "shipyard.serving.build",
    "Contract": "shipyard.serving.contract",
    "FieldError": "shipyard.serving.contract",
    "create_service": "shipyard.serving.server",
    "serve": "shipyard.serving.server",
    "ServingSettings": "shipyard.serving.settings",
}


def __getattr__(name: str) -> Any:
    """Load the public API on first use, so ``import shipyard.serving`` stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.serving' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
