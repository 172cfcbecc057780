"""What runs a step, wherever it runs: in the orchestrating process, a local worker process
or a Ray worker.

A ``StepTask`` carries everything a worker needs and nothing it cannot rebuild: the step
by reference (module and qualified name, imported in the worker), its arguments with
every upstream output given as its ``OutputRecord``, its seed, and where the artifact
store is. The worker loads the inputs from the store, seeds the random generators, runs
the function with its output and logging captured, writes the outputs to the store itself
and returns only their records: no database access happens in a worker.

Inside a step, ``current_step()`` says which run, step, seed and attempt this is, and
``log_metrics`` records metrics on the step's tracking run.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import logging
import random
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import IntegrityError
from shipyard.pipelines.errors import PipelineDefinitionError, StepOutputError
from shipyard.pipelines.outputs import OutputRecord, read_output, write_output
from shipyard.store.artifacts import ArtifactStore

if TYPE_CHECKING:
    from shipyard.store.stores import Stores

__all__ = [
    "DatasetValue",
    "StoreLocation",
    "StepContext",
    "StepTask",
    "TaskResult",
    "current_step",
    "execute_task",
    "log_metrics",
]

_MAX_LOG_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Where a worker finds the stores: the artifact store (always) and the metadata
    database (only opened for a step that reads a dataset version)."""

    uri: str
    base_dir: str
    s3_endpoint_url: str | None = None
    metadata_uri: str | None = None

    def open(self) -> ArtifactStore:
        from shipyard.store.artifacts_factory import open_artifact_store

        return open_artifact_store(
            self.uri, base_dir=Path(self.base_dir), s3_endpoint_url=self.s3_endpoint_url
        )


@dataclass(frozen=True, slots=True)
class DatasetValue:
    """An argument that is a dataset version, resolved by the orchestrator."""

    dataset: str
    number: int
    content_id: str
    format: str

    @property
    def reference(self) -> str:
        return f"{self.dataset}@v{self.number}"


@dataclass(frozen=True, slots=True)
class InputValue:
    """An argument that is an upstream step's output, by its stored record."""

    record: OutputRecord


@dataclass(frozen=True, slots=True)
class StepTask:
    """One attempt at one step, as sent to a worker."""

    run_id: str
    step: str
    """The step's name in the pipeline."""
    module: str
    qualname: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    seed: int
    inject_seed: bool
    output_names: tuple[str, ...]
    multiple_outputs: bool
    allow_pickle: bool
    attempt: int
    location: StoreLocation
    sys_path: tuple[str, ...] = ()
    function: Any = field(default=None, compare=False)
    """The step function itself, for in-process execution (not sent to workers)."""


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a worker sends back: output records, or the error; logs and metrics either way."""

    step: str
    attempt: int
    outputs: Mapping[str, OutputRecord] | None
    error: str | None = None
    error_type: str | None = None
    logs: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class StepContext:
    """The step being executed in this thread (see ``current_step``)."""

    run_id: str
    step: str
    seed: int
    attempt: int
    metrics: dict[str, float] = field(default_factory=dict)


_current: ContextVar[StepContext | None] = ContextVar("shipyard_step", default=None)
_stores: dict[StoreLocation, ArtifactStore] = {}
_stores_lock = threading.Lock()


def current_step() -> StepContext:
    """The run, step, seed and attempt of the step executing now.

    >>> @step
    ... def train(table):
    ...     model = fit(table, random_state=current_step().seed)  # doctest: +SKIP
    """
    context = _current.get()
    if context is None:
        raise PipelineDefinitionError(
            "current_step() was called outside a running pipeline step.",
            hint="Call it from inside a @step function while a pipeline runs.",
        )
    return context


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Record metrics on the running step's tracking run (the last value of a key wins).

    >>> log_metrics({"accuracy": 0.91, "f1": 0.84})  # doctest: +SKIP
    """
    from shipyard.tracking.validation import metric_value, validate_key

    context = current_step()
    checked = {
        validate_key(key, "metric"): metric_value(value, key=key) for key, value in metrics.items()
    }
    context.metrics.update(checked)


def execute_task(task: StepTask, stores: Stores | None = None) -> TaskResult:
    """Run one attempt of a step; never raises for the step's own errors (they are returned).

    ``stores`` are the caller's (in-process); a worker opens its own from the task.
    ``KeyboardInterrupt`` and ``SystemExit`` pass through: stopping is the caller's call.
    """
    started = time.perf_counter()
    store = stores.artifacts if stores is not None else _store(task.location)
    context = StepContext(task.run_id, task.step, task.seed, task.attempt)
    logs = io.StringIO()
    token = _current.set(context)
    try:
        with _captured(logs):
            try:
                outputs = _run(task, store, stores)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - reported to the orchestrator
                details = "".join(traceback.format_exception(exc))
                print(details, file=sys.stderr)
                return TaskResult(
                    task.step,
                    task.attempt,
                    None,
                    error=f"{type(exc).__name__}: {exc}",
                    error_type=type(exc).__name__,
                    logs=_clip(logs.getvalue()),
                    metrics=dict(context.metrics),
                    duration_seconds=time.perf_counter() - started,
                )
    finally:
        _current.reset(token)
    return TaskResult(
        task.step,
        task.attempt,
        outputs,
        logs=_clip(logs.getvalue()),
        metrics=dict(context.metrics),
        duration_seconds=time.perf_counter() - started,
    )


def _run(task: StepTask, store: ArtifactStore, stores: Stores | None) -> dict[str, OutputRecord]:
    function = _import_function(task)
    load = functools.partial(_load, store=store, task=task, stores=stores)
    args = tuple(load(value) for value in task.args)
    kwargs = {key: load(value) for key, value in task.kwargs.items()}
    _seed_generators(task.seed)
    value = function(*args, **kwargs)
    return _store_outputs(task, value, store)


def _store_outputs(task: StepTask, value: Any, store: ArtifactStore) -> dict[str, OutputRecord]:
    if not task.multiple_outputs:
        [name] = task.output_names
        return {
            name: write_output(
                value, store, step=task.step, output=name, allow_pickle=task.allow_pickle
            )
        }
    names = task.output_names
    if isinstance(value, Mapping) and set(value) == set(names):
        values = [value[name] for name in names]
    elif isinstance(value, (tuple, list)) and len(value) == len(names):
        values = list(value)
    else:
        raise StepOutputError(
            f"Step {task.step!r} declares outputs {list(names)} but returned "
            f"{type(value).__name__}"
            + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else "")
            + ".",
            hint=f"Return a tuple of {len(names)} values or a dict with keys {list(names)}.",
        )
    return {
        name: write_output(item, store, step=task.step, output=name, allow_pickle=task.allow_pickle)
        for name, item in zip(names, values, strict=True)
    }


def _load(value: Any, *, store: ArtifactStore, task: StepTask, stores: Stores | None) -> Any:
    from shipyard.pipelines.graph import SeedPlaceholder

    if isinstance(value, SeedPlaceholder):
        return task.seed
    if isinstance(value, InputValue):
        return read_output(value.record, store, allow_pickle=task.allow_pickle, reader=task.step)
    if isinstance(value, DatasetValue):
        return _read_dataset(value, task, stores)
    load = functools.partial(_load, store=store, task=task, stores=stores)
    if isinstance(value, list):
        return [load(item) for item in value]
    if isinstance(value, tuple):
        return tuple(load(item) for item in value)
    if isinstance(value, dict):
        return {key: load(item) for key, item in value.items()}
    return value


def _read_dataset(value: DatasetValue, task: StepTask, stores: Stores | None) -> Any:
    from shipyard.data.client import DatasetClient

    with DatasetClient(stores or _worker_stores(task.location)) as client:
        version = client.get_version(value.reference)
        if version.content_id != value.content_id:  # cannot happen: versions are immutable
            raise IntegrityError(
                f"Dataset version {value.reference} is {version.content_id}, not the "
                f"{value.content_id} this step was planned with."
            )
        table = client.read_table(value.reference)
    if value.format == "pandas":
        return table.to_pandas()
    if value.format == "polars":
        import polars as pl

        return pl.from_arrow(table)
    return table


_worker_store_sets: dict[StoreLocation, Stores] = {}


def _worker_stores(location: StoreLocation) -> Stores:
    from shipyard.store.metadata import open_metadata_store
    from shipyard.store.stores import Stores

    if location.metadata_uri is None:
        raise PipelineDefinitionError("This worker was not told where the metadata store is.")
    with _stores_lock:
        found = _worker_store_sets.get(location)
        if found is None:
            metadata = open_metadata_store(
                _metadata_uri(location.metadata_uri, location.base_dir), migrate=False
            )
            found = _worker_store_sets[location] = Stores(metadata, _store_unlocked(location))
        return found


def _metadata_uri(given: str, base_dir: str) -> str:
    """The metadata URI with its password, which the orchestrator leaves out of the task:
    read again from the project's configuration (file or ``SHIPYARD_STORE_METADATA``)."""
    from shipyard.core.config import load_config
    from shipyard.store.metadata import mask_password

    if "***@" not in given:
        return given  # it had no password
    configured = load_config(Path(base_dir)).store.metadata
    if mask_password(configured) != given:
        raise PipelineDefinitionError(
            f"This worker's configuration names the metadata store "
            f"{mask_password(configured)!r}, not {given!r}, which the pipeline runs on.",
            hint="Give the workers the same shipyard.toml or SHIPYARD_STORE_METADATA "
            "as the process that started the run.",
        )
    return configured


def _import_function(task: StepTask) -> Any:
    if task.function is not None:
        return task.function
    for entry in reversed(task.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from shipyard.pipelines.definition import Step

    target: Any = importlib.import_module(task.module)
    for part in task.qualname.split("."):
        target = getattr(target, part)
    return target.fn if isinstance(target, Step) else target


def _seed_generators(seed: int) -> None:
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)


def _store(location: StoreLocation) -> ArtifactStore:
    with _stores_lock:
        return _store_unlocked(location)


def _store_unlocked(location: StoreLocation) -> ArtifactStore:
    store = _stores.get(location)
    if store is None:
        store = _stores[location] = location.open()
    return store


class _LogHandler(logging.Handler):
    def __init__(self, sink: io.StringIO) -> None:
        super().__init__(logging.INFO)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.write(self.format(record) + "\n")


@contextlib.contextmanager
def _captured(sink: io.StringIO) -> Iterator[None]:
    handler = _LogHandler(sink)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        root.removeHandler(handler)


def _clip(text: str) -> str:
    if len(text) <= _MAX_LOG_CHARS:
        return text
    return f"[... {len(text) - _MAX_LOG_CHARS} characters cut ...]\n" + text[-_MAX_LOG_CHARS:]
