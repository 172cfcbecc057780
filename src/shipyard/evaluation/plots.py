"""Evaluation plots as small self-contained SVG strings: no plotting library, no files.

Each function returns one ``<svg>`` element that a model card inlines as is (HTML) or as
a data URI (Markdown). Every label is XML-escaped: column and class names come from data.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np

from shipyard.evaluation.metrics import (
    calibration_curve,
    confusion_matrix,
    precision_recall_curve,
    roc_curve,
)

__all__ = [
    "binary_plots",
    "calibration_svg",
    "confusion_svg",
    "line_chart_svg",
    "pr_svg",
    "regression_plots",
    "residuals_svg",
    "roc_svg",
]

_WIDTH, _HEIGHT = 320, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 28, 40
_MAX_POINTS = 400
_LINE = "#1f6feb"
_GUIDE = "#8c959f"
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _number(value: float) -> str:
    return f"{value:.1f}"


def _thin(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> tuple[Any, Any]:
    """At most a few hundred points: a card stays small however many rows were scored."""
    if x.size <= _MAX_POINTS:
        return x, y
    keep = np.unique(np.r_[np.linspace(0, x.size - 1, _MAX_POINTS).astype(int), x.size - 1])
    return x[keep], y[keep]


def _frame(title: str, x_label: str, y_label: str) -> list[str]:
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<rect x="0" y="0" width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
        f'<text x="{_WIDTH / 2}" y="16" text-anchor="middle" {_FONT} font-weight="bold">'
        f"{escape(title)}</text>",
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="{_GUIDE}"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _LEFT + tick * plot_w
        y = _TOP + (1 - tick) * plot_h
        parts.append(
            f'<text x="{_number(x)}" y="{_TOP + plot_h + 14}" text-anchor="middle" {_FONT}>'
            f"{tick:g}</text>"
        )
        parts.append(
            f'<text x="{_LEFT - 4}" y="{_number(y + 4)}" text-anchor="end" {_FONT}>{tick:g}</text>'
        )
    parts.append(
        f'<text x="{_LEFT + plot_w / 2}" y="{_HEIGHT - 6}" text-anchor="middle" {_FONT}>'
        f"{escape(x_label)}</text>"
    )
    parts.append(
        f'<text x="12" y="{_TOP + plot_h / 2}" text-anchor="middle" {_FONT} '
        f'transform="rotate(-90 12 {_TOP + plot_h / 2})">{escape(y_label)}</text>'
    )
    return parts


def _points(x: Sequence[float], y: Sequence[float], low: float, high: float) -> str:
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    span = (high - low) or 1.0
    return " ".join(
        f"{_number(_LEFT + (float(a) - low) / span * plot_w)},"
        f"{_number(_TOP + (1 - (float(b) - low) / span) * plot_h)}"
        for a, b in zip(x, y, strict=True)
    )


def line_chart_svg(
    title: str,
    x: Sequence[float] | np.ndarray[Any, Any],
    y: Sequence[float] | np.ndarray[Any, Any],
    *,
    x_label: str,
    y_label: str,
    diagonal: bool = False,
    markers: bool = False,
    note: str | None = None,
    low: float = 0.0,
    high: float = 1.0,
) -> str:
    """A line on ``[low, high]`` axes, with an optional reference diagonal and a note."""
    x_arr, y_arr = _thin(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    parts = _frame(title, x_label, y_label)
    if diagonal:
        parts.append(
            f'<polyline points="{_points([low, high], [low, high], low, high)}" fill="none" '
            f'stroke="{_GUIDE}" stroke-dasharray="4 3"/>'
        )
    if x_arr.size:
        points = _points(x_arr.tolist(), y_arr.tolist(), low, high)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{_LINE}" stroke-width="2"/>')
        if markers:
            for pair in points.split():
                cx, cy = pair.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{_LINE}"/>')
    if note:
        parts.append(
            f'<text x="{_WIDTH - _RIGHT - 6}" y="{_HEIGHT - _BOTTOM - 8}" text-anchor="end" '
            f"{_FONT}>{escape(note)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def roc_svg(y_true: Any, scores: Any, auc: float | None = None) -> str:
    """The ROC curve with the chance diagonal."""
    curve = roc_curve(y_true, scores)
    note = f"AUC {auc:.3f}" if auc is not None else None
    return line_chart_svg(
        "ROC curve",
        curve.x,
        curve.y,
        x_label="false positive rate",
        y_label="true positive rate",
        diagonal=True,
        note=note,
    )


def pr_svg(y_true: Any, scores: Any, average_precision: float | None = None) -> str:
    """The precision-recall curve (as a step from recall 0)."""
    curve = precision_recall_curve(y_true, scores)
    x = np.r_[0.0, curve.x]
    y = np.r_[curve.y[0], curve.y]
    note = f"AP {average_precision:.3f}" if average_precision is not None else None
    return line_chart_svg(
        "Precision-recall curve", x, y, x_label="recall", y_label="precision", note=note
    )


def calibration_svg(y_true: Any, scores: Any, bins: int = 10) -> str:
    """Share of positives against the mean score, per score bin; the diagonal is perfect."""
    mean_score, positive_share = calibration_curve(y_true, scores, bins)
    return line_chart_svg(
        "Calibration",
        mean_score,
        positive_share,
        x_label="mean predicted probability",
        y_label="share of positives",
        diagonal=True,
        markers=True,
    )


def confusion_svg(
    y_true: Any, scores: Any, threshold: float, class_names: Sequence[str] = ("0", "1")
) -> str:
    """The confusion matrix at ``threshold``: counts, shaded by their share of each true class."""
    matrix = confusion_matrix(y_true, scores, threshold)
    size = 240
    cell = 80
    left, top = 70, 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 80}" height="{size + 60}" '
        f'viewBox="0 0 {size + 80} {size + 60}" role="img" aria-label="Confusion matrix">',
        f'<rect x="0" y="0" width="{size + 80}" height="{size + 60}" fill="white"/>',
        f'<text x="{(size + 80) / 2}" y="16" text-anchor="middle" {_FONT} font-weight="bold">'
        f"Confusion matrix at threshold {threshold:.3g}</text>",
        f'<text x="{left + cell}" y="{top - 16}" text-anchor="middle" {_FONT}>predicted</text>',
        f'<text x="14" y="{top + cell}" text-anchor="middle" {_FONT} '
        f'transform="rotate(-90 14 {top + cell})">actual</text>',
    ]
    names = [escape(str(name)) for name in class_names]
    for index, name in enumerate(names):
        parts.append(
            f'<text x="{left + cell * index + cell / 2}" y="{top - 4}" text-anchor="middle" '
            f"{_FONT}>{name}</text>"
        )
        parts.append(
            f'<text x="{left - 6}" y="{top + cell * index + cell / 2 + 4}" text-anchor="end" '
            f"{_FONT}>{name}</text>"
        )
    for row in range(2):
        total = int(matrix[row].sum()) or 1
        for column in range(2):
            count = int(matrix[row, column])
            share = count / total
            # Darker for a larger share of the true class; white text on dark cells.
            shade = int(245 - 170 * share)
            colour = f"rgb({shade},{shade + 5 if shade < 250 else 250},255)"
            text_colour = "white" if share > 0.6 else "black"
            x, y = left + cell * column, top + cell * row
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{colour}" '
                f'stroke="{_GUIDE}"/>'
            )
            parts.append(
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                f'font-family="system-ui, sans-serif" font-size="14" fill="{text_colour}">'
                f"{count}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def residuals_svg(y_true: Any, predicted: Any) -> str:
    """Predicted against actual values of a regression model; the diagonal is perfect."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(predicted, dtype=float)
    low = float(min(y.min(), p.min())) if y.size else 0.0
    high = float(max(y.max(), p.max())) if y.size else 1.0
    order = np.argsort(y)
    x_values, y_values = _thin(y[order], p[order])
    parts = _frame("Predicted vs actual", "actual", "predicted")
    parts.append(
        f'<polyline points="{_points([low, high], [low, high], low, high)}" fill="none" '
        f'stroke="{_GUIDE}" stroke-dasharray="4 3"/>'
    )
    for pair in _points(x_values.tolist(), y_values.tolist(), low, high).split():
        cx, cy = pair.split(",")
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{_LINE}" fill-opacity="0.5"/>')
    parts.append(
        f'<text x="{_WIDTH - _RIGHT - 6}" y="{_HEIGHT - _BOTTOM - 8}" text-anchor="end" {_FONT}>'
        f"range {low:.3g} to {high:.3g}</text></svg>"
    )
    return "".join(parts)


def binary_plots(
    y_true: Any,
    scores: Any,
    threshold: float,
    metrics: dict[str, float],
    class_names: Sequence[str] = ("0", "1"),
) -> dict[str, str]:
    """ROC, PR, calibration and confusion-matrix SVGs of a binary classifier's scores.

    Curves need both classes among the labels; with one class only the confusion matrix
    is drawn.
    """
    plots = {"confusion_matrix": confusion_svg(y_true, scores, threshold, class_names)}
    if np.unique(np.asarray(y_true)).size == 2:
        plots["roc"] = roc_svg(y_true, scores, metrics.get("roc_auc"))
        plots["pr"] = pr_svg(y_true, scores, metrics.get("pr_auc"))
    scores_arr = np.asarray(scores, dtype=float)
    if scores_arr.size and scores_arr.min() >= 0 and scores_arr.max() <= 1:
        plots["calibration"] = calibration_svg(y_true, scores_arr)
    return plots


def regression_plots(y_true: Any, predicted: Any) -> dict[str, str]:
    """The predicted-against-actual plot of a regression model."""
    return {"predicted_vs_actual": residuals_svg(y_true, predicted)}
