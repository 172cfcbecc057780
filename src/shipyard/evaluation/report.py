"""``EvaluationReport``: what one evaluation of one model measured, and its gates' verdicts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.models.records import GateResult, Task

__all__ = ["EvaluationReport", "clean_json", "gate_result_dict"]


def clean_json(value: Any) -> Any:
    """``value`` as strict JSON data: NaN and infinities become None, numpy scalars
    Python numbers, tuples lists (PostgreSQL's JSON refuses NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return clean_json(item())
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return clean_json(tolist())
    return str(value)


def gate_result_dict(result: GateResult) -> dict[str, Any]:
    """One gate result as JSON data."""
    return {
        "gate": result.gate,
        "kind": result.kind,
        "figure": clean_json(result.figure),
        "bound": result.bound,
        "status": result.status,
        "detail": clean_json(result.detail),
    }


@dataclass(frozen=True)
class EvaluationReport:
    """One evaluation: metrics at the decision threshold, slices, plots and gate results.

    ``passed`` is True when no gate failed (skipped gates do not fail a version).
    ``recorded`` tells whether it was stored on the version in the registry.
    """

    model: str | None
    version_id: str | None
    dataset: str
    data_description: str
    task: Task
    rows: int
    threshold: float | None
    metrics: Mapping[str, float | None]
    gate_results: tuple[GateResult, ...]
    slices: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    plots: Mapping[str, str] = field(default_factory=dict)
    positives: int | None = None
    class_names: tuple[str, str] | None = None
    recorded: bool = False

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.gate_results)

    @property
    def failed_gates(self) -> tuple[GateResult, ...]:
        return tuple(result for result in self.gate_results if not result.passed)

    def detail(self) -> dict[str, Any]:
        """What the registry keeps beside metrics and gates (data, slices, classes)."""
        detail: dict[str, Any] = clean_json(
            {
                "data": self.data_description,
                "task": self.task,
                "rows": self.rows,
                "positives": self.positives,
                "class_names": list(self.class_names) if self.class_names else None,
                "slices": self.slices,
            }
        )
        return detail

    def to_dict(self, *, plots: bool = False) -> dict[str, Any]:
        """The report as JSON data (plots' SVG only when asked: they are large)."""
        out: dict[str, Any] = {
            "model": self.model,
            "version_id": self.version_id,
            "dataset": self.dataset,
            "passed": self.passed,
            "threshold": clean_json(self.threshold),
            "metrics": clean_json(self.metrics),
            "gates": [gate_result_dict(result) for result in self.gate_results],
            "recorded": self.recorded,
            **self.detail(),
        }
        if plots:
            out["plots"] = dict(self.plots)
        return out
