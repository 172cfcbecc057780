"""Model performance in service: realized metrics once labels arrive, estimates before.

Labels (``shipyard.monitoring.labels``) join the prediction log by request id. For each
window of logged predictions (by time or by count), :func:`performance_window` computes
the *realized* metrics on the labelled rows with ``shipyard.evaluation.metrics`` and
holds them to the model's bounds: explicit ``thresholds``, else the metric gates of
``[gates.MODEL]`` in shipyard.toml, else those of the version's latest stored
evaluation. A binary classifier's window also gets an *estimate* computed from its
scores alone, so a drop shows before labels arrive::

    >>> report = performance_window(config, "churn@champion", window=timedelta(days=1))
    >>> [(w.label, w.realized.get("recall"), w.estimated.get("recall")) for w in report.windows]
    >>> manager.evaluate(report.findings())          # shipyard.monitoring.alerts

The estimate treats each score, once calibrated on labelled rows (a
:class:`ScoreCalibrator`, isotonic by default), as the probability that the row is
positive, and takes the expected confusion matrix at the decision threshold: expected
true positives are the sum of the calibrated probabilities of the rows predicted
positive, and so on (the "confidence-based performance estimation" of NannyML). It holds
as long as the relation between inputs and label stays put (covariate shift is fine,
concept drift is not: that shows once labels arrive). Calibration uses the labelled
rows of the log (``calibration=None``), or any calibrator fitted on a labelled
reference set (:func:`calibrator_from_dataset`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shipyard.core.errors import ConfigError, DataContractError
from shipyard.monitoring.alerts import Finding
from shipyard.monitoring.estimation import ScoreCalibrator, estimate_binary_metrics
from shipyard.monitoring.performance_inputs import (
    LoggedPredictions,
    MetricBound,
    binary_truths,
    model_bounds,
    read_logged_predictions,
)

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.models.records import ModelVersion
    from shipyard.models.registry import ModelRegistry
    from shipyard.store.stores import Stores

__all__ = [
    "LoggedPredictions",
    "MetricBound",
    "MetricCheck",
    "PerformanceReport",
    "PerformanceWindow",
    "ScoreCalibrator",
    "calibrator_from_dataset",
    "estimate_binary_metrics",
    "performance_window",
    "read_logged_predictions",
]

CheckStatus = Literal["passed", "failed", "skipped"]
_MIN_CALIBRATION_ROWS = 100
_CALIBRATION_ROWS_KEPT = 50_000
_MAX_WINDOWS = 10_000


# --- Records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricCheck:
    """One bound checked on one window: on realized metrics when enough labels arrived,
    else on the estimate (``basis``); ``skipped`` with the reason when neither exists."""

    metric: str
    bound: str
    figure: float | None
    basis: Literal["realized", "estimated", "none"]
    status: CheckStatus
    reason: str = ""


@dataclass(frozen=True)
class PerformanceWindow:
    """One window's realized metrics (labelled rows), estimate (all rows) and checks."""

    label: str
    start: datetime | None
    end: datetime | None
    rows: int
    labelled: int
    positives: int | None
    bad_labels: int
    realized: Mapping[str, float | None]
    estimated: Mapping[str, float | None]
    checks: tuple[MetricCheck, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "rows": self.rows,
            "labelled": self.labelled,
            "positives": self.positives,
            "bad_labels": self.bad_labels,
            "realized": {k: _finite(v) for k, v in self.realized.items()},
            "estimated": {k: _finite(v) for k, v in self.estimated.items()},
            "checks": [
                {
                    "metric": c.metric,
                    "bound": c.bound,
                    "figure": _finite(c.figure),
                    "basis": c.basis,
                    "status": c.status,
                    "reason": c.reason,
                }
                for c in self.checks
            ],
        }


@dataclass(frozen=True)
class PerformanceReport:
    """Performance of one model version over windows of its prediction log."""

    model: str
    version: str
    task: str
    threshold: float | None
    bounds: tuple[MetricBound, ...]
    windows: tuple[PerformanceWindow, ...]
    calibration: Mapping[str, Any]
    notes: tuple[str, ...] = ()
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def failed_checks(self) -> list[tuple[str, MetricCheck]]:
        """``(window label, check)`` for every failed check."""
        return [(w.label, c) for w in self.windows for c in w.checks if c.status == "failed"]

    def findings(self) -> list[Finding]:
        """What the newest decided window says per metric, for ``AlertManager.evaluate``.

        Realized checks give ``performance`` findings, estimated ones
        ``estimated_performance``; a passing check is a finding too (it resolves).
        """
        found: dict[tuple[str, str], Finding] = {}
        for window in self.windows:  # oldest first: later windows overwrite
            for check in window.checks:
                if check.basis == "none":
                    continue
                kind = "performance" if check.basis == "realized" else "estimated_performance"
                breached = check.status == "failed"
                what = "realized" if check.basis == "realized" else "estimated"
                figure = "undefined" if check.figure is None else f"{check.figure:.4g}"
                found[(kind, check.metric)] = Finding(
                    kind=kind,
                    model=self.model,
                    subject=check.metric,
                    breached=breached,
                    message=(
                        f"{self.version}: {what} {check.metric} is {figure} in window "
                        f"{window.label}; bound {check.bound}"
                        + (" (missed)." if breached else " (met).")
                        + (f" {check.reason}" if check.reason else "")
                    ),
                    value=check.figure,
                    bound=check.bound,
                    window=window.label[:128],
                    detail={
                        "version": self.version,
                        "rows": window.rows,
                        "labelled": window.labelled,
                    },
                )
        return list(found.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (``shipyard.performance.v1``)."""
        return {
            "format": "shipyard.performance.v1",
            "model": self.model,
            "version": self.version,
            "task": self.task,
            "threshold": self.threshold,
            "bounds": [
                {"metric": b.metric, "bound": b.text, "source": b.source} for b in self.bounds
            ],
            "calibration": dict(self.calibration),
            "windows": [w.to_dict() for w in self.windows],
            "notes": list(self.notes),
            "created_at": self.created_at.isoformat(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


# --- Windows ------------------------------------------------------------------------------


_Slice = tuple[str, datetime | None, datetime | None, np.ndarray[Any, Any]]


def _windows(logged: LoggedPredictions, window: timedelta | int | None) -> list[_Slice]:
    if logged.rows == 0:
        return []
    if window is None:
        return [("all", None, None, np.arange(logged.rows))]
    if isinstance(window, timedelta):
        if window <= timedelta(0):
            raise DataContractError(f"A time window must be positive, not {window!r}.")
        micros = logged.logged_at.astype(np.int64)
        step = window // timedelta(microseconds=1)
        buckets = np.floor_divide(micros, step)
        unique = np.unique(buckets)
        if unique.size > _MAX_WINDOWS:
            raise DataContractError(
                f"window={window} cuts the log into {unique.size} windows (at most "
                f"{_MAX_WINDOWS}).",
                hint="Choose a longer window or narrow since/until.",
            )
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        out: list[_Slice] = []
        for bucket in unique.tolist():
            start = epoch + timedelta(microseconds=bucket * step)
            out.append(
                (start.isoformat(), start, start + window, np.flatnonzero(buckets == bucket))
            )
        return out
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise DataContractError(
            f"window must be a timedelta, a positive number of rows or None, not {window!r}.",
            hint="e.g. window=timedelta(days=1) or window=5000.",
        )
    if -(-logged.rows // window) > _MAX_WINDOWS:
        raise DataContractError(
            f"window={window} rows cuts {logged.rows} predictions into more than "
            f"{_MAX_WINDOWS} windows.",
            hint="Choose a larger window.",
        )
    counted: list[_Slice] = []
    for offset in range(0, logged.rows, window):
        index = np.arange(offset, min(offset + window, logged.rows))
        label = f"rows {offset}-{int(index[-1])}"
        counted.append((label, None, None, index))
    return counted


# --- The entry point ----------------------------------------------------------------------


def performance_window(
    source: Config | Stores | ModelRegistry,
    model: str,
    *,
    window: timedelta | int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    thresholds: Mapping[str, str] | None = None,
    calibration: ScoreCalibrator | Literal["log", "none"] = "log",
    min_labels: int = 30,
    arms: Sequence[str] | None = None,
) -> PerformanceReport:
    """Realized and estimated performance of ``model`` per window of its prediction log.

    ``model`` is a reference (``churn@champion``, ``churn@v3``; a bare name is its
    ``champion``, else its newest version); ``window`` a ``timedelta`` (windows aligned
    to the Unix epoch), a number of rows, or None for one window over ``[since, until)``.
    ``thresholds`` ({"recall": ">= 0.6"}) replace the model's gates as bounds. A check
    uses realized metrics once a window holds ``min_labels`` labelled rows of both
    classes, else the estimate. ``calibration``: a fitted :class:`ScoreCalibrator`,
    ``"log"`` (fit one on the labelled rows of the log up to ``until``; raw scores when
    there are too few) or ``"none"`` (raw scores as probabilities).

    An unknown model raises ``NotFoundError``; a window without predictions is simply
    absent (no predictions at all: a report without windows, with a note).
    """
    if isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 1:
        raise DataContractError(f"min_labels must be a positive integer, not {min_labels!r}.")
    if not isinstance(model, str) or not model.strip():
        raise DataContractError(
            f"model must be a model reference such as 'churn@champion', not {model!r}."
        )
    if not (isinstance(calibration, ScoreCalibrator) or calibration in ("log", "none")):
        raise ConfigError(
            f"calibration must be a ScoreCalibrator, 'log' or 'none', not {calibration!r}."
        )
    registry, owned = _registry(source)
    try:
        version = _resolve(registry, model)
        return _report(
            registry, version, window, since, until, thresholds, calibration, min_labels, arms
        )
    finally:
        if owned:
            registry.close()


def _registry(source: Any) -> tuple[ModelRegistry, bool]:
    from shipyard.core.config import Config
    from shipyard.models.registry import ModelRegistry
    from shipyard.store.stores import Stores, open_stores

    if isinstance(source, ModelRegistry):
        return source, False
    if isinstance(source, Stores):
        return ModelRegistry(source), False
    if isinstance(source, Config):
        return ModelRegistry(open_stores(source), source, owns_stores=True), True
    raise ConfigError(
        f"performance_window needs a Config, Stores or ModelRegistry, not {type(source).__name__}."
    )


def _resolve(registry: ModelRegistry, model: str) -> ModelVersion:
    from shipyard.core.errors import NotFoundError

    if "@" in model:
        return registry.get(model)
    try:
        return registry.get(f"{model}@champion")
    except NotFoundError:
        return registry.get(model)


def _report(
    registry: ModelRegistry,
    version: ModelVersion,
    window: timedelta | int | None,
    since: datetime | None,
    until: datetime | None,
    thresholds: Mapping[str, Any] | None,
    calibration: ScoreCalibrator | str,
    min_labels: int,
    arms: Sequence[str] | None,
) -> PerformanceReport:
    from shipyard.evaluation.metrics import BINARY_METRICS, REGRESSION_METRICS

    task = version.signature.task
    if task not in ("binary_classification", "regression"):
        raise DataContractError(
            f"{version.reference} is a {task} model; performance monitoring supports binary "
            "classifiers and regressors.",
            hint="Monitor one class against the rest as a binary model.",
        )
    bounds = model_bounds(registry, version, thresholds)
    allowed = BINARY_METRICS if task == "binary_classification" else REGRESSION_METRICS
    wrong = [b.metric for b in bounds if b.metric not in allowed]
    if wrong:
        raise ConfigError(
            f"{version.reference} is a {task} model; metric {wrong[0]!r} does not apply.",
            hint=f"Use one of {', '.join(allowed)}.",
        )
    notes: list[str] = []
    if not bounds:
        notes.append(
            f"No bounds: give thresholds=, or declare [gates.{version.name}] metric gates, "
            "or evaluate the version with gates; metrics are reported without checks."
        )
    metadata = registry.stores.metadata
    logged = read_logged_predictions(
        metadata, version.name, version.number, since=since, until=until, arms=arms
    )
    if logged.rows == 0:
        notes.append(f"No predictions of {version.reference} are logged in the period asked.")
    default_threshold = version.threshold or version.signature.threshold or 0.5
    classes = version.signature.classes
    calibrator, calibration_info = _calibrator(
        registry, version, calibration, until, classes, arms, notes
    )
    windows = []
    for label, start, end, index in _windows(logged, window):
        part = logged.take(index)
        windows.append(
            _window(
                part,
                label,
                start,
                end,
                task,
                bounds,
                calibrator,
                default_threshold,
                classes,
                min_labels,
            )
        )
    return PerformanceReport(
        model=version.name,
        version=version.reference,
        task=task,
        threshold=default_threshold if task == "binary_classification" else None,
        bounds=tuple(bounds),
        windows=tuple(windows),
        calibration=calibration_info,
        notes=tuple(notes),
    )


def _calibrator(
    registry: ModelRegistry,
    version: ModelVersion,
    calibration: ScoreCalibrator | str,
    until: datetime | None,
    classes: Sequence[Any] | None,
    arms: Sequence[str] | None,
    notes: list[str],
) -> tuple[ScoreCalibrator | None, dict[str, Any]]:
    if version.signature.task != "binary_classification":
        return None, {"method": None}
    if isinstance(calibration, ScoreCalibrator):
        return calibration, {
            "method": calibration.method,
            "rows": getattr(calibration, "rows_", 0),
            "source": "given",
        }
    if calibration == "none":
        return ScoreCalibrator("none"), {"method": "none", "rows": 0, "source": "raw scores"}
    # The newest labelled rows only: a long log must not make every check read it all.
    history = read_logged_predictions(
        registry.stores.metadata,
        version.name,
        version.number,
        until=until,
        arms=arms,
        labelled_only=True,
        newest=_CALIBRATION_ROWS_KEPT,
    )
    truths = binary_truths(history.truths, classes)
    usable = (truths >= 0) & np.isfinite(history.scores)
    y = truths[usable]
    if y.size >= _MIN_CALIBRATION_ROWS and 0 < y.sum() < y.size:
        fitted = ScoreCalibrator("isotonic").fit(history.scores[usable], y)
        return fitted, {"method": "isotonic", "rows": int(y.size), "source": "labelled log rows"}
    notes.append(
        f"Estimates use raw scores as probabilities: only {int(y.size)} labelled rows of "
        f"{version.reference} (of both classes needed: {_MIN_CALIBRATION_ROWS}) to calibrate on."
    )
    return ScoreCalibrator("none"), {"method": "none", "rows": int(y.size), "source": "raw scores"}


def _window(
    part: LoggedPredictions,
    label: str,
    start: datetime | None,
    end: datetime | None,
    task: str,
    bounds: Sequence[MetricBound],
    calibrator: ScoreCalibrator | None,
    default_threshold: float,
    classes: Sequence[Any] | None,
    min_labels: int,
) -> PerformanceWindow:
    from shipyard.evaluation import metrics as m

    scored = np.isfinite(part.scores)
    realized: dict[str, float | None] = {}
    estimated: dict[str, float | None] = {}
    positives: int | None = None
    if task == "binary_classification":
        truths = binary_truths(part.truths, classes)
        bad = int(np.sum(truths == -2))
        labelled = (truths >= 0) & scored
        y, s = truths[labelled], part.scores[labelled]
        # The threshold serving used for each record when it logged one.
        cuts = np.where(np.isfinite(part.thresholds), part.thresholds, default_threshold)
        threshold = float(np.median(cuts)) if cuts.size else default_threshold
        positives = int(y.sum())
        if y.size:
            for name in m.BINARY_METRICS:
                value = m.binary_metric(name, y, s, threshold)
                realized[name] = value if math.isfinite(value) else None
            if positives == 0:
                realized["recall"] = None
            if not (s >= threshold).any():
                realized["precision"] = None
        if calibrator is not None and scored.any():
            probabilities = calibrator.predict(part.scores[scored])
            estimated = estimate_binary_metrics(probabilities, part.scores[scored], threshold)
        decided = y.size >= min_labels and 0 < positives < y.size
    else:
        numbers = np.array([_number(t) for t in part.truths], dtype=np.float64)
        given = np.array([t is not None for t in part.truths], dtype=bool)
        bad = int(np.sum(given & ~np.isfinite(numbers)))
        labelled = np.isfinite(numbers) & scored
        y, s = numbers[labelled], part.scores[labelled]
        if y.size:
            realized = {name: m.regression_metric(name, y, s) for name in m.REGRESSION_METRICS}
        decided = y.size >= min_labels
    checks = tuple(
        _check(bound, realized, estimated, decided, int(labelled.sum()), min_labels)
        for bound in bounds
    )
    return PerformanceWindow(
        label=label,
        start=start,
        end=end,
        rows=part.rows,
        labelled=int(labelled.sum()),
        positives=positives,
        bad_labels=bad,
        realized=realized,
        estimated=estimated,
        checks=checks,
    )


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _check(
    bound: MetricBound,
    realized: Mapping[str, float | None],
    estimated: Mapping[str, float | None],
    decided: bool,
    labelled: int,
    min_labels: int,
) -> MetricCheck:
    if decided:
        figure = realized.get(bound.metric)
        if figure is None:
            return MetricCheck(
                bound.metric,
                bound.text,
                None,
                "realized",
                "failed",
                f"{bound.metric} is undefined on the labelled rows",
            )
        status: CheckStatus = "passed" if bound.holds(figure) else "failed"
        return MetricCheck(bound.metric, bound.text, figure, "realized", status)
    guess = estimated.get(bound.metric)
    reason = f"{labelled} labelled rows of both classes (need {min_labels})"
    if guess is None:
        return MetricCheck(
            bound.metric, bound.text, None, "none", "skipped", reason + "; no estimate"
        )
    status = "passed" if bound.holds(guess) else "failed"
    return MetricCheck(bound.metric, bound.text, guess, "estimated", status, reason)


def calibrator_from_dataset(
    registry: ModelRegistry,
    model: str,
    dataset: str,
    *,
    label: str,
    method: Literal["isotonic", "platt"] = "isotonic",
    allow_pickle: bool = False,
) -> ScoreCalibrator:
    """A calibrator fitted on a labelled reference dataset version scored by ``model``.

    ``label`` names the dataset's label column; its values are mapped to 0/1 by the
    model signature's classes (the positive class is ``classes[1]``).
    """
    version = _resolve(registry, model)
    if version.signature.task != "binary_classification":
        raise DataContractError(
            f"{version.reference} is not a binary classifier; nothing to calibrate."
        )
    table = registry.datasets.read_table(dataset)
    if label not in table.column_names:
        raise DataContractError(
            f"Dataset {dataset} has no column {label!r}.",
            hint=f"Columns: {', '.join(table.column_names[:30])}.",
        )
    truths = binary_truths(table.column(label).to_pylist(), version.signature.classes)
    if (truths < 0).any():
        row = int(np.flatnonzero(truths < 0)[0])
        raise DataContractError(
            f"Dataset {dataset} row {row + 1}: label {table.column(label)[row].as_py()!r} is "
            f"missing or not one of the classes {version.signature.classes}.",
            hint="Calibrate on rows whose label is known.",
        )
    loaded = registry.load(version.reference, allow_pickle=allow_pickle)
    scores = np.asarray(loaded.predict(table.drop_columns([label])).scores, dtype=np.float64)
    return ScoreCalibrator(method).fit(scores, truths)
