"""Which rows a signature's declared rules reject, and why: the serving contract, per row.

Only declared rules reject (a field's type and nullability, the data contract's ``min``,
``max``, ``allowed``, ``regex``, ``min_length``, ``max_length``); what training observed
(``FieldSpec.observed``) never does. Rows are dicts of JSON-like values, as a request
carries them.

>>> rejected_rows(signature, [{"tenure": 3}, {"tenure": None}])
{1: "'tenure' is null; the field is not nullable"}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from shipyard.models.records import FieldSpec, Signature

__all__ = ["field_kind", "rejected_rows", "row_problem"]


def field_kind(spec: FieldSpec) -> str:
    """``int``, ``float``, ``bool``, ``string``, ``time`` or ``other`` for an Arrow type."""
    text = spec.type.lower()
    if text.startswith(("int", "uint")):
        return "int"
    if text.startswith(("float", "double", "halffloat", "decimal")):
        return "float"
    if text in ("bool", "boolean"):
        return "bool"
    if text in ("string", "large_string", "utf8", "large_utf8", "dictionary<values=string"):
        return "string"
    if text.startswith(("timestamp", "date", "time")):
        return "time"
    return "other"


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _type_problem(kind: str, value: Any) -> str | None:
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok or (isinstance(value, float) and value.is_integer())
        return None if ok else "an integer"
    if kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "a number"
    if kind == "bool":
        return None if isinstance(value, bool) else "true or false"
    if kind == "string":
        return None if isinstance(value, str) else "a string"
    if kind == "time":
        return None if isinstance(value, str | date | datetime) else "a date or time"
    return None


def _rule_problem(name: str, rules: Mapping[str, Any], value: Any) -> str | None:
    allowed = rules.get("allowed")
    if allowed is not None and value not in list(allowed):
        shown = ", ".join(repr(item) for item in list(allowed)[:10])
        return f"{name!r} is {value!r}; allowed: {shown}"
    try:
        if rules.get("min") is not None and value < rules["min"]:
            return f"{name!r} is {value!r}, below its minimum {rules['min']!r}"
        if rules.get("max") is not None and value > rules["max"]:
            return f"{name!r} is {value!r}, above its maximum {rules['max']!r}"
    except TypeError:
        return f"{name!r} is {value!r}, not comparable with its declared range"
    if isinstance(value, str):
        if rules.get("min_length") is not None and len(value) < int(rules["min_length"]):
            return f"{name!r} is shorter than {rules['min_length']} characters"
        if rules.get("max_length") is not None and len(value) > int(rules["max_length"]):
            return f"{name!r} is longer than {rules['max_length']} characters"
        pattern = rules.get("regex") or rules.get("pattern")
        if pattern and re.fullmatch(str(pattern), value) is None:
            return f"{name!r} does not match the pattern {pattern!r}"
    return None


def row_problem(signature: Signature, row: Any) -> str | None:
    """Why the declared rules reject ``row``, or None when they accept it."""
    if not isinstance(row, Mapping):
        return f"the row is a {type(row).__name__}, not an object of column values"
    for spec in signature.inputs:
        value = row.get(spec.name)
        if _is_null(value):
            if not spec.nullable:
                return f"{spec.name!r} is null; the field is not nullable"
            continue
        kind = field_kind(spec)
        expected = _type_problem(kind, value)
        if expected is not None:
            return f"{spec.name!r} is {value!r}; expected {expected} ({spec.type})"
        problem = _rule_problem(spec.name, spec.rules, value)
        if problem is not None:
            return problem
    return None


def rejected_rows(signature: Signature, rows: Sequence[Any]) -> dict[int, str]:
    """Index -> reason for every row of ``rows`` the declared rules reject."""
    problems: dict[int, str] = {}
    for index, row in enumerate(rows):
        problem = row_problem(signature, row)
        if problem is not None:
            problems[index] = problem
    return problems
