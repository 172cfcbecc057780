"""Promotion gates: the business targets a model version must meet, declared in code.

>>> import shipyard.evaluation as sy_eval
>>> gates = [
...     sy_eval.recall_at_precision(0.80, min_recall=0.60),   # chooses the threshold
...     sy_eval.metric("roc_auc", ">=", 0.85),
...     sy_eval.champion(metric="roc_auc", max_drop=0.01),
...     sy_eval.latency(p99_ms=200),
...     sy_eval.fairness(metric="recall", by="Gender", max_gap=0.10),
...     sy_eval.robustness(),
... ]

Each gate gives a ``GateResult``: the figure, the bound, ``passed``/``failed``/``skipped``
and a detail. A gate that chooses a decision threshold (``recall_at_precision``,
``precision_at_recall``) runs first; every thresholded metric is then computed at it.
Factories validate their arguments (``ConfigError`` naming the argument), so the same
checks cover gates written in ``shipyard.toml``.
"""

from __future__ import annotations

import difflib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from shipyard.core.errors import ConfigError
from shipyard.core.validation import check_number
from shipyard.evaluation import metrics as m
from shipyard.evaluation.probes import PROBES, run_probes
from shipyard.evaluation.slices import check_bins, slice_labels
from shipyard.models.records import GateResult, GateStatus, Task

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.evaluation.scoring import Predictor

__all__ = [
    "ChampionGate",
    "ChampionScores",
    "ChampionUnavailable",
    "FairnessGate",
    "Gate",
    "GateContext",
    "LatencyGate",
    "MetricGate",
    "RobustnessGate",
    "ThresholdGate",
    "champion",
    "fairness",
    "latency",
    "metric",
    "precision_at_recall",
    "recall_at_precision",
    "robustness",
]

Operator = Literal[">=", ">", "<=", "<"]
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}
_THRESHOLDED = frozenset({"accuracy", "precision", "recall", "f1"})


@dataclass(frozen=True)
class ChampionScores:
    """The current champion's scores on the same evaluation rows."""

    reference: str
    scores: np.ndarray[Any, Any]
    threshold: float


@dataclass(frozen=True)
class ChampionUnavailable:
    """The champion exists but cannot be compared here (not loadable, cannot score)."""

    reason: str


@dataclass
class GateContext:
    """What every gate sees: the model, the evaluation rows, labels and scores.

    ``y`` is 0/1 for a binary classifier (1 = the positive class) and the target value for
    a regressor; ``threshold`` is the decision threshold (binary classifiers); ``frame``
    holds every column of the evaluation set (slicing columns too), ``features`` the
    model's inputs in signature order.
    """

    predictor: Predictor
    task: Task
    features: pa.Table
    frame: pa.Table
    y: np.ndarray[Any, Any]
    scores: np.ndarray[Any, Any]
    threshold: float | None = None
    champion: Callable[[], ChampionScores | ChampionUnavailable | str] | None = None

    def metric(
        self,
        name: str,
        mask: np.ndarray[Any, Any] | None = None,
        *,
        scores: np.ndarray[Any, Any] | None = None,
        threshold: float | None = None,
    ) -> float:
        """``name`` on the rows in ``mask`` (all rows by default), NaN when undefined."""
        y = self.y if mask is None else self.y[mask]
        s = self.scores if scores is None else scores
        s = s if mask is None else s[mask]
        if y.size == 0:
            return math.nan
        if self.task == "regression":
            return m.regression_metric(name, y, s)
        cut = threshold if threshold is not None else (self.threshold or 0.5)
        if name == "recall" and not y.any():
            return math.nan  # no positives: recall is undefined, not 0
        if name == "precision" and not (s >= cut).any():
            return math.nan
        return m.binary_metric(name, y, s, cut)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class Gate(ABC):
    """One promotion gate. ``evaluate`` never raises for the model's failings: it reports."""

    kind: ClassVar[str]
    chooses_threshold: ClassVar[bool] = False
    name: str

    @abstractmethod
    def bound(self) -> str:
        """The bound as people read it (``>= 0.6``, ``<= 200 ms``)."""

    @abstractmethod
    def evaluate(self, context: GateContext) -> GateResult:
        """Run the gate on ``context``."""

    def check_task(self, task: Task) -> None:  # noqa: B027 - most gates fit every task
        """Raise ``ConfigError`` when this gate cannot apply to a model of ``task``."""

    def check_data(self, frame: pa.Table) -> None:  # noqa: B027 - most gates need no column
        """Raise ``ConfigError`` when the evaluation data lacks what this gate reads."""

    def result(self, figure: float | None, status: GateStatus, **detail: Any) -> GateResult:
        return GateResult(self.name, self.kind, figure, self.bound(), status, detail)


# --- Metric thresholds ------------------------------------------------------------------


def _check_metric_name(name: Any, *, where: str) -> str:
    if not isinstance(name, str) or name not in m.METRICS:
        close = difflib.get_close_matches(str(name), m.METRICS, n=1)
        raise ConfigError(
            f"{where}: metric {name!r} is unknown.",
            hint=(f"Did you mean {close[0]!r}? " if close else "")
            + f"Known metrics: {', '.join(m.METRICS)}.",
        )
    return name


def _metric_fits_task(metric_name: str, task: Task, gate: str) -> None:
    regression = task == "regression"
    if regression != (metric_name in m.REGRESSION_METRICS):
        kind = "regression" if regression else "classification"
        allowed = m.REGRESSION_METRICS if regression else m.BINARY_METRICS
        raise ConfigError(
            f"Gate {gate!r}: metric {metric_name!r} does not apply to a {kind} model.",
            hint=f"Use one of {', '.join(allowed)}.",
        )
    if task == "multiclass_classification":
        raise ConfigError(
            f"Gate {gate!r}: metric gates support binary classifiers and regressors; this "
            "model is a multiclass classifier.",
            hint="Evaluate one class against the rest as a binary model.",
        )


@dataclass(frozen=True)
class MetricGate(Gate):
    """``metric op value`` on the whole evaluation set, e.g. ``recall >= 0.6``."""

    metric: str
    op: Operator
    value: float
    name: str = ""
    kind: ClassVar[str] = "metric"

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.metric)

    def bound(self) -> str:
        return f"{self.op} {self.value:g}"

    def check_task(self, task: Task) -> None:
        _metric_fits_task(self.metric, task, self.name)

    def evaluate(self, context: GateContext) -> GateResult:
        figure = context.metric(self.metric)
        detail: dict[str, Any] = {"metric": self.metric}
        if self.metric in _THRESHOLDED and context.threshold is not None:
            detail["threshold"] = context.threshold
        if not math.isfinite(figure):
            detail["reason"] = f"{self.metric} is undefined on this data (one class only?)"
            return self.result(None, "failed", **detail)
        ok = _OPERATORS[self.op](figure, self.value)
        return self.result(figure, "passed" if ok else "failed", **detail)


def metric(
    name: str, op: str, value: float, *, gate_name: str | None = None, where: str = "metric()"
) -> MetricGate:
    """A metric threshold: ``metric("recall", ">=", 0.6)``; ``op`` is >=, >, <= or <."""
    name = _check_metric_name(name, where=where)
    if op not in _OPERATORS:
        raise ConfigError(f"{where}: operator {op!r} is not one of >=, >, <=, <.")
    bound = check_number(value, where=f"{where}: the bound of {name}")
    return MetricGate(name, op, bound, gate_name or "")  # type: ignore[arg-type]


@dataclass(frozen=True)
class ThresholdGate(Gate):
    """The best recall at a precision (or precision at a recall), and its threshold.

    It chooses the version's decision threshold: the one with the highest recall among
    those whose precision is at least ``at`` (or the reverse), and fails when the best
    figure is below ``minimum`` or no threshold reaches ``at``.
    """

    target: Literal["recall_at_precision", "precision_at_recall"]
    at: float
    minimum: float
    name: str = ""
    kind: ClassVar[str] = "metric"
    chooses_threshold: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"{self.target}_{self.at:g}")

    def bound(self) -> str:
        return f">= {self.minimum:g}"

    def check_task(self, task: Task) -> None:
        if task != "binary_classification":
            raise ConfigError(
                f"Gate {self.name!r} needs a binary classifier; this model's task is {task}."
            )

    def operating_point(self, context: GateContext) -> m.OperatingPoint | None:
        if self.target == "recall_at_precision":
            return m.recall_at_precision(context.y, context.scores, self.at)
        return m.precision_at_recall(context.y, context.scores, self.at)

    def evaluate(self, context: GateContext) -> GateResult:
        measured, fixed = self.target.split("_at_")
        if not context.y.any():
            return self.result(None, "failed", reason="the evaluation set has no positive rows")
        point = self.operating_point(context)
        if point is None:
            return self.result(0.0, "failed", reason=f"no threshold reaches {fixed} >= {self.at:g}")
        figure = point.recall if measured == "recall" else point.precision
        status: GateStatus = "passed" if figure >= self.minimum else "failed"
        return self.result(
            figure,
            status,
            threshold=point.threshold,
            precision=point.precision,
            recall=point.recall,
        )


def recall_at_precision(
    precision: float, *, min_recall: float, where: str = "recall_at_precision()"
) -> ThresholdGate:
    """Recall at the threshold with the best recall whose precision is ``>= precision``."""
    at = check_number(precision, where=f"{where}: precision", low=0.0, high=1.0)
    low = check_number(min_recall, where=f"{where}: min_recall", low=0.0, high=1.0)
    return ThresholdGate("recall_at_precision", at, low)


def precision_at_recall(
    recall: float, *, min_precision: float, where: str = "precision_at_recall()"
) -> ThresholdGate:
    """Precision at the threshold with the best precision whose recall is ``>= recall``."""
    at = check_number(recall, where=f"{where}: recall", low=0.0, high=1.0)
    low = check_number(min_precision, where=f"{where}: min_precision", low=0.0, high=1.0)
    return ThresholdGate("precision_at_recall", at, low)


# --- Champion comparison ----------------------------------------------------------------


@dataclass(frozen=True)
class ChampionGate(Gate):
    """Not worse than the current champion by more than ``max_drop`` on the same rows.

    The figure is the drop (champion minus candidate; for lower-is-better metrics such as
    log loss, candidate minus champion). Skipped when there is no champion yet.
    """

    metric: str
    max_drop: float
    alias: str = "champion"
    name: str = ""
    kind: ClassVar[str] = "champion"

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"{self.alias}_{self.metric}")

    def bound(self) -> str:
        return f"drop <= {self.max_drop:g}"

    def check_task(self, task: Task) -> None:
        _metric_fits_task(self.metric, task, self.name)

    def evaluate(self, context: GateContext) -> GateResult:
        found = context.champion() if context.champion is not None else "no registry given"
        if isinstance(found, str):
            return self.result(None, "skipped", reason=found)
        if isinstance(found, ChampionUnavailable):
            return self.result(None, "failed", reason=found.reason)
        candidate = context.metric(self.metric)
        incumbent = context.metric(self.metric, scores=found.scores, threshold=found.threshold)
        detail = {
            "metric": self.metric,
            "candidate": _finite(candidate),
            "champion": _finite(incumbent),
            "champion_version": found.reference,
        }
        if not (math.isfinite(candidate) and math.isfinite(incumbent)):
            return self.result(None, "failed", reason="the metric is undefined here", **detail)
        drop = candidate - incumbent if self.metric in m.LOWER_IS_BETTER else incumbent - candidate
        status: GateStatus = "passed" if drop <= self.max_drop else "failed"
        return self.result(drop, status, **detail)


def champion(
    *, metric: str, max_drop: float = 0.0, alias: str = "champion", where: str = "champion()"
) -> ChampionGate:
    """Compare with the version behind ``alias`` on the same data."""
    name = _check_metric_name(metric, where=where)
    drop = check_number(max_drop, where=f"{where}: max_drop", low=0.0)
    if not isinstance(alias, str) or not alias:
        raise ConfigError(f"{where}: alias must be a non-empty string, not {alias!r}.")
    return ChampionGate(name, drop, alias)


# --- Latency ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyGate(Gate):
    """p99 of single-row ``predict`` on this machine within ``p99_ms``.

    It times up to ``samples`` calls (after ``warmup`` untimed ones), each on one
    evaluation row, and stops early once enough calls exceed the budget that the p99
    cannot meet it, or after ``max_seconds``.
    """

    p99_ms: float
    samples: int = 200
    warmup: int = 3
    max_seconds: float = 20.0
    name: str = "latency_p99"
    kind: ClassVar[str] = "latency"

    def bound(self) -> str:
        return f"<= {self.p99_ms:g} ms"

    def evaluate(self, context: GateContext) -> GateResult:
        rows = context.features.slice(0, max(self.samples, 1)).to_pylist()
        if not rows:
            return self.result(None, "skipped", reason="no rows to time")
        # The p99 (linear interpolation) exceeds the budget once n - k timings do.
        cut_index = math.floor(0.99 * (self.samples - 1))
        too_slow_limit = self.samples - cut_index
        timings: list[float] = []
        over = 0
        started = time.perf_counter()
        stopped = ""
        try:
            for index in range(self.warmup):
                context.predictor.predict([rows[index % len(rows)]])
            for index in range(self.samples):
                row = rows[index % len(rows)]
                begin = time.perf_counter_ns()
                context.predictor.predict([row])
                elapsed_ms = (time.perf_counter_ns() - begin) / 1e6
                timings.append(elapsed_ms)
                over += elapsed_ms > self.p99_ms
                if over >= too_slow_limit:
                    stopped = f"stopped after {len(timings)} calls: {over} exceeded the budget"
                    break
                if time.perf_counter() - started > self.max_seconds:
                    stopped = f"stopped after {len(timings)} calls: time cap {self.max_seconds:g} s"
                    break
        except Exception as exc:  # noqa: BLE001 - a crash is this gate's finding, not ours
            return self.result(
                None, "failed", reason=f"single-row predict raised {type(exc).__name__}: {exc}"
            )
        values = np.asarray(timings)
        p99 = float(np.percentile(values, 99))
        status: GateStatus = "passed" if p99 <= self.p99_ms else "failed"
        detail: dict[str, Any] = {
            "calls": len(timings),
            "p50_ms": float(np.percentile(values, 50)),
            "p90_ms": float(np.percentile(values, 90)),
            "max_ms": float(values.max()),
        }
        if stopped:
            detail["note"] = stopped
        return self.result(p99, status, **detail)


def latency(
    *, p99_ms: float, samples: int = 200, max_seconds: float = 20.0, where: str = "latency()"
) -> LatencyGate:
    """A p99 budget for single-row predict, in milliseconds."""
    budget = check_number(p99_ms, where=f"{where}: p99_ms", low=0.0)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 10 <= samples <= 100_000:
        raise ConfigError(
            f"{where}: samples must be an integer from 10 to 100000, not {samples!r}."
        )
    cap = check_number(max_seconds, where=f"{where}: max_seconds", low=0.1)
    return LatencyGate(budget, samples, max_seconds=cap)


# --- Fairness ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FairnessGate(Gate):
    """The metric per slice of ``by`` and the largest gap between slices, within ``max_gap``.

    Slices with fewer than ``min_rows`` rows, or where the metric is undefined (recall of
    a slice without positives), are reported and left out of the gap.
    """

    metric: str
    by: str
    max_gap: float
    min_rows: int = 20
    bins: tuple[float, ...] | None = None
    name: str = ""
    kind: ClassVar[str] = "fairness"

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"fairness_{self.metric}_by_{self.by}")

    def bound(self) -> str:
        return f"gap <= {self.max_gap:g}"

    def check_task(self, task: Task) -> None:
        _metric_fits_task(self.metric, task, self.name)

    def check_data(self, frame: pa.Table) -> None:
        slice_labels(frame, self.by, self.bins, where=f"Gate {self.name!r}")

    def evaluate(self, context: GateContext) -> GateResult:
        labels = slice_labels(context.frame, self.by, self.bins, where=f"Gate {self.name!r}")
        slices: dict[str, dict[str, Any]] = {}
        compared: dict[str, float] = {}
        for value in sorted(set(labels.tolist())):
            mask = labels == value
            rows = int(mask.sum())
            figure = context.metric(self.metric, mask)
            entry: dict[str, Any] = {"rows": rows, self.metric: _finite(figure)}
            if rows < self.min_rows:
                entry["excluded"] = f"fewer than {self.min_rows} rows"
            elif not math.isfinite(figure):
                entry["excluded"] = f"{self.metric} is undefined in this slice"
            else:
                compared[value] = figure
            slices[value] = entry
        detail: dict[str, Any] = {"metric": self.metric, "by": self.by, "slices": slices}
        if len(compared) < 2:
            return self.result(
                None, "skipped", reason="fewer than two slices can be compared", **detail
            )
        best = max(compared, key=compared.__getitem__)
        worst = min(compared, key=compared.__getitem__)
        gap = compared[best] - compared[worst]
        status: GateStatus = "passed" if gap <= self.max_gap else "failed"
        return self.result(gap, status, highest=best, lowest=worst, **detail)


def fairness(
    *,
    metric: str,
    by: str,
    max_gap: float,
    min_rows: int = 20,
    bins: Sequence[float] | None = None,
    where: str = "fairness()",
) -> FairnessGate:
    """The largest gap of ``metric`` between slices of column ``by`` within ``max_gap``."""
    name = _check_metric_name(metric, where=where)
    if not isinstance(by, str) or not by:
        raise ConfigError(f"{where}: by must name a column, not {by!r}.")
    gap = check_number(max_gap, where=f"{where}: max_gap", low=0.0)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise ConfigError(f"{where}: min_rows must be a positive integer, not {min_rows!r}.")
    return FairnessGate(name, by, gap, min_rows, check_bins(bins, where=f"{where}: bins"))


# --- Robustness -------------------------------------------------------------------------


@dataclass(frozen=True)
class RobustnessGate(Gate):
    """Hostile rows beside valid control rows: answered validly or rejected by the contract.

    The figure is the number of failed probes; each probe's outcome is in the detail.
    """

    probes: tuple[str, ...] = PROBES
    control_rows: int = 5
    name: str = "robustness"
    kind: ClassVar[str] = "robustness"

    def bound(self) -> str:
        return "0 failed probes"

    def evaluate(self, context: GateContext) -> GateResult:
        outcomes = run_probes(context.predictor, context.features, self.probes, self.control_rows)
        failed = [o for o in outcomes if o["status"] == "failed"]
        status: GateStatus = "failed" if failed else "passed"
        return self.result(float(len(failed)), status, probes=outcomes)


def robustness(
    *, probes: Sequence[str] | None = None, control_rows: int = 5, where: str = "robustness()"
) -> RobustnessGate:
    """Probe with missing values, out-of-range numbers, unseen categories, extreme values,
    an empty batch and a wrong column order (all by default)."""
    chosen = tuple(probes) if probes is not None else PROBES
    if isinstance(probes, str) or not chosen:
        raise ConfigError(f"{where}: probes must be a non-empty list of probe names.")
    for probe in chosen:
        if probe not in PROBES:
            close = difflib.get_close_matches(str(probe), PROBES, n=1)
            raise ConfigError(
                f"{where}: probe {probe!r} is unknown.",
                hint=(f"Did you mean {close[0]!r}? " if close else "")
                + f"Probes: {', '.join(PROBES)}.",
            )
    if (
        isinstance(control_rows, bool)
        or not isinstance(control_rows, int)
        or not (1 <= control_rows <= 100)
    ):
        raise ConfigError(f"{where}: control_rows must be an integer from 1 to 100.")
    return RobustnessGate(chosen, control_rows)


GATE_KINDS: tuple[str, ...] = ("metric", "champion", "latency", "fairness", "robustness")
