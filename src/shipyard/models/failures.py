"""Whose fault a model's failure is: the rows' (``InputRejected``) or the model's (``ModelError``).

A model, or its preprocess/postprocess hook, that raises ``ValueError``, ``TypeError`` or
``KeyError`` on rows is refusing them (sklearn's "Input contains NaN", a category it never
saw, a key it looks up): the caller can fix the rows, so it is a ``DataContractError``,
and serving answers 422 naming the cell when the message points at one. Anything else it
raises (``RuntimeError``, ``AttributeError``, ``ZeroDivisionError``, ``MemoryError``...)
is a fault of the model's code or of the machine: a ``ModelError``, which serving answers
500. The split goes by the exception's type only; a model that raises ``ValueError`` for
its own bug is reported as refusing the rows, with the model's own message.

>>> try:  # doctest: +SKIP
...     scores = scorer(frame)
... except Exception as exc:
...     raise model_failure(version, "the model", exc, frame, names, len(rows)) from exc
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.core.errors import DataContractError, ModelError, ShipyardError
from shipyard.models.records import ModelVersion

__all__ = ["INPUT_ERRORS", "InputRejected", "model_failure"]

INPUT_ERRORS = (ValueError, TypeError, KeyError)
"""What a model raises on rows it cannot take: the caller's to fix."""

_QUOTED = re.compile(r"'([^'\n]{1,200})'|\"([^\"\n]{1,200})\"")
_MISSING = re.compile(r"\b(nan|missing|null)\b", re.IGNORECASE)
_INFINITE = re.compile(r"\binfinit[ey]\b|too large", re.IGNORECASE)


class InputRejected(DataContractError):
    """The model, or one of its hooks, refused rows (it raised ``ValueError``,
    ``TypeError`` or ``KeyError`` on them) that the signature's types accept.

    ``row`` (index in the rows given to ``predict``) and ``column`` name the cell when the
    model's message points at one (a quoted column, NaN, a quoted unknown value), else None.
    """

    code = "SY330"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.row = row
        self.column = column


def model_failure(
    version: ModelVersion,
    stage: str,
    error: Exception,
    frame: Any,
    names: tuple[str, ...],
    count: int,
) -> ShipyardError:
    """What to raise (``from error``) when ``stage`` ("the model", "the preprocess hook")
    of ``version`` raised ``error`` on ``frame``, the ``count`` rows as ``LoadedModel``
    laid them out (columns ``names``): ``InputRejected`` or ``ModelError``."""
    reference = version.reference
    text = str(error)[:500]
    raised = f"{stage} raised {type(error).__name__}" + (f": {text}" if text else "")
    if not isinstance(error, INPUT_ERRORS):
        return ModelError(
            f"Model {reference} failed on {count} row(s): {raised.rstrip('.')}.",
            hint="This is a fault of the model's code or of the machine, not of the rows: "
            "fix the model and register a new version, or move its alias back "
            f"(`shipyard models rollback {version.name}@ALIAS`).",
        )
    row, column = _locate(error, frame, names)
    where = ""
    if column is not None:
        where = f" (column {column!r}" + (f", row {row}" if row is not None else "") + ")"
    what = f"the value of {column!r}" if column is not None else "these values"
    return InputRejected(
        f"Model {reference} could not score {count} row(s){where}: {raised}",
        hint=f"The signature accepts {what} but the model cannot take it (a missing value, "
        "a category training never saw, an extreme magnitude...). Send values like those "
        f"training saw (`shipyard models show {reference}`).",
        row=row,
        column=column,
    )


def _locate(error: Exception, frame: Any, names: tuple[str, ...]) -> tuple[int | None, str | None]:
    """(row, column) of the cell ``error`` is about, as far as its message tells: a column
    it names (a ``KeyError``, a quoted name), the first missing or infinite value when it
    speaks of them, the first cell holding a value it quotes (an unknown category).
    (None, None) when nothing points anywhere. On the error path only: plain loops."""
    text = str(error)
    quoted = {a or b for a, b in _QUOTED.findall(text)}
    if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str):
        quoted.add(error.args[0])
    named = [name for name in names if name in quoted]
    values = quoted.difference(names)
    missing = _MISSING.search(text) is not None
    infinite = _INFINITE.search(text) is not None
    for name in named or names:
        row = _first_cell(_column_of(frame, name, names), missing, infinite, values)
        if row is not None:
            return row, name
    return None, named[0] if named else None


def _column_of(frame: Any, name: str, names: tuple[str, ...]) -> Any:
    """One column of what ``LoadedModel.frame`` built (any of its shapes), or None."""
    try:
        if isinstance(frame, Mapping):  # one array per input
            return frame.get(name)
        if isinstance(frame, Sequence):  # rows, for a model that takes them
            return [row.get(name) if isinstance(row, Mapping) else None for row in frame]
        if getattr(frame, "ndim", None) == 2 and not hasattr(frame, "columns"):  # a matrix
            return frame[:, names.index(name)]
        return frame[name] if name in frame.columns else None  # a DataFrame
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        return None


def _first_cell(column: Any, missing: bool, infinite: bool, values: set[str]) -> int | None:
    """The first index in ``column`` of a missing value (when ``missing``), an infinite
    one (when ``infinite``) or a string in ``values``; None if there is none."""
    import numpy as np

    if column is None:
        return None
    array = np.asarray(column)
    if array.ndim != 1:
        return None
    if array.dtype.kind == "f":
        bad = np.zeros(len(array), dtype=bool)
        if missing:
            bad |= np.isnan(array)
        if infinite:
            bad |= np.isinf(array)
        hits = np.flatnonzero(bad)
        return int(hits[0]) if len(hits) else None
    if array.dtype.kind not in "OUS":
        return None
    for index, value in enumerate(array.tolist()):
        if missing and _is_missing(value):
            return index
        if isinstance(value, str) and value in values:
            return index
    return None


def _is_missing(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return type(value).__name__ in ("NAType", "NaTType")  # pandas' missing markers
