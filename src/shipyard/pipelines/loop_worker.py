"""Closed-loop episodes off the scheduler's tick: one worker process per episode.

Retraining takes minutes; the scheduler's tick must not. When ``shipyard scheduler``
starts an episode it records it (``triggered``) and hands the rest (train, evaluate,
start the canary or decide) to a worker process,
``python -m shipyard.pipelines.loop_worker``, which reads its policy and episode on
stdin (a pickle written by the scheduler itself, never a file) and runs
``ClosedLoop.run_episode``. The scheduler polls the worker each tick:

- while it runs, the policy is busy: no check, no second episode; its lease
  (``policy:NAME`` in ``pipeline_schedules``) is renewed, so a second scheduler on the
  same store does not start one either;
- when it ends, the lease is released with the outcome; an episode the worker left
  unfinished (it crashed, was killed) is marked failed, naming the worker's log;
- a canary stage needs no worker: each tick judges it in the scheduler (one query).

A failing training fails its episode only: the worker records it and exits 1.

>>> workers = EpisodeWorkers(config, holder="host:42", lease_seconds=60)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from shipyard.core.ids import new_id
from shipyard.pipelines import leases

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.pipelines.policy import Policy
    from shipyard.store.metadata import MetadataStore

__all__ = ["EndedWorker", "EpisodeWorkers", "main"]


@dataclass
class _Worker:
    policy: str
    run_id: int
    process: subprocess.Popen[bytes]
    log_path: Path
    started: datetime
    log_file: IO[bytes] = field(repr=False)


@dataclass(frozen=True)
class EndedWorker:
    """A worker that exited: its policy, episode, exit code and log."""

    policy: str
    run_id: int
    code: int
    log_path: Path


class EpisodeWorkers:
    """The worker processes of one scheduler's episodes, one per policy at most."""

    def __init__(
        self,
        config: Config,
        *,
        holder: str,
        lease_seconds: float = 60.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.log = log or (lambda message: None)
        self.running: dict[str, _Worker] = {}
        self._logs = config.home / "scheduler" / "logs"

    @staticmethod
    def lease(policy: str) -> str:
        """The lease name of a policy's episode."""
        return f"policy:{policy}"

    def busy(self, policy: str) -> bool:
        """Whether this scheduler's worker runs an episode of ``policy``."""
        return policy in self.running

    def claim(self, metadata: MetadataStore, policy: str, now: datetime) -> bool:
        """Take the policy's lease; ``False`` when another scheduler holds it."""
        return leases.acquire(
            metadata, self.lease(policy), self.holder, ttl=self.lease_seconds, now=now
        )

    def unclaim(
        self, metadata: MetadataStore, policy: str, now: datetime, status: str | None = None
    ) -> None:
        """Give the policy's lease back."""
        leases.release(metadata, self.lease(policy), self.holder, now=now, status=status)

    def launch(self, policy: Policy, run_id: int, now: datetime) -> None:
        """Start the worker of episode ``run_id`` (the lease is already claimed)."""
        self._logs.mkdir(parents=True, exist_ok=True)
        log_path = self._logs / f"policy-{policy.key}-{now:%Y%m%dT%H%M%S}-{new_id()[:6]}.log"
        log_file = log_path.open("wb")
        command = [
            sys.executable,
            "-m",
            "shipyard.pipelines.loop_worker",
            "--project",
            str(self.config.project_dir),
        ]
        payload = pickle.dumps({"config": self.config, "policy": policy, "run_id": run_id})
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT
            )
        except OSError:
            log_file.close()
            raise
        assert process.stdin is not None  # noqa: S101 - stdin=PIPE above
        with contextlib.suppress(OSError):  # it died at once: reaping reports code and log
            process.stdin.write(payload)
        with contextlib.suppress(OSError):
            process.stdin.close()
        self.running[policy.key] = _Worker(policy.key, run_id, process, log_path, now, log_file)
        self.log(f"policy {policy.key}: episode {run_id} runs in pid {process.pid}, log {log_path}")

    def renew(self, metadata: MetadataStore, now: datetime) -> None:
        """Extend the leases of the running workers."""
        for worker in self.running.values():
            if not leases.renew(
                metadata, self.lease(worker.policy), self.holder, ttl=self.lease_seconds, now=now
            ):
                self.log(f"policy {worker.policy}: lease lost while episode {worker.run_id} runs")

    def reap(self, metadata: MetadataStore, now: datetime) -> list[EndedWorker]:
        """Collect the workers that exited and release their leases."""
        ended: list[EndedWorker] = []
        for key, worker in list(self.running.items()):
            code = worker.process.poll()
            if code is None:
                continue
            del self.running[key]
            worker.log_file.close()
            status = "finished" if code == 0 else ("killed" if code == 130 else "failed")
            self.unclaim(metadata, key, now, status=status)
            ended.append(EndedWorker(key, worker.run_id, code, worker.log_path))
        return ended

    def stop(self, *, wait: bool, timeout: float = 30.0) -> None:
        """Wait for the workers (``wait``), or interrupt them (each marks its episode
        failed) and kill those that do not end within ``timeout`` seconds."""
        for worker in self.running.values():
            if not wait and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGINT)
        for worker in self.running.values():
            try:
                worker.process.wait(timeout=None if wait else timeout)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


# --- The worker process ------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run one episode read from stdin; print a JSON line last; exit 0, 1 or 130."""
    parser = argparse.ArgumentParser(prog="python -m shipyard.pipelines.loop_worker")
    parser.add_argument("--project", required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    # Read the payload at once: the scheduler's write must not wait for our imports.
    payload = sys.stdin.buffer.read()

    from shipyard.pipelines.closed_loop import ClosedLoop
    from shipyard.pipelines.registry import import_project_pipelines

    report: dict[str, Any] = {"run_id": None, "outcome": None, "error": None}
    code = 1
    try:
        # Gates or parameters defined in the project's pipelines.py unpickle from it.
        import_project_pipelines(Path(args.project))
        # The scheduler wrote this payload to our stdin itself: no one else can.
        job = pickle.loads(payload)  # noqa: S301
        config, policy, run_id = job["config"], job["policy"], int(job["run_id"])
        report["run_id"] = run_id
        with ClosedLoop(config, [policy], log=_print) as loop:
            try:
                run = loop.run_episode(policy, run_id)
            except KeyboardInterrupt:
                loop.fail(run_id, "interrupted: the scheduler stopped while it ran")
                raise
        report.update(outcome=run.outcome or run.stage)
        code = 0
    except KeyboardInterrupt:
        report.update(outcome="failed", error="interrupted")
        code = 130
    except Exception as exc:  # noqa: BLE001 - reported to the scheduler, which goes on
        report.update(outcome="failed", error=f"{type(exc).__name__}: {exc}")
    print(json.dumps(report), flush=True)
    return code


def _print(message: str) -> None:
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
