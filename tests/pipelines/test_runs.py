"""Pipeline runs as tracking runs: lineage, logs, metrics, retries, failure and resume."""

from __future__ import annotations

import pytest

from shipyard.core.errors import ConfigError, NotFoundError
from shipyard.pipelines import (
    PipelineRunFailed,
    get_pipeline_run,
    list_pipeline_runs,
    load_output,
    resume_pipeline,
    run_pipeline,
)
from shipyard.pipelines.records import StepEvent
from shipyard.tracking.client import TrackingClient
from tests.pipelines.conftest import Project

FLAKY = """
    from pathlib import Path

    from shipyard.pipelines import log_metrics, pipeline, step

    STATE = Path(__file__).parent / "state"


    @step
    def prepare(n: int = 4) -> list[int]:
        print("preparing", n)
        return list(range(n))


    @step(retries=2, backoff=0.01)
    def flaky(values: list[int]) -> list[int]:
        attempts = STATE / "attempts"
        count = int(attempts.read_text()) + 1 if attempts.exists() else 1
        attempts.write_text(str(count))
        if count <= int((STATE / "failures").read_text()):
            raise RuntimeError(f"transient failure {count}")
        log_metrics({"kept": len(values)})
        return [v * 2 for v in values]


    @step
    def broken(values: list[int]) -> int:
        if (STATE / "broken").exists():
            raise ValueError("bad input row 3")
        return sum(values)


    @step(cache=False)
    def side(values: list[int]) -> int:
        return len(values)


    @pipeline
    def flow(n: int = 4) -> dict:
        doubled = flaky(prepare(n))
        return {"total": broken(doubled), "count": side(doubled)}
"""


def setup(project: Project, *, failures: int = 0, broken: bool = False) -> None:
    state = project.root / "state"
    state.mkdir(exist_ok=True)
    (state / "failures").write_text(str(failures))
    (state / "attempts").unlink(missing_ok=True)
    (state / "broken").unlink(missing_ok=True)
    if broken:
        (state / "broken").write_text("1")


def test_a_run_is_a_parent_tracking_run_with_one_child_per_executed_step(
    backend_project: Project,
) -> None:
    project = backend_project
    project.write("pipelines.py", FLAKY)
    setup(project)
    events: list[StepEvent] = []
    result = run_pipeline(
        project.pipeline("flow"), {"n": 5}, config=project.config, on_event=events.append
    )
    assert result.status == "finished"
    assert load_output(result.outputs["total"], config=project.config) == 20
    assert [e.kind for e in events if e.step == "prepare"] == ["planned", "started", "finished"]

    with TrackingClient(project.config) as client:
        parent = client.get_run(result.run_id)
        assert parent.status == "finished" and parent.name == "flow"
        assert parent.params == {"n": "5"}
        assert parent.tags["shipyard.pipeline"] == "flow"
        children = client.search_runs(
            filter_string=f"tags.shipyard.pipeline_run = '{result.run_id}'"
        )
        assert {run.name for run in children.runs} == {"prepare", "flaky", "broken", "side"}
        flaky_run = client.get_run(result.step("flaky").step_run_id or "")
        assert flaky_run.parent_id == result.run_id
        assert flaky_run.metrics == {"kept": 5.0}
        assert flaky_run.params["seed"].isdigit()
        assert flaky_run.tags["shipyard.output.output"] == result.step("flaky").outputs["output"]
        prepare_run = result.step("prepare").step_run_id or ""
        logs = {a.path for a in client.list_artifacts(prepare_run)}
        assert logs == {"logs/attempt-1.log"}

    # lineage: the total came from broken, which read flaky's output, which read prepare's
    assert result.step("broken").inputs == {"values": result.step("flaky").outputs["output"]}
    assert result.step("flaky").inputs == {"values": result.step("prepare").outputs["output"]}

    again = run_pipeline(project.pipeline("flow"), {"n": 5}, config=project.config)
    assert again.step("prepare").status == "cached"
    assert again.step("prepare").step_run_id is None
    assert again.step("prepare").source_run_id == result.step("prepare").step_run_id
    assert again.step("side").status == "finished"

    history = list_pipeline_runs("flow", config=project.config)
    assert [run.run_id for run in history] == [again.run_id, result.run_id]
    assert get_pipeline_run(result.run_id[:8], config=project.config).run_id == result.run_id


def test_retries_with_backoff_then_success(project: Project) -> None:
    project.write("pipelines.py", FLAKY)
    setup(project, failures=2)
    events: list[StepEvent] = []
    result = run_pipeline(project.pipeline("flow"), config=project.config, on_event=events.append)
    assert result.step("flaky").status == "finished"
    assert result.step("flaky").attempts == 3
    retries = [e for e in events if e.kind == "retrying"]
    assert [e.attempt for e in retries] == [1, 2]
    assert "transient failure 1" in (retries[0].message or "")
    with TrackingClient(project.config) as client:
        paths = {a.path for a in client.list_artifacts(result.step("flaky").step_run_id or "")}
    assert paths == {"logs/attempt-1.log", "logs/attempt-2.log"}  # the 3rd printed nothing


def test_a_failed_run_is_recorded_and_resumes_from_the_failed_step(project: Project) -> None:
    project.write("pipelines.py", FLAKY)
    setup(project, failures=5)  # more than the retries
    with pytest.raises(PipelineRunFailed) as info:
        run_pipeline(project.pipeline("flow"), config=project.config)
    failure = info.value
    assert failure.step == "flaky" and "transient failure 3" in failure.message
    assert f"shipyard pipelines resume {failure.run_id}" in str(failure)

    failed = get_pipeline_run(failure.run_id, config=project.config)
    assert failed.status == "failed" and "flaky" in (failed.error or "")
    statuses = {s.step: s.status for s in failed.steps}
    assert statuses == {
        "prepare": "finished",
        "flaky": "failed",
        "broken": "skipped",
        "side": "skipped",
    }

    # the next attempts (4th to 6th overall) get past the 5 failures
    events: list[StepEvent] = []
    resumed = resume_pipeline(failure.run_id, config=project.config, on_event=events.append)
    assert resumed.status == "finished" and resumed.run_id == failure.run_id
    assert [e.kind for e in events if e.step == "prepare"] == ["planned", "cached"]
    assert resumed.step("flaky").attempts == 3  # two more failures, then success
    assert (project.root / "state" / "attempts").read_text() == "6"


def test_resume_reuses_finished_steps_even_without_cache(project: Project) -> None:
    project.write("pipelines.py", FLAKY)
    setup(project, broken=True)
    with pytest.raises(PipelineRunFailed) as info:
        run_pipeline(project.pipeline("flow"), config=project.config, cache=False)
    run_id = info.value.run_id
    first = get_pipeline_run(run_id, config=project.config)
    assert first.step("broken").status == "failed"
    assert first.step("side").status in ("finished", "skipped")

    # fix the bug in the step's code, then resume: the fixed step runs its new code
    project.write("pipelines.py", FLAKY.replace('raise ValueError("bad input row 3")', "pass"))
    events: list[StepEvent] = []
    resumed = resume_pipeline(run_id, config=project.config, on_event=events.append)
    assert resumed.run_id == run_id and resumed.status == "finished"
    assert resumed.run.attempt == 2
    kinds = {e.step: e.kind for e in events if e.kind in ("cached", "finished")}
    assert kinds["prepare"] == "cached" and kinds["flaky"] == "cached"  # reused, not re-run
    assert kinds["broken"] == "finished"
    assert resumed.step("prepare").step_run_id == first.step("prepare").step_run_id
    assert load_output(resumed.outputs["total"], config=project.config) == 12

    with pytest.raises(ConfigError, match="is finished"):
        resume_pipeline(run_id, config=project.config)
    with pytest.raises(NotFoundError):
        resume_pipeline("0" * 32, config=project.config)
    with pytest.raises(NotFoundError, match="not a pipeline run id"):
        resume_pipeline("not-an-id", config=project.config)


def test_a_bad_metric_or_output_fails_its_step_with_a_clear_error(project: Project) -> None:
    project.write(
        "pipelines.py",
        """
        from shipyard.pipelines import log_metrics, pipeline, step


        @step
        def measured() -> int:
            log_metrics({"accuracy@top1": 0.5})
            return 1


        @step
        def opaque() -> object:
            return object()


        @pipeline
        def metrics() -> None:
            measured()


        @pipeline
        def outputs() -> None:
            opaque()
        """,
    )
    with pytest.raises(PipelineRunFailed, match="accuracy@top1") as info:
        run_pipeline(project.pipeline("metrics"), config=project.config)
    assert info.value.step == "measured"
    with pytest.raises(PipelineRunFailed, match="allow_pickle=True") as info:
        run_pipeline(project.pipeline("outputs"), config=project.config)
    assert "returned a builtins.object as output 'output'" in str(info.value)
