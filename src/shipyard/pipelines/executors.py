"""Executors: where steps run, behind one small interface.

- ``InProcessExecutor``: in the orchestrating process, one step at a time (the default;
  no start-up cost, easiest to debug).
- ``LocalProcessExecutor``: a pool of worker processes (``spawn`` by default), so steps
  whose inputs are ready run at the same time.
- ``RayExecutor`` (``shipyard.pipelines.ray_executor``): tasks on a Ray cluster.

Every executor runs the same ``worker.execute_task`` and the workers write outputs to the
artifact store themselves, so a pipeline gives the same output ids on each. The runner
owns ordering, retries, the cache and every record; an executor only runs tasks:

>>> executor = LocalProcessExecutor(max_workers=2)
>>> executor.start(location, stores)
>>> future = executor.submit(task)   # concurrent.futures.Future[TaskResult]
>>> executor.close()
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Protocol, runtime_checkable

from shipyard.pipelines.errors import PipelineDefinitionError
from shipyard.pipelines.worker import StepTask, StoreLocation, TaskResult, execute_task
from shipyard.store.stores import Stores

__all__ = [
    "Executor",
    "InProcessExecutor",
    "LocalProcessExecutor",
    "make_executor",
]


@runtime_checkable
class Executor(Protocol):
    """Runs step tasks; see the module docstring."""

    name: str
    max_parallel: int
    """How many tasks it runs at once (the runner submits no more than that)."""

    def start(self, location: StoreLocation, stores: Stores) -> None:
        """Get ready to run tasks that read and write the stores at ``location``.

        ``stores`` are the orchestrator's own, opened at ``location``.
        """
        ...

    def submit(self, task: StepTask) -> Future[TaskResult]:
        """Start ``task``; the future's result is its ``TaskResult``."""
        ...

    def cancel(self) -> None:
        """Stop every running task now (Ctrl-C): terminate workers, drop queued tasks."""
        ...

    def close(self) -> None:
        """Release workers; wait for nothing that was cancelled."""
        ...


class InProcessExecutor:
    """Runs each step in the calling process, when it is submitted."""

    name = "inprocess"
    max_parallel = 1

    def __init__(self) -> None:
        self._stores: Stores | None = None

    def start(self, location: StoreLocation, stores: Stores) -> None:
        self._stores = stores

    def submit(self, task: StepTask) -> Future[TaskResult]:
        future: Future[TaskResult] = Future()
        future.set_running_or_notify_cancel()
        future.set_result(execute_task(task, self._stores))
        return future

    def cancel(self) -> None:
        """Nothing runs in the background; an interrupted step stops with the caller."""

    def close(self) -> None:
        self._stores = None


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group; the orchestrator decides and terminates us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalProcessExecutor:
    """Runs steps in a pool of ``max_workers`` local processes (default: CPU count).

    ``start_method`` is ``"spawn"`` (default: safe with threads and every platform) or
    ``"forkserver"``. Step functions must be importable by module path.
    """

    name = "process"

    def __init__(self, max_workers: int | None = None, *, start_method: str = "spawn") -> None:
        workers = max_workers if max_workers is not None else (os.cpu_count() or 1)
        if not isinstance(workers, int) or workers < 1:
            raise PipelineDefinitionError(
                f"LocalProcessExecutor(max_workers={max_workers!r}): it must be 1 or more."
            )
        if start_method not in ("spawn", "forkserver"):
            raise PipelineDefinitionError(
                f"LocalProcessExecutor(start_method={start_method!r}): use 'spawn' or "
                "'forkserver' (fork is unsafe with the threads a pipeline run has)."
            )
        self.max_parallel = workers
        self._start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    def start(self, location: StoreLocation, stores: Stores) -> None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.max_parallel,
                mp_context=multiprocessing.get_context(self._start_method),
                initializer=_ignore_interrupts,
            )

    def submit(self, task: StepTask) -> Future[TaskResult]:
        if self._pool is None:
            raise RuntimeError("LocalProcessExecutor.start() was not called")
        return self._pool.submit(execute_task, dataclasses.replace(task, function=None))

    def cancel(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor has no public way to stop running work before Python 3.14
        # (terminate_workers); its process table is the documented-by-source fallback.
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def make_executor(name: str, *, max_workers: int | None = None) -> Executor:
    """An executor by name: ``inprocess``, ``process`` or ``ray``."""
    if name == "inprocess":
        return InProcessExecutor()
    if name == "process":
        return LocalProcessExecutor(max_workers)
    if name == "ray":
        from shipyard.pipelines.ray_executor import RayExecutor

        return RayExecutor(num_cpus=max_workers)
    raise PipelineDefinitionError(
        f"Unknown executor {name!r}.", hint="Use inprocess, process or ray."
    )
