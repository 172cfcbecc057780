"""Evaluation and promotion gates: business targets checked on held-out data, model cards.

>>> import shipyard.evaluation as sy_eval
>>> report = sy_eval.evaluate(
...     "churn@v3",
...     data="churn_holdout@v1",
...     label="churn",
...     gates=[
...         sy_eval.recall_at_precision(0.80, min_recall=0.60),
...         sy_eval.champion(metric="roc_auc", max_drop=0.01),
...         sy_eval.latency(p99_ms=200),
...         sy_eval.fairness(metric="recall", by="Gender", max_gap=0.10),
...         sy_eval.robustness(),
...     ],
... )
>>> report.passed
True

Metrics are NumPy code (no scikit-learn at run time); gates may also be declared per
model in ``shipyard.toml`` (``[gates.churn]``, see ``gate_config``). The evaluation is
stored on the version, where promotion checks it; ``model_card`` renders its card.
Heavy libraries load on first use: importing this package costs almost nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.evaluation.card import card_from_report, model_card
    from shipyard.evaluation.data import EvaluationSet, TimeSplit
    from shipyard.evaluation.gate_config import gates_from_config, parse_gates
    from shipyard.evaluation.gates import (
        Gate,
        champion,
        fairness,
        latency,
        metric,
        precision_at_recall,
        recall_at_precision,
        robustness,
    )
    from shipyard.evaluation.report import EvaluationReport
    from shipyard.evaluation.runner import evaluate
    from shipyard.evaluation.scoring import EstimatorPredictor, Predictor

__all__ = [
    "EstimatorPredictor",
    "EvaluationReport",
    "EvaluationSet",
    "Gate",
    "Predictor",
    "TimeSplit",
    "card_from_report",
    "champion",
    "evaluate",
    "fairness",
    "gates_from_config",
    "latency",
    "metric",
    "model_card",
    "parse_gates",
    "precision_at_recall",
    "recall_at_precision",
    "robustness",
]

_LAZY: dict[str, str] = {
    "card_from_report": "shipyard.evaluation.card",
    "model_card": "shipyard.evaluation.card",
    "EvaluationSet": "shipyard.evaluation.data",
    "TimeSplit": "shipyard.evaluation.data",
    "evaluate": "shipyard.evaluation.runner",
    "gates_from_config": "shipyard.evaluation.gate_config",
    "parse_gates": "shipyard.evaluation.gate_config",
    **dict.fromkeys(
        (
            "Gate",
            "champion",
            "fairness",
            "latency",
            "metric",
            "precision_at_recall",
            "recall_at_precision",
            "robustness",
        ),
        "shipyard.evaluation.gates",
    ),
    "EvaluationReport": "shipyard.evaluation.report",
    "EstimatorPredictor": "shipyard.evaluation.scoring",
    "Predictor": "shipyard.evaluation.scoring",
}


def __getattr__(name: str) -> Any:
    """Load the public API on first use, so ``import shipyard.evaluation`` stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.evaluation' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
