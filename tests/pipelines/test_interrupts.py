"""Stopping: Ctrl-C marks the run killed and stops its workers; a dead process is detected."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipyard.pipelines import get_pipeline_run, list_pipeline_runs, resume_pipeline
from shipyard.tracking.client import TrackingClient
from tests.pipelines.conftest import Project

SLOW = """
    import os
    import time
    from pathlib import Path

    from shipyard.pipelines import pipeline, step

    STATE = Path(__file__).parent / "state"


    @step
    def first() -> int:
        return 1


    @step(cache=False)
    def slow(value: int) -> int:
        STATE.mkdir(exist_ok=True)
        (STATE / "worker.pid").write_text(str(os.getpid()))
        if not (STATE / "fast").exists():
            time.sleep(120)
        return value + 1


    @pipeline
    def long() -> None:
        slow(first())
"""


def start(project: Project, *args: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    return subprocess.Popen(
        [sys.executable, "-m", "shipyard.cli.main", "-C", str(project.root), "run", "long", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_step(project: Project, process: subprocess.Popen[str]) -> int:
    marker = project.root / "state" / "worker.pid"
    deadline = time.monotonic() + 90
    while not marker.exists() or not marker.read_text():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended before its slow step started:\n{out}\n{err}")
        assert time.monotonic() < deadline, "the slow step did not start in 90 s"
        time.sleep(0.1)
    return int(marker.read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["inprocess", "process"])
def test_ctrl_c_stops_the_run_and_marks_it_killed(project: Project, executor: str) -> None:
    project.write("pipelines.py", SLOW)
    process = start(project, "--executor", executor)
    worker = wait_for_step(project, process)
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the run did not stop within 60 s of Ctrl-C")
    assert process.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err

    [run] = list_pipeline_runs("long", config=project.config)
    record = get_pipeline_run(run.run_id, config=project.config)
    assert record.status == "killed"
    assert {s.step: s.status for s in record.steps} == {"first": "finished", "slow": "killed"}
    with TrackingClient(project.config) as client:
        assert client.get_run(record.step("slow").step_run_id or "").status == "killed"
    if executor == "process":  # the worker process was terminated, not left running
        deadline = time.monotonic() + 10
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(worker)


@pytest.mark.slow
def test_a_run_whose_process_died_is_marked_failed_and_can_be_resumed(project: Project) -> None:
    project.write("pipelines.py", SLOW)
    process = start(project)
    wait_for_step(project, process)
    process.kill()  # SIGKILL: no cleanup at all
    process.communicate(timeout=30)
    [run] = list_pipeline_runs("long", config=project.config)
    assert run.status == "running"  # nobody knows yet

    time.sleep(1.5)
    with TrackingClient(project.config, stale_after_seconds=1) as client:  # the heartbeat check
        assert client.get_run(run.run_id).status == "failed"
    record = get_pipeline_run(run.run_id, config=project.config)
    assert record.status == "failed" and "heartbeat" in (record.error or "")
    assert record.step("slow").status == "failed"
    assert "ended failed while this step was running" in (record.step("slow").error or "")

    (project.root / "state" / "fast").write_text("1")
    resumed = resume_pipeline(run.run_id, config=project.config)
    assert resumed.status == "finished"
    assert resumed.step("first").step_run_id == record.step("first").step_run_id


def test_the_cli_run_reports_a_failed_step_with_the_resume_command(project: Project) -> None:
    project.write("pipelines.py", SLOW.replace("time.sleep(120)", "raise OSError('disk full')"))
    process = start(project)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "step 'slow' failed: OSError: disk full" in err
    assert "shipyard pipelines resume" in err and "Traceback" not in err
    assert Path(project.root / "state" / "worker.pid").exists()
