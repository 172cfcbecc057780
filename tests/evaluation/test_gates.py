"""Gates on plain fitted models and tables (no registry): figures, bounds, verdicts."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import shipyard.evaluation as sy_eval
from shipyard.core.errors import ConfigError, DataContractError, NotFoundError
from shipyard.evaluation import metrics as m
from shipyard.evaluation.scoring import EstimatorPredictor
from shipyard.models.records import FieldSpec
from tests.evaluation.conftest import make_pipeline
from tests.evaluation.planted import PositionalModel, SlowModel


def predictor_for(model: Any, table: pa.Table, label: str) -> EstimatorPredictor:
    return EstimatorPredictor.from_table(model, table.drop_columns([label]))


def gate(report: sy_eval.EvaluationReport, name: str) -> Any:
    return next(result for result in report.gate_results if result.gate == name)


def test_threshold_gate_chooses_the_threshold_and_metrics_follow_it(
    churn_model: Any, churn_holdout: pa.Table
) -> None:
    predictor = predictor_for(churn_model, churn_holdout, "churn")
    report = sy_eval.evaluate(
        predictor,
        data=churn_holdout,
        label="churn",
        gates=[
            sy_eval.metric("precision", ">=", 0.5),
            sy_eval.recall_at_precision(0.5, min_recall=0.3),
            sy_eval.metric("roc_auc", ">=", 0.99, gate_name="roc_auc_ambitious"),
        ],
    )
    # The threshold gate ran first, whatever the order given.
    assert report.gate_results[0].gate == "recall_at_precision_0.5"
    chosen = report.gate_results[0].detail["threshold"]
    assert report.threshold == chosen
    y = np.array([v == "yes" for v in churn_holdout.column("churn").to_pylist()], dtype=int)
    scores = churn_model.predict_proba(churn_holdout.drop_columns(["churn"]).to_pandas())[:, 1]
    expected = m.recall_at_precision(y, scores, 0.5)
    assert expected is not None and chosen == pytest.approx(expected.threshold)
    assert report.metrics["recall"] == pytest.approx(m.recall(y, scores, chosen))
    assert report.metrics["precision"] >= 0.5
    assert gate(report, "precision").status == "passed"
    assert gate(report, "precision").detail["threshold"] == chosen
    ambitious = gate(report, "roc_auc_ambitious")
    assert ambitious.status == "failed" and ambitious.bound == ">= 0.99"
    assert ambitious.figure == pytest.approx(m.roc_auc(y, scores))
    assert not report.passed and report.failed_gates == (ambitious,)
    assert report.class_names == ("no", "yes") and report.positives == int(y.sum())
    assert {"roc", "pr", "calibration", "confusion_matrix"} <= set(report.plots)


def test_unreachable_precision_fails_with_a_reason(
    churn_model: Any, churn_holdout: pa.Table
) -> None:
    predictor = predictor_for(churn_model, churn_holdout, "churn")
    report = sy_eval.evaluate(
        predictor,
        data=churn_holdout,
        label="churn",
        gates=[
            sy_eval.precision_at_recall(0.5, min_precision=0.3),
            sy_eval.recall_at_precision(1.0, min_recall=0.9),
        ],
    )
    at_recall, at_precision = report.gate_results
    assert at_recall.status == "passed" and at_recall.detail["recall"] >= 0.5
    assert at_precision.status == "failed"
    # Only the first threshold gate sets the threshold.
    assert report.threshold == at_recall.detail["threshold"]


def test_latency_gate_catches_a_planted_delay(churn_model: Any, churn_holdout: pa.Table) -> None:
    slow = EstimatorPredictor.from_table(
        SlowModel(churn_model, delay=0.05), churn_holdout.drop_columns(["churn"])
    )
    report = sy_eval.evaluate(
        slow, data=churn_holdout.slice(0, 200), label="churn", gates=[sy_eval.latency(p99_ms=10)]
    )
    (result,) = report.gate_results
    assert result.status == "failed"
    assert result.figure is not None and result.figure >= 50  # at least the planted sleep
    # It stopped once the p99 could no longer meet the budget, instead of 200 slow calls.
    assert result.detail["calls"] < 20 and "stopped" in result.detail["note"]
    fast = predictor_for(churn_model, churn_holdout, "churn")
    report = sy_eval.evaluate(
        fast,
        data=churn_holdout.slice(0, 200),
        label="churn",
        gates=[sy_eval.latency(p99_ms=5_000, samples=20)],
    )
    (result,) = report.gate_results
    assert result.status == "passed" and result.detail["calls"] == 20
    assert 0 < result.detail["p50_ms"] <= result.figure <= result.detail["max_ms"] + 1e-9


def test_fairness_gate_on_attrition_by_gender(attrition_table: pa.Table) -> None:
    train, holdout = attrition_table.slice(0, 1000), attrition_table.slice(1000)
    model = make_pipeline(train, "Attrition")
    predictor = predictor_for(model, holdout, "Attrition")
    report = sy_eval.evaluate(
        predictor,
        data=holdout,
        label="Attrition",
        slice_by=["Gender"],
        gates=[
            sy_eval.fairness(metric="recall", by="Gender", max_gap=1.0),
            sy_eval.fairness(metric="accuracy", by="Gender", max_gap=0.0),
            sy_eval.fairness(metric="accuracy", by="Age", bins=[30, 45], max_gap=1.0),
        ],
    )
    recall_gate, strict, by_age = report.gate_results
    y = np.array([v == "Yes" for v in holdout.column("Attrition").to_pylist()], dtype=int)
    scores = model.predict_proba(holdout.drop_columns(["Attrition"]).to_pandas())[:, 1]
    gender = np.array(holdout.column("Gender").to_pylist())
    per_slice = {g: m.recall(y[gender == g], scores[gender == g], 0.5) for g in ("Female", "Male")}
    assert recall_gate.detail["slices"]["Female"]["recall"] == pytest.approx(per_slice["Female"])
    assert recall_gate.detail["slices"]["Male"]["rows"] == int((gender == "Male").sum())
    assert recall_gate.figure == pytest.approx(abs(per_slice["Female"] - per_slice["Male"]))
    assert recall_gate.status == "passed" and recall_gate.bound == "gap <= 1"
    assert strict.status == "failed" and strict.figure > 0  # the accuracy differs a little
    assert set(by_age.detail["slices"]) == {"< 30", "30 to < 45", ">= 45"}
    assert report.slices["Gender"]["Male"]["recall"] == pytest.approx(per_slice["Male"])


def test_fairness_skips_when_slices_are_too_small(
    churn_model: Any, churn_holdout: pa.Table
) -> None:
    predictor = predictor_for(churn_model, churn_holdout, "churn")
    report = sy_eval.evaluate(
        predictor,
        data=churn_holdout.slice(0, 60),
        label="churn",
        gates=[sy_eval.fairness(metric="accuracy", by="area_code", max_gap=0.1, min_rows=50)],
    )
    (result,) = report.gate_results
    assert result.status == "skipped" and result.passed
    assert all("excluded" in entry for entry in result.detail["slices"].values())


def test_champion_gate_without_registry_is_skipped(
    churn_model: Any, churn_holdout: pa.Table
) -> None:
    predictor = predictor_for(churn_model, churn_holdout, "churn")
    report = sy_eval.evaluate(
        predictor,
        data=churn_holdout,
        label="churn",
        gates=[sy_eval.champion(metric="roc_auc", max_drop=0.01)],
    )
    (result,) = report.gate_results
    assert result.status == "skipped" and result.figure is None and report.passed


def test_regression_metrics_and_gates(churn_holdout: pa.Table) -> None:
    from sklearn.linear_model import Ridge

    table = churn_holdout.select(["total_day_minutes", "total_eve_minutes", "total_day_charge"])
    features = table.drop_columns(["total_day_charge"])
    model = Ridge().fit(features.to_pandas(), table.column("total_day_charge").to_pandas())
    predictor = EstimatorPredictor.from_table(model, features)
    report = sy_eval.evaluate(
        predictor,
        data=table,
        label="total_day_charge",
        gates=[sy_eval.metric("r2", ">=", 0.99), sy_eval.metric("rmse", "<=", 0.5)],
    )
    assert report.task == "regression" and report.passed
    assert report.metrics["r2"] > 0.99 and "predicted_vs_actual" in report.plots
    with pytest.raises(ConfigError, match="does not apply to a regression model"):
        sy_eval.evaluate(
            predictor,
            data=table,
            label="total_day_charge",
            gates=[sy_eval.metric("recall", ">=", 0.5)],
        )
    text_target = table.append_column("tier", pa.array(["high"] * table.num_rows))
    with pytest.raises(DataContractError, match="'tier' holds string values; a regression"):
        sy_eval.evaluate(predictor, data=text_target, label="tier")
    with pytest.raises(ConfigError, match="needs a binary classifier"):
        sy_eval.evaluate(
            predictor,
            data=table,
            label="total_day_charge",
            gates=[sy_eval.recall_at_precision(0.8, min_recall=0.5)],
        )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: sy_eval.metric("recal", ">=", 0.6), "Did you mean 'recall'"),
        (lambda: sy_eval.metric("recall", "=>", 0.6), "operator '=>'"),
        (lambda: sy_eval.metric("recall", ">=", "high"), "must be a finite number"),
        (lambda: sy_eval.metric("recall", ">=", float("nan")), "finite"),
        (lambda: sy_eval.recall_at_precision(1.5, min_recall=0.6), "between 0 and 1"),
        (lambda: sy_eval.precision_at_recall(0.5, min_precision=True), "finite number"),
        (lambda: sy_eval.champion(metric="auc"), "metric 'auc' is unknown"),
        (lambda: sy_eval.champion(metric="roc_auc", max_drop=-1), ">= 0"),
        (lambda: sy_eval.latency(p99_ms="fast"), "p99_ms must be a finite number"),
        (lambda: sy_eval.latency(p99_ms=10, samples=3), "samples must be an integer"),
        (lambda: sy_eval.fairness(metric="recall", by="", max_gap=0.1), "by must name"),
        (
            lambda: sy_eval.fairness(metric="recall", by="Age", max_gap=0.1, bins=[5, 1]),
            "bins must increase",
        ),
        (lambda: sy_eval.robustness(probes=["missing_value"]), "Did you mean 'missing_values'"),
        (lambda: sy_eval.robustness(probes="missing_values"), "non-empty list"),
        (lambda: sy_eval.robustness(control_rows=0), "control_rows"),
    ],
)
def test_gate_arguments_are_checked(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_bad_evaluation_input_is_named(churn_model: Any, churn_holdout: pa.Table) -> None:
    predictor = predictor_for(churn_model, churn_holdout, "churn")
    with pytest.raises(NotFoundError, match="Label column 'chrun'.*Did you mean 'churn'"):
        sy_eval.evaluate(predictor, data=churn_holdout, label="chrun")
    wrong = churn_holdout.drop_columns(["churn"]).append_column(
        "churn", churn_holdout.column("number_customer_service_calls")
    )
    with pytest.raises(DataContractError, match="model's classes 'no', 'yes' do not include"):
        sy_eval.evaluate(predictor, data=wrong, label="churn")
    with pytest.raises(ConfigError, match="Gate 'fairness_recall_by_Sex'.*'Sex' is not in"):
        sy_eval.evaluate(
            predictor,
            data=churn_holdout,
            label="churn",
            gates=[
                sy_eval.latency(p99_ms=1),
                sy_eval.fairness(metric="recall", by="Sex", max_gap=0.1),
            ],
        )
    with pytest.raises(ConfigError, match="column 'Gendre' is not in the evaluation data"):
        sy_eval.evaluate(predictor, data=churn_holdout, label="churn", slice_by=["Gendre"])
    unlabelled = churn_holdout.set_column(
        churn_holdout.schema.get_field_index("churn"),
        "churn",
        pa.nulls(churn_holdout.num_rows, pa.string()),
    )
    with pytest.raises(DataContractError, match="no labelled row"):
        sy_eval.evaluate(predictor, data=unlabelled, label="churn")
    with pytest.raises(DataContractError, match="lacks the model's input column"):
        sy_eval.evaluate(predictor, data=churn_holdout.drop_columns(["state"]), label="churn")
    with pytest.raises(ConfigError, match="Gate objects"):
        sy_eval.evaluate(predictor, data=churn_holdout, label="churn", gates=["recall>=0.6"])
    with pytest.raises(DataContractError, match="score is the probability of 'yes'"):
        sy_eval.evaluate(predictor, data=churn_holdout, label="churn", positive="no")
    assert sy_eval.evaluate(predictor, data=churn_holdout, label="churn", positive="yes").positives
    with pytest.raises(ConfigError, match="'account_length' has .* distinct values; at most 50"):
        sy_eval.evaluate(predictor, data=churn_holdout, label="churn", slice_by="account_length")
    twice = sy_eval.metric("recall", ">=", 0.1)
    with pytest.raises(ConfigError, match="given twice"):
        sy_eval.evaluate(predictor, data=churn_holdout, label="churn", gates=[twice, twice])


def test_positive_class_is_needed_when_labels_do_not_say(churn_holdout: pa.Table) -> None:
    table = churn_holdout.select(["total_day_minutes", "churn"])
    table = table.set_column(
        1,
        "churn",
        pa.array(["left" if v == "yes" else "stayed" for v in table.column("churn").to_pylist()]),
    )
    model = PositionalModel(np.array([0.01]))
    predictor = EstimatorPredictor.from_table(model, table.drop_columns(["churn"]))
    predictor = EstimatorPredictor(model, dataclasses.replace(predictor.signature, classes=None))
    with pytest.raises(DataContractError, match="--positive"):
        sy_eval.evaluate(predictor, data=table, label="churn")
    report = sy_eval.evaluate(predictor, data=table, label="churn", positive="left")
    assert report.positives == sum(v == "left" for v in table.column("churn").to_pylist())
    assert report.class_names == ("stayed", "left")


def test_signature_of_table_lists_inputs(churn_holdout: pa.Table) -> None:
    predictor = predictor_for(make_pipeline(churn_holdout, "churn"), churn_holdout, "churn")
    assert predictor.signature.task == "binary_classification"
    assert predictor.signature.input("state") == FieldSpec("state", "string", True)
