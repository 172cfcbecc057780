"""End to end on the real data: registered versions evaluated, gated, stored, promoted."""

from __future__ import annotations

from typing import Any

import pytest

import shipyard.evaluation as sy_eval
from shipyard.core.config import Config
from shipyard.core.errors import DataContractError, GateFailed, NotFoundError
from shipyard.evaluation.data import TimeSplit
from shipyard.evaluation.gate_config import gates_from_config


def by_name(report: sy_eval.EvaluationReport) -> dict[str, Any]:
    return {result.gate: result for result in report.gate_results}


def test_churn_gates_recorded_then_champion_comparison(
    project: Config, project_registry: Any
) -> None:
    registry = project_registry
    gates = gates_from_config(project, "churn")
    report = sy_eval.evaluate(
        "churn@v1", data="churn_holdout@v1", label="churn", gates=gates, registry=registry
    )
    results = by_name(report)
    assert report.model == "churn@v1" and report.recorded and report.passed, report.to_dict()
    assert results["champion_roc_auc"].status == "skipped"
    assert "no champion" in results["champion_roc_auc"].detail["reason"]
    assert results["roc_auc"].status == "passed" and results["roc_auc"].figure >= 0.75
    assert results["latency_p99"].detail["calls"] == 20
    probes = {p["probe"]: p for p in results["robustness"].detail["probes"]}
    assert set(probes) == set(sy_eval.robustness().probes)
    # The infinities the pipeline cannot take never reach it: serving refuses them.
    assert probes["extreme_values"]["status"] == "passed" and probes["extreme_values"]["rejected"]
    threshold = results["recall_at_precision_0.5"].detail["threshold"]
    assert report.threshold == threshold
    # Stored on the version: the threshold becomes the version's; promotion reads it.
    stored = registry.evaluations("churn@v1")
    assert len(stored) == 1 and stored[0].dataset == "churn_holdout@v1"
    assert stored[0].threshold == pytest.approx(threshold)
    assert stored[0].metrics["roc_auc"] == pytest.approx(report.metrics["roc_auc"])
    assert {"roc", "pr", "calibration", "confusion_matrix"} <= set(stored[0].plots)
    assert registry.get("churn@v1").threshold == pytest.approx(threshold)
    assert registry.load("churn@v1").signature.threshold == pytest.approx(threshold)
    registry.promote("churn@v1", "champion", reason="passes every gate")

    # The weak v2 against the champion on the same rows: worse by more than 0.01.
    with pytest.raises(GateFailed):
        registry.promote("churn@v2", "champion", reason="never evaluated")
    weak = sy_eval.evaluate(
        "churn@v2", data="churn_holdout@v1", label="churn", gates=gates, registry=registry
    )
    champion = by_name(weak)["champion_roc_auc"]
    assert champion.status == "failed" and not weak.passed
    assert champion.detail["champion_version"] == "churn@v1"
    assert champion.detail["champion"] == pytest.approx(report.metrics["roc_auc"])
    assert champion.figure == pytest.approx(
        champion.detail["champion"] - champion.detail["candidate"]
    )
    assert champion.figure > 0.01
    with pytest.raises(GateFailed):
        registry.promote("churn@v2", "champion", reason="try")
    # Evaluating the champion itself: the comparison does not apply.
    again = sy_eval.evaluate(
        "churn@champion",
        data="churn_holdout@v1",
        label="churn",
        gates=[sy_eval.champion(metric="roc_auc", max_drop=0.0)],
        registry=registry,
    )
    assert again.gate_results[0].status == "skipped"
    assert "this version is the champion" in again.gate_results[0].detail["reason"]


def test_latency_budget_fails_a_planted_delay(project: Config, project_registry: Any) -> None:
    report = sy_eval.evaluate(
        "churn_slow@v1",
        data="churn_holdout@v1",
        label="churn",
        gates=gates_from_config(project, "churn_slow"),
        registry=project_registry,
        allow_pickle=True,
        record=False,
    )
    (latency,) = report.gate_results
    assert latency.status == "failed" and latency.figure >= 50 and latency.bound == "<= 10 ms"
    assert not report.recorded and project_registry.evaluations("churn_slow@v1") == []


def test_fairness_slice_by_gender_on_attrition(project: Config, project_registry: Any) -> None:
    report = sy_eval.evaluate(
        "attrition@v1",
        data="attrition_holdout@v1",
        label="Attrition",
        slice_by=["Gender"],
        gates=gates_from_config(project, "attrition"),
        registry=project_registry,
    )
    fairness = by_name(report)["fairness_recall_by_Gender"]
    slices = fairness.detail["slices"]
    assert set(slices) == {"Female", "Male"}
    assert fairness.figure == pytest.approx(
        abs(slices["Female"]["recall"] - slices["Male"]["recall"])
    )
    assert fairness.status == ("passed" if fairness.figure <= 0.25 else "failed")
    assert report.slices["Gender"]["Female"]["rows"] == slices["Female"]["rows"]
    stored = project_registry.evaluations("attrition@v1")[0]
    assert stored.detail["slices"]["Gender"]["Male"]["rows"] == slices["Male"]["rows"]
    card = sy_eval.model_card(project_registry, "attrition@v1", format="md")
    assert "### by Gender" in card and "fairness_recall_by_Gender" in card
    assert "Attrition risk." in card and "attrition_train@v1" in card


def test_time_split_evaluates_the_newest_rows(project_registry: Any) -> None:
    report = sy_eval.evaluate(
        "churn@v1",
        data=TimeSplit("churn_events", timestamp="event_time", fraction=0.25),
        label="churn",
        registry=project_registry,
        record=False,
    )
    assert report.rows == 250 and report.dataset == "churn_events@v1"
    assert "newest 25%" in report.data_description and "2026-01-32" not in report.data_description
    with pytest.raises(NotFoundError, match="Timestamp column 'event_tim'.*'event_time'"):
        sy_eval.evaluate(
            "churn@v1",
            data=TimeSplit("churn_events", "event_tim"),
            label="churn",
            registry=project_registry,
        )
    with pytest.raises(DataContractError, match="holds string; a time split"):
        sy_eval.evaluate(
            "churn@v1",
            data=TimeSplit("churn_events", "state"),
            label="churn",
            registry=project_registry,
        )


def test_bad_references_are_named(project_registry: Any) -> None:
    with pytest.raises(NotFoundError, match="churn_holdot"):
        sy_eval.evaluate(
            "churn@v1", data="churn_holdot@v1", label="churn", registry=project_registry
        )
    with pytest.raises(NotFoundError, match="nope"):
        sy_eval.evaluate(
            "nope@v1", data="churn_holdout@v1", label="churn", registry=project_registry
        )
    with pytest.raises(NotFoundError, match="Label column 'Churn'.*Did you mean 'churn'"):
        sy_eval.evaluate(
            "churn@v1", data="churn_holdout@v1", label="Churn", registry=project_registry
        )
    with pytest.raises(DataContractError, match="'No', 'Yes'.*classes 'no', 'yes' do not"):
        sy_eval.evaluate(
            "churn@v1", data="attrition_holdout@v1", label="Attrition", registry=project_registry
        )
    assert project_registry.evaluations("churn@v1") == []
