"""What performance monitoring reads: logged predictions joined to labels, and bounds.

:func:`read_logged_predictions` reads a model version's prediction log with each
record's label (an outer join on request id: None until the label arrives);
:func:`model_bounds` finds the bounds its metrics are held to (explicit thresholds,
``[gates.MODEL]`` in shipyard.toml, or the version's latest stored evaluation);
:func:`binary_truths` maps labels to 0/1 by the signature's classes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.errors import ConfigError, DataContractError

if TYPE_CHECKING:
    from shipyard.models.records import ModelVersion
    from shipyard.models.registry import ModelRegistry
    from shipyard.store.metadata import MetadataStore

__all__ = [
    "LoggedPredictions",
    "MetricBound",
    "binary_truths",
    "model_bounds",
    "read_logged_predictions",
]

_BOUND = re.compile(r"\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")
_COMPARE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}
_FALSE = {"0", "false", "no", "n", "f"}
_TRUE = {"1", "true", "yes", "y", "t"}


@dataclass(frozen=True)
class MetricBound:
    """A bound a metric is held to in service (``recall >= 0.6``), and where it came from."""

    metric: str
    op: str
    value: float
    source: str

    def holds(self, figure: float) -> bool:
        return bool(_COMPARE[self.op](figure, self.value))

    @property
    def text(self) -> str:
        return f"{self.op} {self.value:g}"


# --- Reading the log ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedPredictions:
    """Logged predictions of one model version with their labels (None: not yet), by time."""

    request_ids: list[str]
    logged_at: np.ndarray[Any, Any]  # datetime64[us], UTC
    scores: np.ndarray[Any, Any]  # NaN where the record has no score
    thresholds: np.ndarray[Any, Any]  # NaN where the record has no threshold
    truths: list[Any]

    @property
    def rows(self) -> int:
        return len(self.request_ids)

    def take(self, index: np.ndarray[Any, Any]) -> LoggedPredictions:
        return LoggedPredictions(
            [self.request_ids[i] for i in index.tolist()],
            self.logged_at[index],
            self.scores[index],
            self.thresholds[index],
            [self.truths[i] for i in index.tolist()],
        )


def read_logged_predictions(
    metadata: MetadataStore,
    model: str,
    version: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    arms: Sequence[str] | None = None,
    labelled_only: bool = False,
    newest: int | None = None,
) -> LoggedPredictions:
    """The log's records of ``model`` version ``version`` in ``[since, until)``, oldest
    first, each with its label (outer join on request id; ``labelled_only``: the
    labelled ones), limited to the ``newest`` records when given."""
    from sqlalchemy import select

    from shipyard.store.schema.monitoring import prediction_labels, prediction_log

    log, labels = prediction_log, prediction_labels
    query = (
        select(log.c.request_id, log.c.logged_at, log.c.score, log.c.threshold, labels.c.label)
        .select_from(
            log.join(labels, labels.c.request_id == log.c.request_id)
            if labelled_only
            else log.outerjoin(labels, labels.c.request_id == log.c.request_id)
        )
        # A failed call (error set) has no score to judge; the canary counts it.
        .where(log.c.model == model, log.c.version == version, log.c.error.is_(None))
        .order_by(log.c.logged_at, log.c.request_id, log.c.arm)
    )
    if since is not None:
        query = query.where(log.c.logged_at >= _utc(since, "since"))
    if until is not None:
        query = query.where(log.c.logged_at < _utc(until, "until"))
    if arms is not None:
        query = query.where(log.c.arm.in_(list(arms)))
    if newest is not None:
        # The newest rows, still returned oldest first.
        inner = query.order_by(None).order_by(log.c.logged_at.desc()).limit(newest).subquery()
        query = select(*inner.c).order_by(inner.c.logged_at, inner.c.request_id)
    ids: list[str] = []
    times: list[datetime] = []
    scores: list[float] = []
    thresholds: list[float] = []
    truths: list[Any] = []
    seen: set[str] = set()
    with metadata.connect() as conn:
        for request_id, logged_at, score, threshold, truth in conn.execute(query):
            if request_id in seen:  # a shadow and a champion row of one request and version
                continue
            seen.add(request_id)
            ids.append(request_id)
            times.append(logged_at)
            scores.append(math.nan if score is None else float(score))
            thresholds.append(math.nan if threshold is None else float(threshold))
            truths.append(truth)
    stamps = np.array(
        [t.astimezone(UTC).replace(tzinfo=None) for t in times], dtype="datetime64[us]"
    )
    return LoggedPredictions(
        ids, stamps, np.asarray(scores, dtype=np.float64), np.asarray(thresholds), truths
    )


def _utc(moment: Any, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise DataContractError(
            f"{name} is {moment!r}; expected a timezone-aware datetime.",
            hint="e.g. datetime(2026, 11, 1, tzinfo=UTC).",
        )
    return moment.astimezone(UTC)


# --- The model's bounds -------------------------------------------------------------------


def _parse_bounds(thresholds: Mapping[str, Any], source: str) -> list[MetricBound]:
    from shipyard.evaluation.metrics import METRICS

    if not isinstance(thresholds, Mapping):
        raise ConfigError(
            f'thresholds must map metric names to bounds such as ">= 0.6", not '
            f"{type(thresholds).__name__}."
        )
    bounds: list[MetricBound] = []
    for metric, text in thresholds.items():
        if metric not in METRICS:
            raise ConfigError(
                f"thresholds: metric {metric!r} is unknown.",
                hint=f"Known metrics: {', '.join(METRICS)}.",
            )
        match = _BOUND.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ConfigError(
                f'thresholds[{metric!r}] must be a bound such as ">= 0.6", not {text!r}.'
            )
        bounds.append(MetricBound(metric, match.group(1), float(match.group(2)), source))
    return bounds


def _bounds_from_gates(gates: Sequence[Any], source: str) -> list[MetricBound]:
    from shipyard.evaluation.gates import MetricGate, ThresholdGate

    bounds: list[MetricBound] = []
    for gate in gates:
        if isinstance(gate, MetricGate):
            bounds.append(MetricBound(gate.metric, gate.op, gate.value, source))
        elif isinstance(gate, ThresholdGate):
            # In service the threshold is fixed: hold both sides of the operating point.
            measured, fixed = gate.target.split("_at_")
            bounds.append(MetricBound(fixed, ">=", gate.at, source))
            bounds.append(MetricBound(measured, ">=", gate.minimum, source))
    return bounds


def _bounds_from_evaluation(registry: ModelRegistry, version: ModelVersion) -> list[MetricBound]:
    evaluation = registry.latest_evaluation(version.reference)
    if evaluation is None:
        return []
    source = f"evaluation {evaluation.id} of {version.reference}"
    bounds: list[MetricBound] = []
    for result in evaluation.gate_results:
        if result.kind != "metric":
            continue
        match = _BOUND.fullmatch(result.bound)
        if match is None:
            continue
        metric = result.detail.get("metric")
        if isinstance(metric, str):
            bounds.append(MetricBound(metric, match.group(1), float(match.group(2)), source))
            continue
        for target in ("recall_at_precision", "precision_at_recall"):
            if result.gate.startswith(target + "_"):
                measured, fixed = target.split("_at_")
                at = float(result.gate.removeprefix(target + "_"))
                bounds.append(MetricBound(fixed, ">=", at, source))
                bounds.append(MetricBound(measured, match.group(1), float(match.group(2)), source))
    return bounds


def model_bounds(
    registry: ModelRegistry, version: ModelVersion, thresholds: Mapping[str, Any] | None
) -> list[MetricBound]:
    if thresholds is not None:
        return _parse_bounds(thresholds, "thresholds argument")
    config = registry.config
    if config is not None and version.name in (config.sections.get("gates") or {}):
        from shipyard.evaluation.gate_config import gates_from_config

        return _bounds_from_gates(
            gates_from_config(config, version.name), f"[gates.{version.name}]"
        )
    return _bounds_from_evaluation(registry, version)


# --- Labels as 0/1 ------------------------------------------------------------------------


def binary_truths(truths: Sequence[Any], classes: Sequence[Any] | None) -> np.ndarray[Any, Any]:
    """1 (positive), 0 (negative), -1 (no label yet), -2 (a label that is neither class)."""
    out = np.full(len(truths), -1, dtype=np.int64)
    positive = negative = None
    if classes is not None and len(classes) == 2:
        negative, positive = classes[0], classes[1]
    for index, truth in enumerate(truths):
        if truth is None:
            continue
        if positive is not None:
            if truth == positive or str(truth) == str(positive):
                out[index] = 1
            elif truth == negative or str(truth) == str(negative):
                out[index] = 0
            else:
                out[index] = -2
            continue
        text = str(truth).strip().lower()
        if isinstance(truth, bool | int | float) and truth in (0, 1):
            out[index] = int(truth)
        elif text in _TRUE:
            out[index] = 1
        elif text in _FALSE:
            out[index] = 0
        else:
            out[index] = -2
    return out
