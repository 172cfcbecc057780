"""``LoadedModel``: a registered version ready to answer, and its ``Prediction``.

``predict(rows)`` takes a pyarrow Table, a pandas (or polars) DataFrame, a list of dicts
or one dict; it keeps the signature's input columns in the signature's order (extra
columns are ignored, a missing one is null), builds what the model was trained on (a
DataFrame for a model fitted on one, a float matrix otherwise, one array per input for a
multi-input ONNX graph), runs ``preprocess`` -> model -> ``postprocess`` and returns the
scores and, for a classifier, the labels at the version's threshold. What the model or
a hook raises is sorted by ``shipyard.models.failures``: rows it refuses
(``InputRejected``, a ``DataContractError``) or a fault of its own (``ModelError``).

Serving calls it once per request, so the one-row path avoids pandas when the model does
not need a DataFrame (a histogram GBM fitted on a DataFrame of numbers gets the float
matrix its own validation would build: same scores, half the one-row cost), and the
per-version work (column order, dtypes, the scorer) is done once, when the model is
loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError, ModelError, ShipyardError
from shipyard.models.errors import ModelInputError
from shipyard.models.failures import model_failure
from shipyard.models.kinds import ModelKind
from shipyard.models.records import ModelVersion, Signature

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["LoadedModel", "Prediction", "decision_threshold"]

_INTEGER = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
_FLOAT = frozenset({"float32", "float64"})


def decision_threshold(version: ModelVersion) -> float | None:
    """The threshold a binary classifier's label is taken at; None for other tasks.

    One rule for every caller (``LoadedModel``, serving, batch scoring): the threshold
    chosen at evaluation (``version.threshold``) if set, else the signature's, else 0.5.
    """
    if version.signature.task != "binary_classification":
        return None
    if version.threshold is not None:
        return float(version.threshold)
    if version.signature.threshold is not None:
        return float(version.signature.threshold)
    return 0.5


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a model version answered for a batch of rows.

    ``scores``: binary classifiers, the positive class's probability; multiclass, one row
    of probabilities per input row (2-D); regression, the predicted value. ``labels``:
    classifiers' labels at ``threshold`` (binary) or the most likely class, else None.
    """

    scores: np.ndarray[Any, Any]
    labels: np.ndarray[Any, Any] | None
    threshold: float | None = None
    version_id: str = ""

    def __len__(self) -> int:
        return len(self.scores)


class LoadedModel:
    """A model version loaded from the registry (``ModelRegistry.load``).

    >>> model = registry.load("churn@champion")  # doctest: +SKIP
    >>> model.predict([{"state": "KS", "account_length": 128, ...}]).labels  # doctest: +SKIP
    array(['no'], dtype=object)
    """

    def __init__(
        self,
        version: ModelVersion,
        model: Any,
        kind: ModelKind,
        *,
        preprocess: Callable[[Any], Any] | None = None,
        postprocess: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        import numpy as np

        self.version = version
        self.signature: Signature = version.signature
        self.model = model
        self.kind = kind
        self.preprocess = preprocess
        self.postprocess = postprocess
        self.names: tuple[str, ...] = tuple(spec.name for spec in self.signature.inputs)
        self._types = tuple(spec.type for spec in self.signature.inputs)
        self._index = {name: i for i, name in enumerate(self.names)}
        format_ = kind.input_format(model, self.signature)
        self.input_format = "pandas" if preprocess is not None else format_
        scoring = model
        if self.input_format == "pandas" and kind.name == "sklearn":
            matrix_model = _matrix_equivalent(model, self.signature)
            if matrix_model is not None:
                scoring, self.input_format = matrix_model, "numpy"
        self._scorer = kind.scorer(scoring, self.signature)
        self._raw = kind.raw(scoring, self.signature)
        task = self.signature.task
        classes = self.signature.classes
        self.threshold: float | None = None
        self._classes: np.ndarray[Any, Any] | None = None
        if task == "binary_classification":
            self.threshold = decision_threshold(version)
            self._classes = np.asarray(classes if classes and len(classes) == 2 else (0, 1))
        elif task == "multiclass_classification" and classes:
            self._classes = np.asarray(classes)
        self._column_index: Any = None
        self._integer_names = frozenset(
            spec.name for spec in self.signature.inputs if spec.type in _INTEGER
        )
        self._number_names = tuple(
            spec.name for spec in self.signature.inputs if spec.type in _INTEGER | _FLOAT
        )
        self._integer_positions = [
            j for j, name in enumerate(self._number_names) if name in self._integer_names
        ]
        self._other_columns = tuple(
            (spec.name, spec.type)
            for spec in self.signature.inputs
            if spec.type not in _INTEGER | _FLOAT
        )
        self._numeric = all(t in _INTEGER or t in _FLOAT or t == "bool" for t in self._types)

    def __repr__(self) -> str:
        return f"LoadedModel({self.version.reference}, {self.version.model_type})"

    # --- Answering ------------------------------------------------------------------------

    def predict(self, rows: Any) -> Prediction:
        """Score ``rows`` (Table, DataFrame, list of dicts or one dict); see the module doc.

        Raises ``DataContractError`` naming the column when the input cannot be read as
        the signature's columns; ``InputRejected`` (a ``DataContractError`` naming the row
        and column when it can) when the model or a hook raises ``ValueError``,
        ``TypeError`` or ``KeyError`` on the rows; ``ModelError`` when it raises anything
        else (``RuntimeError``, ``MemoryError``...: a fault of the model, not the rows)
        or answers the wrong number of scores. See ``shipyard.models.failures``.
        """
        import numpy as np

        count = _row_count(rows)
        if count == 0:
            return self._empty()
        frame = self.frame(rows)
        model_input = frame
        if self.preprocess is not None:
            model_input = self._hook("preprocess", self.preprocess, (frame,), frame, count)
        try:
            scores = self._scorer(model_input)
        except ShipyardError:
            raise
        except Exception as exc:
            raise model_failure(self.version, "the model", exc, frame, self.names, count) from exc
        if self.postprocess is not None:
            scores = np.asarray(
                self._hook("postprocess", self.postprocess, (scores, frame), frame, count)
            )
        try:
            answered: int | None = len(scores)
        except TypeError:  # a scalar, or no sequence at all
            answered = None
        if answered != count:
            raise ModelError(
                f"Model {self.version.reference} answered "
                f"{'a single value' if answered is None else f'{answered} scores'} for "
                f"{count} row(s).",
                hint="The model (or its postprocess hook) must answer one score per row: "
                "fix it and register a new version.",
            )
        try:
            labels = self._labels(scores)
        except Exception as exc:
            raise ModelError(
                f"Model {self.version.reference} answered scores of shape {np.shape(scores)} "
                f"that labels cannot be taken from for its {self.signature.task} task: "
                f"{type(exc).__name__}: {str(exc)[:300]}",
                hint="Check the signature's task and classes against what the model "
                "answers, and register a fixed version.",
            ) from exc
        return Prediction(scores, labels, self.threshold, self.version.id)

    def predict_raw(self, frame: Any) -> Any:
        """The bare library call (``predict_proba`` or ``predict``) on a prepared input
        (``frame(rows)``): for measuring what the registry adds around the model."""
        return self._raw(frame)

    def frame(self, rows: Any) -> Any:
        """``rows`` as the model's input: a DataFrame, a matrix, or a dict of columns."""
        fmt = self.input_format
        if fmt == "rows":
            return _as_rows(rows)
        module = type(rows).__module__.partition(".")[0]
        if module == "polars" and hasattr(rows, "to_arrow"):
            rows = rows.to_arrow()
            module = "pyarrow"
        if module == "pyarrow" and hasattr(rows, "column_names"):
            return self._from_table(rows)
        if module == "pandas" and hasattr(rows, "columns"):
            return self._from_pandas(rows)
        return self._from_rows(_as_rows(rows))

    def warm_up(self) -> None:
        """Score the signature's input example once (loads lazy parts of the library)."""
        if self.signature.input_example:
            self.predict(list(self.signature.input_example))

    # --- Internals ------------------------------------------------------------------------

    def _empty(self) -> Prediction:
        import numpy as np

        multiclass = self.signature.task == "multiclass_classification"
        width = len(self._classes) if multiclass and self._classes is not None else 0
        scores = np.empty((0, width) if width else (0,), dtype=np.float64)
        labels = None if self._classes is None else self._classes[:0]
        return Prediction(scores, labels, self.threshold, self.version.id)

    def _labels(self, scores: Any) -> Any:
        import numpy as np

        if self._classes is None:
            return None
        if self.signature.task == "binary_classification":
            return self._classes[(np.asarray(scores) >= self.threshold).astype(np.intp)]
        return self._classes[np.asarray(scores).argmax(axis=1)]

    def _hook(
        self, name: str, hook: Callable[..., Any], args: tuple[Any, ...], frame: Any, count: int
    ) -> Any:
        try:
            return hook(*args)
        except ShipyardError:
            raise
        except Exception as exc:
            stage = f"the {name} hook"
            raise model_failure(self.version, stage, exc, frame, self.names, count) from exc

    def _from_rows(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        import numpy as np

        names = self.names
        if self.input_format == "numpy" and self._numeric:
            values = [[_number(row.get(name)) for name in names] for row in rows]
            try:
                return np.array(values, dtype=np.float64)
            except (TypeError, ValueError):
                self._raise_bad_cell(rows)
                raise  # _raise_bad_cell always raises; this keeps type checkers informed
        arrays: dict[str, Any] = {}
        numbers = self._number_names
        if numbers:
            # One conversion for every numeric column: the common single-row case costs
            # one small matrix instead of one array per column.
            try:
                grid = [[_number(row.get(name)) for name in numbers] for row in rows]
                matrix = np.array(grid, dtype=np.float64)
            except (TypeError, ValueError):
                self._raise_bad_cell(rows)
                raise
            whole_block: Any = None
            if self._integer_positions:
                block = matrix[:, self._integer_positions]
                if not np.isnan(block).any() and (block == np.floor(block)).all():
                    whole_block = block.astype(np.int64)  # the usual case: one check for all
            for j, name in enumerate(numbers):
                column: Any = matrix[:, j]
                if name in self._integer_names:
                    if whole_block is not None:
                        column = whole_block[:, self._integer_positions.index(j)]
                    else:
                        whole = _as_integers(column)
                        if whole is None:
                            cells = [{name: row.get(name)} for row in rows]
                            self._raise_bad_cell(cells, only=name)
                        column = whole
                arrays[name] = column
        for name, kind in self._other_columns:
            given = [row.get(name) for row in rows]
            try:
                arrays[name] = _typed(given, kind)
            except (TypeError, ValueError, OverflowError):
                self._raise_bad_cell([{name: v} for v in given], only=name)
        return self._shape(arrays, len(rows))

    def _from_table(self, table: Any) -> Any:
        """A pyarrow Table (a batch, often large): converted column-wise by Arrow, not
        cell by cell; a column that does not convert falls back to the checked path."""
        import numpy as np

        present = set(table.column_names)
        count = table.num_rows
        if self.input_format == "numpy" and self._numeric:
            out = np.empty((count, len(self.names)), dtype=np.float64)
            for j, name in enumerate(self.names):
                if name not in present:
                    out[:, j] = np.nan
                    continue
                try:
                    out[:, j] = table.column(name).to_numpy(zero_copy_only=False)
                except (TypeError, ValueError):
                    return self._from_rows(table.to_pylist())
            return out
        import pyarrow as pa

        typed = [name for name in self.names if name in present]
        try:
            frame = table.select(typed).to_pandas()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, ValueError):
            return self._from_rows(table.to_pylist())
        for name, kind in zip(self.names, self._types, strict=True):
            if name not in present:  # an absent column is all missing values
                frame[name] = np.nan if kind in _INTEGER or kind in _FLOAT else None
        return self._from_pandas(frame)

    def _from_pandas(self, frame: pd.DataFrame) -> Any:
        missing = [name for name in self.names if name not in frame.columns]
        if missing:
            raise DataContractError(
                f"The rows lack column(s) {', '.join(repr(m) for m in missing)} that model "
                f"{self.version.reference} reads.",
                hint=f"Provide every input of the signature: {', '.join(self.names)}.",
            )
        selected = frame[list(self.names)]
        if self.input_format == "pandas":
            selected = selected.reset_index(drop=True)
            for name in self._number_names:
                if selected[name].dtype.kind not in "iufb":
                    # Objects where numbers belong (an all-null column arrives so): make
                    # them numbers, or let the checked path name the bad cell.
                    try:
                        selected[name] = selected[name].astype("float64")
                    except (TypeError, ValueError):
                        return self._from_rows(selected.to_dict("records"))
            return selected
        if self.input_format == "columns":
            return {name: selected[name].to_numpy() for name in self.names}
        try:
            return selected.to_numpy(dtype="float64", na_value=math.nan)
        except (TypeError, ValueError):
            self._raise_bad_cell(selected.to_dict("records"))
            raise

    def _shape(self, arrays: dict[str, Any], count: int) -> Any:
        """Typed column arrays as what the model takes: a DataFrame, a matrix or a dict."""
        import numpy as np

        if self.input_format == "columns":
            return arrays
        if self.input_format == "numpy":
            return np.column_stack([arrays[name] for name in self.names]) if count else arrays
        return _dataframe(arrays, self.names, self._columns(), count)

    def _columns(self) -> Any:
        if self._column_index is None:
            import pandas as pd

            self._column_index = pd.Index(self.names)
        return self._column_index

    def _raise_bad_cell(self, rows: Sequence[Mapping[str, Any]], only: str | None = None) -> None:
        for index, row in enumerate(rows):
            for name, kind in zip(self.names, self._types, strict=True):
                if only is not None and name != only:
                    continue
                value = row.get(name)
                try:
                    _typed([value], kind)
                except (TypeError, ValueError, OverflowError):
                    raise DataContractError(
                        f"Row {index}, column {name!r}: {value!r:.100} is not a {kind} value "
                        f"(model {self.version.reference}).",
                        hint=f"Send {kind} values in {name!r}, or null for a missing one.",
                    ) from None
        raise DataContractError(
            f"The rows cannot be read as the inputs of model {self.version.reference}.",
            hint=f"Send the signature's columns: {', '.join(self.names)}.",
        )


def _dataframe(arrays: dict[str, Any], names: tuple[str, ...], columns: Any, count: int) -> Any:
    """A DataFrame over typed column arrays, without pandas' per-call inference.

    ``DataFrame._from_arrays`` is pandas' own constructor for ready arrays (there since
    pandas 0.23): ~40x cheaper than ``DataFrame(dict)`` for one row, which is serving's
    common case. Should a pandas release drop it, the public constructor takes over.
    """
    import pandas as pd

    builder = getattr(pd.DataFrame, "_from_arrays", None)
    if builder is not None:
        try:
            return builder(
                [arrays[name] for name in names],
                columns=columns,
                index=pd.RangeIndex(count),
                verify_integrity=False,
            )
        except TypeError:  # a changed private signature: use the public way
            pass
    return pd.DataFrame(arrays, columns=columns, copy=False)


# Estimators whose predict turns any 2-D input into one float64 matrix first and reads
# nothing else of a DataFrame (no dtype, no column selection), when fitted without
# categorical features: fed that matrix directly, they answer bit for bit the same.
_MATRIX_ESTIMATORS = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    }
)


def _matrix_equivalent(model: Any, signature: Signature) -> Any:
    """A scoring copy of ``model`` that takes the float matrix of the signature's
    columns, or None when the DataFrame it was fitted on matters to it.

    A histogram GBM fitted on a DataFrame of numbers validates a one-row DataFrame in
    ~0.6 ms (pandas dtypes, feature names through narwhals) before a ~0.7 ms tree walk;
    given the float64 matrix its validation would build, it skips that and answers the
    same scores. The copy is shallow (the trees are shared) and forgets the column names,
    so scikit-learn does not warn about a matrix; their order is checked here, once: the
    signature's, which is how ``frame`` lays the matrix out.
    """
    cls = type(model)
    if f"{cls.__module__}.{cls.__qualname__}" not in _MATRIX_ESTIMATORS:
        return None
    if getattr(model, "_preprocessor", None) is not None:  # categorical features
        return None
    if getattr(model, "is_categorical_", None) is not None:
        return None
    names = getattr(model, "feature_names_in_", None)
    inputs = tuple(spec.name for spec in signature.inputs)
    if names is None or tuple(str(name) for name in names) != inputs:
        return None
    if not all(spec.type in _INTEGER or spec.type in _FLOAT for spec in signature.inputs):
        return None
    import copy

    scoring = copy.copy(model)
    del scoring.feature_names_in_
    return scoring


def _row_count(rows: Any) -> int:
    if isinstance(rows, Mapping):
        return 1
    num_rows = getattr(rows, "num_rows", None)  # pyarrow
    if isinstance(num_rows, int):
        return num_rows
    shape = getattr(rows, "shape", None)  # pandas, polars
    if isinstance(shape, tuple) and shape:
        return int(shape[0])
    if isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
        return len(rows)
    raise ModelInputError(
        f"rows must be a pyarrow Table, a pandas or polars DataFrame, a list of dicts or one "
        f"dict, not {type(rows).__name__}.",
        hint="Pass [{'column': value, ...}, ...] or a DataFrame.",
    )


def _as_rows(rows: Any) -> Sequence[Mapping[str, Any]]:
    if isinstance(rows, Mapping):
        return [rows]
    if isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ModelInputError(
                    f"Row {index} is a {type(row).__name__}, not a mapping of column to value.",
                    hint="Pass rows as dicts: [{'tenure': 3, 'plan': 'basic'}].",
                )
        return rows
    raise ModelInputError(
        f"rows must be a Table, a DataFrame, a list of dicts or one dict, not "
        f"{type(rows).__name__}.",
        hint="Pass [{'column': value, ...}, ...] or a DataFrame.",
    )


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        raise ValueError(value)
    return float(value)


def _as_integers(column: Any) -> Any:
    """A float column as int64 when every value is a whole number; float64 when some are
    missing (as pandas reads them); None when a value has a fraction."""
    import numpy as np

    if np.isnan(column).any():
        return column
    if (column != np.floor(column)).any():
        return None
    return column.astype(np.int64)


def _typed(values: list[Any], kind: str) -> Any:
    """One column's values as the numpy array pandas would make from the training data."""
    import numpy as np

    if kind in _FLOAT or (kind in _INTEGER and any(v is None for v in values)):
        return np.array([_number(v) for v in values], dtype=np.float64)
    if kind in _INTEGER:
        for value in values:
            if isinstance(value, str) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
        return np.array(values, dtype=np.int64)
    if kind == "bool":
        if any(v is None for v in values):
            return np.array(values, dtype=object)
        for value in values:
            if not isinstance(value, bool | np.bool_):
                raise ValueError(value)
        return np.array(values, dtype=bool)
    if kind == "string":
        for value in values:
            if value is not None and not isinstance(value, str):
                raise ValueError(value)
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    if kind.startswith("timestamp") or kind == "date":
        import pandas as pd

        return pd.to_datetime(pd.Series(values), utc=kind == "timestamp_tz").to_numpy()
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
