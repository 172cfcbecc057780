"""Canonical JSON: one byte string per value, so equal values hash to equal ids.

Keys are sorted, separators fixed, text kept as UTF-8, NaN and infinities refused (they
have no JSON spelling), tuples written as lists. Used for step parameters in cache keys,
JSON step outputs, and the identity of model outputs.

>>> canonical_json({"b": 1, "a": [1.5, "x"]})
b'{"a":[1.5,"x"],"b":1}'
"""

from __future__ import annotations

import json
from typing import Any

from shipyard.core.ids import ContentId, content_id_of_bytes

__all__ = ["canonical_json", "digest", "is_json_value", "json_problem"]

_MAX_DEPTH = 100


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value``; ``ValueError``/``TypeError`` if it is not JSON."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest(value: Any) -> ContentId:
    """The content id of ``value``'s canonical JSON."""
    return content_id_of_bytes(canonical_json(value))


def is_json_value(value: Any) -> bool:
    """Whether ``value`` is JSON data: dicts with str keys, lists, tuples, str, numbers, None."""
    return json_problem(value) is None


def json_problem(value: Any, path: str = "", depth: int = 0) -> str | None:
    """Why ``value`` is not canonical-JSON data (naming where inside it), or ``None``."""
    if depth > _MAX_DEPTH:
        return f"{path or 'the value'} is nested more than {_MAX_DEPTH} levels deep"
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"{path or 'the value'} is {value!r}, which JSON cannot represent"
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = json_problem(item, f"{path}[{index}]", depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or 'the dict'} has the non-string key {key!r}"
            problem = json_problem(item, f"{path}[{key!r}]", depth + 1)
            if problem:
                return problem
        return None
    return f"{path or 'the value'} is a {type(value).__module__}.{type(value).__qualname__}"
