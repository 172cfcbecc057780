"""The scheduler: cron fires, leases across processes, survival of failing pipelines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shipyard.pipelines import leases, list_pipeline_runs
from shipyard.pipelines.scheduler import Scheduler
from shipyard.store.stores import open_stores
from tests.pipelines.conftest import Project

SCHEDULED = """
    import time
    from pathlib import Path

    from shipyard.pipelines import pipeline, step

    STATE = Path(__file__).parent / "state"


    @step(cache=False)
    def tick() -> str:
        if (STATE / "slow").exists():
            time.sleep(float((STATE / "slow").read_text()))
        return "ok"


    @step(cache=False)
    def explode() -> str:
        raise RuntimeError("the source system is down")


    @pipeline(schedule="*/5 * * * *")
    def every_five() -> None:
        tick()


    @pipeline(schedule="*/5 * * * *")
    def always_fails() -> None:
        explode()


    @pipeline
    def unscheduled() -> None:
        tick()
"""

START = datetime(2026, 1, 1, 10, 4, 59, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def wait_for_launches(scheduler: Scheduler, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while scheduler.launches:
        assert time.monotonic() < deadline, f"runs still going: {list(scheduler.launches)}"
        time.sleep(0.2)
        scheduler.tick()


@pytest.mark.slow
def test_schedules_fire_on_time_and_a_failing_pipeline_does_not_stop_the_rest(
    project: Project,
) -> None:
    project.write("pipelines.py", SCHEDULED)
    (project.root / "state").mkdir()
    clock = Clock(START)
    messages: list[str] = []
    scheduler = Scheduler(project.config, clock=clock, log=messages.append)
    try:
        assert sorted(s.pipeline.name for s in scheduler.schedules) == [
            "always_fails",
            "every_five",
        ]
        scheduler.tick()
        assert not scheduler.launches  # 10:04:59: nothing due yet
        clock.now = START + timedelta(seconds=1)  # 10:05:00
        scheduler.tick()
        assert set(scheduler.launches) == {"schedule:every_five", "schedule:always_fails"}
        wait_for_launches(scheduler)
        assert sorted(scheduler.fired) == [
            ("schedule:always_fails", "failed"),
            ("schedule:every_five", "finished"),
        ]
        # the scheduler goes on: the next fire time runs both again
        clock.now = START + timedelta(minutes=5, seconds=1)
        scheduler.tick()
        assert len(scheduler.launches) == 2
        wait_for_launches(scheduler)
    finally:
        scheduler.close(wait=True)
    assert [outcome for _, outcome in scheduler.fired].count("failed") == 2
    assert any("the source system is down" in m for m in messages)
    with open_stores(project.config) as stores:
        state = leases.read_state(stores.metadata, "schedule:every_five")
    assert state is not None and state.holder is None and state.last_status == "finished"
    assert state.last_fire_at == datetime(2026, 1, 1, 10, 10, tzinfo=UTC)
    runs = list_pipeline_runs("every_five", config=project.config)
    assert len(runs) == 2 and {r.status for r in runs} == {"finished"}
    assert state.last_run_id == runs[0].run_id


@pytest.mark.slow
def test_two_schedulers_fire_a_schedule_once_and_skip_while_it_runs(project: Project) -> None:
    project.write(
        "pipelines.py",
        SCHEDULED.replace('"*/5 * * * *")\n    def always', '"0 0 1 1 *")\n    def always'),
    )
    state = project.root / "state"
    state.mkdir()
    (state / "slow").write_text("6")
    clock = Clock(START)
    first_log: list[str] = []
    second_log: list[str] = []
    first = Scheduler(project.config, clock=clock, log=first_log.append)
    second = Scheduler(project.config, clock=clock, log=second_log.append)
    try:
        clock.now = START + timedelta(seconds=1)
        first.tick()
        second.tick()
        assert list(first.launches) == ["schedule:every_five"]
        assert not second.launches
        assert any("taken by another scheduler" in m for m in second_log)
        # the next fire time comes while the first run still runs (its scheduler renewing
        # the lease every tick): nobody starts another
        clock.now = START + timedelta(minutes=4, seconds=40)
        first.tick()
        clock.now = START + timedelta(minutes=5, seconds=1)
        second.tick()
        first.tick()
        assert not second.launches and len(first.launches) == 1
        assert any("previous run is running" in m for m in first_log)
        wait_for_launches(first)
    finally:
        first.close(wait=True)
        second.close(wait=True)
    assert len(list_pipeline_runs("every_five", config=project.config)) == 1


LEASE_WORKER = """
import json, random, sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from shipyard.core.config import load_config
from shipyard.pipelines import leases
from shipyard.store.stores import open_stores

project, me, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
base = datetime(2026, 1, 1, tzinfo=UTC)
record = {"fires": [], "holds": []}
with open_stores(load_config(Path(project), environ={})) as stores:
    for i in range(25):
        fire = base + timedelta(minutes=i)
        now = datetime.now(UTC)
        if leases.acquire(stores.metadata, "schedule:shared", me, ttl=30, now=now, fire_at=fire):
            record["fires"].append(i)
            leases.release(stores.metadata, "schedule:shared", me, now=datetime.now(UTC))
        if leases.acquire(stores.metadata, "trigger:held", me, ttl=30, now=datetime.now(UTC)):
            start = time.time()
            time.sleep(random.uniform(0.005, 0.03))
            record["holds"].append((start, time.time()))
            leases.release(stores.metadata, "trigger:held", me, now=datetime.now(UTC))
        time.sleep(random.uniform(0, 0.01))
out.write_text(json.dumps(record))
"""


@pytest.mark.slow
def test_leases_are_exclusive_across_processes(backend_project: Project, tmp_path: Path) -> None:
    project = backend_project
    with open_stores(project.config):
        pass  # create and migrate the store once, before the race
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    outputs = [tmp_path / "a.json", tmp_path / "b.json"]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", LEASE_WORKER, str(project.root), name, str(out)],
            env=environment,
        )
        for name, out in zip(("holder-a", "holder-b"), outputs, strict=True)
    ]
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    a, b = (json.loads(out.read_text()) for out in outputs)
    # every fire time ran exactly once, by one process or the other
    assert sorted(a["fires"] + b["fires"]) == list(range(25))
    # no hold of one process overlaps a hold of the other
    for start_a, end_a in a["holds"]:
        for start_b, end_b in b["holds"]:
            assert end_a <= start_b or end_b <= start_a
    assert a["holds"] and b["holds"]


def test_an_expired_lease_can_be_taken_over_and_renewal_notices_the_loss(
    backend_project: Project,
) -> None:
    with open_stores(backend_project.config) as stores:
        store = stores.metadata
        now = datetime(2026, 1, 1, tzinfo=UTC)
        assert leases.acquire(store, "schedule:x", "a", ttl=60, now=now)
        assert not leases.acquire(store, "schedule:x", "b", ttl=60, now=now + timedelta(seconds=59))
        assert leases.renew(store, "schedule:x", "a", ttl=60, now=now + timedelta(seconds=30))
        later = now + timedelta(seconds=91)  # a stopped renewing at +30 s: expired at +90 s
        assert leases.acquire(store, "schedule:x", "b", ttl=60, now=later)
        assert not leases.renew(store, "schedule:x", "a", ttl=60, now=later)
        leases.release(store, "schedule:x", "b", now=later, status="finished", run_id="r" * 32)
        state = leases.read_state(store, "schedule:x")
        assert state is not None and state.holder is None and state.last_status == "finished"
        # a fire time runs once: the same fire time again is refused even when free
        fire = now + timedelta(minutes=5)
        assert leases.acquire(store, "schedule:y", "a", ttl=60, now=later, fire_at=fire)
        leases.release(store, "schedule:y", "a", now=later)
        assert not leases.acquire(store, "schedule:y", "b", ttl=60, now=later, fire_at=fire)
        assert leases.acquire(
            store, "schedule:y", "b", ttl=60, now=later, fire_at=fire + timedelta(minutes=5)
        )
