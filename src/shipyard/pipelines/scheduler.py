"""``shipyard scheduler``: runs pipelines on their cron schedules and triggers, forever.

Schedules and triggers are declared on the pipelines of the project's ``pipelines.py``::

    @pipeline(schedule="0 3 * * *")                          # 03:00 UTC every day
    def nightly() -> None: ...

    @pipeline(triggers=[on_dataset("churn", param="version")])  # each new churn version
    def retrain(version: str = "churn") -> None: ...

Each tick (every second by default) the scheduler fires the schedules that are due and,
every ``poll_seconds``, checks its triggers. Every fire takes the schedule's lease first
(``leases``): two schedulers on one metadata store never run one schedule twice at once,
and a cron fire time runs once. Each run is a separate process
(``python -m shipyard.pipelines.launch``), so a pipeline that fails, crashes or hangs
never takes the scheduler down: its lease is renewed while it runs and released with its
outcome when it ends. A fire time that comes while the schedule's previous run is still
going is skipped (and logged). Missed fire times while no scheduler ran are not caught
up. The first time a trigger sees a dataset it records the newest version as already
seen; later versions fire it (several at once fire one run, for the newest).

The scheduler also runs the project's closed-loop policies (``pipelines.py``'s and
``[policies.NAME]`` of ``shipyard.toml``, with the ``[alerts]`` rules and channels):
their monitoring checks run in the tick; an episode's training and evaluation run in a
worker process (``shipyard.pipelines.loop_worker``) that the tick only polls, so a long
training delays no check and no other schedule, and one policy never runs two episodes
at once.

>>> Scheduler(load_config()).run()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from shipyard.core.config import Config
from shipyard.core.ids import new_id
from shipyard.pipelines import leases
from shipyard.pipelines.cron import CronExpression
from shipyard.pipelines.definition import Pipeline
from shipyard.pipelines.registry import project_pipelines
from shipyard.pipelines.triggers import DatasetTrigger
from shipyard.store.stores import Stores, open_stores

__all__ = ["Scheduler"]

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _print(message: str) -> None:
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z {message}", file=sys.stderr, flush=True)


@dataclass
class _Schedule:
    lease: str
    pipeline: Pipeline
    expression: CronExpression
    next_fire: datetime


@dataclass
class _Trigger:
    lease: str
    pipeline: Pipeline
    trigger: DatasetTrigger


@dataclass
class _Launch:
    lease: str
    pipeline: str
    process: subprocess.Popen[bytes]
    output: IO[bytes]
    log_path: Path
    started: datetime
    log_file: IO[bytes] = field(repr=False)


class Scheduler:
    """Fires the project's schedules and triggers (see the module docstring).

    ``pipelines`` defaults to those of the project's ``pipelines.py``; ``clock`` returns
    the current UTC time (tests move it); ``executor`` is what each run uses.
    """

    def __init__(
        self,
        config: Config,
        *,
        pipelines: Sequence[Pipeline] | None = None,
        policies: Sequence[Any] | None = None,
        executor: str = "inprocess",
        lease_seconds: float = 60.0,
        poll_seconds: float = 10.0,
        clock: Clock = _utc_now,
        log: Callable[[str], None] = _print,
    ) -> None:
        self.config = config
        self.executor = executor
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.log = log
        self.holder = f"{socket.gethostname()[:80]}:{os.getpid()}:{new_id()[:8]}"
        chosen = list(pipelines) if pipelines is not None else project_pipelines(config.project_dir)
        now = clock()
        self.schedules = [
            _Schedule(f"schedule:{p.name}", p, p.schedule, p.schedule.next_after(now))
            for p in chosen
            if p.schedule is not None
        ]
        self.triggers = [
            _Trigger(f"trigger:{p.name}:{t.key}", p, t) for p in chosen for t in p.triggers
        ]
        self.launches: dict[str, _Launch] = {}
        self.fired: list[tuple[str, str]] = []
        """(lease, outcome) of every launch that ended: finished, failed, killed."""
        self._next_poll = now
        self._stopping = threading.Event()
        self._stores: Stores | None = None
        self._logs = config.home / "scheduler" / "logs"
        from shipyard.pipelines.closed_loop import ClosedLoop
        from shipyard.pipelines.loop_worker import EpisodeWorkers
        from shipyard.pipelines.policy import load_policies

        # Checks run in the tick; each episode's training runs in a worker process.
        chosen_policies = policies if policies is not None else load_policies(config)
        self.workers = EpisodeWorkers(
            config, holder=self.holder, lease_seconds=lease_seconds, log=log
        )
        self.loop = ClosedLoop(config, chosen_policies, clock=clock, log=log, workers=self.workers)

    @property
    def stores(self) -> Stores:
        if self._stores is None:
            self._stores = open_stores(self.config)
        return self._stores

    # --- the loop -----------------------------------------------------------------------

    def run(self, *, max_ticks: int | None = None, tick_seconds: float = 1.0) -> None:
        """Tick until ``stop()`` (SIGTERM, Ctrl-C) or ``max_ticks``; then end cleanly.

        With ``max_ticks`` the runs started are waited for before returning (for tests
        and one-shot use); when stopped, running runs are interrupted (marked killed).
        """
        self.log(
            f"scheduler {self.holder} started: {len(self.schedules)} schedule(s), "
            f"{len(self.triggers)} trigger(s), {len(self.loop.policies)} policy(ies)"
        )
        for schedule in self.schedules:
            self.log(
                f"  {schedule.pipeline.name}: '{schedule.expression}', next at "
                f"{schedule.next_fire:%Y-%m-%d %H:%M}Z"
            )
        ticks = 0
        interrupted = False
        try:
            while not self._stopping.is_set():
                self.safe_tick()
                ticks += 1
                if max_ticks is not None and ticks >= max_ticks:
                    break
                self._stopping.wait(tick_seconds)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self.close(
                wait=max_ticks is not None and not interrupted and not self._stopping.is_set()
            )

    def stop(self) -> None:
        """Ask ``run`` to return after the current tick (safe from a signal handler)."""
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop cleanly."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())

    def safe_tick(self) -> None:
        """``tick``, logging instead of raising: a store outage must not end the scheduler."""
        try:
            self.tick()
        except Exception as exc:  # noqa: BLE001 - logged; the next tick tries again
            self.log(f"tick failed: {type(exc).__name__}: {exc}")

    def tick(self) -> None:
        """Reap ended runs, renew leases, fire due schedules, poll triggers."""
        now = self.clock()
        self._reap(now)
        self._renew(now)
        for schedule in self.schedules:
            if now >= schedule.next_fire:
                fire_at = schedule.next_fire
                schedule.next_fire = schedule.expression.next_after(now)
                self._fire_schedule(schedule, fire_at, now)
        if self.triggers and now >= self._next_poll:
            self._next_poll = now + timedelta(seconds=self.poll_seconds)
            for trigger in self.triggers:
                self._check_trigger(trigger, now)
        if self.loop.policies:
            self.loop.tick()

    def close(self, *, wait: bool = False) -> None:
        """Wait for (``wait``) or interrupt the runs and episode workers started, release
        leases, close stores."""
        try:
            self.workers.stop(wait=wait)
            if self.workers.running:
                self.loop.reap_workers()  # leases released, unfinished episodes failed
            for launch in list(self.launches.values()):
                if not wait and launch.process.poll() is None:
                    launch.process.send_signal(signal.SIGINT)
            for launch in list(self.launches.values()):
                try:
                    launch.process.wait(timeout=None if wait else 30)
                except subprocess.TimeoutExpired:
                    launch.process.kill()
                    launch.process.wait()
            self._reap(self.clock())
        finally:
            self.loop.close()
            if self._stores is not None:
                self._stores.close()
                self._stores = None

    # --- schedules and triggers ---------------------------------------------------------

    def _fire_schedule(self, schedule: _Schedule, fire_at: datetime, now: datetime) -> None:
        name = schedule.pipeline.name
        if schedule.lease in self.launches:
            self.log(f"{name}: fire time {fire_at:%H:%M}Z skipped, its previous run is running")
            return
        if not leases.acquire(
            self.stores.metadata,
            schedule.lease,
            self.holder,
            ttl=self.lease_seconds,
            now=now,
            fire_at=fire_at,
        ):
            self.log(f"{name}: fire time {fire_at:%H:%M}Z taken by another scheduler or running")
            return
        self._launch(schedule.lease, schedule.pipeline, {}, now, f"schedule {fire_at:%H:%M}Z")

    def _check_trigger(self, trigger: _Trigger, now: datetime) -> None:
        from shipyard.pipelines.dataset_watch import latest_version

        if trigger.lease in self.launches:
            return
        latest = latest_version(self.stores.metadata, trigger.trigger.dataset)
        if latest is None:
            return
        cursor, reference = latest
        state = leases.read_state(self.stores.metadata, trigger.lease)
        if state is not None and state.cursor == cursor:
            return
        if not leases.acquire(
            self.stores.metadata, trigger.lease, self.holder, ttl=self.lease_seconds, now=now
        ):
            return
        leases.set_cursor(self.stores.metadata, trigger.lease, self.holder, cursor, now)
        if state is None or state.cursor is None:
            self.log(f"{trigger.pipeline.name}: watching dataset {trigger.trigger.dataset!r}")
            leases.release(self.stores.metadata, trigger.lease, self.holder, now=now)
            return
        params = {trigger.trigger.param: reference} if trigger.trigger.param else {}
        self._launch(trigger.lease, trigger.pipeline, params, now, f"new version {reference}")

    # --- runs ---------------------------------------------------------------------------

    def _launch(
        self, lease: str, pipeline: Pipeline, params: dict[str, Any], now: datetime, why: str
    ) -> None:
        self._logs.mkdir(parents=True, exist_ok=True)
        stamp = f"{now:%Y%m%dT%H%M%S}"
        log_path = self._logs / f"{pipeline.name}-{stamp}-{new_id()[:6]}.log"
        log_file = log_path.open("wb")
        output = (self._logs / f".{log_path.stem}.out").open("w+b")
        command = [
            sys.executable,
            "-m",
            "shipyard.pipelines.launch",
            "--project",
            str(self.config.project_dir),
            "--pipeline",
            pipeline.reference,
            "--params",
            json.dumps(params),
            "--executor",
            self.executor,
        ]
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command, stdout=output, stderr=log_file, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            log_file.close()
            output.close()
            leases.release(
                self.stores.metadata, lease, self.holder, now=now, status="failed", error=str(exc)
            )
            self.log(f"{pipeline.name}: could not start a run: {exc}")
            return
        self.launches[lease] = _Launch(
            lease, pipeline.name, process, output, log_path, now, log_file
        )
        self.log(f"{pipeline.name}: started ({why}), pid {process.pid}, log {log_path}")

    def _renew(self, now: datetime) -> None:
        for launch in self.launches.values():
            if not leases.renew(
                self.stores.metadata, launch.lease, self.holder, ttl=self.lease_seconds, now=now
            ):
                self.log(f"{launch.pipeline}: lease {launch.lease} was lost while running")

    def _reap(self, now: datetime) -> None:
        for lease, launch in list(self.launches.items()):
            code = launch.process.poll()
            if code is None:
                continue
            del self.launches[lease]
            report = _read_report(launch.output)
            launch.output.close()
            Path(launch.output.name).unlink(missing_ok=True)
            launch.log_file.close()
            status = str(report.get("status") or ("finished" if code == 0 else "failed"))
            error = report.get("error")
            if error is None and code != 0:
                error = f"exited with code {code}; see {launch.log_path}"
            run_id = report.get("run_id")
            leases.release(
                self.stores.metadata,
                lease,
                self.holder,
                now=now,
                status=status,
                run_id=run_id if isinstance(run_id, str) else None,
                error=None if error is None else str(error),
            )
            self.fired.append((lease, status))
            outcome = f"{status} (run {run_id})" if run_id else status
            self.log(f"{launch.pipeline}: {outcome}" + (f": {error}" if error else ""))


def _read_report(output: IO[bytes]) -> dict[str, Any]:
    output.seek(0)
    lines = [line for line in output.read().decode("utf-8", "replace").splitlines() if line]
    for line in reversed(lines):
        try:
            report = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(report, dict):
            return report
    return {}
