"""An arm of the service: one threshold rule with LoadedModel; warm-up, then calibration."""

from __future__ import annotations

import dataclasses

import pytest

from shipyard.models import ModelRegistry
from shipyard.models.loaded import LoadedModel, decision_threshold
from shipyard.serving.metrics import Metrics
from shipyard.serving.runtime import Arm
from tests.serving.helpers import ChurnProject


def _with_thresholds(
    model: LoadedModel, version: float | None, signature: float | None
) -> LoadedModel:
    record = model.version
    record = dataclasses.replace(
        record,
        threshold=version,
        signature=dataclasses.replace(record.signature, threshold=signature),
    )
    return LoadedModel(record, model.model, model.kind)


@pytest.mark.parametrize(
    ("version", "signature", "expected"),
    [(None, None, 0.5), (None, 0.7, 0.7), (0.2, 0.7, 0.2), (0.2, None, 0.2)],
)
def test_loaded_model_and_service_label_at_the_same_threshold(
    churn_project: ChurnProject,
    version: float | None,
    signature: float | None,
    expected: float,
) -> None:
    with ModelRegistry.open(churn_project.config) as registry:
        base = registry.load("churn@v1")
    model = _with_thresholds(base, version, signature)
    assert decision_threshold(model.version) == expected
    assert model.threshold == expected
    arm = Arm(model, metrics=Metrics(), budget_seconds=0.005)
    assert arm.threshold == expected
    rows = [churn_project.record(index) for index in range(200)]
    prediction = model.predict(rows)
    answers = arm.outputs(prediction, 0, len(rows))
    assert [answer["label"] for answer in answers] == prediction.labels.tolist()
    assert {answer["threshold"] for answer in answers} == {expected}
    # The thresholds chosen here split these rows differently from 0.5 (the test bites).
    if expected != 0.5:
        at_half = [score >= 0.5 for score in prediction.scores]
        at_expected = [score >= expected for score in prediction.scores]
        assert at_half != at_expected


def test_non_binary_tasks_have_no_threshold(churn_project: ChurnProject) -> None:
    with ModelRegistry.open(churn_project.config) as registry:
        version = registry.get("churn@v1")
    regression = dataclasses.replace(
        version,
        threshold=0.3,
        signature=dataclasses.replace(version.signature, task="regression", threshold=0.3),
    )
    assert decision_threshold(regression) is None


def test_an_arm_answers_after_warm_up_and_batches_only_once_calibrated(
    churn_project: ChurnProject,
) -> None:
    with ModelRegistry.open(churn_project.config) as registry:
        model = registry.load("churn@v1")
    arm = Arm(model, metrics=Metrics(), budget_seconds=0.005, batching=True)
    assert not arm.batcher.enabled and not arm.batcher.calibrated
    arm.warm()
    # Warm enough to answer; batching still off until the calibration has measured it.
    assert arm.warmed and not arm.batcher.enabled and not arm.batcher.calibrated
    arm.calibrate()
    assert arm.batcher.calibrated and arm.batcher.fixed_seconds > 0
    assert arm.batcher.enabled == (arm.batcher.row_seconds < arm.batcher.fixed_seconds / 2)
    unwanted = Arm(model, metrics=Metrics(), budget_seconds=0.005, batching=False)
    unwanted.calibrate()  # warms first when needed; never turns batching on
    assert unwanted.warmed and unwanted.batcher.calibrated and not unwanted.batcher.enabled
