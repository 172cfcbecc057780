"""Declaring steps and pipelines: ``@step`` on a function, ``@pipeline`` on a function of steps.

Inside a pipeline's body, calling a step does not run it: it records the call and returns
a lazy ``OutputHandle``. Passing a handle to another step is what makes an edge, so the
DAG is exactly the data flow, traced when the pipeline is planned (with the run's
parameter values, so plain Python ``if``/``for`` over parameters shape the DAG). Outside
a pipeline a step is the plain function it decorates, handy in unit tests.

>>> @step
... def load(path: str) -> pa.Table: ...
>>> @step(retries=2, libraries=["scikit-learn"])
... def train(table: pa.Table, n_estimators: int = 100, seed: int = 0): ...
>>> @pipeline(schedule="0 3 * * *")
... def churn(path: str = "data/churn.csv", n_estimators: int = 100) -> None:
...     train(load(path), n_estimators=n_estimators)

A step parameter named ``seed`` that the pipeline does not pass receives the step's
deterministic seed (see ``derive_seed``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from shipyard.core.errors import ReferenceError_
from shipyard.core.references import validate_name
from shipyard.pipelines.errors import PipelineDefinitionError
from shipyard.pipelines.graph import Node, OutputHandle, Plan, current_tracer, tracing

if TYPE_CHECKING:
    from shipyard.pipelines.cron import CronExpression
    from shipyard.pipelines.params import ParamSpec
    from shipyard.pipelines.triggers import Trigger

__all__ = [
    "Node",
    "OutputHandle",
    "Pipeline",
    "Plan",
    "Step",
    "derive_seed",
    "pipeline",
    "step",
]


def derive_seed(pipeline_seed: int, node: str) -> int:
    """The seed of step ``node`` in a run seeded ``pipeline_seed``: stable, 31 bits."""
    data = hashlib.sha256(f"{pipeline_seed}:{node}".encode()).digest()
    return int.from_bytes(data[:4], "big") & 0x7FFFFFFF


class Step:
    """A function declared as a pipeline step (see ``step``)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        retries: int = 0,
        backoff: float = 1.0,
        cache: bool = True,
        libraries: Sequence[str] = (),
        seed: int | None = None,
        outputs: Sequence[str] | None = None,
        allow_pickle: bool = False,
    ) -> None:
        if not callable(fn) or not hasattr(fn, "__code__"):
            raise PipelineDefinitionError(
                f"@step decorates functions; got {fn!r}.", hint="Put @step on a def."
            )
        self.fn = fn
        self.name = _checked_name(name or fn.__name__, "step", fn)
        self.retries = _checked_int(retries, "retries", self.name, minimum=0)
        if not isinstance(backoff, (int, float)) or isinstance(backoff, bool) or backoff < 0:
            raise PipelineDefinitionError(
                f"@step(backoff=...) of {self.name!r} is {backoff!r}; it is the first retry's "
                "delay in seconds (doubled each retry).",
                hint="Pass a number >= 0, e.g. backoff=1.0.",
            )
        self.backoff = float(backoff)
        self.cache = bool(cache)
        if isinstance(libraries, str) or not all(isinstance(x, str) for x in libraries):
            raise PipelineDefinitionError(
                f"@step(libraries=...) of {self.name!r} must be a list of distribution names.",
                hint='E.g. libraries=["scikit-learn", "pandas"].',
            )
        self.libraries = tuple(sorted(set(libraries)))
        self.seed = None if seed is None else _checked_int(seed, "seed", self.name, minimum=0)
        if outputs is not None:
            if isinstance(outputs, str) or len(outputs) < 2 or len(set(outputs)) != len(outputs):
                raise PipelineDefinitionError(
                    f"@step(outputs=...) of {self.name!r} must name two or more distinct outputs.",
                    hint='E.g. outputs=("train", "test"); leave it out for one output.',
                )
            for output in outputs:
                _checked_name(output, "output", fn)
        self.outputs = tuple(outputs) if outputs is not None else None
        self.allow_pickle = bool(allow_pickle)
        self.signature = inspect.signature(fn)
        self.reference = f"{fn.__module__}:{fn.__qualname__}"
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tracer = current_tracer()
        if tracer is None:
            return self.fn(*args, **kwargs)
        return tracer.add(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name!r} ({self.reference})>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Steps travel to worker processes by reference: the worker imports the module.
        module, _, qualname = self.reference.partition(":")
        return (_import_step, (module, qualname))


def _import_step(module: str, qualname: str) -> Step:
    import importlib

    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not isinstance(target, Step):
        raise PipelineDefinitionError(f"{module}:{qualname} is not a @step.")
    return target


class Pipeline:
    """A function declared as a pipeline (see ``pipeline``)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        schedule: str | None = None,
        triggers: Sequence[Trigger] = (),
        experiment: str | None = None,
        register: bool = True,
    ) -> None:
        from shipyard.pipelines.params import param_specs

        self.fn = fn
        self.name = _checked_name(name or fn.__name__, "pipeline", fn)
        self.reference = f"{fn.__module__}:{fn.__qualname__}"
        self.experiment = experiment or self.name
        self.description = (inspect.getdoc(fn) or "").split("\n\n", 1)[0].strip()
        self.params: dict[str, ParamSpec] = param_specs(fn, self.name)
        self.schedule: CronExpression | None = None
        if schedule is not None:
            from shipyard.pipelines.cron import parse_cron

            self.schedule = parse_cron(schedule, where=f"@pipeline {self.name!r} schedule")
        self.triggers = _checked_triggers(self.name, triggers, self.params)
        functools.update_wrapper(self, fn)
        if register:
            from shipyard.pipelines.registry import register_pipeline

            register_pipeline(self)

    def __repr__(self) -> str:
        return f"<pipeline {self.name!r} ({self.reference})>"

    def plan(self, params: Mapping[str, Any] | None = None) -> Plan:
        """Trace the pipeline with these parameters (defaults for the rest) into a DAG."""
        from shipyard.pipelines.params import resolve_params

        values = resolve_params(self, params or {})
        with tracing(self.name) as tracer:
            returned = self.fn(**values)
        if not tracer.nodes:
            raise PipelineDefinitionError(
                f"Pipeline {self.name!r} calls no step.",
                hint="Call @step functions in its body; their outputs make the DAG.",
            )
        return Plan(self.name, values, tuple(tracer.nodes), _returned_outputs(self, returned))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_tracer() is None:
            raise PipelineDefinitionError(
                f"Pipeline {self.name!r} was called like a function.",
                hint=f"Run it with {self.name}.run(...) or `shipyard run {self.name}`.",
            )
        return self.fn(*args, **kwargs)  # inside another pipeline: inline its steps

    def run(self, **params: Any) -> Any:
        """Run the pipeline in this process with the project's stores (see ``run_pipeline``)."""
        from shipyard.pipelines.runner import run_pipeline

        return run_pipeline(self, params=params)


def _returned_outputs(pipeline: Pipeline, returned: Any) -> dict[str, OutputHandle]:
    if returned is None:
        return {}
    if isinstance(returned, OutputHandle):
        return {returned.node: returned}
    if isinstance(returned, (tuple, list)) and all(isinstance(x, OutputHandle) for x in returned):
        return {f"{handle.node}.{handle.output}": handle for handle in returned}
    if isinstance(returned, dict) and all(
        isinstance(k, str) and isinstance(v, OutputHandle) for k, v in returned.items()
    ):
        return dict(returned)
    raise PipelineDefinitionError(
        f"Pipeline {pipeline.name!r} returned {type(returned).__name__}; a pipeline returns "
        "nothing, a step output, a tuple of them or a dict of name -> step output.",
        hint="Return the outputs you want to read after the run, or nothing.",
    )


def _checked_triggers(
    name: str, triggers: Sequence[Trigger], params: Mapping[str, ParamSpec]
) -> tuple[Trigger, ...]:
    from shipyard.pipelines.triggers import DatasetTrigger

    if isinstance(triggers, (str, DatasetTrigger)):
        triggers = [triggers]
    checked: list[Trigger] = []
    for trigger in triggers:
        if not isinstance(trigger, DatasetTrigger):
            raise PipelineDefinitionError(
                f"@pipeline {name!r}: {trigger!r} is not a trigger.",
                hint='Use on_dataset("NAME"), e.g. triggers=[on_dataset("churn")].',
            )
        if trigger.param is not None and trigger.param not in params:
            raise PipelineDefinitionError(
                f"@pipeline {name!r}: on_dataset({trigger.dataset!r}, param={trigger.param!r}) "
                f"names a parameter the pipeline does not have.",
                hint=f"Its parameters: {', '.join(params) or 'none'}.",
            )
        checked.append(trigger)
    return tuple(checked)


def _checked_name(name: str, what: str, fn: object) -> str:
    try:
        return validate_name(name, what=f"{what} name")
    except ReferenceError_ as exc:
        raise PipelineDefinitionError(f"{exc.message} (declared on {fn!r})", hint=exc.hint) from exc


def _checked_int(value: object, field: str, step: str, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise PipelineDefinitionError(
            f"@step({field}=...) of {step!r} is {value!r}; it must be an integer >= {minimum}."
        )
    return value


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    cache: bool = True,
    libraries: Sequence[str] = (),
    seed: int | None = None,
    outputs: Sequence[str] | None = None,
    allow_pickle: bool = False,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a pipeline step; use bare (``@step``) or with options (``@step(retries=2)``).

    Options: ``name`` (default: the function's), ``retries`` and ``backoff`` (seconds
    before the first retry, doubled each time), ``cache`` (``False`` always runs it),
    ``libraries`` (distributions whose installed versions join the cache key),
    ``seed`` (fixed seed instead of one derived from the run's), ``outputs`` (names, for
    a step returning several values as a tuple or dict), ``allow_pickle``.

    >>> @step(retries=2, backoff=0.5, libraries=["scikit-learn"])
    ... def train(table, n_estimators: int = 100, seed: int = 0): ...
    """
    if fn is not None:
        return Step(fn, **options)
    return lambda function: Step(function, **options)


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(
    *,
    name: str | None = None,
    schedule: str | None = None,
    triggers: Sequence[Trigger] = (),
    experiment: str | None = None,
) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a pipeline: a function whose body calls steps; registered by its name.

    Its parameters (with defaults, typed by annotations) are what ``--param k=v``
    overrides. ``schedule`` is a 5-field cron expression (UTC) run by ``shipyard
    scheduler``; ``triggers`` (e.g. ``[on_dataset("churn")]``) run it on events;
    ``experiment`` is the tracking experiment of its runs (default: its name).

    >>> @pipeline(schedule="0 3 * * *")
    ... def churn(n_estimators: int = 100) -> None:
    ...     train(load(), n_estimators=n_estimators)
    """
    if fn is not None:
        return Pipeline(fn, **options)
    return lambda function: Pipeline(function, **options)
