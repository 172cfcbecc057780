"""The scheduler runs closed-loop episodes off its tick: in worker processes it polls."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shipyard.core.config import Config, load_config
from shipyard.evaluation.gates import metric
from shipyard.models.registry import ModelRegistry
from shipyard.pipelines import leases
from shipyard.pipelines.closed_loop import ClosedLoop, Policy, loop_history
from shipyard.pipelines.scheduler import Scheduler
from tests.monitoring.loop_fixtures import FIT, ingest, make_project, read_churn, shifted

PIPELINES = (
    FIT
    + """

import time
from pathlib import Path

from shipyard.pipelines import dataset, pipeline, step

RELEASE = Path(__file__).parent / "release"


@step(cache=False)
def train(table):
    # A long training: it waits until the test releases it (at most a minute).
    deadline = time.monotonic() + 60
    while not RELEASE.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return fit(table.to_pandas())


@step(cache=False)
def explode(table):
    raise RuntimeError("the feature source is down")


@step(cache=False)
def beat() -> str:
    return "ok"


@pipeline
def train_churn() -> dict:
    return {"model": train(dataset("churn_train"))}


@pipeline
def broken_training() -> dict:
    return {"model": explode(dataset("churn_train"))}


@pipeline(schedule="*/5 * * * *")
def heartbeat() -> None:
    beat()
"""
)

START = datetime(2026, 1, 1, 10, 4, 59, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> Path:
    """Champion churn@v1; fresh training data churn_train@v2 and a holdout."""
    churn: pa.Table = read_churn(datasets_dir)
    root = tmp_path_factory.mktemp("loop_scheduler") / "project"
    config = make_project(root, churn)
    (root / "pipelines.py").write_text(PIPELINES)
    ingest(config, "churn_holdout", shifted(churn.slice(4000, 600)), root / "holdout.csv")
    ingest(config, "churn_train", shifted(churn.slice(1500, 1500)), root / "fresh.csv")
    return root


@pytest.fixture
def project(tmp_path: Path, template: Path) -> Config:
    root = tmp_path / "project"
    shutil.copytree(template, root)
    return load_config(root, environ={})


def _policy(**overrides: Any) -> Policy:
    values: dict[str, Any] = {
        "model": "churn",
        "pipeline": "train_churn",
        "evaluation_data": "churn_holdout",
        "label": "churn",
        "on": "*/5 * * * *",
        "gates": [metric("roc_auc", ">=", 0.5)],
    }
    values.update(overrides)
    return Policy(**values)


def _timed(tick: Callable[[], None]) -> float:
    started = time.perf_counter()
    tick()
    return time.perf_counter() - started


def _tick_until(scheduler: Scheduler, done: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
        assert _timed(scheduler.tick) < 1.0, "a tick waited for a run"


@pytest.mark.slow
def test_a_long_training_runs_off_the_tick_and_another_schedule_fires_on_time(
    project: Config,
) -> None:
    clock = Clock(START)
    messages: list[str] = []
    scheduler = Scheduler(project, policies=[_policy()], clock=clock, log=messages.append)
    heartbeat = "schedule:heartbeat"
    try:
        clock.now = START.replace(minute=5, second=0)
        assert _timed(scheduler.tick) < 2.0  # two processes started, nothing waited for
        assert scheduler.workers.busy("churn") and heartbeat in scheduler.launches
        # The training waits; the heartbeat's run ends meanwhile.
        _tick_until(scheduler, lambda: heartbeat not in scheduler.launches)
        clock.now = START.replace(minute=10, second=0)
        assert _timed(scheduler.tick) < 1.0
        assert heartbeat in scheduler.launches, "the 10:10 heartbeat did not fire on time"
        assert scheduler.workers.busy("churn")
        assert "policy churn: fire time 10:10Z skipped, its episode runs" in messages
        [running] = loop_history(project)  # never two episodes of one policy at once
        assert (running.status, running.stage) == ("running", "triggered")
        (project.project_dir / "release").touch()
        _tick_until(scheduler, lambda: not scheduler.workers.running and not scheduler.launches)
    finally:
        scheduler.close()
    [run] = loop_history(project)
    assert (run.status, run.outcome) == ("done", "promoted")
    assert [e["step"] for e in run.events] == [
        "triggered",
        "trained",
        "evaluated",
        "promoted",
        "promoted",
    ]
    assert [status for lease, status in scheduler.fired if lease == heartbeat] == [
        "finished",
        "finished",
    ]
    with ModelRegistry.open(project) as registry:
        assert registry.get("churn@champion").number == 2
        state = leases.read_state(registry.stores.metadata, "policy:churn")
    assert state is not None and state.holder is None and state.last_status == "finished"


@pytest.mark.slow
def test_a_failing_or_killed_training_fails_its_episode_and_the_scheduler_goes_on(
    project: Config,
) -> None:
    clock = Clock(START)
    messages: list[str] = []
    broken = _policy(name="broken", pipeline="broken_training")
    slow = _policy(name="slow")
    scheduler = Scheduler(
        project, pipelines=[], policies=[broken, slow], clock=clock, log=messages.append
    )
    try:
        clock.now = START.replace(minute=5, second=0)
        scheduler.tick()
        assert scheduler.workers.busy("broken") and scheduler.workers.busy("slow")
        _tick_until(scheduler, lambda: not scheduler.workers.busy("broken"))
        os.kill(scheduler.workers.running["slow"].process.pid, signal.SIGKILL)
        _tick_until(scheduler, lambda: not scheduler.workers.running)
        runs = {run.policy: run for run in loop_history(project)}
        assert runs["broken"].outcome == runs["slow"].outcome == "failed"
        failure = runs["broken"].events[-1]
        assert failure["step"] == "failed" and "the feature source is down" in failure["message"]
        killed = runs["slow"].events[-1]["message"]
        assert "its worker exited with code -9 before the episode ended; see" in killed
        with ModelRegistry.open(project) as registry:
            state = leases.read_state(registry.stores.metadata, "policy:broken")
        assert state is not None and state.holder is None and state.last_status == "failed"
        # The scheduler goes on: the next fire time starts the next episodes.
        clock.now = START.replace(minute=10, second=0)
        scheduler.tick()
        assert scheduler.workers.busy("broken") and scheduler.workers.busy("slow")
    finally:
        scheduler.close()  # interrupts the running workers
    assert len(loop_history(project)) == 4
    assert {run.outcome for run in loop_history(project)} == {"failed"}
    assert not scheduler.workers.running


def test_an_episode_whose_worker_is_gone_is_failed_by_the_next_scheduler(
    project: Config,
) -> None:
    policy = _policy(on="0 3 * * *")
    with ClosedLoop(project, [policy]) as loop:
        run_id = loop.begin(policy, "manual")  # a scheduler died before its worker ended
    messages: list[str] = []
    scheduler = Scheduler(project, pipelines=[], policies=[policy], log=messages.append)
    try:
        scheduler.tick()
        assert not scheduler.workers.running
    finally:
        scheduler.close()
    [run] = loop_history(project)
    assert (run.id, run.outcome) == (run_id, "failed")
    assert "its worker is gone" in run.events[-1]["message"]
