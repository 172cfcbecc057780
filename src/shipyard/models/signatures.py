"""Signatures: a model version's serving contract, built from data and the training version.

``signature_from`` reads the input columns and their types from a frame or table (the
model's input example, say). Given the training dataset version, it takes from it, for
each input column:

- the declared type and nullability (the dataset's canonical schema and its contract);
- the declared contract rules (``min``, ``max``, ``allowed``, ``pattern``,
  ``min_length``, ``max_length``): what serving enforces;
- what training saw, from the version's profile (``min``, ``max``, ``mean``, ``std``,
  ``null_fraction``, ``categories``): information only; serving flags values outside it.

Types are the dataset subsystem's canonical type names (``int64``, ``float64``,
``string``, ``bool``, ``timestamp_tz``...; ``shipyard.data.types.parse_type`` reads them).

>>> signature = signature_from(X_train.head(), training_version=churn_v1,
...     task="binary_classification", classes=("no", "yes"))  # doctest: +SKIP
>>> signature.input("total_day_minutes").rules  # doctest: +SKIP
{'min': 0}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from shipyard.models.errors import ModelInputError
from shipyard.models.records import FieldSpec, Signature, Task
from shipyard.models.serialize import TASKS, json_value

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.data.records import DatasetVersion

__all__ = [
    "EXAMPLE_ROWS",
    "default_outputs",
    "feature_names",
    "infer_task",
    "model_classes",
    "signature_from",
    "to_arrow",
]

EXAMPLE_ROWS = 3
"""Rows of the input example kept in a signature."""

# Contract keys that are rules on one value (what serving enforces), and their names here.
_RULE_KEYS = {
    "min": "min",
    "max": "max",
    "allowed": "allowed",
    "regex": "pattern",
    "min_length": "min_length",
    "max_length": "max_length",
}
_OBSERVED_KEYS = ("min", "max", "mean", "std", "null_fraction")
_GENERATED_NAME = re.compile(r"(Column_|f)\d+")


def signature_from(
    frame_or_table: Any,
    *,
    training_version: DatasetVersion | None = None,
    outputs: Sequence[FieldSpec] | None = None,
    task: Task | None = None,
    profile: Mapping[str, Any] | None = None,
    classes: Sequence[Any] | None = None,
    threshold: float | None = None,
    feature_service: str | None = None,
    example_rows: int = EXAMPLE_ROWS,
) -> Signature:
    """The signature of a model that reads the columns of ``frame_or_table``.

    ``frame_or_table`` is a pandas DataFrame, a pyarrow Table or a list of dicts (its
    first rows become the input example). ``training_version`` (a ``DatasetVersion``) and
    its ``profile`` (``DatasetClient.profile``) add declared types, rules and observed
    ranges. ``outputs`` defaults to what the ``task`` produces: ``score`` (and ``label``
    for classifiers).

    >>> signature_from([{"tenure": 3, "plan": "basic"}]).inputs[0].type
    'int64'
    """
    table = to_arrow(frame_or_table, what="frame_or_table")
    chosen_task: Task = _check_task(task) if task is not None else "other"
    if classes is not None:
        classes = tuple(json_value(list(classes), where="classes"))
    if threshold is not None:
        threshold = _check_threshold(threshold)
    declared = _declared_columns(training_version)
    observed = _observed_columns(profile)
    inputs = []
    for field in table.schema:
        name = field.name
        schema_type, schema_nullable, rules = declared.get(name, (None, True, {}))
        inputs.append(
            FieldSpec(
                name=name,
                type=schema_type or _type_name(field.type, name),
                nullable=schema_nullable,
                rules=rules,
                observed=observed.get(name, {}),
            )
        )
    if example_rows < 0:
        raise ModelInputError(f"example_rows must be >= 0, not {example_rows}.")
    example = tuple(
        json_value(row, where="input example") for row in table.slice(0, example_rows).to_pylist()
    )
    return Signature(
        inputs=tuple(inputs),
        outputs=tuple(outputs) if outputs is not None else default_outputs(chosen_task, classes),
        task=chosen_task,
        input_example=example,
        feature_service=feature_service,
        threshold=threshold,
        classes=classes,
    )


def default_outputs(task: Task, classes: Sequence[Any] | None) -> tuple[FieldSpec, ...]:
    """The output fields of a task: a score, and a label for classifiers."""
    label_type = "string"
    if classes:
        first = classes[0]
        label_type = (
            "bool"
            if isinstance(first, bool)
            else "int64"
            if isinstance(first, int)
            else "float64"
            if isinstance(first, float)
            else "string"
        )
    if task == "binary_classification":
        return (
            FieldSpec("score", "float64", nullable=False),
            FieldSpec("label", label_type, nullable=False),
        )
    if task == "multiclass_classification":
        return (
            FieldSpec("scores", "list<item: double>", nullable=False),
            FieldSpec("label", label_type, nullable=False),
        )
    if task == "regression":
        return (FieldSpec("score", "float64", nullable=False),)
    return (FieldSpec("output", "float64", nullable=True),)


def to_arrow(data: Any, *, what: str) -> pa.Table:
    """A pandas DataFrame, polars DataFrame, pyarrow Table or list of dicts as a Table."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.partition(".")[0]
    try:
        if module == "pandas" and hasattr(data, "columns"):
            frame = data.head(1000)
            frame.columns = [str(c) for c in frame.columns]
            return pa.Table.from_pandas(frame, preserve_index=False)
        if module == "polars" and hasattr(data, "to_arrow"):
            return cast("pa.Table", data.head(1000).to_arrow())
        if isinstance(data, Sequence) and not isinstance(data, str | bytes):
            rows = list(data[:1000])
            if not rows or not all(isinstance(r, Mapping) for r in rows):
                raise ModelInputError(
                    f"{what} must be a non-empty list of dicts (one per row).",
                    hint="Pass rows such as [{'tenure': 3, 'plan': 'basic'}], or a DataFrame.",
                )
            return pa.Table.from_pylist([dict(r) for r in rows])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ModelInputError(
            f"{what}: its columns cannot be read as typed columns: {exc}.",
            hint="Give each column values of one type (numbers, strings, booleans...).",
        ) from exc
    raise ModelInputError(
        f"{what} must be a pandas or polars DataFrame, a pyarrow Table or a list of dicts, "
        f"not {type(data).__name__}.",
        hint="Pass the model's training features (a few rows are enough).",
    )


def _type_name(arrow_type: pa.DataType, column: str) -> str:
    from shipyard.core.errors import DataContractError
    from shipyard.data.types import canonical_type_of

    try:
        return canonical_type_of(arrow_type, column).name
    except DataContractError:
        return str(arrow_type)


def _declared_columns(
    version: DatasetVersion | None,
) -> dict[str, tuple[str | None, bool, dict[str, Any]]]:
    if version is None:
        return {}
    contract_columns: Mapping[str, Any] = {}
    if version.contract and isinstance(version.contract.get("columns"), Mapping):
        contract_columns = version.contract["columns"]
    declared: dict[str, tuple[str | None, bool, dict[str, Any]]] = {}
    for column in version.schema:
        declared_rules = contract_columns.get(column.name) or {}
        rules = {
            ours: json_value(declared_rules[theirs], where=f"rule {theirs} of {column.name!r}")
            for theirs, ours in _RULE_KEYS.items()
            if declared_rules.get(theirs) is not None
        }
        nullable = column.nullable and bool(declared_rules.get("nullable", True))
        declared[column.name] = (column.type, nullable, rules)
    return declared


def _observed_columns(profile: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not profile or not isinstance(profile.get("columns"), Mapping):
        return {}
    observed: dict[str, dict[str, Any]] = {}
    for name, stats in profile["columns"].items():
        if not isinstance(stats, Mapping):
            continue
        seen: dict[str, Any] = {}
        for key in _OBSERVED_KEYS:
            value = stats.get(key)
            if value is not None and not (isinstance(value, float) and not math.isfinite(value)):
                seen[key] = json_value(value, where=f"profile of {name!r}")
        categories = stats.get("categories")
        if isinstance(categories, Mapping) and isinstance(categories.get("values"), list):
            seen["categories"] = [pair[0] for pair in categories["values"] if pair]
            seen["categories_complete"] = bool(categories.get("complete", False))
        observed[str(name)] = seen
    return observed


def _check_task(task: object) -> Task:
    if task not in TASKS:
        raise ModelInputError(
            f"task {task!r} is not one of {', '.join(TASKS)}.",
            hint="Pick one of those tasks.",
        )
    return task


def _check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ModelInputError(f"threshold must be a number in [0, 1], not {threshold!r}.")
    value = float(threshold)
    if not 0.0 <= value <= 1.0:
        raise ModelInputError(f"threshold must be in [0, 1], not {value}.")
    return value


# --- What a fitted model tells about itself ---------------------------------------------


def feature_names(model: Any) -> tuple[str, ...] | None:
    """The column names a fitted model was trained on, when it recorded them.

    Generated names (LightGBM's ``Column_0``, XGBoost's ``f0``) mean "trained on an
    array" and give None.
    """
    names: Any = None
    for attribute in ("feature_names_in_", "feature_name_"):
        try:
            names = getattr(model, attribute, None)
        except (AttributeError, ValueError):  # some wrappers raise when unfitted
            names = None
        if names is not None:
            break
    if names is None:
        booster_names = getattr(model, "feature_names", None)  # xgboost.Booster
        if isinstance(booster_names, list | tuple):
            names = booster_names
    if names is None:
        inputs = getattr(model, "input_names", None)  # OnnxModel
        if isinstance(inputs, tuple) and len(inputs) > 1:
            names = inputs
    if names is None:
        feature_name = getattr(model, "feature_name", None)  # lightgbm.Booster
        if callable(feature_name) and type(model).__module__.startswith("lightgbm"):
            names = feature_name()
    if names is None:
        return None
    listed = tuple(str(n) for n in list(names))
    if not listed or all(_GENERATED_NAME.fullmatch(n) for n in listed):
        return None
    return listed


def model_classes(model: Any) -> tuple[Any, ...] | None:
    """A classifier's classes in the order of its probability columns, or None."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return None
    tolist = getattr(classes, "tolist", None)
    values = tolist() if callable(tolist) else list(classes)
    return tuple(json_value(list(values), where="the model's classes"))


def infer_task(model: Any, classes: Sequence[Any] | None) -> Task:
    """What a fitted model does, from its type: classification (by class count),
    regression, or ``other`` when it cannot be told."""
    if classes is not None and callable(getattr(model, "predict_proba", None)):
        return "binary_classification" if len(classes) == 2 else "multiclass_classification"
    objective = _booster_objective(model)
    if objective is not None:
        if objective.startswith(("binary", "cross_entropy")):
            return "binary_classification"
        if objective.startswith(("multi", "softmax", "softprob")):
            return "multiclass_classification"
        return "regression"
    module = type(model).__module__.partition(".")[0]
    if module in ("sklearn", "lightgbm", "xgboost"):
        estimator_type = getattr(model, "_estimator_type", None)
        if estimator_type is None:
            final = model.steps[-1][1] if hasattr(model, "steps") else model
            estimator_type = getattr(final, "_estimator_type", None)
        if estimator_type == "regressor":
            return "regression"
        try:
            from sklearn.base import is_regressor

            if is_regressor(model):
                return "regression"
        except ImportError:  # pragma: no cover - sklearn ships with these flavors
            pass
    return "other"


def _booster_objective(model: Any) -> str | None:
    """The objective of a bare LightGBM or XGBoost booster (not their sklearn wrappers)."""
    cls = type(model)
    if cls.__name__ != "Booster":
        return None
    module = cls.__module__.partition(".")[0]
    if module == "lightgbm":
        objective = (getattr(model, "params", None) or {}).get("objective")
        if objective is None:
            objective = model.dump_model(num_iteration=0).get("objective", "")
        return str(objective).split()[0] if objective else None
    if module == "xgboost":
        import json

        config = json.loads(model.save_config())
        return str(config["learner"]["objective"]["name"])
    return None
