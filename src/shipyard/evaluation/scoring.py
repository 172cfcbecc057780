"""What the gates score: anything with a signature and ``predict(rows) -> Prediction``.

The registry's ``LoadedModel`` is such a predictor. ``EstimatorPredictor`` makes one of a
plain fitted model (scikit-learn, LightGBM, XGBoost, or any object with ``predict`` /
``predict_proba``), so a model can be evaluated before it is registered:

>>> predictor = EstimatorPredictor.from_table(pipeline, features, classes=("no", "yes"))
>>> predictor.predict([{"tenure": 3, "plan": "basic"}]).scores
array([0.71])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from shipyard.core.errors import DataContractError
from shipyard.models.records import FieldSpec, Signature, Task

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import pyarrow as pa

__all__ = [
    "EstimatorPredictor",
    "Predicted",
    "Predictor",
    "signature_of_table",
]


class Predicted(Protocol):
    """A prediction: scores (binary: positive-class probability; regression: value) and
    labels (classifiers) for each row, in row order."""

    @property
    def scores(self) -> Any: ...

    @property
    def labels(self) -> Any: ...


class Predictor(Protocol):
    """A model the gates can score: its serving contract and a batch ``predict``.

    ``predict`` takes a ``pyarrow.Table``, a ``pandas.DataFrame`` or a list of row dicts
    and puts the columns in the signature's order itself.
    """

    @property
    def signature(self) -> Signature: ...

    def predict(self, rows: Any) -> Predicted: ...


@dataclass(frozen=True)
class EstimatorPrediction:
    """Scores and labels of an ``EstimatorPredictor``."""

    scores: np.ndarray[Any, Any]
    labels: np.ndarray[Any, Any] | None


def signature_of_table(
    table: pa.Table, *, task: Task, classes: Sequence[Any] | None = None
) -> Signature:
    """A signature with the table's columns as inputs (types and nullability, no rules)."""
    inputs = tuple(FieldSpec(field.name, str(field.type), field.nullable) for field in table.schema)
    output = FieldSpec("score", "float64", nullable=False)
    return Signature(
        inputs=inputs,
        outputs=(output,),
        task=task,
        classes=tuple(classes) if classes is not None else None,
    )


class EstimatorPredictor:
    """A plain fitted model seen through a signature: columns chosen and ordered by name.

    Binary classifiers score with ``predict_proba(...)[:, 1]`` and label with
    ``classes[1]`` when the score is ``>= threshold``; regressors score with ``predict``.
    """

    def __init__(self, estimator: Any, signature: Signature, threshold: float | None = None):
        if not callable(getattr(estimator, "predict", None)):
            raise TypeError(f"{type(estimator).__name__} has no predict method")
        self.estimator = estimator
        self._signature = signature
        self.threshold = threshold if threshold is not None else (signature.threshold or 0.5)

    @classmethod
    def from_table(
        cls,
        estimator: Any,
        features: pa.Table,
        *,
        task: Task | None = None,
        classes: Sequence[Any] | None = None,
        threshold: float | None = None,
    ) -> EstimatorPredictor:
        """A predictor whose inputs are ``features``' columns; task and classes default to
        the estimator's (``classes_``: two classes make a binary classifier)."""
        if classes is None and getattr(estimator, "classes_", None) is not None:
            classes = [
                value.item() if hasattr(value, "item") else value for value in estimator.classes_
            ]
        if task is None:
            if classes is None:
                task = "regression"
            elif len(classes) == 2:
                task = "binary_classification"
            else:
                task = "multiclass_classification"
        return cls(estimator, signature_of_table(features, task=task, classes=classes), threshold)

    @property
    def signature(self) -> Signature:
        return self._signature

    def _frame(self, rows: Any) -> pd.DataFrame:
        import pandas as pd
        import pyarrow as pa

        names = [spec.name for spec in self._signature.inputs]
        if isinstance(rows, pa.Table):
            frame = rows.to_pandas()
        elif isinstance(rows, pd.DataFrame):
            frame = rows
        else:
            records = list(rows)
            for index, record in enumerate(records):
                if not isinstance(record, dict):
                    raise DataContractError(
                        f"Row {index} is a {type(record).__name__}, not a mapping of column "
                        "to value.",
                        hint="Send each row as an object of column names to values.",
                    )
            frame = pd.DataFrame.from_records(records, columns=names)
            for name in names:
                if records and all(name not in record for record in records):
                    raise DataContractError(f"Column {name!r} is missing from every row.")
            return frame
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise DataContractError(
                f"Columns {', '.join(map(repr, missing))} are missing.",
                hint="Send every input column of the model's signature.",
            )
        return frame[names]

    def predict(self, rows: Any) -> EstimatorPrediction:
        """Scores (and labels for a classifier) for ``rows``, in row order."""
        frame = self._frame(rows)
        task = self._signature.task
        if len(frame) == 0:
            return EstimatorPrediction(np.zeros(0), np.zeros(0) if task != "regression" else None)
        classes = self._signature.classes
        if task == "binary_classification" and hasattr(self.estimator, "predict_proba"):
            scores = np.asarray(self.estimator.predict_proba(frame), dtype=np.float64)[:, 1]
            names = np.asarray(classes if classes is not None else (0, 1), dtype=object)
            return EstimatorPrediction(scores, names[(scores >= self.threshold).astype(int)])
        if task == "multiclass_classification" and hasattr(self.estimator, "predict_proba"):
            probabilities = np.asarray(self.estimator.predict_proba(frame), dtype=np.float64)
            names = np.asarray(classes if classes is not None else [], dtype=object)
            labels = names[probabilities.argmax(axis=1)] if names.size else None
            return EstimatorPrediction(probabilities, labels)
        values = np.asarray(self.estimator.predict(frame))
        if task == "regression":
            return EstimatorPrediction(values.astype(np.float64), None)
        return EstimatorPrediction(values.astype(np.float64), values)
