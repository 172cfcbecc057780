"""``RayExecutor``: steps as Ray tasks, one CPU each.

Connects to the Ray cluster at ``address`` (or ``RAY_ADDRESS``), or starts a local one
when Ray is not initialised yet (and shuts down only a cluster it started). A Ray worker
gets the task, loads the inputs from the artifact store, runs the step and writes its
outputs there itself: the store must be reachable from the workers (a shared folder or
S3), exactly as for the local process executor.

>>> executor = RayExecutor(num_cpus=2)  # doctest: +SKIP
>>> run_pipeline(churn, executor=executor)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import Future
from typing import Any

from shipyard.core.errors import BackendUnavailableError
from shipyard.pipelines.worker import StepTask, StoreLocation, TaskResult, execute_task
from shipyard.store.stores import Stores

__all__ = ["RayExecutor"]


class RayExecutor:
    """Runs steps as Ray tasks (see the module docstring)."""

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        self._address = address
        self._num_cpus = num_cpus
        self._init_options = dict(init_options or {})
        self._owns_cluster = False
        self._remote: Any = None
        self._running: dict[int, Any] = {}
        self.max_parallel = num_cpus or os.cpu_count() or 1

    def start(self, location: StoreLocation, stores: Stores) -> None:
        try:
            import ray
        except ImportError as exc:
            raise BackendUnavailableError(
                "The Ray executor needs the ray package.", hint="Install it: pip install ray."
            ) from exc
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self._address is not None:
                options["address"] = self._address
            elif self._num_cpus is not None:
                options["num_cpus"] = self._num_cpus
            options.update(self._init_options)
            try:
                ray.init(**options)
            except Exception as exc:
                raise BackendUnavailableError(
                    f"Could not start or reach Ray ({type(exc).__name__}: {exc}).",
                    hint="Check RAY_ADDRESS, or start a cluster with `ray start --head`.",
                ) from exc
            self._owns_cluster = True
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        self.max_parallel = max(1, int(resources.get("CPU", self.max_parallel)))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(execute_task)

    def submit(self, task: StepTask) -> Future[TaskResult]:
        if self._remote is None:
            raise RuntimeError("RayExecutor.start() was not called")
        reference = self._remote.remote(dataclasses.replace(task, function=None))
        future: Future[TaskResult] = reference.future()
        self._running[id(future)] = reference
        future.add_done_callback(lambda done: self._running.pop(id(done), None))
        return future

    def cancel(self) -> None:
        import ray

        for reference in list(self._running.values()):
            try:
                ray.cancel(reference, force=True)
            except Exception:  # noqa: BLE001, S112 - best effort: the task may have ended
                continue
        self._running.clear()

    def close(self) -> None:
        self._remote = None
        if self._owns_cluster:
            import ray

            ray.shutdown()
            self._owns_cluster = False
