"""The monitoring report as one self-contained HTML page: the newest window's
distributions against the reference (the drift report's page), drift over time across
the stored checks, and performance over time. Inline SVG, no script, no network."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["render_monitor_report", "svg_lines"]

_COLORS = ("#2a7de1", "#d64545", "#1e8a4c", "#8a5cd6", "#d6892a", "#4a5866")
_WIDTH, _HEIGHT = 640, 200


def svg_lines(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]]
) -> str:
    """A line chart of ``series`` (name -> one value per label, None for a gap)."""
    points = [v for values in series.values() for v in values if v is not None and math.isfinite(v)]
    if not labels or not points:
        return f"<p>{escape(title)}: no data yet.</p>"
    low, high = min(points + [0.0]), max(points)
    if high <= low:
        high = low + 1.0
    left, right, top, bottom = 48, 12, 12, 28
    plot_w, plot_h = _WIDTH - left - right, _HEIGHT - top - bottom
    step = plot_w / max(len(labels) - 1, 1)

    def xy(index: int, value: float) -> tuple[float, float]:
        return left + index * step, top + plot_h * (1 - (value - low) / (high - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>',
        f'<text x="4" y="{top + 10}" font-size="10">{high:.3g}</text>',
        f'<text x="4" y="{top + plot_h}" font-size="10">{low:.3g}</text>',
    ]
    for number, (name, values) in enumerate(series.items()):
        color = _COLORS[number % len(_COLORS)]
        coords = [
            xy(i, float(v)) for i, v in enumerate(values) if v is not None and math.isfinite(v)
        ]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline fill="none" stroke="{color}" points="{path}"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in coords)
        parts.append(
            f'<text x="{left + 8 + 130 * number}" y="{_HEIGHT - 6}" font-size="11" '
            f'fill="{color}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_monitor_report(
    model: str,
    checks: Sequence[Mapping[str, Any]],
    performance: Mapping[str, Any] | None,
    latest_drift_html: str | None,
) -> str:
    """The page: ``checks`` oldest first (stored check rows with their drift documents),
    ``performance`` a ``shipyard.performance.v1`` document over windows."""
    labels = [f"#{c['id']}" for c in checks]
    share = [(c.get("drift") or {}).get("share_drifted") for c in checks]
    columns: dict[str, list[float | None]] = {}
    for index, check in enumerate(checks):
        for column in (check.get("drift") or {}).get("columns", []):
            if column.get("drifted") or column["name"] in columns:
                columns.setdefault(column["name"], [None] * len(checks))[index] = column.get(
                    "statistic"
                )
    for values in columns.values():
        values.extend([None] * (len(checks) - len(values)))
    sections = [
        f"<h1>Monitoring report: {escape(model)}</h1>",
        f"<p>{len(checks)} stored check(s); alerts in "
        f"{sum(1 for c in checks if c.get('alert'))}.</p>",
        "<h2>Drift over time</h2>",
        svg_lines("share of drifted columns", labels, {"share drifted": share}),
        svg_lines("statistic of the columns that drifted", labels, dict(list(columns.items())[:6])),
    ]
    if performance and performance.get("windows"):
        windows = performance["windows"]
        names = sorted({k for w in windows for k, v in w["realized"].items() if v is not None})[:4]
        estimated = sorted({k for w in windows for k, v in w["estimated"].items() if v is not None})
        series = {f"{n} (realized)": [w["realized"].get(n) for w in windows] for n in names}
        series.update(
            {f"{n} (estimated)": [w["estimated"].get(n) for w in windows] for n in estimated[:2]}
        )
        sections += [
            "<h2>Performance over time</h2>",
            svg_lines("performance", [w["label"] for w in windows], series),
        ]
    else:
        sections.append("<h2>Performance over time</h2><p>No labelled windows yet.</p>")
    body = "\n".join(sections)
    if latest_drift_html:
        body += "\n<h2>Newest window against the reference</h2>\n" + _inner(latest_drift_html)
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>Monitoring {escape(model)}</title></head><body "
        'style="font-family:system-ui,sans-serif;margin:24px">'
        f"{body}</body></html>"
    )


def _inner(page: str) -> str:
    start = page.find("<body")
    end = page.rfind("</body>")
    if start < 0 or end < 0:
        return page
    head_start, head_end = page.find("<style"), page.find("</style>")
    style = page[head_start : head_end + 8] if 0 <= head_start < head_end else ""
    return style + page[page.find(">", start) + 1 : end]
