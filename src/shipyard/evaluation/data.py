"""The evaluation set: a named held-out dataset version, or the newest labelled rows.

>>> load_evaluation_set(client, "churn_holdout@v1", label="churn")
>>> load_evaluation_set(client, TimeSplit("events", timestamp="event_time", fraction=0.2),
...                     label="churned")

Rows without a label are left out (and counted); an evaluation set with no labelled row,
a missing label column or a label of the wrong type is a clear error naming the column.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.errors import ConfigError, DataContractError, NotFoundError
from shipyard.models.records import Signature, Task

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.data.client import DatasetClient

__all__ = ["EvaluationSet", "Labels", "TimeSplit", "encode_labels", "load_evaluation_set"]

_TRUE_WORDS = ("yes", "true", "y", "t", "1", "positive", "pos")
_FALSE_WORDS = ("no", "false", "n", "f", "0", "negative", "neg")


@dataclass(frozen=True)
class TimeSplit:
    """The newest ``fraction`` of the labelled rows of ``dataset`` by ``timestamp``.

    ``dataset`` is a reference; a bare name means its newest version.
    """

    dataset: str
    timestamp: str
    fraction: float = 0.2

    def __post_init__(self) -> None:
        fraction = self.fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float)
            or not (0.0 < fraction < 1.0)
        ):
            raise ConfigError(
                f"The time split's fraction must be a number between 0 and 1 (exclusive), "
                f"not {fraction!r}.",
                hint="e.g. fraction=0.2 evaluates on the newest 20% of the labelled rows.",
            )


@dataclass(frozen=True)
class EvaluationSet:
    """Labelled evaluation rows and where they came from."""

    reference: str
    description: str
    frame: pa.Table
    label: str
    unlabelled_rows: int = 0


@dataclass(frozen=True)
class Labels:
    """Encoded labels: 0/1 for a binary classifier (1 = ``positive``), values otherwise."""

    y: np.ndarray[Any, Any]
    task: Task
    class_names: tuple[str, str] | None = None
    positive: Any = None


def missing_column(column: str, table: pa.Table, what: str, where: str) -> NotFoundError:
    close = difflib.get_close_matches(column, table.column_names, n=1)
    return NotFoundError(
        f"{what} {column!r} is not a column of {where}.",
        hint=(f"Did you mean {close[0]!r}? " if close else "")
        + f"Columns: {', '.join(table.column_names[:40])}.",
    )


def drop_unlabelled(table: pa.Table, label: str) -> tuple[pa.Table, int]:
    import pyarrow.compute as pc

    column = table.column(label)
    valid = pc.is_valid(column)
    if pa_is_floating(column.type):
        valid = pc.and_(valid, pc.invert(pc.is_nan(column)))
    kept = table.filter(valid)
    return kept, table.num_rows - kept.num_rows


def pa_is_floating(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_floating(arrow_type))


def _time_split(table: pa.Table, split: TimeSplit, reference: str) -> tuple[pa.Table, str]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if split.timestamp not in table.column_names:
        raise missing_column(split.timestamp, table, "Timestamp column", reference)
    kind = table.schema.field(split.timestamp).type
    if not (pa.types.is_temporal(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise DataContractError(
            f"Timestamp column {split.timestamp!r} of {reference} holds {kind}; a time split "
            "needs dates, timestamps or numbers.",
            hint="Name a date or timestamp column, or evaluate on a held-out dataset version.",
        )
    timed = table.filter(pc.is_valid(table.column(split.timestamp)))
    if timed.num_rows == 0:
        return timed, f"{reference}: no row has a {split.timestamp!r} value"
    count = max(1, math.ceil(timed.num_rows * split.fraction))
    order = pc.sort_indices(timed, sort_keys=[(split.timestamp, "descending")])
    newest = timed.take(order.slice(0, count))
    since = pc.min(newest.column(split.timestamp)).as_py()
    text = (
        f"{reference}: newest {split.fraction:.0%} of labelled rows by {split.timestamp!r} "
        f"({count:,} rows, from {since})"
    )
    return newest, text


def load_evaluation_set(
    client: DatasetClient, data: str | TimeSplit, *, label: str
) -> EvaluationSet:
    """Read the evaluation rows ``data`` names, keeping those with a ``label``."""
    if not isinstance(label, str) or not label:
        raise ConfigError(f"The label must name a column, not {label!r}.")
    reference_text = data.dataset if isinstance(data, TimeSplit) else data
    if not isinstance(reference_text, str) or not reference_text:
        raise ConfigError(f"The evaluation data must be a dataset reference, not {data!r}.")
    version = client.get_version(reference_text)
    reference = version.reference
    table = client.read_table(reference)
    if label not in table.column_names:
        raise missing_column(label, table, "Label column", reference)
    labelled, unlabelled = drop_unlabelled(table, label)
    if isinstance(data, TimeSplit):
        frame, description = _time_split(labelled, data, reference)
    else:
        frame, description = labelled, f"{reference} ({labelled.num_rows:,} labelled rows)"
    if frame.num_rows == 0:
        raise DataContractError(
            f"The evaluation set from {reference} is empty: {table.num_rows:,} rows, "
            f"{unlabelled:,} without a {label!r} value.",
            hint="Evaluate on a dataset version with labelled rows.",
        )
    return EvaluationSet(reference, description, frame, label, unlabelled)


def _word(value: Any) -> str:
    return str(value).strip().lower()


def _check_positive(positive: Any, classes: Sequence[Any]) -> None:
    # A binary model's score is the probability of classes[1]: that class is the positive.
    if str(positive) != str(classes[1]):
        raise DataContractError(
            f"The positive class {positive!r} is not the one this model scores: its score is "
            f"the probability of {classes[1]!r} (classes {', '.join(map(repr, classes))}).",
            hint=f"Drop the positive class, or name {classes[1]!r}.",
        )


def _binary_positive(
    values: list[Any], classes: Sequence[Any] | None, positive: Any, label: str
) -> tuple[Any, Any]:
    """The (negative, positive) label values of a binary classifier."""
    seen = sorted(set(values), key=repr)
    if positive is not None and classes is not None and len(classes) == 2:
        _check_positive(positive, classes)
        positive = None
    if positive is not None:
        others = [v for v in seen if v != positive]
        if positive not in seen and str(positive) in {str(v) for v in seen}:
            positive = next(v for v in seen if str(v) == str(positive))
            others = [v for v in seen if v != positive]
        if positive not in seen or len(others) > 1:
            raise DataContractError(
                f"Label column {label!r} holds {', '.join(map(repr, seen[:10]))}; the "
                f"positive class {positive!r} must be one of two values there.",
                hint="Name the positive class as it appears in the label column.",
            )
        return (others[0] if others else None), positive
    if classes is not None and len(classes) == 2:
        unknown = [v for v in seen if v not in classes]
        if unknown:
            kinds = sorted({type(v).__name__ for v in seen})
            raise DataContractError(
                f"Label column {label!r} holds {', '.join(map(repr, unknown[:5]))} "
                f"({'/'.join(kinds)}), which the model's classes "
                f"{', '.join(map(repr, classes))} do not include.",
                hint="Pick the label column the model was trained on, or one encoded the same way.",
            )
        return classes[0], classes[1]
    if len(seen) > 2:
        raise DataContractError(
            f"Label column {label!r} holds {len(seen)} distinct values; a binary classifier's "
            "label has two.",
            hint="Pick the right label column.",
        )
    if all(isinstance(v, bool | np.bool_) for v in seen):
        return False, True
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in seen) and set(seen) <= {
        0,
        1,
    }:
        return 0, 1
    words = {_word(v) for v in seen}
    if words <= set(_TRUE_WORDS + _FALSE_WORDS) and len(seen) == 2:
        chosen = next(v for v in seen if _word(v) in _TRUE_WORDS)
        return next(v for v in seen if v != chosen), chosen
    raise DataContractError(
        f"Label column {label!r} holds {', '.join(map(repr, seen))}; which is the positive "
        "class is not known (the model's signature records no classes).",
        hint="Name it with --positive VALUE (positive= in Python).",
    )


def encode_labels(
    frame: pa.Table,
    label: str,
    signature: Signature,
    *,
    positive: Any = None,
    task: Task | None = None,
) -> Labels:
    """Labels as numbers: 0/1 for a binary classifier, floats for a regressor."""
    import pyarrow as pa

    column = frame.column(label)
    chosen: Task = task or signature.task
    if chosen == "other":
        distinct = len(set(column.to_pylist()))
        numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        chosen = "regression" if numeric and distinct > 2 else "binary_classification"
    if chosen == "multiclass_classification":
        raise ConfigError(
            "Evaluating multiclass classifiers is not supported yet.",
            hint="Evaluate one class against the rest as a binary model.",
        )
    if chosen == "regression":
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise DataContractError(
                f"Label column {label!r} holds {column.type} values; a regression model needs "
                "numbers.",
                hint="Pick the numeric target column the model was trained on.",
            )
        return Labels(
            np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64), "regression"
        )
    values = column.to_pylist()
    classes = signature.classes
    negative, positive_value = _binary_positive(values, classes, positive, label)
    y = np.fromiter((v == positive_value for v in values), dtype=np.int64, count=len(values))
    names = (str(negative), str(positive_value))
    return Labels(y, "binary_classification", names, positive_value)
