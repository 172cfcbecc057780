"""Pipeline parameters: declared by the pipeline function's signature, typed by annotations.

``--param k=v`` values are text and are parsed by the parameter's annotation: ``int``,
``float``, ``bool`` (true/false, yes/no, 1/0, on/off), ``str``, ``Literal[...]``
(one of the listed values), ``X | None`` (``none``/``null`` for None), and
``list[...]``/``dict[...]`` (JSON text). An unannotated parameter takes the type of its
default, else stays text. Values passed from Python are checked against the same
annotation. Every error names the pipeline, the parameter, the bad value and the fix.

>>> parse_param_assignments(churn, ["n_estimators=200", "fast=yes"])  # doctest: +SKIP
{'n_estimators': 200, 'fast': True}
"""

from __future__ import annotations

import difflib
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from shipyard.pipelines.canonical import json_problem
from shipyard.pipelines.errors import PipelineDefinitionError, PipelineParamError

if TYPE_CHECKING:
    from shipyard.pipelines.definition import Pipeline

__all__ = ["ParamSpec", "param_specs", "parse_param_assignments", "resolve_params"]

_TRUE = {"true", "yes", "1", "on", "y", "t"}
_FALSE = {"false", "no", "0", "off", "n", "f"}
_NONE = {"none", "null"}
_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One pipeline parameter."""

    name: str
    annotation: Any
    default: Any
    required: bool

    @property
    def type_name(self) -> str:
        if self.annotation is _EMPTY:
            return type(self.default).__name__ if not self.required else "str"
        if isinstance(self.annotation, type):
            return self.annotation.__name__
        return str(self.annotation).replace("typing.", "")


def param_specs(fn: Callable[..., Any], pipeline: str) -> dict[str, ParamSpec]:
    """The parameters of a pipeline function; only keyword-capable ones are allowed."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: fall back to raw ones
        hints = {}
    specs: dict[str, ParamSpec] = {}
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise PipelineDefinitionError(
                f"Pipeline {pipeline!r} declares *{parameter.name}; pipeline parameters must "
                "be named.",
                hint="Declare each parameter by name, with a default where it has one.",
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise PipelineDefinitionError(
                f"Pipeline {pipeline!r} declares the positional-only parameter "
                f"{parameter.name!r}; pipeline parameters are passed by name.",
            )
        default = parameter.default
        if default is not _EMPTY and json_problem(default) is not None:
            raise PipelineDefinitionError(
                f"Pipeline {pipeline!r}: the default of parameter {parameter.name!r} is "
                f"{type(default).__name__}; parameters are JSON data (recorded with the run).",
                hint="Use numbers, strings, booleans, lists or dicts; build objects in steps.",
            )
        annotation = hints.get(parameter.name, parameter.annotation)
        specs[parameter.name] = ParamSpec(
            parameter.name, annotation, default, required=default is _EMPTY
        )
    return specs


def resolve_params(pipeline: Pipeline, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter's value: ``given`` (checked) over the defaults."""
    specs = pipeline.params
    for name in given:
        if name not in specs:
            raise _unknown(pipeline, name)
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            values[name] = _check_python_value(pipeline, spec, given[name])
        elif spec.required:
            raise PipelineParamError(
                f"Pipeline {pipeline.name!r} needs parameter {name!r} ({spec.type_name}), "
                "which has no default.",
                hint=f"Pass it: --param {name}=VALUE.",
            )
        else:
            values[name] = spec.default
    return values


def parse_param_assignments(pipeline: Pipeline, assignments: Sequence[str]) -> dict[str, Any]:
    """Parse ``k=v`` strings into typed values by the parameters' annotations."""
    values: dict[str, Any] = {}
    for assignment in assignments:
        name, separator, text = assignment.partition("=")
        name = name.strip()
        if not separator or not name:
            raise PipelineParamError(
                f"--param {assignment!r} is not of the form NAME=VALUE.",
                hint=f"E.g. --param {next(iter(pipeline.params), 'n_estimators')}=100.",
            )
        spec = pipeline.params.get(name)
        if spec is None:
            raise _unknown(pipeline, name)
        if name in values:
            raise PipelineParamError(f"--param {name} is given more than once.")
        values[name] = _parse_text(pipeline, spec, spec.annotation, text)
    return values


def _unknown(pipeline: Pipeline, name: str) -> PipelineParamError:
    known = sorted(pipeline.params)
    close = difflib.get_close_matches(name, known, n=1)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(f"{k} ({pipeline.params[k].type_name})" for k in known) or "none"
    return PipelineParamError(
        f"Pipeline {pipeline.name!r} has no parameter {name!r}.{suggestion}",
        hint=f"Its parameters: {listing}.",
    )


def _bad(pipeline: Pipeline, spec: ParamSpec, value: object, expected: str) -> PipelineParamError:
    return PipelineParamError(
        f"Parameter {spec.name!r} of pipeline {pipeline.name!r} is {value!r}; expected {expected}.",
        hint=f"Pass a value of type {spec.type_name}: --param {spec.name}=VALUE.",
    )


def _parse_text(pipeline: Pipeline, spec: ParamSpec, annotation: Any, text: str) -> Any:
    if annotation is _EMPTY:
        annotation = type(spec.default) if not spec.required and spec.default is not None else str
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = get_args(annotation)
        if type(None) in options and text.strip().lower() in _NONE:
            return None
        candidates = [o for o in options if o is not type(None)]
        if len(candidates) == 1:  # X | None: X's own error says more
            return _parse_text(pipeline, spec, candidates[0], text)
        for option in candidates:
            try:
                return _parse_text(pipeline, spec, option, text)
            except PipelineParamError:
                continue
        raise _bad(pipeline, spec, text, spec.type_name)
    if origin is Literal:
        for choice in get_args(annotation):
            if str(choice) == text:
                return choice
        choices = ", ".join(repr(c) for c in get_args(annotation))
        raise _bad(pipeline, spec, text, f"one of {choices}")
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _bad(pipeline, spec, text, "a boolean (true/false, yes/no, 1/0)")
    if annotation is int:
        try:
            return int(text.strip())
        except ValueError:
            raise _bad(pipeline, spec, text, "an integer") from None
    if annotation is float:
        try:
            number = float(text.strip())
        except ValueError:
            raise _bad(pipeline, spec, text, "a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise _bad(pipeline, spec, text, "a finite number")
        return number
    if annotation is str or annotation is Any:
        return text
    if origin in (list, dict, tuple) or annotation in (list, dict):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _bad(pipeline, spec, text, f"JSON for {spec.type_name} ({exc.msg})") from None
        return _check_python_value(pipeline, spec, value)
    raise PipelineParamError(
        f"Parameter {spec.name!r} of pipeline {pipeline.name!r} is annotated {spec.type_name}, "
        "which --param cannot parse.",
        hint="Annotate it int, float, bool, str, Literal[...], list[...] or dict[...].",
    )


def _check_python_value(pipeline: Pipeline, spec: ParamSpec, value: Any) -> Any:
    problem = json_problem(value, spec.name)
    if problem:
        raise PipelineParamError(
            f"Parameter {spec.name!r} of pipeline {pipeline.name!r}: {problem}.",
            hint="Parameters are JSON data (recorded with the run); pass plain values.",
        )
    if not _matches(spec.annotation, value):
        raise _bad(pipeline, spec, value, spec.type_name)
    return value


def _matches(annotation: Any, value: Any) -> bool:
    if annotation is _EMPTY or annotation is Any:
        return True
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_matches(option, value) for option in get_args(annotation))
    if origin is Literal:
        return value in get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple) or annotation in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True
