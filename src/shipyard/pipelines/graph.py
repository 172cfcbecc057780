"""The traced DAG: lazy output handles, the nodes a pipeline's body records, the plan.

``Pipeline.plan`` runs the pipeline function under a tracer: each step call becomes a
``Node`` whose arguments keep the ``OutputHandle`` objects passed to it, and the handles
are the edges. Nodes are recorded in call order, which is a topological order (a handle
exists only after the call that made it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.pipelines.canonical import json_problem
from shipyard.pipelines.errors import PipelineDefinitionError

if TYPE_CHECKING:
    from shipyard.pipelines.definition import Step

__all__ = [
    "DEFAULT_OUTPUT",
    "SEED",
    "DatasetInput",
    "Node",
    "OutputHandle",
    "Plan",
    "SeedPlaceholder",
    "current_tracer",
    "dataset",
    "tracing",
]

DEFAULT_OUTPUT = "output"
SEED_PARAMETER = "seed"
_local = threading.local()


class SeedPlaceholder:
    """Stands in the traced arguments for a ``seed`` parameter the pipeline did not pass."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<the step's seed>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeedPlaceholder)

    def __hash__(self) -> int:
        return hash(SeedPlaceholder)


SEED = SeedPlaceholder()


@dataclass(frozen=True, slots=True)
class DatasetInput:
    """A dataset version as a step argument (see ``dataset``)."""

    reference: str
    format: str = "arrow"


_DATASET_FORMATS = ("arrow", "pandas", "polars")


def dataset(reference: str, *, format: str = "arrow") -> DatasetInput:  # noqa: A002
    """A dataset version (``churn``, ``churn@v3``, ``churn@prod``) to pass to a step.

    The reference is resolved when the step is about to run; the version's content id
    joins the step's cache key (a new version runs it again, the same content does not)
    and its tracking run records the version as an input. The step receives the table as
    ``format``: ``"arrow"`` (a ``pyarrow.Table``), ``"pandas"`` or ``"polars"``.

    >>> @pipeline
    ... def retrain(version: str = "churn@prod") -> None:
    ...     train(dataset(version, format="pandas"))
    """
    from shipyard.core.errors import ReferenceError_
    from shipyard.core.references import parse_reference

    if format not in _DATASET_FORMATS:
        raise PipelineDefinitionError(
            f"dataset({reference!r}, format={format!r}): the format is one of "
            f"{', '.join(_DATASET_FORMATS)}."
        )
    try:
        parse_reference(reference)
    except ReferenceError_ as exc:
        raise PipelineDefinitionError(
            f"dataset({reference!r}): {exc.message}", hint=exc.hint
        ) from exc
    return DatasetInput(reference, format)


class OutputHandle:
    """A step output inside a pipeline definition: a promise, not a value.

    Pass it to other steps. Using it as a value (indexing, truth, iteration, attributes)
    raises an error explaining that the value exists only when the pipeline runs.
    """

    __slots__ = ("node", "output")

    def __init__(self, node: str, output: str) -> None:
        object.__setattr__(self, "node", node)
        object.__setattr__(self, "output", output)

    node: str
    output: str

    def __repr__(self) -> str:
        return f"<output {self.output!r} of step {self.node!r}>"

    def _misuse(self, what: str) -> PipelineDefinitionError:
        return PipelineDefinitionError(
            f"Step {self.node!r}'s output {self.output!r} was used as a value ({what}) inside "
            "a pipeline definition; it only exists when the pipeline runs.",
            hint="Pass it to another step and do the work inside that step.",
        )

    def __bool__(self) -> bool:
        raise self._misuse("truth test")

    def __getitem__(self, key: object) -> Any:
        raise self._misuse(f"[{key!r}]")

    def __iter__(self) -> Iterator[Any]:
        raise self._misuse("iteration")

    def __len__(self) -> int:
        raise self._misuse("len()")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._misuse(f".{name}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("an OutputHandle is immutable")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, OutputHandle)
            and other.node == self.node
            and other.output == self.output
        )

    def __hash__(self) -> int:
        return hash((self.node, self.output))

    def __reduce__(self) -> tuple[Any, ...]:
        return (OutputHandle, (self.node, self.output))


@dataclass(frozen=True, slots=True)
class Node:
    """One call of a step in a traced pipeline."""

    name: str
    step: Step
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    upstream: tuple[str, ...]
    position: int
    inject_seed: bool

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.step.outputs or (DEFAULT_OUTPUT,)

    def params(self) -> dict[str, Any]:
        """The call's arguments, handles replaced by ``{"$input": ...}``, the seed left out."""
        bound = self.step.signature.bind(*self.args, **self.kwargs)
        return {
            name: _marked(value)
            for name, value in bound.arguments.items()
            if not isinstance(value, SeedPlaceholder)
        }

    def inputs(self) -> dict[str, OutputHandle]:
        """Argument path -> handle, for every handle in the call's arguments."""
        found: dict[str, OutputHandle] = {}
        bound = self.step.signature.bind(*self.args, **self.kwargs)
        for name, value in bound.arguments.items():
            _collect(value, name, found)
        return found

    def datasets(self) -> dict[str, DatasetInput]:
        """Argument path -> dataset, for every ``dataset(...)`` in the call's arguments."""
        found: dict[str, DatasetInput] = {}
        bound = self.step.signature.bind(*self.args, **self.kwargs)
        for name, value in bound.arguments.items():
            _collect(value, name, found, DatasetInput)
        return found


def _marked(value: Any) -> Any:
    if isinstance(value, OutputHandle):
        return {"$input": f"{value.node}.{value.output}"}
    if isinstance(value, DatasetInput):  # its content id is among the key's inputs
        return {"$dataset": value.format}
    if isinstance(value, (list, tuple)):
        return [_marked(item) for item in value]
    if isinstance(value, dict):
        return {key: _marked(item) for key, item in value.items()}
    return value


def _collect(value: Any, path: str, found: dict[str, Any], kind: type = OutputHandle) -> None:
    if isinstance(value, kind):
        found[path] = value
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _collect(item, f"{path}[{index}]", found, kind)
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(item, f"{path}[{key!r}]", found, kind)


@dataclass(frozen=True, slots=True)
class Plan:
    """A traced pipeline: its steps in a topological order, for one set of parameters."""

    pipeline: str
    params: Mapping[str, Any]
    nodes: tuple[Node, ...]
    outputs: Mapping[str, OutputHandle]
    _by_name: dict[str, Node] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update((node.name, node) for node in self.nodes)

    def node(self, name: str) -> Node:
        return self._by_name[name]

    def downstream(self) -> dict[str, list[str]]:
        """Step name -> the steps that read one of its outputs."""
        children: dict[str, list[str]] = {node.name: [] for node in self.nodes}
        for node in self.nodes:
            for parent in node.upstream:
                children[parent].append(node.name)
        return children


class Tracer:
    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.nodes: list[Node] = []
        self.names: set[str] = set()

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PipelineDefinitionError(
                f"Pipeline {self.pipeline!r} calls step {step.name!r} with arguments that do "
                f"not fit {step.name}{step.signature}: {exc}.",
                hint="Pass the arguments the step function declares.",
            ) from exc
        explicit = set(bound.arguments)
        bound.apply_defaults()
        inject_seed = SEED_PARAMETER in step.signature.parameters and SEED_PARAMETER not in explicit
        if inject_seed:
            bound.arguments[SEED_PARAMETER] = SEED
        name = step.name
        counter = 2
        while name in self.names:
            name = f"{step.name}_{counter}"
            counter += 1
        upstream: dict[str, None] = {}
        for param, value in bound.arguments.items():
            if not (inject_seed and param == SEED_PARAMETER):
                self._check_value(step, param, value, upstream)
        node = Node(
            name=name,
            step=step,
            args=tuple(bound.args),
            kwargs=dict(bound.kwargs),
            upstream=tuple(upstream),
            position=len(self.nodes),
            inject_seed=inject_seed,
        )
        self.nodes.append(node)
        self.names.add(name)
        handles = tuple(OutputHandle(name, output) for output in node.output_names)
        return handles if step.outputs else handles[0]

    def _check_value(self, step: Step, path: str, value: Any, upstream: dict[str, None]) -> None:
        if isinstance(value, OutputHandle):
            if value.node not in self.names:
                raise PipelineDefinitionError(
                    f"Pipeline {self.pipeline!r} passes {value!r} to step {step.name!r}, but "
                    "that step is not part of this pipeline.",
                    hint="Pass outputs of steps called in the same pipeline body.",
                )
            upstream[value.node] = None
            return
        if isinstance(value, DatasetInput):
            return
        if isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                self._check_value(step, f"{path}[{index}]", item, upstream)
            return
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    break
                self._check_value(step, f"{path}[{key!r}]", item, upstream)
            else:
                return
        problem = json_problem(value, path)
        if problem:
            raise PipelineDefinitionError(
                f"Pipeline {self.pipeline!r} passes a value to step {step.name!r} that is "
                f"neither a step output nor JSON data: {problem}.",
                hint="Pass data between steps as step outputs (load it inside a step), and "
                "plain values (numbers, strings, lists, dicts) as parameters.",
            )


def current_tracer() -> Tracer | None:
    """The tracer of the pipeline being planned in this thread, if any."""
    tracer: Tracer | None = getattr(_local, "tracer", None)
    return tracer


@contextmanager
def tracing(pipeline: str) -> Iterator[Tracer]:
    """Record step calls made in this thread as nodes of ``pipeline``."""
    if current_tracer() is not None:
        raise PipelineDefinitionError(
            f"Pipeline {pipeline!r} was planned inside another pipeline's definition.",
            hint="Call the inner pipeline (pipeline(...)) to inline its steps instead.",
        )
    tracer = Tracer(pipeline)
    _local.tracer = tracer
    try:
        yield tracer
    finally:
        _local.tracer = None
