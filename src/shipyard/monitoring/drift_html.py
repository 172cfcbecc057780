"""The drift report as one self-contained HTML page, its plots drawn as inline SVG.

No script, no external stylesheet, font or image: the file opens offline and can be
mailed or attached to a ticket. Every name and value from the data is escaped.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.monitoring.drift_report import ColumnDrift, Distribution, DriftReport

__all__ = ["render_report", "svg_distribution"]

_REFERENCE_COLOR = "#7f8c9a"
_CURRENT_COLOR = "#2a7de1"
_DRIFT_COLOR = "#d64545"
_WIDTH, _HEIGHT = 420, 160
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#1d232b;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5b6672;font-size:13px;margin-bottom:16px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600}
.drift{background:#fde8e8;color:#a61b1b}.ok{background:#e6f4ea;color:#1e6b34}
table{border-collapse:collapse;font-size:13px}
td,th{padding:4px 10px;border-bottom:1px solid #e3e7eb;text-align:left}
th{background:#f5f7f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:16px}
.card{border:1px solid #e3e7eb;border-radius:8px;padding:12px}
.card h3{font-size:15px;margin:0 0 4px;word-break:break-all}.reason{font-size:12px;color:#a61b1b}
.legend{font-size:12px;color:#5b6672}.swatch{display:inline-block;width:10px;height:10px;
margin:0 4px 0 10px;vertical-align:middle}
"""


def _format(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3e}"
    return f"{value:.4f}"


def _badge(drifted: bool) -> str:
    return (
        '<span class="badge drift">drift</span>'
        if drifted
        else '<span class="badge ok">no drift</span>'
    )


def svg_distribution(distribution: Distribution, title: str) -> str:
    """An SVG of the reference and current shares: overlaid histograms (numeric) or
    paired bars per category (categorical)."""
    if distribution.kind == "numeric":
        return _svg_histogram(distribution, title)
    return _svg_categories(distribution, title)


def _svg_histogram(distribution: Distribution, title: str) -> str:
    edges = [float(e) for e in distribution.bins]
    if len(edges) < 2:
        return ""
    left, right, top, bottom = 44, 10, 10, 30
    plot_w, plot_h = _WIDTH - left - right, _HEIGHT - top - bottom
    peak = max([*distribution.reference, *distribution.current, 1e-12])
    width = plot_w / (len(edges) - 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">'
    ]
    for shares, color, opacity in (
        (distribution.reference, _REFERENCE_COLOR, 0.55),
        (distribution.current, _CURRENT_COLOR, 0.45),
    ):
        for i, share in enumerate(shares):
            h = plot_h * share / peak
            parts.append(
                f'<rect x="{left + i * width:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{max(width - 0.5, 0.5):.1f}" height="{h:.1f}" fill="{color}" '
                f'fill-opacity="{opacity}"><title>[{edges[i]:.4g}, {edges[i + 1]:.4g}): '
                f"{share:.2%}</title></rect>"
            )
    parts.append(_axes(left, top, plot_w, plot_h, peak))
    for x, value in ((left, edges[0]), (left + plot_w, edges[-1])):
        anchor = "start" if x == left else "end"
        parts.append(
            f'<text x="{x}" y="{_HEIGHT - 12}" font-size="11" text-anchor="{anchor}" '
            f'fill="#5b6672">{escape(f"{value:.4g}")}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _axes(left: int, top: int, plot_w: int, plot_h: int, peak: float) -> str:
    return (
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#9aa5b1"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#9aa5b1"/>'
        f'<text x="{left - 4}" y="{top + 9}" font-size="11" text-anchor="end" '
        f'fill="#5b6672">{peak:.0%}</text>'
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="11" text-anchor="end" '
        'fill="#5b6672">0%</text>'
    )


def _svg_categories(distribution: Distribution, title: str) -> str:
    labels = [str(b) for b in distribution.bins]
    if not labels:
        return ""
    row = 18
    left, top = 120, 6
    height = top + row * len(labels) + 8
    plot_w = _WIDTH - left - 50
    peak = max([*distribution.reference, *distribution.current, 1e-12])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">'
    ]
    for i, label in enumerate(labels):
        y = top + i * row
        short = label if len(label) <= 18 else label[:17] + "\u2026"
        parts.append(
            f'<text x="{left - 6}" y="{y + 12}" font-size="11" text-anchor="end" '
            f'fill="#1d232b"><title>{escape(label)}</title>{escape(short)}</text>'
        )
        for offset, shares, color in (
            (0, distribution.reference, _REFERENCE_COLOR),
            (8, distribution.current, _CURRENT_COLOR),
        ):
            share = shares[i] if i < len(shares) else 0.0
            parts.append(
                f'<rect x="{left}" y="{y + offset + 1}" width="{plot_w * share / peak:.1f}" '
                f'height="7" fill="{color}"><title>{share:.2%}</title></rect>'
            )
        current = distribution.current[i] if i < len(distribution.current) else 0.0
        parts.append(
            f'<text x="{_WIDTH - 4}" y="{y + 12}" font-size="10" text-anchor="end" '
            f'fill="#5b6672">{current:.1%}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _column_card(column: ColumnDrift) -> str:
    title = f"{column.name} ({column.role}, {column.kind})"
    plot = svg_distribution(column.distribution, title) if column.distribution else ""
    missing = ""
    if column.distribution is not None:
        ref_missing, cur_missing = column.distribution.missing
        missing = f"missing {ref_missing:.2%} \u2192 {cur_missing:.2%}"
    statistics = " \u00b7 ".join(
        f"{escape(r.method)} {_format(r.statistic)}"
        + (f" (p {_format(r.p_value)})" if r.p_value is not None else "")
        for r in column.results
    )
    reason = f'<div class="reason">{escape(column.reason)}</div>' if column.drifted else ""
    return (
        f'<div class="card"><h3>{escape(column.name)} {_badge(column.drifted)}</h3>'
        f'<div class="legend">{escape(column.role)} \u00b7 {escape(column.kind)} \u00b7 '
        f"{escape(missing)}"
        f'<span class="swatch" style="background:{_REFERENCE_COLOR}"></span>reference'
        f'<span class="swatch" style="background:{_CURRENT_COLOR}"></span>current</div>'
        f"{reason}{plot}"
        f'<div class="legend">{statistics}</div></div>'
    )


def _summary_rows(report: DriftReport) -> str:
    rows = []
    for column in sorted(report.columns, key=lambda c: (not c.drifted, c.role, c.name)):
        color = f' style="color:{_DRIFT_COLOR}"' if column.drifted else ""
        rows.append(
            f"<tr><td{color}>{escape(column.name)}</td><td>{escape(column.role)}</td>"
            f"<td>{escape(column.kind)}</td><td>{escape(column.method)}</td>"
            f'<td class="num">{_format(column.statistic)}</td>'
            f'<td class="num">{_format(column.threshold)}</td>'
            f'<td class="num">{_format(column.p_value)}</td>'
            f"<td>{_badge(column.drifted)}</td><td>{escape(column.reason)}</td></tr>"
        )
    return "".join(rows)


def render_report(report: DriftReport, title: str | None = None) -> str:
    """The whole page for one report."""
    heading = title or f"Drift: {report.window} against {report.reference}"
    multivariate = ""
    if report.multivariate is not None:
        m = report.multivariate
        multivariate = (
            "<h2>Multivariate check</h2>"
            f"<p>A classifier told reference rows from window rows with ROC AUC "
            f"<b>{m.auc:.3f}</b> (0.5: indistinguishable; alert at {m.threshold:.3f}) on "
            f"{m.reference_rows:,} + {m.current_rows:,} rows. {_badge(m.drifted)}</p>"
        )
    drifted = len(report.drifted_columns)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(heading)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(heading)} {_badge(report.alert)}</h1>"
        f'<div class="meta">reference {escape(report.reference)} ({report.reference_rows:,} '
        f"rows) \u00b7 window {escape(report.window)} ({report.window_rows:,} rows) \u00b7 "
        f"{drifted} of {len(report.columns)} columns drifted "
        f"({report.share_drifted:.0%} of features; dataset drift at "
        f"{report.drift_share:.0%}: {'yes' if report.dataset_drift else 'no'}) \u00b7 "
        f"{escape(report.created_at.isoformat(timespec='seconds'))}</div>"
        f"{multivariate}"
        "<h2>Columns</h2><table><thead><tr><th>column</th><th>role</th><th>kind</th>"
        "<th>method</th><th>statistic</th><th>threshold</th><th>p-value</th><th>verdict</th>"
        f"<th>why</th></tr></thead><tbody>{_summary_rows(report)}</tbody></table>"
        "<h2>Distributions, reference against current</h2>"
        f'<div class="grid">{"".join(_column_card(c) for c in report.columns)}</div>'
        "</body></html>"
    )
