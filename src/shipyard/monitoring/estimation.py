"""Performance estimation without labels: calibrated scores as probabilities.

:class:`ScoreCalibrator` maps a binary classifier's scores to calibrated probabilities
(isotonic by default); :func:`estimate_binary_metrics` takes the expected confusion
matrix, ranking and precision-recall curve under them (confidence-based performance
estimation). ``shipyard.monitoring.performance`` uses both for windows whose labels
have not arrived.

>>> calibrator = ScoreCalibrator().fit(reference_scores, reference_labels)
>>> estimate_binary_metrics(calibrator.predict(scores), scores, threshold=0.5)["recall"]
0.62
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np

from shipyard.core.errors import ConfigError, DataContractError

__all__ = ["ESTIMABLE", "ScoreCalibrator", "estimate_binary_metrics"]

ESTIMABLE = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss")


class ScoreCalibrator:
    """Maps a binary classifier's scores to calibrated probabilities of the positive class.

    ``method``: ``isotonic`` (monotone, no shape assumed; pool-adjacent-violators),
    ``platt`` (a logistic curve on the score's logit) or ``none`` (scores as they are).
    Estimator contract: ``fit(scores, y)`` returns self; learned state ends in ``_``.
    """

    thresholds_: np.ndarray[Any, Any]
    values_: np.ndarray[Any, Any]
    coef_: tuple[float, float]
    rows_: int

    def __init__(self, method: Literal["isotonic", "platt", "none"] = "isotonic") -> None:
        self.method = method

    def fit(self, scores: Any, y: Any) -> Self:
        if self.method not in ("isotonic", "platt", "none"):
            raise ConfigError(
                f"Calibration method {self.method!r} is unknown.",
                hint="Use 'isotonic', 'platt' or 'none'.",
            )
        s = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(y)
        if s.ndim != 1 or s.shape != labels.shape or s.size == 0:
            raise DataContractError(
                f"Calibration needs as many 0/1 labels as scores; got {labels.shape} labels "
                f"and {s.shape} scores."
            )
        if not np.isfinite(s).all() or not np.isin(labels, (0, 1)).all():
            raise DataContractError("Calibration needs finite scores and labels of 0 or 1.")
        target = labels.astype(np.float64)
        if target.min() == target.max():
            raise DataContractError(
                f"Calibration rows hold only label {int(target[0])}; both classes are needed.",
                hint="Calibrate on a labelled reference with positive and negative rows.",
            )
        self.rows_ = int(s.size)
        if self.method == "isotonic":
            self.thresholds_, self.values_ = _isotonic(s, target)
        elif self.method == "platt":
            self.coef_ = _platt(_logit(s), target)
        return self

    def predict(self, scores: Any) -> np.ndarray[Any, Any]:
        """The calibrated probability of each score."""
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "none":
            return np.clip(s, 0.0, 1.0)
        if not hasattr(self, "rows_"):
            raise DataContractError("This ScoreCalibrator is not fitted; call fit() first.")
        if self.method == "platt":
            a, b = self.coef_
            return 1.0 / (1.0 + np.exp(-(a * _logit(s) + b)))
        return np.asarray(np.interp(s, self.thresholds_, self.values_), dtype=np.float64)


def _logit(s: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    p = np.clip(s, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(p / (1 - p)))


def _platt(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> tuple[float, float]:
    """Logistic regression of y on x by Newton's method (Platt's targets against overfit)."""
    positives = y.sum()
    negatives = y.size - positives
    target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    a, b = 1.0, 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        w = np.maximum(p * (1 - p), 1e-12)
        gradient = np.array([np.sum((p - target) * x), np.sum(p - target)])
        hessian = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
        hessian += np.eye(2) * 1e-9
        step = np.linalg.solve(hessian, gradient)
        a, b = a - float(step[0]), b - float(step[1])
        if np.abs(step).max() < 1e-9:
            break
    return a, b


def _isotonic(
    s: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Pool adjacent violators: the non-decreasing step fit of y on s, as interpolation points."""
    order = np.argsort(s, kind="mergesort")
    xs, ys = s[order], y[order]
    unique, start = np.unique(xs, return_index=True)
    counts = np.diff(np.r_[start, xs.size]).astype(np.float64)
    sums = np.add.reduceat(ys, start)
    means: list[float] = []
    weights: list[float] = []
    lows: list[int] = []
    for index, (total, count) in enumerate(zip(sums.tolist(), counts.tolist(), strict=True)):
        means.append(total / count)
        weights.append(count)
        lows.append(index)
        while len(means) > 1 and means[-2] > means[-1]:
            merged = weights[-2] + weights[-1]
            means[-2] = (means[-2] * weights[-2] + means[-1] * weights[-1]) / merged
            weights[-2] = merged
            means.pop()
            weights.pop()
            lows.pop()
    fitted = np.empty(unique.size)
    bounds = [*lows, unique.size]
    for block, mean in enumerate(means):
        fitted[bounds[block] : bounds[block + 1]] = mean
    return unique, fitted


def estimate_binary_metrics(
    probabilities: Any, scores: Any, threshold: float
) -> dict[str, float | None]:
    """Expected metrics of rows whose positive-class probabilities are ``probabilities``.

    ``scores`` decide the predicted class (``>= threshold``) and the ranking;
    ``probabilities`` (calibrated) say how likely each row is positive. None where the
    metric is undefined (no expected positives, say).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if p.shape != s.shape or p.ndim != 1:
        raise DataContractError("probabilities and scores must be 1-D of one length.")
    if p.size == 0:
        return dict.fromkeys(ESTIMABLE)
    predicted = s >= threshold
    tp = float(p[predicted].sum())
    fp = float((1 - p[predicted]).sum())
    fn = float(p[~predicted].sum())
    tn = float((1 - p[~predicted]).sum())
    out: dict[str, float | None] = {
        "accuracy": (tp + tn) / p.size,
        "precision": tp / (tp + fp) if predicted.any() else None,
        "recall": tp / (tp + fn) if tp + fn > 0 else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else None,
    }
    eps = np.finfo(np.float64).eps
    clipped = np.clip(s, eps, 1 - eps)
    if ((s >= 0) & (s <= 1)).all():
        out["log_loss"] = float(-np.mean(p * np.log(clipped) + (1 - p) * np.log(1 - clipped)))
    else:
        out["log_loss"] = None
    out["roc_auc"] = _expected_auc(p, s)
    out["pr_auc"] = _expected_average_precision(p, s)
    return out


def _expected_auc(p: np.ndarray[Any, Any], s: np.ndarray[Any, Any]) -> float | None:
    """P(a positive outranks a negative), each row positive with probability p (ties: 1/2)."""
    negatives = 1 - p
    pairs = float(p.sum() * negatives.sum() - np.sum(p * negatives))  # pairs of distinct rows
    if pairs <= 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ss, pp, nn = s[order], p[order], negatives[order]
    unique, start = np.unique(ss, return_index=True)
    group_pos = np.add.reduceat(pp, start)
    group_neg = np.add.reduceat(nn, start)
    below = np.r_[0.0, np.cumsum(group_neg)[:-1]]  # negatives' weight strictly below
    # Within a tie group, the pairs of distinct rows count half; the row with itself not.
    tied = group_pos * group_neg - np.add.reduceat(pp * nn, start)
    wins = float(np.sum(group_pos * below) + 0.5 * np.sum(tied))
    del unique
    return wins / pairs


def _expected_average_precision(p: np.ndarray[Any, Any], s: np.ndarray[Any, Any]) -> float | None:
    total = float(p.sum())
    if total <= 0:
        return None
    order = np.argsort(-s, kind="mergesort")
    ss, pp = s[order], p[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), ss.size - 1]  # a cut cannot split ties
    tps = np.cumsum(pp)[last]
    precision = tps / (last + 1)
    recall_steps = np.diff(np.r_[0.0, tps / total])
    return float(np.sum(recall_steps * precision))
