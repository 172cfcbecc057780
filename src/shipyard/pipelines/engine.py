"""The loop that runs one traced pipeline: readiness, the cache, retries, records, Ctrl-C.

One ``Execution`` drives one attempt of a pipeline run. A step becomes ready when every
step it reads from is done; then its cache key is computed from its inputs' output ids
and it is either skipped (a verified cache hit, or on resume a step the earlier attempt
finished with the same key) or submitted to the executor, never more at once than the
executor runs. A failed attempt is retried after ``backoff * 2**(attempt - 1)`` seconds
while retries remain; a step that still fails stops new submissions, the steps already
running finish and are recorded, and the rest are marked skipped. Ctrl-C cancels the
executor's work and marks the run, its running steps and their runs killed.

Every executed step is a child tracking run of the pipeline run, with its params, seed,
metrics, logs and output ids; cache hits are recorded in ``pipeline_steps`` only, linked
to the step run that produced their outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from shipyard.pipelines import cache, journal, tasks
from shipyard.pipelines.definition import derive_seed
from shipyard.pipelines.executors import Executor
from shipyard.pipelines.graph import Node, Plan
from shipyard.pipelines.outputs import OutputRecord, output_problem
from shipyard.pipelines.records import EventKind, StepEvent, StepRecord
from shipyard.pipelines.worker import (
    DatasetValue,
    StepTask,
    StoreLocation,
    TaskResult,
)
from shipyard.tracking.client import TrackingClient

__all__ = ["Execution"]

_MAX_PARAM_CHARS = 6000
_MAX_ERROR_CHARS = 4000


class Execution:
    """One attempt at running ``plan`` as the pipeline run ``run_id`` (see module doc)."""

    def __init__(
        self,
        *,
        plan: Plan,
        run_id: str,
        client: TrackingClient,
        executor: Executor,
        location: StoreLocation,
        project_dir: Path,
        seed: int,
        use_cache: bool,
        on_event: Callable[[StepEvent], None] | None,
        previous: Mapping[str, StepRecord] | None = None,
    ) -> None:
        self.plan = plan
        self.run_id = run_id
        self.client = client
        self.metadata = client.stores.metadata
        self.artifacts = client.stores.artifacts
        self.executor = executor
        self.location = location
        self.project_dir = project_dir
        self.seed = seed
        self.use_cache = use_cache
        self.on_event = on_event
        self.previous = dict(previous or {})
        self.outputs: dict[str, dict[str, OutputRecord]] = {}
        self.failed: list[tuple[str, str]] = []
        self._waiting = {node.name: len(node.upstream) for node in plan.nodes}
        self._children = plan.downstream()
        self._ready: list[tuple[int, str]] = []
        self._running: dict[Future[TaskResult], tuple[Node, StepTask]] = {}
        self._retries: list[tuple[float, int, str, StepTask]] = []
        self._keys: dict[str, cache.CacheKey] = {}
        self._child_runs: dict[str, str] = {}
        self._attempts: dict[str, int] = {}
        self._started: dict[str, datetime] = {}
        self._deferred: list[tuple[str, dict[str, Any]]] = []
        self._input_id_memo: dict[str, dict[str, str]] = {}
        self._datasets: dict[str, dict[str, DatasetValue]] = {}
        self._reader: Connection | None = None
        self._active: dict[str, StepTask] = {}
        """Steps submitted and not finished (in-process: the one running in this thread)."""

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        """Run every step; record everything. ``KeyboardInterrupt`` propagates after cleanup."""
        for node in self.plan.nodes:
            self._emit("planned", node.name)
            if self._waiting[node.name] == 0:
                heapq.heappush(self._ready, (node.position, node.name))
        with contextlib.ExitStack() as stack:
            self._reader = stack.enter_context(self.metadata.connect())
            try:
                self._loop()
            except BaseException as exc:
                self._stop("killed" if isinstance(exc, KeyboardInterrupt) else "failed")
                raise
            finally:
                self._reader = None
                self._flush()

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read on the run's one reading connection (a cache hit costs no checkout)."""
        if self._reader is None:
            with self.metadata.connect() as conn:
                yield conn
            return
        try:
            yield self._reader
        finally:
            self._reader.rollback()  # end the read transaction: no snapshot held meanwhile

    def _loop(self) -> None:
        while True:
            while (
                self._ready and not self.failed and len(self._running) < self.executor.max_parallel
            ):
                _, name = heapq.heappop(self._ready)
                self._prepare(self.plan.node(name))
            self._flush()
            if not self._running and (not self._retries or self.failed):
                break
            timeout = None
            if self._retries:
                timeout = max(0.0, self._retries[0][0] - time.monotonic())
            if self._running:
                done, _ = wait(list(self._running), timeout=timeout, return_when=FIRST_COMPLETED)
                for future in done:
                    node, task = self._running.pop(future)
                    self._finish(node, task, tasks.result_of(future, task))
            elif timeout:
                time.sleep(timeout)
            now = time.monotonic()
            while self._retries and self._retries[0][0] <= now and not self.failed:
                _, _, name, task = heapq.heappop(self._retries)
                self._submit(self.plan.node(name), task)
        abandoned = {name for _, _, name, _ in self._retries}
        for name in sorted(abandoned):  # waiting for a retry when another step failed
            error = "not retried: another step failed"
            self._record(name, {"status": "failed", "error": error, "ended_at": datetime.now(UTC)})
            self.client.set_terminated(self._child_runs[name], "failed", error=error)
            self._emit("failed", name, message=error)
        self._retries.clear()
        failed = {name for name, _ in self.failed}
        for node in self.plan.nodes:
            if node.name not in self.outputs and node.name not in failed | abandoned:
                self._record(node.name, {"status": "skipped"})
                self._emit("skipped", node.name)

    # --- one step -----------------------------------------------------------------------

    def _prepare(self, node: Node) -> None:
        try:
            seed = (
                node.step.seed if node.step.seed is not None else derive_seed(self.seed, node.name)
            )
            self._datasets[node.name] = tasks.resolve_datasets(self.client.stores, node)
            key = cache.cache_key(
                node, seed=seed, inputs=self._input_ids(node), project_dir=self.project_dir
            )
            if self._datasets[node.name]:
                references = {p: v.reference for p, v in self._datasets[node.name].items()}
                key = cache.CacheKey(key.key, {**key.parts, "datasets": references})
        except Exception as exc:  # noqa: BLE001 - a step that cannot even start has failed
            self._fail_without_run(node, f"{type(exc).__name__}: {exc}")
            return
        self._keys[node.name] = key
        if self._reuse(node, key):
            return
        self._execute(node, seed, key)

    def _reuse(self, node: Node, key: cache.CacheKey) -> bool:
        earlier = self.previous.get(node.name)
        if (
            earlier is not None
            and earlier.status in ("finished", "cached")
            and earlier.cache_key == key.key
        ):
            reused = self._usable(dict(earlier.outputs))
            if reused is not None:  # its row is kept as the earlier attempt recorded it
                self.outputs[node.name] = reused
                self._emit("cached", node.name, message="reused from the earlier attempt")
                self._release(node)
                return True
        if not (self.use_cache and node.step.cache):
            return False
        with self._read() as conn:
            entry = cache.lookup(conn, key.key)
        if entry is None:
            return False
        records = self._verified(entry.outputs, {r.id: r for r in entry.records.values()})
        if records is None:
            return False
        self.outputs[node.name] = records
        now = datetime.now(UTC)
        self._record(
            node.name,
            {
                "status": "cached",
                "cache_key": key.key,
                "key_parts": key.parts,
                "source_run_id": entry.run_id,
                "inputs": self._input_ids(node),
                "outputs": {name: record.id for name, record in records.items()},
                "started_at": now,
                "ended_at": now,
            },
        )
        self._emit("cached", node.name, message=f"outputs of run {entry.run_id}")
        self._release(node)
        return True

    def _usable(self, output_ids: dict[str, str]) -> dict[str, OutputRecord] | None:
        """The records of these outputs if every blob exists and verifies, else ``None``."""
        with self._read() as conn:
            records = cache.load_outputs(conn, list(output_ids.values()))
        return self._verified(output_ids, records)

    def _verified(
        self, output_ids: dict[str, str], records: dict[str, OutputRecord]
    ) -> dict[str, OutputRecord] | None:
        chosen: dict[str, OutputRecord] = {}
        for name, output_id in output_ids.items():
            record = records.get(output_id)
            if record is None:
                return None
            if output_problem(record, self.artifacts, discard_corrupted=True) is not None:
                return None
            chosen[name] = record
        return chosen

    def _execute(self, node: Node, seed: int, key: cache.CacheKey) -> None:
        with self._read() as conn:
            previous_parts = journal.last_key_parts(
                conn, self.plan.pipeline, node.name, self.run_id
            )
        miss = cache.explain_miss(key.parts, previous_parts)
        child = self.client.create_run(
            parent_id=self.run_id,
            name=node.name,
            capture_code=False,
            tags={
                "shipyard.kind": "step",
                "shipyard.step": node.name,
                "shipyard.function": node.step.reference,
                "shipyard.pipeline_run": self.run_id,
                "shipyard.cache_key": key.key,
                "shipyard.cache_miss": miss if node.step.cache and self.use_cache else "cache off",
            },
        )
        self._child_runs[node.name] = child.id
        self.client.log_params(child.id, {**tasks.param_texts(node), "seed": seed})
        resolved = self._datasets.get(node.name, {})
        wanted = node.datasets()
        datasets = {wanted[path]: value for path, value in resolved.items()}
        for path, value in resolved.items():  # lineage: this run read that version
            self.client.log_input(child.id, value.dataset, value.content_id, tasks.role(path))
        self._started[node.name] = datetime.now(UTC)
        self._record(
            node.name,
            {
                "status": "running",
                "cache_key": key.key,
                "key_parts": key.parts,
                "step_run_id": child.id,
                "inputs": self._input_ids(node),
                "started_at": self._started[node.name],
            },
        )
        task = tasks.first_attempt(
            node,
            run_id=child.id,
            seed=seed,
            outputs=self.outputs,
            datasets=datasets,
            location=self.location,
        )
        self._submit(node, task)

    def _submit(self, node: Node, task: StepTask) -> None:
        self._attempts[node.name] = task.attempt
        self._record(node.name, {"attempts": task.attempt})
        self._emit("started", node.name, attempt=task.attempt)
        self._flush()
        # The step's run (and its parent) must be in the store before it executes, so that
        # a crash meanwhile leaves a run the heartbeat check can mark failed.
        self.client.flush()
        self._active[node.name] = task
        future = self.executor.submit(task)
        self._running[future] = (node, task)

    def _finish(self, node: Node, task: StepTask, result: TaskResult) -> None:
        self._active.pop(node.name, None)
        child = self._child_runs[node.name]
        if result.logs:
            self.client.log_text(child, result.logs, f"logs/attempt-{task.attempt}.log")
        if result.metrics:
            self.client.log_metrics(child, dict(result.metrics))
        if result.outputs is not None:
            self._succeeded(node, child, dict(result.outputs))
            return
        error = (result.error or "unknown error")[:_MAX_ERROR_CHARS]
        if task.attempt <= node.step.retries:
            delay = node.step.backoff * 2 ** (task.attempt - 1)
            retry = dataclasses.replace(task, attempt=task.attempt + 1)
            heapq.heappush(
                self._retries, (time.monotonic() + delay, node.position, node.name, retry)
            )
            self._emit(
                "retrying",
                node.name,
                attempt=task.attempt,
                message=f"{error} (retry in {delay:g} s)",
            )
            return
        self.failed.append((node.name, error))
        ended = datetime.now(UTC)
        self._record(node.name, {"status": "failed", "error": error, "ended_at": ended})
        self._flush()
        self.client.set_terminated(child, "failed", error=error)
        self._emit("failed", node.name, attempt=task.attempt, message=error, started=node.name)

    def _succeeded(self, node: Node, child: str, records: dict[str, OutputRecord]) -> None:
        key = self._keys[node.name]
        ended = datetime.now(UTC)
        output_ids = {name: record.id for name, record in records.items()}
        with self.metadata.transaction() as conn:
            cache.save_outputs(conn, self.metadata, list(records.values()), child)
            if node.step.cache:
                cache.remember(
                    conn,
                    self.metadata,
                    key.key,
                    records,
                    run_id=child,
                    pipeline_run_id=self.run_id,
                    step=node.name,
                )
            journal.update_step(
                conn,
                self.run_id,
                node.name,
                {"status": "finished", "outputs": output_ids, "ended_at": ended},
            )
        self.client.set_tags(child, {f"shipyard.output.{n}": i for n, i in output_ids.items()})
        self.client.set_terminated(child, "finished")
        self.outputs[node.name] = records
        self._emit(
            "finished", node.name, attempt=self._attempts.get(node.name, 1), started=node.name
        )
        self._release(node)

    def _fail_without_run(self, node: Node, error: str) -> None:
        self.failed.append((node.name, error))
        now = datetime.now(UTC)
        self._record(
            node.name, {"status": "failed", "error": error, "started_at": now, "ended_at": now}
        )
        self._emit("failed", node.name, message=error)

    def _release(self, node: Node) -> None:
        for child in self._children[node.name]:
            self._waiting[child] -= 1
            if self._waiting[child] == 0:
                heapq.heappush(self._ready, (self.plan.node(child).position, child))

    # --- stopping -----------------------------------------------------------------------

    def _stop(self, status: str) -> None:
        """Ctrl-C or a crash of the loop: cancel work, mark what ran ``status``."""
        try:
            self.executor.cancel()
        finally:
            now = datetime.now(UTC)
            stopped = [*self._active, *(name for _, _, name, _ in self._retries)]
            for name in stopped:
                self._record(name, {"status": status, "ended_at": now, "error": "interrupted"})
                self._emit("killed", name)
                child = self._child_runs.get(name)
                if child is not None:
                    self.client.set_terminated(child, status, error="interrupted")
            self._running.clear()
            self._retries.clear()
            self._active.clear()
            for node in self.plan.nodes:
                if node.name not in self.outputs and node.name not in stopped:
                    if node.name not in (failed for failed, _ in self.failed):
                        self._record(node.name, {"status": "skipped"})

    # --- records and events -------------------------------------------------------------

    def _record(self, step: str, values: dict[str, Any]) -> None:
        self._deferred.append((step, values))

    def _flush(self) -> None:
        if not self._deferred:
            return
        merged: dict[str, dict[str, Any]] = {}
        for step, values in self._deferred:
            merged.setdefault(step, {}).update(values)
        self._deferred.clear()
        with self.metadata.transaction() as conn:
            journal.update_steps(conn, self.run_id, merged)

    def _input_ids(self, node: Node) -> dict[str, str]:
        """Argument path -> content id of every input: upstream outputs and datasets."""
        known = self._input_id_memo.get(node.name)
        if known is None:
            known = {
                path: self.outputs[handle.node][handle.output].id
                for path, handle in node.inputs().items()
            }
            for path, value in self._datasets.get(node.name, {}).items():
                known[path] = value.content_id
            self._input_id_memo[node.name] = known
        return known

    def _emit(
        self,
        kind: EventKind,
        step: str,
        *,
        attempt: int = 0,
        message: str | None = None,
        started: str | None = None,
    ) -> None:
        if self.on_event is None:
            return
        duration = None
        if started is not None and started in self._started:
            duration = (datetime.now(UTC) - self._started[started]).total_seconds()
        self.on_event(StepEvent(kind, step, attempt, message, duration))
