"""Runs as data: a table (one row per run, one column per attribute, param, metric and
tag), or JSON-ready dicts.

Columns: ``run_id``, ``experiment_id``, ``name``, ``status``, ``user``, ``start_time``,
``end_time`` (UTC timestamps), then ``params.<key>`` (text), ``metrics.<key>`` (float64,
the latest value) and ``tags.<key>`` (text), each group sorted by key; a run without a
key has a null there. pyarrow and pandas are imported only when called.

>>> table = runs_to_arrow(page.runs)
>>> table.column("metrics.auc").to_pylist()
[0.91, 0.87]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shipyard.tracking.records import Experiment, Run

if TYPE_CHECKING:
    import pyarrow

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "experiment_to_dict",
    "run_to_dict",
    "runs_to_arrow",
    "runs_to_pandas",
]

ATTRIBUTE_COLUMNS = ("run_id", "experiment_id", "name", "status", "user", "start_time", "end_time")


def _columns(runs: Sequence[Run]) -> dict[str, tuple[str, list[Any]]]:
    """``{column: (type, values)}`` with type ``text``, ``time`` or ``number``."""
    columns: dict[str, tuple[str, list[Any]]] = {
        "run_id": ("text", [run.id for run in runs]),
        "experiment_id": ("text", [run.experiment_id for run in runs]),
        "name": ("text", [run.name for run in runs]),
        "status": ("text", [run.status for run in runs]),
        "user": ("text", [run.user for run in runs]),
        "start_time": ("time", [run.start_time for run in runs]),
        "end_time": ("time", [run.end_time for run in runs]),
    }
    for prefix, kind, attribute in (
        ("params", "text", "params"),
        ("metrics", "number", "metrics"),
        ("tags", "text", "tags"),
    ):
        keys = sorted({key for run in runs for key in getattr(run, attribute)})
        for key in keys:
            values = [getattr(run, attribute).get(key) for run in runs]
            columns[f"{prefix}.{key}"] = (kind, values)
    return columns


def runs_to_arrow(runs: Sequence[Run]) -> pyarrow.Table:
    """The runs as a ``pyarrow.Table`` (see the module docstring for its columns).

    >>> runs_to_arrow(page.runs).column_names[:3]
    ['run_id', 'experiment_id', 'name']
    """
    import pyarrow as pa

    types = {"text": pa.string(), "number": pa.float64(), "time": pa.timestamp("us", tz="UTC")}
    arrays = {
        name: pa.array(values, type=types[kind]) for name, (kind, values) in _columns(runs).items()
    }
    return pa.table(arrays)


def runs_to_pandas(runs: Sequence[Run]) -> Any:
    """The runs as a ``pandas.DataFrame`` (same columns as ``runs_to_arrow``).

    Metrics are float64 (NaN where a run lacks one); timestamps are timezone-aware UTC;
    text has pandas' default text dtype, missing values as pandas' missing marker.

    >>> runs_to_pandas(page.runs)["metrics.auc"].max()
    0.91
    """
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    data: dict[str, Any] = {}
    for name, (kind, values) in _columns(runs).items():
        if kind == "time":
            data[name] = pd.to_datetime(
                [value if isinstance(value, datetime) else None for value in values], utc=True
            )
        elif kind == "number":
            data[name] = pd.array(
                [float("nan") if value is None else value for value in values], dtype="float64"
            )
        else:  # pandas' own text dtype: str in pandas 3, object before
            data[name] = pd.Series(
                values, dtype=None if any(v is not None for v in values) else object
            )
    return pd.DataFrame(data, columns=list(data))


def run_to_dict(run: Run, experiment_name: str | None = None) -> dict[str, Any]:
    """A run as JSON-ready data: timestamps in ISO 8601, NaN and infinities as text.

    >>> run_to_dict(run, "churn")["experiment"]
    'churn'
    """
    return {
        "id": run.id,
        "name": run.name,
        "experiment_id": run.experiment_id,
        "experiment": experiment_name,
        "status": run.status,
        "lifecycle": run.lifecycle,
        "user": run.user,
        "start_time": run.start_time.isoformat(),
        "end_time": run.end_time.isoformat() if run.end_time else None,
        "duration_seconds": run.duration_seconds,
        "parent_id": run.parent_id,
        "source": run.source,
        "git_commit": run.git_commit,
        "git_dirty": run.git_dirty,
        "code_diff_blob": run.code_diff_blob,
        "environment_id": run.environment_id,
        "error": run.error,
        "params": dict(run.params),
        "metrics": {key: _plain(value) for key, value in run.metrics.items()},
        "tags": dict(run.tags),
        "inputs": [
            {"dataset": i.dataset, "version_id": i.version_id, "role": i.role} for i in run.inputs
        ],
    }


def experiment_to_dict(experiment: Experiment) -> dict[str, Any]:
    """An experiment as JSON-ready data."""
    return {
        "id": experiment.id,
        "name": experiment.name,
        "description": experiment.description,
        "tags": dict(experiment.tags),
        "lifecycle": experiment.lifecycle,
        "created_at": experiment.created_at.isoformat(),
        "deleted_at": experiment.deleted_at.isoformat() if experiment.deleted_at else None,
    }


def _plain(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)
