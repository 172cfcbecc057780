"""The NumPy metrics agree with scikit-learn's, including ties and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve as sk_calibration

from shipyard.evaluation import metrics as m


def cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    out = []
    for size in (2, 7, 50, 333):
        for decimals in (1, 2, 6):  # few decimals: many tied scores
            y = rng.integers(0, 2, size)
            y[0], y[-1] = 0, 1
            scores = np.round(rng.random(size) * 0.6 + y * 0.3, decimals)
            out.append((y, scores))
    return out


@pytest.mark.parametrize(("y", "scores"), cases())
def test_ranking_and_threshold_metrics_match_sklearn(y: np.ndarray, scores: np.ndarray) -> None:
    assert m.roc_auc(y, scores) == pytest.approx(sk.roc_auc_score(y, scores), abs=1e-12)
    assert m.average_precision(y, scores) == pytest.approx(
        sk.average_precision_score(y, scores), abs=1e-12
    )
    assert m.log_loss(y, scores) == pytest.approx(sk.log_loss(y, scores), rel=1e-9)
    for threshold in (0.2, 0.5, 0.81):
        predicted = (scores >= threshold).astype(int)
        assert m.precision(y, scores, threshold) == pytest.approx(
            sk.precision_score(y, predicted, zero_division=0)
        )
        assert m.recall(y, scores, threshold) == pytest.approx(
            sk.recall_score(y, predicted, zero_division=0)
        )
        assert m.f1(y, scores, threshold) == pytest.approx(
            sk.f1_score(y, predicted, zero_division=0)
        )
        assert m.accuracy(y, scores, threshold) == pytest.approx(sk.accuracy_score(y, predicted))
        assert (
            m.confusion_matrix(y, scores, threshold).tolist()
            == sk.confusion_matrix(y, predicted, labels=[0, 1]).tolist()
        )


@pytest.mark.parametrize(("y", "scores"), cases())
def test_curves_match_sklearn(y: np.ndarray, scores: np.ndarray) -> None:
    fpr, tpr, _ = sk.roc_curve(y, scores, drop_intermediate=False)
    roc = m.roc_curve(y, scores)
    np.testing.assert_allclose(roc.x, fpr)
    np.testing.assert_allclose(roc.y, tpr)
    precision, recall, thresholds = sk.precision_recall_curve(y, scores)
    pr = m.precision_recall_curve(y, scores)
    # scikit-learn lists thresholds ascending and appends the (recall 0, precision 1) point.
    np.testing.assert_allclose(pr.y[::-1], precision[:-1])
    np.testing.assert_allclose(pr.x[::-1], recall[:-1])
    np.testing.assert_allclose(pr.thresholds[::-1], thresholds)
    true_share, mean_score = sk_calibration(y, np.clip(scores, 0, 1), n_bins=10)
    ours_score, ours_share = m.calibration_curve(y, np.clip(scores, 0, 1), bins=10)
    np.testing.assert_allclose(ours_score, mean_score)
    np.testing.assert_allclose(ours_share, true_share)


@pytest.mark.parametrize(("y", "scores"), cases())
def test_operating_points_are_the_best_reachable(y: np.ndarray, scores: np.ndarray) -> None:
    precision, recall, thresholds = sk.precision_recall_curve(y, scores)
    precision, recall = precision[:-1], recall[:-1]
    for target in (0.5, 0.7, 0.9):
        point = m.recall_at_precision(y, scores, target)
        reachable = precision >= target
        if not reachable.any():
            assert point is None
            continue
        assert point is not None
        assert point.recall == pytest.approx(recall[reachable].max())
        assert point.precision >= target
        predicted = (scores >= point.threshold).astype(int)
        assert sk.recall_score(y, predicted) == pytest.approx(point.recall)
        assert sk.precision_score(y, predicted) == pytest.approx(point.precision)
        at_recall = m.precision_at_recall(y, scores, target)
        assert at_recall is not None  # recall 1 is always reachable
        assert at_recall.recall >= target
        assert at_recall.precision == pytest.approx(precision[recall >= target].max())


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 200)
    predicted = y + rng.normal(0, 1, 200)
    assert m.rmse(y, predicted) == pytest.approx(math.sqrt(sk.mean_squared_error(y, predicted)))
    assert m.mae(y, predicted) == pytest.approx(sk.mean_absolute_error(y, predicted))
    assert m.r2(y, predicted) == pytest.approx(sk.r2_score(y, predicted))
    constant = np.full(5, 2.0)
    assert m.r2(constant, constant) == 1.0
    assert m.r2(constant, constant + 1) == sk.r2_score(constant, constant + 1) == 0.0


def test_edge_cases_are_explicit() -> None:
    one_class = np.zeros(4, dtype=int)
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="both classes"):
        m.roc_auc(one_class, scores)
    assert math.isnan(m.binary_metric("roc_auc", one_class, scores, 0.5))
    assert m.precision(one_class, scores, 0.9) == 0.0  # nothing predicted positive
    with pytest.raises(ValueError, match="finite"):
        m.roc_auc(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="0 or 1"):
        m.log_loss(np.array([0, 2]), np.array([0.1, 0.9]))
    with pytest.raises(ValueError, match="one length"):
        m.roc_auc(np.array([0, 1, 1]), np.array([0.1, 0.9]))
    with pytest.raises(ValueError, match="no rows"):
        m.rmse(np.array([]), np.array([]))
    assert m.recall_at_precision(np.array([1, 0]), np.array([0.1, 0.9]), 0.99) is None
