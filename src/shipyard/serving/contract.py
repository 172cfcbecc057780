"""The serving contract: a model signature compiled into a per-record validator.

Each input field of the signature becomes one small checking function, built once when
a model version is loaded: its Arrow type (``int64``, ``float64``, ``string``, ``bool``,
``timestamp[...]``...) and its declared contract rules (``min``, ``max``, ``allowed``,
``regex``/``pattern``, ``min_length``, ``max_length``, not-null) are refused with a
:class:`FieldError` naming the field and the rule; what training saw (``observed``:
``min``, ``max``, ``categories``, ``null_fraction``) is never refused, only flagged.

>>> contract = Contract(signature)
>>> row, errors, flags = contract.check({"tenure": -1, "plan": "gold"}, index=None)
>>> errors[0].field, errors[0].rule
('tenure', 'min')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shipyard.models.records import FieldSpec, Signature

__all__ = ["Contract", "FieldError", "json_schema_of", "sample_record"]

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
_FLOATS = {"float16", "float32", "float64", "halffloat", "float", "double"}
_STRINGS = {"string", "large_string", "utf8", "large_utf8"}
_MAX_SHOWN = 80


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: which record (``None`` for a single one), field, rule, and why."""

    record: int | None
    field: str
    rule: str
    message: str

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "rule": self.rule, "message": self.message}
        if self.record is not None:
            out["record"] = self.record
        return out


class _Violation(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _kind(arrow_type: str) -> str:
    name = arrow_type.strip().lower()
    if name in _INT_RANGES:
        return "int"
    if name in _FLOATS or name.startswith("decimal"):
        return "float"
    if name in _STRINGS or name.startswith("dictionary") or name == "time":
        return "string"
    if name in ("bool", "boolean"):
        return "bool"
    if name.startswith("timestamp"):
        return "timestamp"
    if name.startswith("date"):
        return "date"
    return "any"


Checker = Callable[[Any], Any]


def _type_checker(spec: FieldSpec) -> Checker:
    kind = _kind(spec.type)
    name = spec.name
    if kind == "int":
        low, high = _INT_RANGES[spec.type.strip().lower()]

        def check_int(value: Any) -> Any:
            if type(value) is int:
                if low <= value <= high:
                    return value
                raise _Violation("type", f"{name} is {value}; outside the range of {spec.type}")
            if type(value) is float and value.is_integer() and low <= value <= high:
                return int(value)
            raise _Violation("type", f"{name} is {_shown(value)}; expected an integer")

        return check_int
    if kind == "float":

        def check_float(value: Any) -> Any:
            if type(value) is float or type(value) is int:
                result = float(value)
                if math.isfinite(result):
                    return result
            raise _Violation("type", f"{name} is {_shown(value)}; expected a number")

        return check_float
    if kind == "string":

        def check_string(value: Any) -> Any:
            if type(value) is str:
                return value
            raise _Violation("type", f"{name} is {_shown(value)}; expected a string")

        return check_string
    if kind == "bool":

        def check_bool(value: Any) -> Any:
            if type(value) is bool:
                return value
            raise _Violation("type", f"{name} is {_shown(value)}; expected true or false")

        return check_bool
    if kind in ("timestamp", "date"):
        parse = datetime.fromisoformat if kind == "timestamp" else date.fromisoformat

        def check_time(value: Any) -> Any:
            if type(value) is str:
                try:
                    return parse(value)
                except ValueError:
                    pass
            raise _Violation(
                "type", f"{name} is {_shown(value)}; expected an ISO-8601 {kind} string"
            )

        return check_time
    return lambda value: value


def _rule_checkers(spec: FieldSpec) -> list[Checker]:
    """The declared rules, applied after the type check (values are already typed)."""
    rules = spec.rules or {}
    name = spec.name
    checks: list[Checker] = []
    minimum, maximum = rules.get("min"), rules.get("max")
    if isinstance(minimum, int | float) and not isinstance(minimum, bool):

        def check_min(value: Any, bound: float = minimum) -> Any:
            if isinstance(value, int | float) and value < bound:
                raise _Violation("min", f"{name} is {value}; the contract requires >= {bound}")
            return value

        checks.append(check_min)
    if isinstance(maximum, int | float) and not isinstance(maximum, bool):

        def check_max(value: Any, bound: float = maximum) -> Any:
            if isinstance(value, int | float) and value > bound:
                raise _Violation("max", f"{name} is {value}; the contract requires <= {bound}")
            return value

        checks.append(check_max)
    allowed = rules.get("allowed")
    if isinstance(allowed, list | tuple | set | frozenset) and allowed:
        members = frozenset(allowed)
        listed = ", ".join(_shown(item) for item in list(allowed)[:10])

        def check_allowed(value: Any) -> Any:
            if value not in members:
                raise _Violation(
                    "allowed", f"{name} is {_shown(value)}; the contract allows only {listed}"
                )
            return value

        checks.append(check_allowed)
    pattern = rules.get("regex") or rules.get("pattern")
    if isinstance(pattern, str):
        compiled = re.compile(pattern)

        def check_regex(value: Any) -> Any:
            if isinstance(value, str) and compiled.fullmatch(value) is None:
                raise _Violation("regex", f"{name} is {_shown(value)}; does not match /{pattern}/")
            return value

        checks.append(check_regex)
    for rule, compare in (("min_length", 1), ("max_length", -1)):
        limit = rules.get(rule)
        if isinstance(limit, int) and not isinstance(limit, bool):

            def check_length(
                value: Any, limit: int = limit, sign: int = compare, rule: str = rule
            ) -> Any:
                if isinstance(value, str) and (len(value) - limit) * sign < 0:
                    word = "shorter" if sign > 0 else "longer"
                    raise _Violation(
                        rule, f"{name} is {_shown(value)}; {word} than {limit} characters"
                    )
                return value

            checks.append(check_length)
    return checks


def _observed_flagger(spec: FieldSpec) -> Callable[[Any], str | None] | None:
    """A function naming how a (valid) value lies outside what training saw, or None."""
    observed = spec.observed or {}
    low, high = observed.get("min"), observed.get("max")
    categories = observed.get("categories")
    null_fraction = observed.get("null_fraction")
    numeric_low = low if isinstance(low, int | float) and not isinstance(low, bool) else None
    numeric_high = high if isinstance(high, int | float) and not isinstance(high, bool) else None
    seen = frozenset(categories) if isinstance(categories, list | tuple) and categories else None
    nulls_unseen = null_fraction == 0
    if numeric_low is None and numeric_high is None and seen is None and not nulls_unseen:
        return None

    def flag(value: Any) -> str | None:
        if value is None:
            return "null, never seen in training" if nulls_unseen else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if numeric_low is not None and value < numeric_low:
                return f"below the training minimum {numeric_low}"
            if numeric_high is not None and value > numeric_high:
                return f"above the training maximum {numeric_high}"
        elif seen is not None and isinstance(value, str) and value not in seen:
            return "a category not seen in training"
        return None

    return flag


@dataclass(frozen=True, slots=True)
class _CompiledField:
    name: str
    required: bool
    nullable: bool
    checks: tuple[Checker, ...]
    flag: Callable[[Any], str | None] | None


class Contract:
    """A signature's inputs compiled into checking functions, built once per version.

    ``optional`` names inputs the service may fill itself (online features): a request
    may omit them. ``extra`` are request fields that are not model inputs (entity keys,
    request-time values of on-demand features), with their specs.
    """

    def __init__(
        self,
        signature: Signature,
        *,
        optional: Iterable[str] = (),
        extra: Iterable[FieldSpec] = (),
    ) -> None:
        self.signature = signature
        optional_names = frozenset(optional)
        specs = [
            *signature.inputs,
            *(spec for spec in extra if spec.name not in {i.name for i in signature.inputs}),
        ]
        self.input_names = tuple(spec.name for spec in signature.inputs)
        self.specs = {spec.name: spec for spec in specs}
        self.optional = optional_names | {spec.name for spec in extra}
        self._fields = tuple(
            _CompiledField(
                spec.name,
                spec.name not in self.optional,
                spec.nullable,
                (_type_checker(spec), *_rule_checkers(spec)),
                _observed_flagger(spec),
            )
            for spec in specs
        )
        self._known = frozenset(self.specs)

    def check(
        self, record: Any, index: int | None
    ) -> tuple[dict[str, Any], list[FieldError], list[dict[str, Any]]]:
        """Validate one JSON record: (typed values, errors, flags)."""
        if type(record) is not dict:
            return (
                {},
                [
                    FieldError(
                        index,
                        "(record)",
                        "type",
                        f"a record must be a JSON object of field values, not {_json_kind(record)}",
                    )
                ],
                [],
            )
        row: dict[str, Any] = {}
        errors: list[FieldError] = []
        flags: list[dict[str, Any]] = []
        for compiled in self._fields:
            name = compiled.name
            if name not in record:
                if compiled.required:
                    errors.append(
                        FieldError(index, name, "required", f"{name} is missing; it is required")
                    )
                continue
            value = record[name]
            if value is None:
                if not compiled.nullable:
                    errors.append(
                        FieldError(index, name, "not_null", f"{name} is null; it must have a value")
                    )
                    continue
            else:
                try:
                    for check in compiled.checks:
                        value = check(value)
                except _Violation as violation:
                    errors.append(FieldError(index, name, violation.rule, violation.message))
                    continue
            row[name] = value
            if compiled.flag is not None:
                reason = compiled.flag(value)
                if reason is not None:
                    flags.append({"field": name, "value": record[name], "reason": reason})
        if len(record) != len(row):  # only then can a field be unknown
            known = self._known
            errors.extend(
                FieldError(
                    index,
                    str(name)[:_MAX_SHOWN],
                    "unknown_field",
                    f"{str(name)[:_MAX_SHOWN]!r} is not an input of this model",
                )
                for name in record
                if name not in known
            )
        return row, errors, flags

    def check_value(self, name: str, value: Any) -> tuple[Any, str | None, str | None]:
        """Check one server-side value (an online feature): (value, rule broken, message)."""
        compiled = next((item for item in self._fields if item.name == name), None)
        if compiled is None or value is None:
            return value, None, None
        try:
            for check in compiled.checks:
                value = check(value)
        except _Violation as violation:
            return value, violation.rule, violation.message
        return value, None, None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def json_schema_of(spec: FieldSpec) -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.1) of one field: its type and declared rules."""
    kind = _kind(spec.type)
    rules = spec.rules or {}
    schema: dict[str, Any]
    if kind == "int":
        low, high = _INT_RANGES[spec.type.strip().lower()]
        schema = {"type": "integer", "minimum": low, "maximum": high}
    elif kind == "float":
        schema = {"type": "number"}
    elif kind == "string":
        schema = {"type": "string"}
    elif kind == "bool":
        schema = {"type": "boolean"}
    elif kind == "timestamp":
        schema = {"type": "string", "format": "date-time"}
    elif kind == "date":
        schema = {"type": "string", "format": "date"}
    else:
        schema = {}
    if kind in ("int", "float"):
        for rule, key in (("min", "minimum"), ("max", "maximum")):
            bound = rules.get(rule)
            if isinstance(bound, int | float) and not isinstance(bound, bool):
                current = schema.get(key)
                tighter = max if key == "minimum" else min
                schema[key] = bound if current is None else tighter(current, bound)
    allowed = rules.get("allowed")
    if isinstance(allowed, list | tuple) and allowed:
        schema["enum"] = list(allowed)
    pattern = rules.get("regex") or rules.get("pattern")
    if isinstance(pattern, str) and kind == "string":
        schema["pattern"] = f"^(?:{pattern})$"
    for rule, key in (("min_length", "minLength"), ("max_length", "maxLength")):
        if isinstance(rules.get(rule), int) and kind == "string":
            schema[key] = rules[rule]
    if spec.nullable and "type" in schema:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def sample_record(signature: Signature) -> dict[str, Any]:
    """A record that satisfies the signature's contract, for warm-up and documentation."""
    if signature.input_example:
        return dict(signature.input_example[0])
    record: dict[str, Any] = {}
    for spec in signature.inputs:
        record[spec.name] = _sample_value(spec)
    return record


def _sample_value(spec: FieldSpec) -> Any:
    rules: Mapping[str, Any] = spec.rules or {}
    observed: Mapping[str, Any] = spec.observed or {}
    allowed = rules.get("allowed")
    if isinstance(allowed, list | tuple) and allowed:
        return allowed[0]
    kind = _kind(spec.type)
    if kind in ("int", "float"):
        value = observed.get("min", rules.get("min", 0))
        if not isinstance(value, int | float) or isinstance(value, bool):
            value = 0
        return int(value) if kind == "int" else float(value)
    if kind == "string":
        categories = observed.get("categories")
        if isinstance(categories, list | tuple) and categories:
            return categories[0]
        return "a" * max(1, int(rules.get("min_length") or 1))
    if kind == "bool":
        return False
    if kind == "timestamp":
        return "2026-01-01T00:00:00+00:00"
    if kind == "date":
        return "2026-01-01"
    return None
