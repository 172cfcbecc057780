"""Runs side by side: params and final metrics in one table, metric curves as SVG.

``compare_runs`` gathers what to show (one batched read); ``render_html`` writes one
self-contained HTML page (inline CSS and SVG drawn here: no scripts, nothing fetched
from the network), which opens anywhere and can be attached to a ticket.

>>> with store.connect() as conn:
...     comparison = compare_runs(conn, [run_a, run_b])
>>> Path("compare.html").write_text(render_html(comparison))
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from sqlalchemy.engine import Connection

from shipyard.tracking.queries import load_runs, metric_histories
from shipyard.tracking.records import Metric, Run

__all__ = [
    "MAX_RUNS",
    "ComparedValue",
    "RunComparison",
    "compare_runs",
    "format_duration",
    "format_value",
    "comparison_to_dict",
    "metric_chart_svg",
    "render_html",
]

MAX_RUNS = 25
"""Runs one comparison shows at most."""
MAX_POINTS = 1_000
"""Points drawn per curve; longer histories are thinned evenly (first and last kept)."""
PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ComparedValue:
    """One row of the comparison: a key and each run's value (``None``: the run lacks it)."""

    key: str
    values: tuple[str | float | None, ...]

    @property
    def differs(self) -> bool:
        return len({_same(value) for value in self.values}) > 1


@dataclass(frozen=True, slots=True)
class RunComparison:
    runs: tuple[Run, ...]
    params: tuple[ComparedValue, ...]
    metrics: tuple[ComparedValue, ...]
    """Final (latest) values."""
    histories: dict[str, dict[str, list[Metric]]]
    """``{run_id: {key: [Metric...]}}``, for the curves."""


def compare_runs(conn: Connection, run_ids: Sequence[str]) -> RunComparison:
    """Load runs (ids or 6+ hex prefixes) and line up their params and metrics.

    >>> compare_runs(conn, ["3f9a1c", "b7e2d0"]).params[0].differs
    True
    """
    if not 1 <= len(run_ids) <= MAX_RUNS:
        from shipyard.tracking.validation import TrackingInputError

        raise TrackingInputError(
            f"Comparing {len(run_ids)} runs; give 1 to {MAX_RUNS}.",
            hint="Narrow the list, e.g. with `shipyard runs list --filter ...`.",
        )
    runs = tuple({run.id: run for run in load_runs(conn, run_ids)}.values())
    param_keys = sorted({key for run in runs for key in run.params})
    metric_keys = sorted({key for run in runs for key in run.metrics})
    return RunComparison(
        runs=runs,
        params=tuple(
            ComparedValue(key, tuple(run.params.get(key) for run in runs)) for key in param_keys
        ),
        metrics=tuple(
            ComparedValue(key, tuple(run.metrics.get(key) for run in runs)) for key in metric_keys
        ),
        histories=metric_histories(conn, [run.id for run in runs]),
    )


def comparison_to_dict(comparison: RunComparison) -> dict[str, Any]:
    """The comparison as JSON-ready data (non-finite metric values as strings)."""

    def plain(value: str | float | None) -> str | float | None:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value

    def rows(values: Sequence[ComparedValue]) -> dict[str, Any]:
        return {
            row.key: {
                "differs": row.differs,
                "values": {
                    run.id: plain(value)
                    for run, value in zip(comparison.runs, row.values, strict=True)
                },
            }
            for row in values
        }

    return {
        "runs": [
            {
                "id": run.id,
                "name": run.name,
                "experiment_id": run.experiment_id,
                "status": run.status,
                "start_time": run.start_time.isoformat(),
                "end_time": run.end_time.isoformat() if run.end_time else None,
                "duration_seconds": run.duration_seconds,
            }
            for run in comparison.runs
        ],
        "params": rows(comparison.params),
        "metrics": rows(comparison.metrics),
    }


# --- HTML ------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       margin: 2em auto; max-width: 1200px; padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.differs td, tr.differs th { background: #fff6d6; }
td.missing { color: #999; }
.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .3em; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: .2em; }
.note { color: #666; }
"""


def render_html(comparison: RunComparison, *, title: str | None = None) -> str:
    """One self-contained HTML page: runs, params, final metrics (rows that differ
    highlighted) and a chart per metric with more than one logged point."""
    colors = {run.id: PALETTE[i % len(PALETTE)] for i, run in enumerate(comparison.runs)}
    heading = title or f"Comparing {len(comparison.runs)} runs"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(heading)}</h1>",
        f'<p class="note">Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by Shipyard. '
        "Rows whose values differ are highlighted.</p>",
        _runs_table(comparison, colors),
        "<h2>Params</h2>",
        _values_table(comparison, comparison.params, numeric=False),
        "<h2>Final metrics</h2>",
        _values_table(comparison, comparison.metrics, numeric=True),
        _charts(comparison, colors),
        "</body></html>",
    ]
    return "\n".join(parts)


def _runs_table(comparison: RunComparison, colors: dict[str, str]) -> str:
    rows = []
    for run in comparison.runs:
        duration = run.duration_seconds
        rows.append(
            "<tr>"
            f'<td><span class="swatch" style="background:{colors[run.id]}"></span>'
            f"<code>{escape(run.id)}</code></td>"
            f"<td>{escape(run.name)}</td><td>{escape(run.status)}</td>"
            f"<td>{run.start_time:%Y-%m-%d %H:%M:%S}</td>"
            f'<td class="num">{escape(format_duration(duration))}</td>'
            "</tr>"
        )
    header = "<tr><th>Run</th><th>Name</th><th>Status</th><th>Start (UTC)</th><th>Duration</th>"
    return f"<table>{header}</tr>{''.join(rows)}</table>"


def _values_table(
    comparison: RunComparison, values: Sequence[ComparedValue], *, numeric: bool
) -> str:
    if not values:
        return '<p class="note">None logged.</p>'
    header = "".join(
        f"<th>{escape(run.name)}<br><code>{escape(run.id[:8])}</code></th>"
        for run in comparison.runs
    )
    rows = []
    for row in values:
        cells = []
        for value in row.values:
            if value is None:
                cells.append('<td class="missing">-</td>')
            else:
                css = ' class="num"' if numeric else ""
                cells.append(f"<td{css}>{escape(format_value(value))}</td>")
        css = ' class="differs"' if row.differs else ""
        rows.append(f"<tr{css}><th>{escape(row.key)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>Key</th>{header}</tr>{''.join(rows)}</table>"


def _charts(comparison: RunComparison, colors: dict[str, str]) -> str:
    keys = sorted(
        {
            key
            for by_key in comparison.histories.values()
            for key, points in by_key.items()
            if len(points) > 1
        }
    )
    if not keys:
        return '<h2>Metric curves</h2><p class="note">No metric has more than one point.</p>'
    figures = []
    for key in keys:
        series = [
            (run.name, colors[run.id], comparison.histories.get(run.id, {}).get(key, []))
            for run in comparison.runs
        ]
        figures.append(f"<figure><figcaption>{escape(key)}</figcaption>")
        figures.append(metric_chart_svg(key, series) + "</figure>")
    return f'<h2>Metric curves</h2><div class="charts">{"".join(figures)}</div>'


def metric_chart_svg(
    key: str,
    series: Sequence[tuple[str, str, Sequence[Metric]]],
    *,
    width: int = 520,
    height: int = 280,
) -> str:
    """An SVG line chart of one metric by step: one ``(label, color, points)`` per run.

    Non-finite values are skipped; a run with one point shows as a dot.
    """
    left, right, top, bottom = 64, 16, 12, 64
    curves = [(label, color, _thin([p for p in points if math.isfinite(p.value)]))
              for label, color, points in series]  # fmt: skip
    xs = [p.step for _, _, points in curves for p in points]
    ys = [p.value for _, _, points in curves for p in points]
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(key)} by step">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" '
        'stroke="#ccc"/>',
    ]
    if not xs:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text>')
        return "".join(parts) + "</svg>"
    x_low, x_high = _padded(min(xs), max(xs))
    y_low, y_high = _padded(min(ys), max(ys))

    def sx(x: float) -> float:
        return left + _fraction(x, x_low, x_high) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - _fraction(y, y_low, y_high) * plot_h

    for tick in _ticks(y_low, y_high):
        y = sy(tick)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{escape(format_value(tick))}</text>"
        )
    for tick in _ticks(x_low, x_high):
        x = sx(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
            f'stroke="#999"/><text x="{x:.1f}" y="{top + plot_h + 16}" font-size="11" '
            f'text-anchor="middle">{escape(format_value(tick))}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{top + plot_h + 32}" font-size="11" '
        'text-anchor="middle">step</text>'
    )
    for label, color, points in curves:
        if len(points) == 1:
            parts.append(
                f'<circle cx="{sx(points[0].step):.1f}" cy="{sy(points[0].value):.1f}" r="3" '
                f'fill="{color}"><title>{escape(label)}</title></circle>'
            )
        elif points:
            path = " ".join(f"{sx(p.step):.1f},{sy(p.value):.1f}" for p in points)
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{path}">'
                f"<title>{escape(label)}</title></polyline>"
            )
    legend_y = height - 14
    x = float(left)
    for label, color, _ in curves:
        shown = label if len(label) <= 24 else label[:23] + "…"
        parts.append(
            f'<rect x="{x:.0f}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14:.0f}" y="{legend_y}" font-size="11">{escape(shown)}</text>'
        )
        x += 24 + 6.5 * len(shown)
    return "".join(parts) + "</svg>"


def format_value(value: str | float) -> str:
    """A param as written; a number with up to 6 significant digits."""
    if isinstance(value, str):
        return value
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _same(value: str | float | None) -> object:
    if isinstance(value, float) and math.isnan(value):
        return "nan"  # NaN != NaN, but two runs with NaN agree
    return value


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {rest:02d}s" if minutes else f"{seconds:.1f}s"


def _thin(points: Sequence[Metric]) -> list[Metric]:
    if len(points) <= MAX_POINTS:
        return list(points)
    stride = (len(points) - 1) / (MAX_POINTS - 1)
    return [points[round(i * stride)] for i in range(MAX_POINTS)]


def _padded(low: float, high: float) -> tuple[float, float]:
    if high > low:
        return low, high
    spread = abs(low) * 0.05 or 1.0
    return max(low - spread, -sys.float_info.max), min(high + spread, sys.float_info.max)


def _fraction(value: float, low: float, high: float) -> float:
    # Halved first: high - low overflows for values near the float limits.
    return (value * 0.5 - low * 0.5) / (high * 0.5 - low * 0.5)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round numbers between ``low`` and ``high``."""
    raw = (high * 0.5 - low * 0.5) / count * 2
    if not math.isfinite(raw) or raw <= 0:
        return [low, high]
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    if step <= 0 or not math.isfinite(first):
        return [low, high]
    ticks = [round(first + i * step, 12) for i in range(3 * count)]  # by index: never stalls
    within = [tick for tick in ticks if low <= tick <= high + step * 1e-9]
    return within or [low, high]
