"""What tracking accepts: keys, param and tag values, metric values, steps, paths, names.

Every check raises ``TrackingInputError`` (also a ``ValueError``) naming the field, the
offending value and the fix. The checks on the metric hot path have a fast lane for the
common case (a ``float`` value, an ``int`` step, a key seen before) so that logging a
metric costs microseconds.

Rules:

- keys of params, metrics and tags: 1-250 characters of letters, digits, ``_``, ``-``,
  ``.``, ``/`` and space, not starting or ending with a space;
- param and tag values: anything, stringified with ``str()``; at most 6000 characters;
- metric values: real numbers (``int``, ``float``, NumPy scalars, 0-d arrays); ``bool`` is
  refused (it is almost always a mistake); NaN and +-inf are allowed and stored as such;
- steps: integers >= 0 (default 0); timestamps: seconds since the epoch;
- artifact paths: relative, ``/``-separated, no ``..`` or empty segments, at most 1024
  characters;
- experiment and run names: 1-250 printable characters.

>>> validate_key("val/loss", "metric")
'val/loss'
>>> metric_value(0.5), param_value(0.1)
(0.5, '0.1')
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

from shipyard.core.errors import ShipyardError

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_STEP",
    "MAX_VALUE_LENGTH",
    "RunStateError",
    "TrackingInputError",
    "VALID_KEYS",
    "artifact_path",
    "mapping_items",
    "metric_step",
    "metric_timestamp",
    "metric_value",
    "param_value",
    "validate_key",
    "validate_name",
]

MAX_KEY_LENGTH = 250
MAX_VALUE_LENGTH = 6000
MAX_NAME_LENGTH = 250
MAX_ARTIFACT_PATH_LENGTH = 1024
MAX_STEP = 2**63 - 1
_LATEST_TIMESTAMP = 1e11  # year ~5138: larger values are milliseconds, not seconds

_KEY = re.compile(r"[\w\-./ ]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
VALID_KEYS: set[str] = set()
"""Keys that passed ``validate_key`` (a cache for the metric hot path; bounded)."""
_VALID_KEYS_LIMIT = 100_000


class TrackingInputError(ShipyardError, ValueError):
    """A value given to tracking (key, param, metric, step, path, name) is malformed."""

    code = "SY700"


class RunStateError(ShipyardError):
    """The run cannot take this write: it has ended, or it is deleted."""

    code = "SY710"


def validate_key(key: object, what: str = "key") -> str:
    """Return ``key`` if it is a valid param, metric or tag key; else raise."""
    if key.__class__ is str and key in VALID_KEYS:
        return key
    if not isinstance(key, str):
        raise TrackingInputError(
            f"The {what} key {key!r} is a {type(key).__name__}; keys are strings.",
            hint=f"Pass the {what} name as text, e.g. str({key!r}).",
        )
    if not key or len(key) > MAX_KEY_LENGTH:
        raise TrackingInputError(
            f"The {what} key {_shorten(key)!r} is {len(key)} characters long; "
            f"keys are 1 to {MAX_KEY_LENGTH} characters.",
            hint="Use a shorter name." if key else "Give it a name.",
        )
    if not _KEY.fullmatch(key) or key[0] == " " or key[-1] == " ":
        bad = next((ch for ch in key if not _KEY.fullmatch(ch)), " ")
        raise TrackingInputError(
            f"The {what} key {_shorten(key)!r} contains {bad!r}"
            + (" at its start or end." if bad == " " else "."),
            hint="Keys use letters, digits, '_', '-', '.', '/' and inner spaces.",
        )
    if len(VALID_KEYS) < _VALID_KEYS_LIMIT:
        VALID_KEYS.add(key)
    return key


def param_value(value: object, *, key: str = "", what: str = "param") -> str:
    """A param or tag value as the text that is stored; at most 6000 characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_VALUE_LENGTH:
        raise TrackingInputError(
            f"The value of {what} {key!r} is {len(text):,} characters long; "
            f"the limit is {MAX_VALUE_LENGTH:,}.",
            hint=f"Log long text as an artifact (log_text) and put its path in the {what} instead.",
        )
    return text


def metric_value(value: Any, *, key: str = "") -> float:
    """A metric value as a float: real numbers only, ``bool`` refused, NaN/inf kept."""
    if value.__class__ is float:
        return float(value)
    if isinstance(value, bool) or value.__class__.__name__ == "bool_":
        raise TrackingInputError(
            f"Metric {key!r} got the boolean {value!r}; metric values are numbers.",
            hint=f"Log float({value!r}) if you mean 0/1, or use a tag for a flag.",
        )
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError as exc:
            raise TrackingInputError(
                f"Metric {key!r} value {_shorten(str(value))} does not fit in a float.",
                hint="Log a float in the double-precision range (about +-1.8e308).",
            ) from exc
    shape = getattr(value, "shape", None)
    if shape == () and callable(getattr(value, "item", None)):
        return metric_value(value.item(), key=key)
    raise TrackingInputError(
        f"Metric {key!r} got {_shorten(repr(value))} ({type(value).__name__}); "
        "metric values are real numbers.",
        hint="Log an int, a float or a NumPy scalar (e.g. loss.item() for a tensor).",
    )


def metric_step(step: Any, *, key: str = "") -> int:
    """A step as an int >= 0; ``None`` means 0."""
    if step is None:
        return 0
    if step.__class__ is int and 0 <= step <= MAX_STEP:
        return int(step)
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TrackingInputError(
            f"Metric {key!r} got step {_shorten(repr(step))} ({type(step).__name__}); "
            "steps are whole numbers.",
            hint="Pass an int >= 0 (the epoch or batch number), or leave it out.",
        )
    number = int(step)
    if not 0 <= number <= MAX_STEP:
        raise TrackingInputError(
            f"Metric {key!r} got step {number}; steps are 0 to 2**63-1.",
            hint="Count steps from 0.",
        )
    return number


def metric_timestamp(timestamp: Any, *, key: str = "") -> float:
    """A timestamp in seconds since the epoch, finite and >= 0."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Real):
        raise TrackingInputError(
            f"Metric {key!r} got timestamp {_shorten(repr(timestamp))} "
            f"({type(timestamp).__name__}); timestamps are seconds since the epoch.",
            hint="Pass time.time(), or leave it out to use the current time.",
        )
    seconds = float(timestamp)
    if not math.isfinite(seconds) or seconds < 0:
        raise TrackingInputError(
            f"Metric {key!r} got timestamp {seconds}; it must be a finite number >= 0.",
            hint="Pass time.time(), or leave it out.",
        )
    if seconds > _LATEST_TIMESTAMP:
        raise TrackingInputError(
            f"Metric {key!r} got timestamp {seconds:.0f}, which is after the year 5000.",
            hint="Timestamps are in seconds, not milliseconds: divide by 1000.",
        )
    return seconds


def artifact_path(path: object, what: str = "artifact path") -> str:
    """A normalised relative artifact path (``a/b/c.txt``); ``..`` and absolutes refused."""
    if not isinstance(path, str):
        raise TrackingInputError(
            f"The {what} {path!r} is a {type(path).__name__}, not text.",
            hint="Pass a relative path such as 'plots/roc.png'.",
        )
    text = path.replace("\\", "/")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    problem = None
    if not parts:
        problem = "is empty"
    elif text.startswith("/") or re.match(r"[A-Za-z]:", text):
        problem = "is absolute"
    elif ".." in parts:
        problem = "contains '..'"
    elif _CONTROL.search(text):
        problem = "contains a control character"
    elif len("/".join(parts)) > MAX_ARTIFACT_PATH_LENGTH:
        problem = f"is longer than {MAX_ARTIFACT_PATH_LENGTH} characters"
    if problem:
        raise TrackingInputError(
            f"The {what} {_shorten(path)!r} {problem}.",
            hint="Use a relative path inside the run's artifacts, e.g. 'plots/roc.png'.",
        )
    return "/".join(parts)


def mapping_items(values: object, what: str) -> list[tuple[Any, Any]]:
    """The items of a mapping argument (``params``, ``metrics``, ``tags``); raises otherwise."""
    if not isinstance(values, Mapping):
        raise TrackingInputError(
            f"{what} must be a mapping of key to value, not {type(values).__name__}.",
            hint=f"Pass a dict, e.g. {{'learning_rate': 0.1}} for {what}.",
        )
    return list(values.items())


def validate_name(name: object, what: str) -> str:
    """An experiment or run name: 1-250 printable characters, no surrounding spaces."""
    if not isinstance(name, str):
        raise TrackingInputError(
            f"The {what} name {name!r} is a {type(name).__name__}, not text.",
            hint="Pass a string.",
        )
    if not name.strip() or len(name) > MAX_NAME_LENGTH or name != name.strip():
        raise TrackingInputError(
            f"The {what} name {_shorten(name)!r} must be 1 to {MAX_NAME_LENGTH} characters "
            "without leading or trailing spaces.",
            hint="Pick a short descriptive name, e.g. 'churn-baseline'.",
        )
    if _CONTROL.search(name):
        raise TrackingInputError(
            f"The {what} name {_shorten(name)!r} contains a control character.",
            hint="Use printable characters only.",
        )
    return name


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."
