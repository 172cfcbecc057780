"""The registry's records: what a model version is, its signature, gates, alias moves.

These frozen records are the contract between the registry (``shipyard.models``), the
evaluation and gates (``shipyard.evaluation``), serving and monitoring: each of them reads
and writes these shapes and nothing looser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "AliasConfig",
    "AliasMove",
    "CanaryConfig",
    "Evaluation",
    "FieldSpec",
    "GateResult",
    "GateStatus",
    "ModelVersion",
    "Signature",
    "Task",
]

Task = Literal["binary_classification", "multiclass_classification", "regression", "other"]
GateStatus = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class FieldSpec:
    """One input or output field of a signature.

    ``type`` is an Arrow type string (``int64``, ``float64``, ``string``, ``bool``,
    ``timestamp[us, tz=UTC]``...). ``rules`` are the declared contract rules that serving
    enforces (the data contract's ``min``, ``max``, ``allowed``, ``pattern``...); ``observed``
    is what training saw (``min``, ``max``, ``categories``, ``null_fraction``), kept as
    information: serving flags values outside it and never rejects them.
    """

    name: str
    type: str
    nullable: bool = True
    rules: Mapping[str, Any] = field(default_factory=dict)
    observed: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Signature:
    """The serving contract of a model version.

    ``feature_service`` is a reference (``churn_features@v2``) when the model reads online
    features; ``threshold`` is the decision threshold chosen at evaluation (classifiers);
    ``classes`` the label values in score order (for a binary classifier, the positive
    class is ``classes[1]`` and the score is its probability).
    """

    inputs: tuple[FieldSpec, ...]
    outputs: tuple[FieldSpec, ...]
    task: Task = "other"
    input_example: tuple[Mapping[str, Any], ...] = ()
    feature_service: str | None = None
    threshold: float | None = None
    classes: tuple[Any, ...] | None = None

    def input(self, name: str) -> FieldSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


@dataclass(frozen=True)
class ModelVersion:
    """One immutable model version. ``reference`` (``churn@v3``) names it; ``id`` everywhere.

    ``id`` is the content id of the stored model folder (its manifest's hash), so the same
    files registered twice give the same id. Lineage: the run that produced it, the dataset
    versions it was trained and evaluated on (references), the feature service reference
    and the code commit.
    """

    id: str
    name: str
    number: int
    flavor: str
    model_type: str  # "sklearn", "lightgbm", "xgboost", "onnx", "python", later "rag"
    signature: Signature
    run_id: str | None
    dataset_versions: tuple[str, ...]
    feature_service: str | None
    code_commit: str | None
    description: str
    tags: Mapping[str, str]
    created_by: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    threshold: float | None = None  # set at evaluation, immutably stored per evaluation
    uses_pickle: bool = False
    """Whether loading runs stored Python code (a python/pickle flavor or pre-/post-
    processing hooks): ``ModelRegistry.load`` then needs ``allow_pickle=True``."""
    model_class: str = ""
    """The stored model's class, ``module.QualifiedName``."""

    @property
    def reference(self) -> str:
        return f"{self.name}@v{self.number}"

    @property
    def short_id(self) -> str:
        """The first 12 hex digits of the content id (``name@<short id>`` names it)."""
        return self.id.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class GateResult:
    """The result of one gate on one model version: the figure, the bound, the verdict.

    ``status`` is ``skipped`` when the gate could not apply (no champion yet, say), with
    the reason in ``detail``.
    """

    gate: str  # the gate's name as declared, e.g. "recall_at_precision_0.8"
    kind: str  # "metric", "champion", "latency", "fairness", "robustness"
    figure: float | None
    bound: str  # human-readable bound, e.g. ">= 0.60"
    status: GateStatus
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True)
class AliasMove:
    """One entry of the alias audit log: who moved which alias, when, from, to, why."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None  # None when the alias was removed
    actor: str
    at: datetime
    reason: str
    gate_results: tuple[GateResult, ...] = ()
    override: bool = False
    kind: Literal["set", "rollback", "remove"] = "set"


@dataclass(frozen=True)
class CanaryConfig:
    """A share of an alias's traffic sent to another version, sticky by entity or request."""

    version: int
    share: float  # 0 < share < 1
    sticky_by: Literal["entity", "request"] = "entity"


@dataclass(frozen=True)
class AliasConfig:
    """Where an alias points and how serving splits its traffic; polled by serving.

    ``serial`` increases on every change to any alias of the model, so a poller compares
    one integer to know whether to reload.
    """

    model: str
    alias: str
    version: int
    canary: CanaryConfig | None = None
    shadow: int | None = None
    serial: int = 0


@dataclass(frozen=True)
class Evaluation:
    """One stored evaluation of a model version (written by ``shipyard.evaluation``).

    ``plots`` holds each plot's SVG text by name (``roc``, ``pr``, ``calibration``...);
    ``plot_blobs`` the artifact blob that stores it. ``passed`` is True when no gate
    failed (a skipped gate is not a failure).
    """

    id: int
    model: str
    version: int
    dataset: str | None
    metrics: Mapping[str, Any]
    gate_results: tuple[GateResult, ...]
    threshold: float | None
    plots: Mapping[str, str]
    plot_blobs: Mapping[str, str]
    detail: Mapping[str, Any]
    created_by: str
    created_at: datetime

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.gate_results)

    @property
    def failed_gates(self) -> tuple[GateResult, ...]:
        return tuple(result for result in self.gate_results if not result.passed)
