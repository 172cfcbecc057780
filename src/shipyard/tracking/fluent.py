"""The fluent tracking API: ``with start_run():`` and ``log_*`` calls that find their run.

>>> import shipyard as sy
>>> with sy.start_run("gbm-baseline", experiment="churn") as run:
...     sy.log_params({"learning_rate": 0.1, "max_depth": 6})
...     for epoch in range(10):
...         sy.log_metric("loss", 1 / (epoch + 1), step=epoch)
...     with sy.start_run("fold-1", nested=True):   # parent_id = run.id
...         sy.log_metric("auc", 0.91)

How a run ends:

- the ``with`` block ends normally: ``finished``;
- an exception escapes it: ``failed``, with ``"<type>: <message>"`` recorded as the
  run's error, and the exception re-raised; ``KeyboardInterrupt`` (Ctrl-C): ``killed``;
- ``end_run(status)`` ends the innermost active run;
- a run started without ``with`` and never ended is ended when the interpreter exits:
  ``finished``, or ``failed`` / ``killed`` when the exit is an uncaught exception / Ctrl-C.

The run, everything logged to it and its end are flushed (committed) by the time it
ends: in one transaction when the run lasted less than a flush interval. A process that
is SIGKILLed leaves its run ``running`` until its heartbeat is found stale
(``TrackingClient.mark_stale_runs``); a run started less than a flush interval before
the kill may not be stored at all.

The active runs are a per-context stack (``contextvars``): each thread and each asyncio
task sees its own. A thread started inside a run does not see it; pass the context
(``contextvars.copy_context().run(fn)``) or log with ``TrackingClient`` and the run id.
The experiment defaults to ``$SHIPYARD_EXPERIMENT``, else ``Default``; the stores are the
project's (``load_config()``), one client per store for the whole process.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from shipyard.core.config import load_config
from shipyard.tracking.client import TrackingClient
from shipyard.tracking.records import ArtifactEntry, DatasetInput, Run
from shipyard.tracking.validation import RunStateError

if TYPE_CHECKING:
    from shipyard.formats import ModelInfo

__all__ = [
    "ActiveRun",
    "EXPERIMENT_ENV",
    "active_run",
    "end_run",
    "log_artifact",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "set_tag",
    "set_tags",
    "start_run",
]

EXPERIMENT_ENV = "SHIPYARD_EXPERIMENT"
"""Environment variable naming the default experiment of ``start_run``."""

_stack: ContextVar[tuple[ActiveRun, ...]] = ContextVar("shipyard_active_runs", default=())
_clients: dict[tuple[str, str], TrackingClient] = {}
_unended: list[ActiveRun] = []
_lock = threading.Lock()


class ActiveRun:
    """A run started by ``start_run``; a context manager that ends it.

    ``info`` is the run as it was started; ``run`` reads it fresh from the store.
    """

    def __init__(self, info: Run, client: TrackingClient) -> None:
        self.info = info
        self.client = client
        self._ended = False

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def experiment_id(self) -> str:
        return self.info.experiment_id

    @property
    def parent_id(self) -> str | None:
        return self.info.parent_id

    @property
    def run(self) -> Run:
        """The run now, with its params, tags and latest metrics (flushes first)."""
        return self.client.get_run(self.id)

    @property
    def ended(self) -> bool:
        return self._ended

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r}, name={self.name!r})"

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        status, error = _status_of(exc)
        if exc is None:
            _end(self, status, error)
            return
        try:
            _end(self, status, error)
        except Exception as own:  # noqa: BLE001 - never hide the user's exception
            exc.add_note(f"Shipyard could not end run {self.id} cleanly: {own}")


def start_run(
    name: str | None = None,
    *,
    experiment: str | None = None,
    nested: bool = False,
    tags: Mapping[str, object] | None = None,
    run_id: str | None = None,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it the active run of this context.

    Inside an active run, pass ``nested=True`` to start a child of it (same experiment
    unless one is named). ``experiment`` (name or id, created if new) defaults to
    ``$SHIPYARD_EXPERIMENT``, else ``Default``.

    >>> with start_run("baseline", tags={"stage": "dev"}) as run:
    ...     log_metric("auc", 0.87)
    """
    stack = _stack.get()
    parent = next((run for run in reversed(stack) if not run.ended), None)
    if parent is not None and not nested and run_id is None:
        raise RunStateError(
            f"Run {parent.id} ({parent.name!r}) is already active in this context.",
            hint="Pass nested=True to start a child run, or end_run() first.",
        )
    client = parent.client if parent is not None else _default_client()
    if run_id is not None:
        info = client.resume_run(run_id)
        if tags:
            client.set_tags(run_id, tags)
    else:
        target = experiment
        if target is None and parent is None:
            target = os.environ.get(EXPERIMENT_ENV) or None
        info = client.create_run(
            target,
            name=name,
            parent_id=parent.id if parent is not None and nested else None,
            tags=tags,
        )
    active = ActiveRun(info, client)
    _stack.set((*stack, active))
    with _lock:
        _unended.append(active)
    return active


def active_run() -> ActiveRun | None:
    """The innermost run started and not yet ended in this context, or ``None``."""
    for run in reversed(_stack.get()):
        if not run.ended:
            return run
    return None


def end_run(status: str = "finished") -> None:
    """End the innermost active run (``finished``, ``failed`` or ``killed``); no-op if none."""
    run = active_run()
    if run is not None:
        _end(run, status, None)


def log_param(key: str, value: object) -> None:
    """Log a param of the active run (immutable: another value later is an error)."""
    run = _current()
    run.client.log_param(run.id, key, value)


def log_params(params: Mapping[str, object]) -> None:
    """Log several params of the active run."""
    run = _current()
    run.client.log_params(run.id, params)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log a metric value of the active run (buffered; costs microseconds)."""
    run = _current()
    run.client.log_metric(run.id, key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log several metric values of the active run at one step."""
    run = _current()
    run.client.log_metrics(run.id, metrics, step)


def set_tag(key: str, value: object) -> None:
    """Set a tag of the active run (the last value wins)."""
    run = _current()
    run.client.set_tag(run.id, key, value)


def set_tags(tags: Mapping[str, object]) -> None:
    """Set several tags of the active run."""
    run = _current()
    run.client.set_tags(run.id, tags)


def log_artifact(local_path: Path | str, artifact_path: str | None = None) -> list[ArtifactEntry]:
    """Log a file or folder into the active run's artifacts (under ``artifact_path``)."""
    run = _current()
    return run.client.log_artifact(run.id, local_path, artifact_path)


def log_text(text: str, artifact_path: str) -> ArtifactEntry:
    """Log text as a file of the active run's artifacts."""
    run = _current()
    return run.client.log_text(run.id, text, artifact_path)


def log_model(model: Any, name: str = "model", **kwargs: Any) -> ModelInfo:
    """Save a model (``shipyard.formats``) into the active run's artifacts under ``name/``."""
    run = _current()
    return run.client.log_model(run.id, model, name, **kwargs)


def log_input(dataset: str, version_id: str, role: str = "train") -> DatasetInput:
    """Record that the active run read a dataset version."""
    run = _current()
    return run.client.log_input(run.id, dataset, version_id, role)


def _current() -> ActiveRun:
    for run in reversed(_stack.get()):
        if not run.ended:
            return run
    raise RunStateError(
        "No active run in this context.",
        hint="Wrap the code in `with shipyard.start_run():`; in a worker thread, run it "
        "with contextvars.copy_context().run(...) or log with TrackingClient and the run id.",
    )


def _default_client() -> TrackingClient:
    config = load_config()
    key = (config.store.metadata, config.store.artifacts)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = TrackingClient(config)
        return client


def _status_of(exc: BaseException | None) -> tuple[str, str | None]:
    if exc is None:
        return "finished", None
    if isinstance(exc, SystemExit) and exc.code in (None, 0):
        return "finished", None
    error = f"{type(exc).__name__}: {exc}".rstrip(": ")
    if isinstance(exc, KeyboardInterrupt) or not isinstance(exc, Exception | SystemExit):
        return "killed", error
    return "failed", error


def _end(run: ActiveRun, status: str, error: str | None) -> None:
    if run.ended:
        return
    run._ended = True
    stack = _stack.get()
    if run in stack:
        _stack.set(tuple(other for other in stack if other is not run))
    with _lock:
        if run in _unended:
            _unended.remove(run)
    run.client.set_terminated(run.id, status, error)
    # The client queues the end; a run ended here is stored when its block exits (its
    # creation, values and end in one transaction), so other processes see it ended.
    run.client.flush()


def _end_all_at_exit() -> None:
    """End the runs still open when the interpreter exits, as its exit says."""
    uncaught = getattr(sys, "last_value", None)
    status, error = _status_of(uncaught if isinstance(uncaught, BaseException) else None)
    with _lock:
        open_runs = list(reversed(_unended))
    for run in open_runs:  # children before parents
        try:
            _end(run, status, error)
        except Exception as exc:  # noqa: BLE001 - the interpreter is exiting: report, go on
            print(f"shipyard: could not end run {run.id} at exit: {exc}", file=sys.stderr)
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        try:
            client.close()
        except Exception as exc:  # noqa: BLE001
            print(f"shipyard: tracking writes lost at exit: {exc}", file=sys.stderr)


atexit.register(_end_all_at_exit)
