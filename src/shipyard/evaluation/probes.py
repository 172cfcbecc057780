"""Robustness probes: hostile rows sent beside valid control rows, as serving would.

For each probe, a batch of control rows (real evaluation rows the contract accepts) and
probe rows (copies with one field made hostile) goes through what serving does: the
signature's declared rules reject some rows (``contract.rejected_rows``), the model
scores the rest. The probe passes when

- no control row is rejected (a contract that rejects everything is no pass),
- the model answers every accepted row validly: no exception, a finite score and a
  label per row, and the control rows' scores unchanged by their hostile neighbours.

Probes: ``missing_values`` (each input null in turn), ``out_of_range`` (numbers far
outside what training saw), ``unseen_category`` (a string never seen), ``extreme_values``
(+/-1e300, infinities, int64 limits, a 10,000-character string), ``empty_batch`` (no
rows), ``column_order`` (the control rows as a table with the columns reversed).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.evaluation.contract import field_kind, rejected_rows, row_problem
from shipyard.models.records import FieldSpec, Signature

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.evaluation.scoring import Predictor

__all__ = ["PROBES", "run_probes"]

PROBES: tuple[str, ...] = (
    "missing_values",
    "out_of_range",
    "unseen_category",
    "extreme_values",
    "empty_batch",
    "column_order",
)
UNSEEN = "__shipyard_unseen_category__"
_INT64_MAX = 2**63 - 1
_SHOWN_REASONS = 5


def _controls(signature: Signature, features: pa.Table, count: int) -> list[dict[str, Any]]:
    """Up to ``count`` evaluation rows, spread over the set, that the contract accepts."""
    total = features.num_rows
    picks = np.unique(np.linspace(0, total - 1, min(total, count * 4)).astype(int)).tolist()
    rows = features.take(picks).to_pylist() if picks else []
    return [row for row in rows if row_problem(signature, row) is None][:count]


def _numeric_range(spec: FieldSpec, features: pa.Table) -> tuple[float, float]:
    observed = spec.observed
    low, high = observed.get("min"), observed.get("max")
    if isinstance(low, int | float) and isinstance(high, int | float):
        return float(low), float(high)
    values = (
        [
            v
            for v in features.column(spec.name).to_pylist()
            if isinstance(v, int | float) and math.isfinite(v)
        ]
        if spec.name in features.column_names
        else []
    )
    return (float(min(values)), float(max(values))) if values else (0.0, 1.0)


def _hostile_values(probe: str, spec: FieldSpec, features: pa.Table) -> list[Any]:
    kind = field_kind(spec)
    if probe == "missing_values":
        return [None]
    if probe == "out_of_range" and kind in ("int", "float"):
        low, high = _numeric_range(spec, features)
        span = (high - low) or 1.0
        values = [high + 10 * span, low - 10 * span]
        return [int(round(v)) for v in values] if kind == "int" else values
    if probe == "unseen_category" and kind == "string":
        return [UNSEEN]
    if probe == "extreme_values":
        if kind == "float":
            return [1e300, -1e300, math.inf, -math.inf]
        if kind == "int":
            return [_INT64_MAX, -_INT64_MAX - 1]
        if kind == "string":
            return ["x" * 10_000]
    return []


def _probe_rows(
    probe: str, signature: Signature, features: pa.Table, controls: list[dict[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = []
    for spec in signature.inputs:
        for value in _hostile_values(probe, spec, features):
            row = dict(controls[len(rows) % len(controls)])
            row[spec.name] = value
            rows.append((f"{spec.name}={value!r:.40}", row))
    return rows


def _answer_problem(prediction: Any, count: int, task: str) -> str | None:
    """Why a prediction for ``count`` rows is not a valid answer, or None."""
    scores = np.asarray(getattr(prediction, "scores", None), dtype=object)
    if scores.ndim == 0 or len(scores) != count:
        return f"{0 if scores.ndim == 0 else len(scores)} scores for {count} rows"
    try:
        numeric = np.asarray(prediction.scores, dtype=np.float64)
    except (TypeError, ValueError):
        return "scores are not numbers"
    if not np.isfinite(numeric).all():
        bad = int((~np.isfinite(numeric)).reshape(count, -1).any(axis=1).sum()) if count else 0
        return f"{bad} row(s) got a non-finite score"
    if task in ("binary_classification", "multiclass_classification"):
        labels = getattr(prediction, "labels", None)
        if labels is None or len(labels) != count:
            return "a classifier must give one label per row"
        if any(
            label is None or (isinstance(label, float) and math.isnan(label)) for label in labels
        ):
            return "some rows got no label"
    return None


def _scores(prediction: Any) -> np.ndarray[Any, Any]:
    return np.asarray(prediction.scores, dtype=np.float64)


def _run_batch(
    predictor: Predictor,
    probe: str,
    controls: list[dict[str, Any]],
    control_scores: np.ndarray[Any, Any],
    probes: list[tuple[str, dict[str, Any]]],
) -> dict[str, Any]:
    signature = predictor.signature
    batch = controls + [row for _, row in probes]
    rejected = rejected_rows(signature, batch)
    outcome: dict[str, Any] = {
        "probe": probe,
        "rows": len(probes),
        "controls": len(controls),
        "rejected": len(rejected),
    }
    reasons = [
        f"{probes[i - len(controls)][0]}: {why}"
        for i, why in sorted(rejected.items())
        if i >= len(controls)
    ]
    if reasons:
        outcome["rejected_by_contract"] = reasons[:_SHOWN_REASONS]
    control_rejections = [why for i, why in rejected.items() if i < len(controls)]
    if control_rejections:
        return {
            **outcome,
            "status": "failed",
            "reason": f"the contract rejected valid control rows: {control_rejections[0]}",
        }
    accepted_index = [i for i in range(len(batch)) if i not in rejected]
    accepted = [batch[i] for i in accepted_index]
    try:
        prediction = predictor.predict(accepted)
    except Exception as exc:  # noqa: BLE001 - a crash is the finding, reported per probe
        return {
            **outcome,
            "status": "failed",
            "reason": f"the model raised {type(exc).__name__} on rows the contract "
            f"accepts: {str(exc)[:300]}",
        }
    problem = _answer_problem(prediction, len(accepted), signature.task)
    if problem is None:
        again = _scores(prediction)[: len(controls)]
        if not np.allclose(again, control_scores, rtol=1e-6, atol=1e-9, equal_nan=True):
            problem = "the control rows' scores changed when scored beside the probe rows"
    if problem is not None:
        return {**outcome, "status": "failed", "reason": problem}
    return {**outcome, "answered": len(accepted) - len(controls), "status": "passed"}


def _empty_batch(
    predictor: Predictor, controls: list[dict[str, Any]], control_scores: np.ndarray[Any, Any]
) -> dict[str, Any]:
    from shipyard.core.errors import DataContractError

    outcome: dict[str, Any] = {"probe": "empty_batch", "rows": 0, "controls": len(controls)}
    try:
        prediction = predictor.predict([])
        problem = _answer_problem(prediction, 0, predictor.signature.task)
    except DataContractError as exc:
        problem = None
        outcome["rejected_by_contract"] = [str(exc)[:300]]
    except Exception as exc:  # noqa: BLE001 - the crash is the finding
        problem = f"the model raised {type(exc).__name__} on an empty batch: {str(exc)[:300]}"
    if problem is None:
        # The model still answers the control rows after an empty batch.
        try:
            after = predictor.predict(controls)
            if not np.allclose(_scores(after), control_scores, rtol=1e-6, atol=1e-9):
                problem = "the control rows' scores changed after an empty batch"
        except Exception as exc:  # noqa: BLE001
            problem = f"the model failed on the control rows after an empty batch: {exc}"
    if problem is not None:
        return {**outcome, "status": "failed", "reason": problem}
    return {**outcome, "status": "passed"}


def _column_order(
    predictor: Predictor, controls: list[dict[str, Any]], control_scores: np.ndarray[Any, Any]
) -> dict[str, Any]:
    import pyarrow as pa

    names = [spec.name for spec in predictor.signature.inputs]
    table = pa.Table.from_pylist(controls).select(list(reversed(names)))
    outcome: dict[str, Any] = {
        "probe": "column_order",
        "rows": len(controls),
        "controls": len(controls),
    }
    try:
        scores = _scores(predictor.predict(table))
    except Exception as exc:  # noqa: BLE001 - the crash is the finding
        return {
            **outcome,
            "status": "failed",
            "reason": f"the model raised {type(exc).__name__} on reordered columns: "
            f"{str(exc)[:300]}",
        }
    if scores.shape != control_scores.shape or not np.allclose(
        scores, control_scores, rtol=1e-6, atol=1e-9
    ):
        return {
            **outcome,
            "status": "failed",
            "reason": "reordered columns changed the scores: columns are read by "
            "position, not by name",
        }
    return {**outcome, "status": "passed"}


def run_probes(
    predictor: Predictor, features: pa.Table, probes: Sequence[str], control_count: int = 5
) -> list[dict[str, Any]]:
    """Run ``probes`` against ``predictor``; one outcome dict per probe (``status``,
    ``reason`` when failed, rows, rejected and answered counts)."""
    # Hostile values make models warn (overflow, NaN reductions) by design: the outcome
    # says what happened, the warnings would only be noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _run_probes(predictor, features, probes, control_count)


def _run_probes(
    predictor: Predictor, features: pa.Table, probes: Sequence[str], control_count: int
) -> list[dict[str, Any]]:
    signature = predictor.signature
    controls = _controls(signature, features, control_count)
    if not controls:
        return [
            {
                "probe": probe,
                "status": "failed",
                "reason": "no evaluation row passes the signature's declared rules, so no "
                "valid control rows exist: the contract rejects everything",
            }
            for probe in probes
        ]
    try:
        control_scores = _scores(predictor.predict(controls))
    except Exception as exc:  # noqa: BLE001 - reported as every probe's failure
        return [
            {
                "probe": probe,
                "status": "failed",
                "reason": f"the model raised {type(exc).__name__} on valid control rows: "
                f"{str(exc)[:300]}",
            }
            for probe in probes
        ]
    outcomes: list[dict[str, Any]] = []
    for probe in probes:
        if probe == "empty_batch":
            outcomes.append(_empty_batch(predictor, controls, control_scores))
        elif probe == "column_order":
            outcomes.append(_column_order(predictor, controls, control_scores))
        else:
            rows = _probe_rows(probe, signature, features, controls)
            if not rows:
                outcomes.append(
                    {
                        "probe": probe,
                        "status": "skipped",
                        "reason": "no input field of a type this probe applies to",
                    }
                )
                continue
            outcomes.append(_run_batch(predictor, probe, controls, control_scores, rows))
    return outcomes
