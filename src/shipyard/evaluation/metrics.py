"""Model metrics in plain NumPy: classification, ranking, calibration and regression.

The definitions follow scikit-learn's (the tests check them against it) without importing
it, so evaluation runs wherever NumPy does. Scores of a binary classifier are the positive
class's probability; a row is predicted positive when its score is ``>= threshold``.

>>> import numpy as np
>>> y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
>>> round(roc_auc(y, s), 2), round(average_precision(y, s), 2)
(0.75, 0.83)
>>> recall_at_precision(y, s, 0.9)
OperatingPoint(threshold=0.8, precision=1.0, recall=0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BINARY_METRICS",
    "LOWER_IS_BETTER",
    "METRICS",
    "REGRESSION_METRICS",
    "Curve",
    "OperatingPoint",
    "accuracy",
    "average_precision",
    "binary_metrics",
    "calibration_curve",
    "confusion_matrix",
    "f1",
    "log_loss",
    "mae",
    "precision",
    "precision_at_recall",
    "precision_recall_curve",
    "r2",
    "recall",
    "recall_at_precision",
    "regression_metrics",
    "rmse",
    "roc_auc",
    "roc_curve",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Metrics a gate may name, by task; "pr_auc" is average precision (scikit-learn's).
BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
METRICS = BINARY_METRICS + REGRESSION_METRICS
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


@dataclass(frozen=True)
class Curve:
    """A curve's points (``x``, ``y``) and the score threshold of each point."""

    x: FloatArray
    y: FloatArray
    thresholds: FloatArray


@dataclass(frozen=True)
class OperatingPoint:
    """A decision threshold and the precision and recall it gives."""

    threshold: float
    precision: float
    recall: float


def _binary(y_true: Any, scores: Any) -> tuple[IntArray, FloatArray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be 1-D of one length")
    if y.size == 0:
        raise ValueError("no rows to compute a metric on")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("binary labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y.astype(np.int64), s


def _labels(y_true: Any, scores: Any, threshold: float) -> tuple[IntArray, IntArray]:
    y, s = _binary(y_true, scores)
    return y, (s >= threshold).astype(np.int64)


def confusion_matrix(y_true: Any, scores: Any, threshold: float = 0.5) -> IntArray:
    """``[[tn, fp], [fn, tp]]`` at ``threshold`` (rows: truth, columns: prediction)."""
    y, predicted = _labels(y_true, scores, threshold)
    tp = int(np.sum((y == 1) & (predicted == 1)))
    fp = int(np.sum((y == 0) & (predicted == 1)))
    fn = int(np.sum((y == 1) & (predicted == 0)))
    tn = int(np.sum((y == 0) & (predicted == 0)))
    return np.array([[tn, fp], [fn, tp]], dtype=np.int64)


def _ratio(numerator: int, denominator: int) -> float:
    # scikit-learn's zero_division default: an undefined ratio counts as 0.
    return numerator / denominator if denominator else 0.0


def precision(y_true: Any, scores: Any, threshold: float = 0.5) -> float:
    """Share of predicted positives that are positive (0 when nothing is predicted positive)."""
    (_, fp), (_, tp) = confusion_matrix(y_true, scores, threshold)
    return _ratio(int(tp), int(tp + fp))


def recall(y_true: Any, scores: Any, threshold: float = 0.5) -> float:
    """Share of positives predicted positive (0 when there are no positives)."""
    (_, _), (fn, tp) = confusion_matrix(y_true, scores, threshold)
    return _ratio(int(tp), int(tp + fn))


def f1(y_true: Any, scores: Any, threshold: float = 0.5) -> float:
    """Harmonic mean of precision and recall at ``threshold``."""
    (_, fp), (fn, tp) = confusion_matrix(y_true, scores, threshold)
    return _ratio(2 * int(tp), 2 * int(tp) + int(fp) + int(fn))


def accuracy(y_true: Any, scores: Any, threshold: float = 0.5) -> float:
    """Share of rows whose predicted label is right."""
    y, predicted = _labels(y_true, scores, threshold)
    return float(np.mean(y == predicted))


def _cumulative_counts(y: IntArray, s: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
    """True and false positives when cutting at each distinct score, highest first."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # The last row of each run of equal scores: a cut cannot separate tied rows.
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), y_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    return tps.astype(np.int64), fps.astype(np.int64), s_sorted[last]


def _need_both_classes(y: IntArray, metric: str) -> None:
    if y.min() == y.max():
        raise ValueError(f"{metric} needs both classes among the labels; only {y[0]} is present")


def roc_curve(y_true: Any, scores: Any) -> Curve:
    """False positive rate (``x``) and true positive rate (``y``), from (0, 0) to (1, 1)."""
    y, s = _binary(y_true, scores)
    _need_both_classes(y, "a ROC curve")
    tps, fps, thresholds = _cumulative_counts(y, s)
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return Curve(fpr, tpr, np.r_[np.inf, thresholds])


def roc_auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve: the chance a random positive outranks a random negative."""
    curve = roc_curve(y_true, scores)
    # The trapezoid rule by hand: np.trapezoid needs NumPy 2, Shipyard supports 1.26.
    return float(np.sum(np.diff(curve.x) * (curve.y[1:] + curve.y[:-1]) / 2))


def precision_recall_curve(y_true: Any, scores: Any) -> Curve:
    """Recall (``x``) and precision (``y``) at each distinct score, highest threshold first."""
    y, s = _binary(y_true, scores)
    tps, fps, thresholds = _cumulative_counts(y, s)
    positives = int(tps[-1])
    precisions = tps / (tps + fps)
    recalls = tps / positives if positives else np.zeros_like(tps, dtype=np.float64)
    return Curve(recalls.astype(np.float64), precisions.astype(np.float64), thresholds)


def average_precision(y_true: Any, scores: Any) -> float:
    """Area under the precision-recall curve as a step sum (PR AUC, like scikit-learn's)."""
    y, s = _binary(y_true, scores)
    _need_both_classes(y, "average precision")
    curve = precision_recall_curve(y, s)
    steps = np.diff(np.r_[0.0, curve.x])
    return float(np.sum(steps * curve.y))


def log_loss(y_true: Any, scores: Any) -> float:
    """Mean negative log-likelihood of the labels under the scores (clipped at float eps)."""
    y, s = _binary(y_true, scores)
    eps = np.finfo(np.float64).eps
    p = np.clip(s, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _best(curve: Curve, keep: npt.NDArray[np.bool_], maximise: FloatArray) -> OperatingPoint | None:
    if not keep.any():
        return None
    candidates = np.flatnonzero(keep)
    # Among equal best values, the highest threshold: fewer alerts for the same figure.
    best = candidates[np.argmax(maximise[candidates])]
    return OperatingPoint(float(curve.thresholds[best]), float(curve.y[best]), float(curve.x[best]))


def recall_at_precision(y_true: Any, scores: Any, min_precision: float) -> OperatingPoint | None:
    """The threshold with the highest recall whose precision is ``>= min_precision``.

    None when no threshold reaches that precision.
    """
    curve = precision_recall_curve(y_true, scores)
    return _best(curve, curve.y >= min_precision, curve.x)


def precision_at_recall(y_true: Any, scores: Any, min_recall: float) -> OperatingPoint | None:
    """The threshold with the highest precision whose recall is ``>= min_recall``."""
    curve = precision_recall_curve(y_true, scores)
    return _best(curve, curve.x >= min_recall, curve.y)


def calibration_curve(y_true: Any, scores: Any, bins: int = 10) -> tuple[FloatArray, FloatArray]:
    """Mean score (``x``) and share of positives (``y``) per score bin of equal width.

    Empty bins are left out, as scikit-learn's ``calibration_curve(strategy="uniform")``.
    """
    y, s = _binary(y_true, scores)
    if s.min() < 0 or s.max() > 1:
        raise ValueError("a calibration curve needs scores between 0 and 1")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], s)
    counts = np.bincount(index, minlength=bins)
    score_sums = np.bincount(index, weights=s, minlength=bins)
    positive_sums = np.bincount(index, weights=y, minlength=bins)
    filled = counts > 0
    return (score_sums[filled] / counts[filled], positive_sums[filled] / counts[filled])


def _regression(y_true: Any, predicted: Any) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"targets {y.shape} and predictions {p.shape} must be 1-D of one length")
    if y.size == 0:
        raise ValueError("no rows to compute a metric on")
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise ValueError("targets and predictions must be finite")
    return y, p


def rmse(y_true: Any, predicted: Any) -> float:
    """Root mean squared error."""
    y, p = _regression(y_true, predicted)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mae(y_true: Any, predicted: Any) -> float:
    """Mean absolute error."""
    y, p = _regression(y_true, predicted)
    return float(np.mean(np.abs(y - p)))


def r2(y_true: Any, predicted: Any) -> float:
    """Coefficient of determination (1 for a perfect fit; 0 for a constant target's miss)."""
    y, p = _regression(y_true, predicted)
    residual = float(np.sum((y - p) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


_THRESHOLDED: dict[str, Callable[[Any, Any, float], float]] = {
    "accuracy": accuracy,
    "precision": precision,
    "recall": recall,
    "f1": f1,
}
_RANKING: dict[str, Callable[[Any, Any], float]] = {
    "roc_auc": roc_auc,
    "pr_auc": average_precision,
    "log_loss": log_loss,
}
_REGRESSION: dict[str, Callable[[Any, Any], float]] = {"rmse": rmse, "mae": mae, "r2": r2}


def binary_metric(name: str, y_true: Any, scores: Any, threshold: float) -> float:
    """One binary metric by name; NaN when it is undefined on these labels (one class)."""
    if name in _THRESHOLDED:
        return _THRESHOLDED[name](y_true, scores, threshold)
    try:
        return _RANKING[name](y_true, scores)
    except ValueError:
        if np.unique(np.asarray(y_true)).size < 2:
            return math.nan
        raise


def binary_metrics(y_true: Any, scores: Any, threshold: float = 0.5) -> dict[str, float]:
    """Every binary metric at ``threshold`` (ranking metrics ignore it)."""
    return {name: binary_metric(name, y_true, scores, threshold) for name in BINARY_METRICS}


def regression_metrics(y_true: Any, predicted: Any) -> dict[str, float]:
    """RMSE, MAE and R2."""
    return {name: function(y_true, predicted) for name, function in _REGRESSION.items()}


def regression_metric(name: str, y_true: Any, predicted: Any) -> float:
    """One regression metric by name."""
    return _REGRESSION[name](y_true, predicted)
