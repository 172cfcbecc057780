"""Dataset versions as step inputs (cache key, lineage) and as triggers of the scheduler."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from shipyard.pipelines import (
    PipelineDefinitionError,
    dataset,
    lineage,
    list_pipeline_runs,
    run_pipeline,
)
from shipyard.pipelines.lineage import DatasetSource
from shipyard.pipelines.scheduler import Scheduler
from shipyard.tracking.client import TrackingClient
from tests.pipelines.conftest import CHURN_CSV, Project

PIPELINES = """
    import pandas as pd

    from shipyard.pipelines import dataset, on_dataset, pipeline, step


    @step
    def churn_rate(table: pd.DataFrame) -> dict:
        return {"rows": len(table), "rate": round(float((table["churn"] == "yes").mean()), 6)}


    @pipeline(triggers=[on_dataset("churn", param="version")])
    def report(version: str = "churn") -> dict:
        return {"rate": churn_rate(dataset(version, format="pandas"))}
"""


def ingest(project: Project, csv: Path) -> str:
    import shipyard.data as sy_data

    result = sy_data.ingest("churn", str(csv), config=project.config)
    return str(result.version.reference)


@pytest.fixture
def churn_slices(tmp_path: Path) -> list[Path]:
    table = pd.read_csv(CHURN_CSV)
    paths = []
    for rows in (400, 300, 200):
        path = tmp_path / f"churn-{rows}.csv"
        table.head(rows).to_csv(path, index=False)
        paths.append(path)
    return paths


def test_a_dataset_version_is_an_input_in_the_key_and_the_lineage(
    project: Project, churn_slices: list[Path]
) -> None:
    project.write("pipelines.py", PIPELINES)
    assert ingest(project, churn_slices[0]) == "churn@v1"
    report = project.pipeline("report")
    first = run_pipeline(report, config=project.config)
    step = first.step("churn_rate")
    assert step.status == "finished"
    assert step.key_parts is not None and step.key_parts["datasets"] == {"table": "churn@v1"}
    with TrackingClient(project.config) as client:
        [read] = client.get_run(step.step_run_id or "").inputs
    assert read.dataset == "churn" and read.version_id == step.inputs["table"]

    origin = lineage(first.outputs["rate"], config=project.config)
    assert origin.step == "churn_rate" and origin.pipeline == "report" and not origin.inputs
    assert origin.datasets == (DatasetSource("table", "churn@v1", step.inputs["table"]),)

    assert run_pipeline(report, config=project.config).step("churn_rate").status == "cached"
    assert ingest(project, churn_slices[1]) == "churn@v2"
    newer = run_pipeline(report, config=project.config)  # "churn" now means v2
    assert newer.step("churn_rate").status == "finished"
    assert newer.step("churn_rate").inputs["table"] != step.inputs["table"]
    pinned = run_pipeline(report, {"version": "churn@v1"}, config=project.config)
    assert pinned.step("churn_rate").status == "cached"  # the same content as the first run

    with pytest.raises(PipelineDefinitionError, match="format"):
        dataset("churn", format="excel")
    with pytest.raises(PipelineDefinitionError, match="dataset"):
        dataset("churn@@v1")


@pytest.mark.slow
def test_a_new_dataset_version_triggers_the_pipeline_once(
    project: Project, churn_slices: list[Path]
) -> None:
    project.write("pipelines.py", PIPELINES)
    ingest(project, churn_slices[0])
    messages: list[str] = []
    scheduler = Scheduler(project.config, poll_seconds=0, log=messages.append)
    try:
        scheduler.tick()  # first sight: v1 is recorded as seen, nothing runs
        assert not scheduler.launches
        assert any("watching dataset 'churn'" in m for m in messages)
        scheduler.tick()
        assert not scheduler.launches

        assert ingest(project, churn_slices[1]) == "churn@v2"
        scheduler.tick()
        assert list(scheduler.launches) == ["trigger:report:dataset:churn"]
        deadline = time.monotonic() + 120
        while scheduler.launches:
            assert time.monotonic() < deadline
            time.sleep(0.2)
            scheduler.tick()
        scheduler.tick()  # v2 was seen: no second run
        assert not scheduler.launches
    finally:
        scheduler.close(wait=True)
    assert scheduler.fired == [("trigger:report:dataset:churn", "finished")]
    [run] = list_pipeline_runs("report", config=project.config)
    assert run.params == {"version": "churn@v2"}
