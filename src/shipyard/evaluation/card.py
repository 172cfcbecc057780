"""Model cards: one self-contained page per model version, in HTML or Markdown.

A card says what the model is for (its description), which data trained and evaluated
it, its metrics with plots (ROC and PR curves, calibration, confusion matrix), its
slices, its gates, its signature and its lineage (run, code commit, feature service).

>>> html = model_card(registry, "churn@v3", format="html")   # from the stored evaluation
>>> text = card_from_report(report, version, format="md")     # from an EvaluationReport

The HTML page has no external resource (inline CSS and SVG); the Markdown embeds the
plots as SVG data URIs. Every value is escaped: names and descriptions come from users.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any, Literal

from shipyard.core.errors import ConfigError
from shipyard.evaluation.report import EvaluationReport
from shipyard.models.records import GateResult, ModelVersion

__all__ = ["CardContent", "card_from_report", "model_card", "render_card"]

CardFormat = Literal["html", "md"]
_PLOT_ORDER = ("roc", "pr", "calibration", "confusion_matrix", "predicted_vs_actual")
_PLOT_TITLES = {
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "calibration": "Calibration",
    "confusion_matrix": "Confusion matrix",
    "predicted_vs_actual": "Predicted vs actual",
}


@dataclass(frozen=True)
class CardContent:
    """Everything a card shows, whatever it was read from."""

    title: str
    version: ModelVersion | None
    dataset: str | None = None
    data_description: str | None = None
    evaluated_at: datetime | None = None
    threshold: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    gate_results: tuple[GateResult, ...] = ()
    slices: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    plots: Mapping[str, str] = field(default_factory=dict)
    history: tuple[tuple[str, str, str], ...] = ()  # (when, dataset, verdict)


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _lineage(version: ModelVersion | None) -> list[tuple[str, str]]:
    if version is None:
        return [("model", "not registered")]
    rows = [
        ("version", f"{version.reference} ({version.id})"),
        ("model type", f"{version.model_type} (flavor {version.flavor})"),
        ("task", version.signature.task),
        ("training data", ", ".join(version.dataset_versions) or "not recorded"),
        ("training run", version.run_id or "not recorded"),
        ("code commit", version.code_commit or "not recorded"),
        ("feature service", version.feature_service or "none"),
        ("created", f"{version.created_at:%Y-%m-%d %H:%M} UTC by {version.created_by}"),
        ("aliases", ", ".join(version.aliases) or "none"),
    ]
    if version.tags:
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in sorted(version.tags.items()))))
    return rows


def _inputs(version: ModelVersion | None) -> list[list[str]]:
    if version is None:
        return []
    return [
        [
            spec.name,
            spec.type,
            "yes" if spec.nullable else "no",
            ", ".join(f"{k} {_number(v)}" for k, v in spec.rules.items()) or "-",
        ]
        for spec in version.signature.inputs
    ]


def _gate_rows(results: Sequence[GateResult]) -> list[list[str]]:
    rows = []
    for result in results:
        reason = result.detail.get("reason") or result.detail.get("note") or ""
        rows.append(
            [
                result.gate,
                result.kind,
                _number(result.figure),
                result.bound,
                result.status,
                str(reason),
            ]
        )
    return rows


def _slice_tables(
    slices: Mapping[str, Mapping[str, Mapping[str, Any]]], results: Sequence[GateResult]
) -> list[tuple[str, list[str], list[list[str]]]]:
    tables: list[tuple[str, list[str], list[list[str]]]] = []
    for column, values in slices.items():
        names = sorted({key for entry in values.values() for key in entry})
        header = [
            "slice",
            *[n for n in ("rows", "positives") if n in names],
            *[n for n in names if n not in ("rows", "positives")],
        ]
        rows = [
            [value, *[_number(entry.get(key)) for key in header[1:]]]
            for value, entry in values.items()
        ]
        tables.append((f"by {column}", header, rows))
    for result in results:
        if result.kind == "fairness" and isinstance(result.detail.get("slices"), Mapping):
            metric = str(result.detail.get("metric"))
            rows = [
                [
                    str(value),
                    _number(entry.get("rows")),
                    _number(entry.get(metric)),
                    str(entry.get("excluded", "")),
                ]
                for value, entry in result.detail["slices"].items()
            ]
            tables.append(
                (
                    f"{result.gate} (gap {_number(result.figure)}, {result.bound})",
                    ["slice", "rows", metric, "excluded"],
                    rows,
                )
            )
    return tables


# --- HTML -------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1040px;margin:2em auto;padding:0 1em;color:#1f2328}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #d0d7de;padding:.25em .6em;
text-align:left;font-size:.92em}th{background:#f6f8fa}.passed{color:#1a7f37;font-weight:600}
.failed{color:#cf222e;font-weight:600}.skipped{color:#9a6700}.plots{display:flex;flex-wrap:wrap;
gap:12px}.muted{color:#57606a}
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            css = f' class="{cell}"' if cell in ("passed", "failed", "skipped") else ""
            cells.append(f"<td{css}>{escape(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


_UNSAFE_SVG = re.compile(r"<script|<foreignobject|javascript:|\son[a-z]+\s*=|<iframe|href\s*=")


def _safe_svg(svg: str) -> str:
    """Inline only plain SVG: a stored plot is text read back from the store."""
    text = svg.strip()
    if not text.lower().startswith("<svg") or _UNSAFE_SVG.search(text.lower()):
        return "<p class='muted'>(plot omitted: not a plain SVG)</p>"
    return text


def _render_html(card: CardContent) -> str:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Model card: {escape(card.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Model card: {escape(card.title)}</h1>",
    ]
    description = card.version.description if card.version else ""
    parts.append("<h2>Purpose</h2>")
    parts.append(
        f"<p>{escape(description)}</p>"
        if description
        else "<p class='muted'>No description was given at registration.</p>"
    )
    parts.append("<h2>Data</h2>")
    data_rows = [
        ["training", ", ".join(card.version.dataset_versions) or "not recorded"]
        if card.version
        else ["training", "not recorded"]
    ]
    if card.dataset:
        data_rows.append(["evaluation", card.data_description or card.dataset])
    parts.append(_html_table(["role", "dataset versions"], data_rows))
    parts.append("<h2>Metrics</h2>")
    if card.metrics:
        when = f" on {card.evaluated_at:%Y-%m-%d %H:%M} UTC" if card.evaluated_at else ""
        threshold = (
            f"; decision threshold {card.threshold:.4g}" if card.threshold is not None else ""
        )
        parts.append(f"<p class='muted'>Evaluated{escape(when)}{escape(threshold)}.</p>")
        parts.append(
            _html_table(["metric", "value"], [[k, _number(v)] for k, v in card.metrics.items()])
        )
    else:
        parts.append("<p class='muted'>Not evaluated yet (shipyard models evaluate).</p>")
    plots = [(name, card.plots[name]) for name in _PLOT_ORDER if name in card.plots]
    if plots:
        parts.append("<div class='plots'>")
        parts.extend(f"<figure>{_safe_svg(svg)}</figure>" for _, svg in plots)
        parts.append("</div>")
    tables = _slice_tables(card.slices, card.gate_results)
    parts.append("<h2>Slices</h2>")
    if tables:
        for title, header, rows in tables:
            parts.append(f"<h3>{escape(title)}</h3>{_html_table(header, rows)}")
    else:
        parts.append("<p class='muted'>No slices were evaluated.</p>")
    parts.append("<h2>Gates</h2>")
    if card.gate_results:
        verdict = "passed" if all(r.passed for r in card.gate_results) else "failed"
        parts.append(f"<p>Overall: <span class='{verdict}'>{verdict}</span></p>")
        parts.append(
            _html_table(
                ["gate", "kind", "figure", "bound", "status", "detail"],
                _gate_rows(card.gate_results),
            )
        )
    else:
        parts.append("<p class='muted'>No gates were evaluated.</p>")
    inputs = _inputs(card.version)
    if inputs:
        parts.append("<h2>Signature</h2>")
        parts.append(_html_table(["input", "type", "nullable", "declared rules"], inputs))
    parts.append("<h2>Lineage</h2>")
    parts.append(_html_table(["", ""], [[k, v] for k, v in _lineage(card.version)]))
    if card.history:
        parts.append("<h2>Evaluations</h2>")
        parts.append(_html_table(["when", "dataset", "gates"], [list(h) for h in card.history]))
    parts.append("</body></html>\n")
    return "".join(parts)


# --- Markdown ---------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)


def _render_markdown(card: CardContent) -> str:
    out = [f"# Model card: {_md_cell(card.title)}", "", "## Purpose", ""]
    description = card.version.description if card.version else ""
    out.append(description or "_No description was given at registration._")
    out += ["", "## Data", ""]
    data_rows = [
        [
            "training",
            (", ".join(card.version.dataset_versions) or "not recorded")
            if card.version
            else "not recorded",
        ]
    ]
    if card.dataset:
        data_rows.append(["evaluation", card.data_description or card.dataset])
    out += [_md_table(["role", "dataset versions"], data_rows), "", "## Metrics", ""]
    if card.metrics:
        when = f" on {card.evaluated_at:%Y-%m-%d %H:%M} UTC" if card.evaluated_at else ""
        threshold = (
            f"; decision threshold {card.threshold:.4g}" if card.threshold is not None else ""
        )
        out += [
            f"Evaluated{when}{threshold}.",
            "",
            _md_table(["metric", "value"], [[k, _number(v)] for k, v in card.metrics.items()]),
        ]
    else:
        out.append("_Not evaluated yet (`shipyard models evaluate`)._")
    for name in _PLOT_ORDER:
        if name in card.plots:
            svg = _safe_svg(card.plots[name])
            if svg.startswith("<svg"):
                data = base64.b64encode(svg.encode()).decode()
                out += ["", f"![{_PLOT_TITLES[name]}](data:image/svg+xml;base64,{data})"]
    out += ["", "## Slices", ""]
    tables = _slice_tables(card.slices, card.gate_results)
    if tables:
        for title, header, rows in tables:
            out += [f"### {_md_cell(title)}", "", _md_table(header, rows), ""]
    else:
        out.append("_No slices were evaluated._")
    out += ["", "## Gates", ""]
    if card.gate_results:
        verdict = "passed" if all(r.passed for r in card.gate_results) else "failed"
        out += [
            f"Overall: **{verdict}**",
            "",
            _md_table(
                ["gate", "kind", "figure", "bound", "status", "detail"],
                _gate_rows(card.gate_results),
            ),
        ]
    else:
        out.append("_No gates were evaluated._")
    inputs = _inputs(card.version)
    if inputs:
        out += [
            "",
            "## Signature",
            "",
            _md_table(["input", "type", "nullable", "declared rules"], inputs),
        ]
    out += ["", "## Lineage", "", _md_table(["", ""], [[k, v] for k, v in _lineage(card.version)])]
    if card.history:
        out += [
            "",
            "## Evaluations",
            "",
            _md_table(["when", "dataset", "gates"], [list(h) for h in card.history]),
        ]
    return "\n".join(out) + "\n"


def render_card(card: CardContent, format: str = "html") -> str:  # noqa: A002 - the CLI's word
    """The card as an HTML page or a Markdown document."""
    if format == "html":
        return _render_html(card)
    if format in ("md", "markdown"):
        return _render_markdown(card)
    raise ConfigError(f"Card format {format!r} is not html or md.", hint="Use html or md.")


def card_from_report(
    report: EvaluationReport,
    version: ModelVersion | None = None,
    *,
    format: str = "html",  # noqa: A002
) -> str:
    """A card from an ``EvaluationReport`` (and the version, when registered)."""
    content = CardContent(
        title=report.model or (version.reference if version else "unregistered model"),
        version=version,
        dataset=report.dataset,
        data_description=report.data_description,
        threshold=report.threshold,
        metrics=report.metrics,
        gate_results=report.gate_results,
        slices=report.slices,
        plots=report.plots,
    )
    return render_card(content, format)


def model_card(registry: Any, reference: str, *, format: str = "html") -> str:  # noqa: A002
    """The card of a registered version, from its newest stored evaluation."""
    version = registry.get(reference)
    evaluations = sorted(registry.evaluations(version.reference), key=lambda e: e.created_at)
    history = tuple(
        (
            f"{e.created_at:%Y-%m-%d %H:%M}",
            e.dataset or "?",
            "passed" if e.passed else "failed: " + ", ".join(r.gate for r in e.failed_gates),
        )
        for e in reversed(evaluations)
    )
    if not evaluations:
        return render_card(CardContent(version.reference, version, history=history), format)
    latest = evaluations[-1]
    detail = latest.detail or {}
    slices = detail.get("slices") if isinstance(detail.get("slices"), Mapping) else {}
    content = CardContent(
        title=version.reference,
        version=version,
        dataset=latest.dataset,
        data_description=str(detail.get("data") or latest.dataset or ""),
        evaluated_at=latest.created_at,
        threshold=latest.threshold,
        metrics=dict(latest.metrics),
        gate_results=tuple(latest.gate_results),
        slices=slices or {},
        plots=dict(latest.plots),
        history=history,
    )
    return render_card(content, format)
