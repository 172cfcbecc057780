"""Experiment tracking: experiments, runs, params, metrics, artifacts, search.

Two ways in: the fluent API (``with start_run(): log_metric(...)``, also on the
``shipyard`` facade) and the explicit ``TrackingClient``, where every call names its run.
Importing this package is cheap: the records are light, and the client (SQLAlchemy)
loads on first use of a name that needs it.

>>> from shipyard.tracking import TrackingClient
>>> with TrackingClient() as client:
...     run = client.create_run("churn")
...     client.log_metric(run.id, "auc", 0.91)
...     client.set_terminated(run.id)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from shipyard.tracking.records import (
    TERMINAL_STATUSES,
    ArtifactEntry,
    DatasetInput,
    Experiment,
    Lifecycle,
    Metric,
    Run,
    RunPage,
    RunStatus,
)

if TYPE_CHECKING:
    from shipyard.tracking.client import TrackingClient
    from shipyard.tracking.fluent import (
        ActiveRun,
        active_run,
        end_run,
        log_artifact,
        log_input,
        log_metric,
        log_metrics,
        log_model,
        log_param,
        log_params,
        log_text,
        set_tag,
        set_tags,
        start_run,
    )
    from shipyard.tracking.validation import RunStateError, TrackingInputError

__all__ = [
    "ActiveRun",
    "ArtifactEntry",
    "DatasetInput",
    "Experiment",
    "Lifecycle",
    "Metric",
    "Run",
    "RunPage",
    "RunStateError",
    "RunStatus",
    "TERMINAL_STATUSES",
    "TrackingClient",
    "TrackingInputError",
    "active_run",
    "end_run",
    "log_artifact",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "set_tag",
    "set_tags",
    "start_run",
]

_FLUENT = (
    "ActiveRun",
    "active_run",
    "end_run",
    "log_artifact",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "set_tag",
    "set_tags",
    "start_run",
)
_LAZY: dict[str, str] = {
    "TrackingClient": "shipyard.tracking.client",
    "RunStateError": "shipyard.tracking.validation",
    "TrackingInputError": "shipyard.tracking.validation",
    **dict.fromkeys(_FLUENT, "shipyard.tracking.fluent"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.tracking' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
