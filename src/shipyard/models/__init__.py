"""The model registry: immutable model versions with signatures and lineage, aliases with
an audit log, promotion behind gates, stored evaluations, and loading for serving.

>>> from shipyard.models import ModelRegistry
>>> with ModelRegistry.open() as registry:
...     version = registry.register("churn", run_id=run.id, training_data="churn@v1")
...     registry.promote(version.reference, "champion", reason="passes every gate")
...     registry.load("churn@champion").predict([{"state": "KS", "account_length": 128}])

Importing this package is cheap: records are light, the registry (SQLAlchemy) and the
loaders (numpy, the model libraries) load on first use of a name that needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from shipyard.models.records import (
    AliasConfig,
    AliasMove,
    CanaryConfig,
    Evaluation,
    FieldSpec,
    GateResult,
    GateStatus,
    ModelVersion,
    Signature,
    Task,
)

if TYPE_CHECKING:
    from shipyard.models.errors import ModelInputError
    from shipyard.models.kinds import ModelKind, register_model_kind
    from shipyard.models.loaded import LoadedModel, Prediction
    from shipyard.models.registry import ModelRegistry
    from shipyard.models.signatures import signature_from

__all__ = [
    "AliasConfig",
    "AliasMove",
    "CanaryConfig",
    "Evaluation",
    "FieldSpec",
    "GateResult",
    "GateStatus",
    "LoadedModel",
    "ModelInputError",
    "ModelKind",
    "ModelRegistry",
    "ModelVersion",
    "Prediction",
    "Signature",
    "Task",
    "register_model_kind",
    "signature_from",
]

_LAZY: dict[str, str] = {
    "LoadedModel": "shipyard.models.loaded",
    "ModelInputError": "shipyard.models.errors",
    "ModelKind": "shipyard.models.kinds",
    "ModelRegistry": "shipyard.models.registry",
    "Prediction": "shipyard.models.loaded",
    "register_model_kind": "shipyard.models.kinds",
    "signature_from": "shipyard.models.signatures",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.models' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
