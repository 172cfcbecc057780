"""Monitoring: the prediction log, data drift, performance, alerts.

This package owns the prediction log's tables (``store/schema/monitoring.py``). Serving
writes it through :class:`PredictionLogWriter`, asynchronously and in batches, masking or
dropping the columns configured under ``[monitoring]``; labels arrive later. A check
compares a window of the log with the training data's profile (drift per feature and on
the score, effect sizes that stay sane at millions of rows), measures realized or
estimated performance against the model's gates, and raises deduplicated alerts through
log, webhook or command channels::

    import shipyard.monitoring as mon

    mon.log_labels("req-42", 1)
    check = mon.run_check(config, "churn@champion")        # drift + performance + alerts
    report = mon.check_drift(reference_table, current_table)

Heavy libraries load on first use: importing this package costs almost nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.monitoring.alert_config import AlertConfig, alerts_from_config
    from shipyard.monitoring.alerts import (
        Alert,
        AlertManager,
        AlertRule,
        Finding,
        default_rules,
        drift_findings,
        parse_rules,
    )
    from shipyard.monitoring.channels import (
        CommandChannel,
        LogChannel,
        WebhookChannel,
        dispatch,
        parse_channels,
    )
    from shipyard.monitoring.drift import (
        DriftDetector,
        check_drift,
    )
    from shipyard.monitoring.drift_report import (
        ColumnDrift,
        DriftReport,
    )
    from shipyard.monitoring.labels import (
        BadLabelRow,
        LabelReport,
        log_label_file,
        log_labels,
        store_labels,
    )
    from shipyard.monitoring.log_window import LogWindow, read_log_window
    from shipyard.monitoring.monitor import (
        MonitorCheck,
        check_history,
        run_check,
    )
    from shipyard.monitoring.multivariate import (
        DomainClassifier,
        MultivariateResult,
    )
    from shipyard.monitoring.performance import (
        PerformanceReport,
        ScoreCalibrator,
        performance_window,
    )
    from shipyard.monitoring.prediction_log import (
        LogSettings,
        PredictionLogWriter,
        PredictionRecord,
        log_failed_call,
        purge_expired,
    )
    from shipyard.monitoring.reference import (
        Reference,
        reference_from_dataset,
    )
    from shipyard.monitoring.windows import (
        Window,
        window_from_dataset,
        window_from_table,
        windows_by_count,
        windows_by_time,
    )

__all__ = [
    "Alert",
    "AlertConfig",
    "AlertManager",
    "AlertRule",
    "BadLabelRow",
    "ColumnDrift",
    "CommandChannel",
    "DomainClassifier",
    "DriftDetector",
    "DriftReport",
    "Finding",
    "LabelReport",
    "LogChannel",
    "LogSettings",
    "LogWindow",
    "MonitorCheck",
    "MultivariateResult",
    "PerformanceReport",
    "PredictionLogWriter",
    "PredictionRecord",
    "Reference",
    "ScoreCalibrator",
    "WebhookChannel",
    "Window",
    "alerts_from_config",
    "check_drift",
    "check_history",
    "default_rules",
    "dispatch",
    "drift_findings",
    "log_failed_call",
    "log_label_file",
    "log_labels",
    "parse_channels",
    "parse_rules",
    "performance_window",
    "purge_expired",
    "read_log_window",
    "reference_from_dataset",
    "run_check",
    "store_labels",
    "window_from_dataset",
    "window_from_table",
    "windows_by_count",
    "windows_by_time",
]

_LAZY: dict[str, str] = {
    "BadLabelRow": "shipyard.monitoring.labels",
    "LabelReport": "shipyard.monitoring.labels",
    "log_label_file": "shipyard.monitoring.labels",
    "log_labels": "shipyard.monitoring.labels",
    "store_labels": "shipyard.monitoring.labels",
    "LogSettings": "shipyard.monitoring.prediction_log",
    "PredictionLogWriter": "shipyard.monitoring.prediction_log",
    "PredictionRecord": "shipyard.monitoring.prediction_log",
    "log_failed_call": "shipyard.monitoring.prediction_log",
    "purge_expired": "shipyard.monitoring.prediction_log",
    "DriftDetector": "shipyard.monitoring.drift",
    "check_drift": "shipyard.monitoring.drift",
    "ColumnDrift": "shipyard.monitoring.drift_report",
    "DriftReport": "shipyard.monitoring.drift_report",
    "Reference": "shipyard.monitoring.reference",
    "reference_from_dataset": "shipyard.monitoring.reference",
    "Window": "shipyard.monitoring.windows",
    "window_from_dataset": "shipyard.monitoring.windows",
    "window_from_table": "shipyard.monitoring.windows",
    "windows_by_count": "shipyard.monitoring.windows",
    "windows_by_time": "shipyard.monitoring.windows",
    "DomainClassifier": "shipyard.monitoring.multivariate",
    "MultivariateResult": "shipyard.monitoring.multivariate",
    "AlertConfig": "shipyard.monitoring.alert_config",
    "alerts_from_config": "shipyard.monitoring.alert_config",
    "Alert": "shipyard.monitoring.alerts",
    "AlertManager": "shipyard.monitoring.alerts",
    "AlertRule": "shipyard.monitoring.alerts",
    "Finding": "shipyard.monitoring.alerts",
    "default_rules": "shipyard.monitoring.alerts",
    "drift_findings": "shipyard.monitoring.alerts",
    "parse_rules": "shipyard.monitoring.alerts",
    "CommandChannel": "shipyard.monitoring.channels",
    "LogChannel": "shipyard.monitoring.channels",
    "WebhookChannel": "shipyard.monitoring.channels",
    "dispatch": "shipyard.monitoring.channels",
    "parse_channels": "shipyard.monitoring.channels",
    "PerformanceReport": "shipyard.monitoring.performance",
    "ScoreCalibrator": "shipyard.monitoring.performance",
    "performance_window": "shipyard.monitoring.performance",
    "MonitorCheck": "shipyard.monitoring.monitor",
    "check_history": "shipyard.monitoring.monitor",
    "LogWindow": "shipyard.monitoring.log_window",
    "read_log_window": "shipyard.monitoring.log_window",
    "run_check": "shipyard.monitoring.monitor",
}


def __getattr__(name: str) -> Any:
    """Load the public API on first use, so ``import shipyard.monitoring`` stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.monitoring' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
