"""Turning a planned step into a task for an executor, and what the engine needs around it.

A task carries the step by module path, its arguments with every upstream output given
as its stored record and every dataset as the version it resolved to, its seed, and
where the stores are (see ``worker.StepTask``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from shipyard.pipelines.canonical import canonical_json
from shipyard.pipelines.errors import PipelineDefinitionError
from shipyard.pipelines.graph import DatasetInput, Node, OutputHandle
from shipyard.pipelines.outputs import OutputRecord
from shipyard.pipelines.worker import (
    DatasetValue,
    InputValue,
    StepTask,
    StoreLocation,
    TaskResult,
)
from shipyard.store.stores import Stores

__all__ = ["first_attempt", "param_texts", "resolve_datasets", "result_of", "role"]

_MAX_PARAM_CHARS = 6000


def first_attempt(
    node: Node,
    *,
    run_id: str,
    seed: int,
    outputs: Mapping[str, Mapping[str, OutputRecord]],
    datasets: Mapping[DatasetInput, DatasetValue],
    location: StoreLocation,
) -> StepTask:
    """The task of ``node``'s first attempt; ``outputs`` holds its upstream steps' records."""

    def substitute(value: Any) -> Any:
        if isinstance(value, OutputHandle):
            return InputValue(outputs[value.node][value.output])
        if isinstance(value, DatasetInput):
            return datasets[value]
        if isinstance(value, list):
            return [substitute(item) for item in value]
        if isinstance(value, tuple):
            return tuple(substitute(item) for item in value)
        if isinstance(value, dict):
            return {key: substitute(item) for key, item in value.items()}
        return value

    return StepTask(
        run_id=run_id,
        step=node.name,
        module=node.step.fn.__module__,
        qualname=node.step.fn.__qualname__,
        args=tuple(substitute(value) for value in node.args),
        kwargs={name: substitute(value) for name, value in node.kwargs.items()},
        seed=seed,
        inject_seed=node.inject_seed,
        output_names=node.output_names,
        multiple_outputs=node.step.outputs is not None,
        allow_pickle=node.step.allow_pickle,
        attempt=1,
        location=location,
        sys_path=tuple(sys.path),
        function=node.step.fn,
    )


def resolve_datasets(stores: Stores, node: Node) -> dict[str, DatasetValue]:
    """The dataset versions the step's ``dataset(...)`` arguments name, now."""
    wanted = node.datasets()
    if not wanted:
        return {}
    from shipyard.data.client import DatasetClient

    resolved: dict[str, DatasetValue] = {}
    with DatasetClient(stores) as client:
        for path, item in wanted.items():
            version = client.get_version(item.reference)
            if version.kind != "table":
                raise PipelineDefinitionError(
                    f"Step {node.name!r} reads dataset {item.reference!r} as a table, but "
                    f"{version.reference} is a version of files.",
                    hint="Read files with shipyard.data.version_files inside the step.",
                )
            resolved[path] = DatasetValue(
                version.dataset, version.number, version.content_id, item.format
            )
    return resolved


def result_of(future: Future[TaskResult], task: StepTask) -> TaskResult:
    """A task's result; an executor failure (a worker that died) becomes a failed attempt."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - reported as the attempt's error
        return TaskResult(
            task.step,
            task.attempt,
            None,
            error=f"{type(exc).__name__}: {exc}",
            error_type="executor",
        )


def role(path: str) -> str:
    """An argument path as a tracking input role (letters, digits, ``_-./``; 64 at most)."""
    return re.sub(r"[^A-Za-z0-9_./-]+", "_", path).strip("_")[:64] or "input"


def param_texts(node: Node) -> dict[str, str]:
    """The step's parameters as tracking param values (canonical JSON, clipped)."""
    texts: dict[str, str] = {}
    for name, value in node.params().items():
        text = value if isinstance(value, str) else canonical_json(value).decode()
        if len(text) > _MAX_PARAM_CHARS:
            text = text[: _MAX_PARAM_CHARS - 3] + "..."
        texts[name] = text
    return texts
