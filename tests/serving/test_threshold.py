"""One threshold rule: the registry's LoadedModel and the service label alike."""

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
