"""Shipyard: the whole life of a production ML model, in one Python platform.

``import shipyard as sy`` is kept fast: heavy libraries load where they are used. The
tracking API is on the facade and loads on first use::

    import shipyard as sy

    with sy.start_run("baseline", experiment="churn"):
        sy.log_param("max_depth", 6)
        sy.log_metric("auc", 0.91)

Labels for served predictions arrive later, by request id: ``sy.log_labels("req-42", 1)``.
The subsystems have their own packages: ``shipyard.data``, ``shipyard.features``,
``shipyard.models``, ``shipyard.evaluation``, ``shipyard.serving``, ``shipyard.monitoring``
and ``shipyard.pipelines``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from shipyard._version import __version__

if TYPE_CHECKING:
    from shipyard.monitoring.labels import log_labels
    from shipyard.tracking.autolog import autolog
    from shipyard.tracking.client import TrackingClient
    from shipyard.tracking.fluent import (
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

__all__ = [
    "TrackingClient",
    "__version__",
    "active_run",
    "autolog",
    "end_run",
    "log_artifact",
    "log_input",
    "log_labels",
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

_LAZY: dict[str, str] = {
    "TrackingClient": "shipyard.tracking.client",
    "autolog": "shipyard.tracking.autolog",
    "log_labels": "shipyard.monitoring.labels",
    **dict.fromkeys(
        (
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
        ),
        "shipyard.tracking.fluent",
    ),
}


def __getattr__(name: str) -> Any:
    """Load the public API on first use, so ``import shipyard`` stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
