"""One pipeline, every executor, the same output ids; a recorded run reproduces its outputs.

The pipeline is a real one: the churn CSV, a stratified split, a random forest, its
recall and precision. The conformance test runs it with the cache off on each executor
(in-process, local processes, a local Ray cluster) in a fresh project, and compares the
output ids with a reference run: the same content ids for the tables, the model and the
metrics, whichever executor ran the steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.pipelines import (
    LocalProcessExecutor,
    lineage,
    load_output,
    rerun_pipeline,
    run_pipeline,
)
from shipyard.pipelines.executors import InProcessExecutor
from tests.pipelines.churn_project import CHURN_PIPELINE
from tests.pipelines.conftest import CHURN_CSV, Project


def output_ids(result: Any) -> dict[str, dict[str, str]]:
    return {s.step: dict(s.outputs) for s in result.run.steps}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    project = Project(tmp_path_factory.mktemp("reference") / "project")
    project.write("pipelines.py", CHURN_PIPELINE)
    try:
        result = run_pipeline(
            project.pipeline("churn"), {"path": str(CHURN_CSV)}, config=project.config
        )
        yield output_ids(result)
    finally:
        project.forget_modules()


def test_rerunning_a_recorded_run_reproduces_its_output_ids(
    project: Project, reference: dict[str, dict[str, str]]
) -> None:
    project.write("pipelines.py", CHURN_PIPELINE)
    first = run_pipeline(
        project.pipeline("churn"), {"path": str(CHURN_CSV)}, config=project.config, seed=0
    )
    assert output_ids(first) == reference  # a fresh store, the same ids
    metrics = load_output(first.outputs["metrics"], config=project.config)
    assert 0.5 < metrics["recall"] <= 1.0 and 0.8 < metrics["precision"] <= 1.0
    model = load_output(first.outputs["model"], config=project.config)
    assert model.n_estimators == 25
    origin = lineage(first.outputs["model"], config=project.config)
    assert [node.step for node in origin.walk()] == ["train", "split", "load"]
    assert origin.kind == "model" and origin.code_digest == first.step("train").key_parts["code"]  # type: ignore[index]
    assert origin.params["n_estimators"] == "25" and origin.params["seed"].isdigit()
    assert origin.inputs["table"].inputs["table"].params["path"] == str(CHURN_CSV)

    again = rerun_pipeline(first.run_id, config=project.config)
    assert again.run_id != first.run_id
    assert {s.status for s in again.run.steps} == {"finished"}  # executed, not cached
    assert output_ids(again) == output_ids(first)

    other_seed = run_pipeline(
        project.pipeline("churn"), {"path": str(CHURN_CSV)}, config=project.config, seed=1
    )
    assert other_seed.step("load").outputs == first.step("load").outputs
    assert other_seed.step("train").outputs != first.step("train").outputs


@pytest.mark.slow
@pytest.mark.parametrize("executor_name", ["inprocess", "process", "ray"])
def test_every_executor_gives_the_same_output_ids(
    executor_name: str,
    tmp_path: Path,
    reference: dict[str, dict[str, str]],
    request: pytest.FixtureRequest,
) -> None:
    project = Project(tmp_path / "project")
    project.write("pipelines.py", CHURN_PIPELINE)
    executor: Any
    if executor_name == "ray":
        request.getfixturevalue("ray_cluster")
        from shipyard.pipelines import RayExecutor

        executor = RayExecutor()
    elif executor_name == "process":
        executor = LocalProcessExecutor(max_workers=2)
    else:
        executor = InProcessExecutor()
    try:
        result = run_pipeline(
            project.pipeline("churn"),
            {"path": str(CHURN_CSV)},
            config=project.config,
            executor=executor,
            cache=False,
        )
    finally:
        executor.close()
        project.forget_modules()
    assert result.run.executor == executor_name
    assert output_ids(result) == reference
    if executor_name != "inprocess":  # train and profile both read split: they ran at once
        train, profile = result.step("train"), result.step("profile")
        assert train.started_at and train.ended_at and profile.started_at and profile.ended_at
        assert profile.started_at < train.ended_at and train.started_at < profile.ended_at
