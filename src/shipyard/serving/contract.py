"""The serving contract: a model signature's rules as the HTTP service enforces and shows them.

The checking itself is :class:`shipyard.models.contract.Contract` (re-exported here with
:class:`FieldError`): each record of a request goes through it, and the robustness gate
asks the same compiled contract which rows serving would reject. This module adds what
only the service needs: each field's JSON Schema for ``/openapi.json`` and a record that
satisfies the contract, for warm-up and documentation.

>>> contract = Contract(signature)
>>> row, errors, flags = contract.check({"tenure": -1, "plan": "gold"}, index=None)
>>> errors[0].field, errors[0].rule
('tenure', 'min')
>>> json_schema_of(signature.input("tenure"))
{'type': 'integer', 'minimum': 0, 'maximum': 9223372036854775807}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard.models.contract import Contract, FieldError, int_range, value_kind
from shipyard.models.records import FieldSpec, Signature

__all__ = ["Contract", "FieldError", "json_schema_of", "sample_record"]


def json_schema_of(spec: FieldSpec) -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.1) of one field: its type and declared rules."""
    kind = value_kind(spec.type)
    rules = spec.rules or {}
    schema: dict[str, Any]
    if kind == "int":
        low, high = int_range(spec.type)
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
    kind = value_kind(spec.type)
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
