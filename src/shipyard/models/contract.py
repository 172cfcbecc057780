"""A signature's contract compiled into a per-record validator: one set of rules for all.

Each input field of the signature becomes one small checking function, built once: its
Arrow type (``int64``, ``float64``, ``string``, ``bool``, ``timestamp[...]``...) and its
declared contract rules (``min``, ``max``, ``allowed``, ``regex``/``pattern``,
``min_length``, ``max_length``, not-null) are refused with a :class:`FieldError` naming
the field and the rule; what training saw (``observed``: ``min``, ``max``, ``categories``,
``null_fraction``) is never refused, only flagged.

The HTTP service checks every request with it (``shipyard.serving``) and the robustness
gate asks it which rows serving would reject (``shipyard.evaluation.contract``), so the
two cannot disagree.

>>> contract = Contract(signature)
>>> row, errors, flags = contract.check({"tenure": -1, "plan": "gold"}, index=None)
>>> errors[0].field, errors[0].rule
('tenure', 'min')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeGuard

from shipyard.core.errors import DataContractError
from shipyard.models.records import FieldSpec, Signature

__all__ = ["Contract", "FieldError", "int_range", "value_kind"]

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


def value_kind(arrow_type: str) -> str:
    """How the contract reads an Arrow type string: ``int``, ``float``, ``string``,
    ``bool``, ``timestamp``, ``date``, or ``any`` (no type check).

    >>> value_kind("timestamp[us, tz=UTC]"), value_kind("list<item: int64>")
    ('timestamp', 'any')
    """
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


def int_range(arrow_type: str) -> tuple[int, int]:
    """The lowest and highest value of an Arrow integer type (``int8`` ... ``uint64``).

    >>> int_range("int8")
    (-128, 127)
    """
    return _INT_RANGES[arrow_type.strip().lower()]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: which record (``None`` for a single one), field, rule, and why.

    ``rule`` is a stable code: ``type``, ``required``, ``not_null``, ``unknown_field``,
    ``min``, ``max``, ``allowed``, ``regex``, ``min_length`` or ``max_length``.
    """

    record: int | None
    field: str
    rule: str
    message: str

    def as_json(self) -> dict[str, Any]:
        """The error as a JSON object (``record`` only when the request held several)."""
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


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


Checker = Callable[[Any], Any]


def _type_checker(spec: FieldSpec) -> Checker:
    kind = value_kind(spec.type)
    name = spec.name
    if kind == "int":
        low, high = int_range(spec.type)

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
            # A typed value (a row read from Arrow, or one this check returned) is checked
            # as the ISO string a JSON client would send for it; JSON never carries one.
            text = value.isoformat() if isinstance(value, date) else value
            if type(text) is str:
                try:
                    return parse(text)
                except ValueError:
                    pass
            raise _Violation(
                "type", f"{name} is {_shown(value)}; expected an ISO-8601 {kind} string"
            )

        return check_time
    return lambda value: value


def _allowed_checker(name: str, allowed: Iterable[Any]) -> Checker:
    listed = list(allowed)
    members = frozenset(item for item in listed if item.__hash__ is not None)
    shown = ", ".join(_shown(item) for item in listed[:10])

    def check_allowed(value: Any) -> Any:
        try:
            found = value in members
        except TypeError:  # an unhashable value (a JSON array or object) is no member
            found = False
        if not found:
            raise _Violation(
                "allowed", f"{name} is {_shown(value)}; the contract allows only {shown}"
            )
        return value

    return check_allowed


def _regex_checker(name: str, pattern: str) -> Checker:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise DataContractError(
            f"Input {name!r} declares the regex {pattern!r}, which is invalid: {exc}.",
            hint="Fix the pattern in the data contract (or the signature) and register again.",
        ) from exc

    def check_regex(value: Any) -> Any:
        if isinstance(value, str) and compiled.fullmatch(value) is None:
            raise _Violation("regex", f"{name} is {_shown(value)}; does not match /{pattern}/")
        return value

    return check_regex


def _rule_checkers(spec: FieldSpec) -> list[Checker]:
    """The declared rules, applied after the type check (values are already typed)."""
    rules = spec.rules or {}
    name = spec.name
    checks: list[Checker] = []
    minimum, maximum = rules.get("min"), rules.get("max")
    if _is_number(minimum):

        def check_min(value: Any, bound: float = minimum) -> Any:
            if _is_number(value) and value < bound:
                raise _Violation("min", f"{name} is {value}; the contract requires >= {bound}")
            return value

        checks.append(check_min)
    if _is_number(maximum):

        def check_max(value: Any, bound: float = maximum) -> Any:
            if _is_number(value) and value > bound:
                raise _Violation("max", f"{name} is {value}; the contract requires <= {bound}")
            return value

        checks.append(check_max)
    allowed = rules.get("allowed")
    if isinstance(allowed, list | tuple | set | frozenset) and allowed:
        checks.append(_allowed_checker(name, allowed))
    pattern = rules.get("regex") or rules.get("pattern")
    if isinstance(pattern, str):
        checks.append(_regex_checker(name, pattern))
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
    numeric_low = low if _is_number(low) else None
    numeric_high = high if _is_number(high) else None
    seen = frozenset(categories) if isinstance(categories, list | tuple) and categories else None
    nulls_unseen = null_fraction == 0
    if numeric_low is None and numeric_high is None and seen is None and not nulls_unseen:
        return None

    def flag(value: Any) -> str | None:
        if value is None:
            return "null, never seen in training" if nulls_unseen else None
        if _is_number(value):
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
    request-time values of on-demand features), with their specs. A declared regex that
    does not compile is a ``DataContractError`` here, not at the first request.
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
        input_names = {spec.name for spec in signature.inputs}
        specs = [*signature.inputs, *(spec for spec in extra if spec.name not in input_names)]
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
        self._by_name: dict[str, _CompiledField] = {}
        for compiled in self._fields:
            self._by_name.setdefault(compiled.name, compiled)
        self._known = frozenset(self.specs)

    def check(
        self, record: Any, index: int | None
    ) -> tuple[dict[str, Any], list[FieldError], list[dict[str, Any]]]:
        """Validate one JSON record: (typed values, errors, flags). ``index`` is the
        record's place in the request, carried by its errors (``None`` for a lone one)."""
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
        compiled = self._by_name.get(name)
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
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"  # only from Python callers: JSON has no other kind
