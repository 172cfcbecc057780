"""The registry's records as JSON data and back: what the store keeps and ``--json`` prints.

The inverse functions (``signature_from_dict``, ``gate_result_from_dict``) check the
shape they read, so a damaged row gives a clear ``ModelInputError`` rather than a
``KeyError`` deep inside serving.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

from shipyard.models.errors import ModelInputError
from shipyard.models.records import (
    AliasConfig,
    AliasMove,
    Evaluation,
    FieldSpec,
    GateResult,
    ModelVersion,
    Signature,
    Task,
)

__all__ = [
    "TASKS",
    "alias_config_to_dict",
    "alias_move_to_dict",
    "check_gate_results",
    "evaluation_to_dict",
    "gate_result_from_dict",
    "gate_result_to_dict",
    "json_value",
    "signature_from_dict",
    "signature_to_dict",
    "version_to_dict",
]

TASKS: tuple[Task, ...] = (
    "binary_classification",
    "multiclass_classification",
    "regression",
    "other",
)
_STATUSES = ("passed", "failed", "skipped")


def json_value(value: Any, *, where: str) -> Any:
    """``value`` as strict JSON data: numpy scalars become Python numbers, non-finite floats
    become None, tuples become lists; anything else raises ``ModelInputError`` naming
    ``where``."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        return json_value(item(), where=where)
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and type(value).__module__ == "numpy":  # an array
        return json_value(tolist(), where=where)
    if isinstance(value, list | tuple):
        return [json_value(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if not isinstance(key, str):
                raise ModelInputError(
                    f"{where} has a non-string key {key!r}.",
                    hint="Use string keys only (JSON objects).",
                )
            out[key] = json_value(inner, where=f"{where}[{key!r}]")
        return out
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    raise ModelInputError(
        f"{where} holds a {type(value).__name__}, which cannot be stored as JSON.",
        hint="Use strings, numbers, booleans, None, lists and dicts.",
    )


def _field_to_dict(spec: FieldSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "type": spec.type,
        "nullable": spec.nullable,
        "rules": json_value(dict(spec.rules), where=f"rules of field {spec.name!r}"),
        "observed": json_value(dict(spec.observed), where=f"observed of field {spec.name!r}"),
    }


def signature_to_dict(signature: Signature) -> dict[str, Any]:
    """A signature as JSON data (``signature_from_dict`` reads it back)."""
    return {
        "inputs": [_field_to_dict(spec) for spec in signature.inputs],
        "outputs": [_field_to_dict(spec) for spec in signature.outputs],
        "task": signature.task,
        "input_example": [
            json_value(dict(row), where="input_example") for row in signature.input_example
        ],
        "feature_service": signature.feature_service,
        "threshold": signature.threshold,
        "classes": json_value(list(signature.classes), where="classes")
        if signature.classes is not None
        else None,
    }


def _field_from_dict(data: Any, where: str) -> FieldSpec:
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        raise ModelInputError(f"{where} is not a field (a mapping with a 'name').")
    kind = data.get("type", "string")
    if not isinstance(kind, str):
        raise ModelInputError(f"{where} ({data['name']!r}) has a non-string type {kind!r}.")
    rules = data.get("rules") or {}
    observed = data.get("observed") or {}
    if not isinstance(rules, Mapping) or not isinstance(observed, Mapping):
        raise ModelInputError(f"{where} ({data['name']!r}): rules and observed must be mappings.")
    return FieldSpec(
        name=data["name"],
        type=kind,
        nullable=bool(data.get("nullable", True)),
        rules=dict(rules),
        observed=dict(observed),
    )


def signature_from_dict(data: Any) -> Signature:
    """Read back what ``signature_to_dict`` wrote."""
    if not isinstance(data, Mapping):
        raise ModelInputError("A stored signature is not a mapping.")
    task = data.get("task", "other")
    if task not in TASKS:
        raise ModelInputError(
            f"Signature task {task!r} is not one of {', '.join(TASKS)}.",
            hint="Pick one of those tasks.",
        )
    inputs = data.get("inputs") or []
    outputs = data.get("outputs") or []
    example = data.get("input_example") or []
    if not isinstance(inputs, Sequence) or not isinstance(outputs, Sequence):
        raise ModelInputError("A stored signature's inputs and outputs must be lists.")
    classes = data.get("classes")
    threshold = data.get("threshold")
    return Signature(
        inputs=tuple(_field_from_dict(f, f"input {i}") for i, f in enumerate(inputs)),
        outputs=tuple(_field_from_dict(f, f"output {i}") for i, f in enumerate(outputs)),
        task=cast(Task, task),
        input_example=tuple(dict(row) for row in example if isinstance(row, Mapping)),
        feature_service=data.get("feature_service"),
        threshold=float(threshold) if threshold is not None else None,
        classes=tuple(classes) if classes is not None else None,
    )


def gate_result_to_dict(result: GateResult) -> dict[str, Any]:
    """A gate result as JSON data."""
    return {
        "gate": result.gate,
        "kind": result.kind,
        "figure": json_value(result.figure, where=f"figure of gate {result.gate!r}"),
        "bound": result.bound,
        "status": result.status,
        "detail": json_value(dict(result.detail), where=f"detail of gate {result.gate!r}"),
    }


def gate_result_from_dict(data: Any) -> GateResult:
    """Read back what ``gate_result_to_dict`` wrote."""
    if not isinstance(data, Mapping) or data.get("status") not in _STATUSES:
        raise ModelInputError(f"A stored gate result is malformed: {data!r:.200}.")
    figure = data.get("figure")
    return GateResult(
        gate=str(data.get("gate", "")),
        kind=str(data.get("kind", "")),
        figure=float(figure) if figure is not None else None,
        bound=str(data.get("bound", "")),
        status=data["status"],
        detail=dict(data.get("detail") or {}),
    )


def check_gate_results(results: Any, *, where: str = "gate_results") -> tuple[GateResult, ...]:
    """``results`` as a tuple of ``GateResult``; ``ModelInputError`` naming a bad item."""
    if results is None:
        return ()
    if isinstance(results, GateResult):
        return (results,)
    if isinstance(results, str | bytes | Mapping) or not isinstance(results, Sequence):
        raise ModelInputError(
            f"{where} must be a sequence of GateResult, not {type(results).__name__}.",
            hint="Pass the gate results the evaluation returned (a tuple of GateResult).",
        )
    checked: list[GateResult] = []
    for index, item in enumerate(results):
        if not isinstance(item, GateResult):
            raise ModelInputError(
                f"{where}[{index}] is a {type(item).__name__}, not a GateResult.",
                hint="Build gate results with shipyard.models.GateResult.",
            )
        if item.status not in _STATUSES:
            raise ModelInputError(
                f"{where}[{index}] ({item.gate!r}) has status {item.status!r}; expected one "
                f"of {', '.join(_STATUSES)}."
            )
        checked.append(item)
    return tuple(checked)


def version_to_dict(version: ModelVersion) -> dict[str, Any]:
    """A model version as JSON data (what ``shipyard models show --json`` prints)."""
    return {
        "id": version.id,
        "name": version.name,
        "version": version.number,
        "reference": version.reference,
        "flavor": version.flavor,
        "model_type": version.model_type,
        "model_class": version.model_class,
        "uses_pickle": version.uses_pickle,
        "signature": signature_to_dict(version.signature),
        "run_id": version.run_id,
        "dataset_versions": list(version.dataset_versions),
        "feature_service": version.feature_service,
        "code_commit": version.code_commit,
        "description": version.description,
        "tags": dict(version.tags),
        "created_by": version.created_by,
        "created_at": version.created_at.isoformat(),
        "aliases": list(version.aliases),
        "threshold": version.threshold,
    }


def alias_move_to_dict(move: AliasMove) -> dict[str, Any]:
    """An audit-log entry as JSON data."""
    return {
        "model": move.model,
        "alias": move.alias,
        "kind": move.kind,
        "from_version": move.from_version,
        "to_version": move.to_version,
        "actor": move.actor,
        "at": move.at.isoformat(),
        "reason": move.reason,
        "override": move.override,
        "gate_results": [gate_result_to_dict(r) for r in move.gate_results],
    }


def alias_config_to_dict(config: AliasConfig) -> dict[str, Any]:
    """An alias's configuration as JSON data."""
    return {
        "model": config.model,
        "alias": config.alias,
        "version": config.version,
        "canary": None
        if config.canary is None
        else {
            "version": config.canary.version,
            "share": config.canary.share,
            "sticky_by": config.canary.sticky_by,
        },
        "shadow": config.shadow,
        "serial": config.serial,
    }


def evaluation_to_dict(evaluation: Evaluation, *, with_plots: bool = False) -> dict[str, Any]:
    """A stored evaluation as JSON data (plots' SVG text only when asked)."""
    out: dict[str, Any] = {
        "id": evaluation.id,
        "model": evaluation.model,
        "version": evaluation.version,
        "dataset": evaluation.dataset,
        "metrics": json_value(dict(evaluation.metrics), where="metrics"),
        "gate_results": [gate_result_to_dict(r) for r in evaluation.gate_results],
        "passed": evaluation.passed,
        "threshold": evaluation.threshold,
        "plots": sorted(evaluation.plot_blobs),
        "detail": json_value(dict(evaluation.detail), where="detail"),
        "created_by": evaluation.created_by,
        "created_at": evaluation.created_at.isoformat(),
    }
    if with_plots:
        out["plot_svgs"] = dict(evaluation.plots)
    return out
