"""Prometheus metrics of the service, in the text exposition format (version 0.0.4).

Written here rather than through prometheus_client: the service updates a few counters
and histograms per request from its single event-loop thread, and plain dicts keyed by
label tuples cost about a microsecond per update. With several worker processes each
exports its own values (scrape each pod/process, as with prometheus_client without its
multiprocess mode).

Exported series::

    shipyard_requests_total{model,status}                      counter
    shipyard_request_duration_seconds{model}                   histogram (end to end, in the app)
    shipyard_predict_duration_seconds{model,arm}               histogram (the model call)
    shipyard_batch_rows{model,arm}                             histogram (rows per model call)
    shipyard_errors_total{model,kind}                          counter (validation, model_*)
    shipyard_flagged_values_total{model,field}                 counter (outside training range)
    shipyard_model_info{model,alias,arm,version,version_id}    gauge = 1 per served arm
    shipyard_model_swaps_total{model}                          counter
    shipyard_prediction_log_{written,dropped,failed}_total     counter
    shipyard_ready                                             gauge
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ["Counter", "Histogram", "Metrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(names: Sequence[str], values: Labels, extra: str = "") -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Counter:
    """A monotonically increasing count per label values."""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str]) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self, kind: str = "counter") -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {kind}"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_label_text(self.label_names, labels)} {_number(value)}"


class Histogram:
    """Cumulative buckets, sum and count per label values."""

    def __init__(
        self,
        name: str,
        help_text: str,
        label_names: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self.buckets = tuple(buckets)
        self._series: dict[Labels, list[float]] = {}  # per-bucket counts..., +Inf, sum

    def observe(self, labels: Labels, value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(self.buckets) + 2)
        series[bisect.bisect_left(self.buckets, value)] += 1
        series[-1] += value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, series in sorted(self._series.items()):
            cumulative = 0.0
            for bound, count in zip((*self.buckets, float("inf")), series, strict=False):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(float(bound))
                text = _label_text(self.label_names, labels, f'le="{le}"')
                yield f"{self.name}_bucket{text} {_number(cumulative)}"
            plain = _label_text(self.label_names, labels)
            yield f"{self.name}_sum{plain} {repr(float(series[-1]))}"
            yield f"{self.name}_count{plain} {_number(cumulative)}"


class Metrics:
    """Every metric the service exports; ``render()`` is the body of ``GET /metrics``."""

    def __init__(self) -> None:
        self.requests = Counter(
            "shipyard_requests_total", "HTTP requests by model and status.", ("model", "status")
        )
        self.request_seconds = Histogram(
            "shipyard_request_duration_seconds",
            "Time from request received to response sent, in the service.",
            ("model",),
            _LATENCY_BUCKETS,
        )
        self.predict_seconds = Histogram(
            "shipyard_predict_duration_seconds",
            "Time of one model call (a micro-batch).",
            ("model", "arm"),
            _LATENCY_BUCKETS,
        )
        self.batch_rows = Histogram(
            "shipyard_batch_rows", "Rows per model call.", ("model", "arm"), _BATCH_BUCKETS
        )
        self.errors = Counter(
            "shipyard_errors_total", "Failed requests by kind.", ("model", "kind")
        )
        self.flagged = Counter(
            "shipyard_flagged_values_total",
            "Input values outside what training saw (accepted, flagged).",
            ("model", "field"),
        )
        self.swaps = Counter(
            "shipyard_model_swaps_total", "Hot swaps to a new version or split.", ("model",)
        )
        self.model_info: dict[Labels, float] = {}
        self.log_stats: Callable[[], Mapping[str, float]] | None = None
        self.ready = False

    def set_model_info(self, model: str, arms: Iterable[tuple[str, str, int, str]]) -> None:
        """Replace the info series of ``model``: (alias, arm, version, version_id) each."""
        self.model_info = {key: v for key, v in self.model_info.items() if key[0] != model}
        for alias, arm, version, version_id in arms:
            self.model_info[(model, alias, arm, str(version), version_id)] = 1.0

    def render(self) -> str:
        lines: list[str] = []
        for metric in (self.requests, self.errors, self.flagged, self.swaps):
            lines.extend(metric.render())
        for histogram in (self.request_seconds, self.predict_seconds, self.batch_rows):
            lines.extend(histogram.render())
        lines.append("# HELP shipyard_model_info The versions served, one series per arm.")
        lines.append("# TYPE shipyard_model_info gauge")
        names = ("model", "alias", "arm", "version", "version_id")
        lines.extend(
            f"shipyard_model_info{_label_text(names, labels)} 1"
            for labels in sorted(self.model_info)
        )
        if self.log_stats is not None:
            for key, value in sorted(self.log_stats().items()):
                name = f"shipyard_prediction_log_{key}_total"
                lines.append(f"# HELP {name} Prediction log records {key}.")
                lines.append(f"# TYPE {name} counter")
                lines.append(f"{name} {_number(value)}")
        lines.append("# HELP shipyard_ready 1 once every model is loaded and warmed up.")
        lines.append("# TYPE shipyard_ready gauge")
        lines.append(f"shipyard_ready {1 if self.ready else 0}")
        return "\n".join(lines) + "\n"
