"""The demo's HTML report: the story's steps with their figures, and the subsystems' own
pages beside it (every model card, the drift report of the alerting check, the
monitoring report over time), linked and embedded. Self-contained files, no script, no
network: the folder can be zipped and mailed."""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.cli.demo_story import Names, StoryLog
    from shipyard.core.config import Config

__all__ = ["write_report"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1c2530}
h1{margin-bottom:4px} .sub{color:#5a6b7b;margin-top:0}
section{border:1px solid #d9e1e8;border-radius:8px;padding:10px 18px;margin:14px 0}
section h2{font-size:1.1em;margin:6px 0} .t{color:#8797a6;font-size:.85em;float:right}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #d9e1e8;padding:3px 8px;
font-size:.9em;text-align:left} .pass{color:#11772e;font-weight:600}
.fail{color:#b3261e;font-weight:600} iframe{width:100%;height:520px;border:1px solid #d9e1e8}
code{background:#f1f4f7;padding:1px 4px;border-radius:3px}
"""

_MARKUP = re.compile(r"\[/?[a-z ]*\]")


def _plain(line: str) -> str:
    return escape(_MARKUP.sub("", line))


def _bars(title: str, values: dict[str, float]) -> str:
    """A small horizontal bar chart (inline SVG) of values in [0, 1]."""
    height = 24 * len(values) + 30
    parts = [
        f'<svg width="520" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="14" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    for index, (name, value) in enumerate(values.items()):
        y = 24 + index * 24
        width = max(0.0, min(1.0, value)) * 300
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{escape(name)}</text>')
        parts.append(
            f'<rect x="170" y="{y}" width="{width:.1f}" height="16" fill="#3b7dd8"></rect>'
        )
        parts.append(f'<text x="{176 + width:.1f}" y="{y + 13}" font-size="12">{value:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _gate_table(gates: list[Any]) -> str:
    rows = []
    for gate in gates:
        if isinstance(gate, dict):
            name, status, figure, bound = (
                gate["gate"],
                gate["status"],
                gate["figure"],
                gate["bound"],
            )
        else:
            name, status, figure, bound = gate
        css = "fail" if status == "failed" else "pass"
        shown = f"{figure:.4g}" if isinstance(figure, float) else escape(str(figure))
        rows.append(
            f"<tr><td>{escape(str(name))}</td><td>{shown}</td><td>{escape(str(bound))}</td>"
            f'<td class="{css}">{escape(str(status))}</td></tr>'
        )
    return (
        "<table><tr><th>gate</th><th>figure</th><th>bound</th><th>status</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _pages(config: Config, names: Names, log: StoryLog, folder: Path) -> dict[str, str]:
    """Write the subsystems' own pages; return {title: file name}."""
    from shipyard.evaluation.card import model_card
    from shipyard.models.registry import ModelRegistry
    from shipyard.monitoring.drift_report import DriftReport
    from shipyard.monitoring.monitor import check_history
    from shipyard.monitoring.monitor_html import render_monitor_report
    from shipyard.monitoring.performance import performance_window

    pages: dict[str, str] = {}
    with ModelRegistry.open(config) as registry:
        for version in registry.list_versions(names.model):
            file = f"card_{names.model}_v{version.number}.html"
            (folder / file).write_text(model_card(registry, version.reference), encoding="utf-8")
            pages[f"model card {version.reference}"] = file
        stored = check_history(
            registry.stores.metadata, model=names.model, limit=50, with_documents=True
        )
        stored.reverse()
        alerting = next(
            (c for c in stored if c["id"] == log.facts.get("drift_check") and c.get("drift")),
            None,
        )
        drift_html = DriftReport.from_dict(alerting["drift"]).to_html() if alerting else None
        if drift_html is not None:
            (folder / "drift.html").write_text(drift_html, encoding="utf-8")
            pages["drift report of the alerting check"] = "drift.html"
        champion = registry.get(f"{names.model}@champion")
        performance = performance_window(registry, champion.reference).to_dict()
        if stored:
            page = render_monitor_report(names.model, stored, performance, drift_html)
            (folder / "monitor.html").write_text(page, encoding="utf-8")
            pages["monitoring report"] = "monitor.html"
    return pages


def write_report(
    config: Config, names: Names, log: StoryLog, folder: Path, *, seconds: float
) -> Path:
    """Write ``folder/index.html`` (and the pages it links); return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = _pages(config, names, log, folder)
    facts = log.facts
    sections = []
    for number, step in enumerate(log.steps, 1):
        body = "".join(f"<p>{_plain(line)}</p>" for line in step["lines"])
        if step["title"].startswith("Evaluate"):
            aucs = {
                c["version"]: float(c["roc_auc"])
                for c in facts.get("evaluated", [])
                if c.get("roc_auc") is not None
            }
            body += _bars("ROC AUC on the holdout", aucs)
            for candidate in facts.get("evaluated", []):
                body += f"<h3>{escape(candidate['version'])}</h3>" + _gate_table(candidate["gates"])
        if step["title"].startswith("The closed loop") and facts.get("loop"):
            body += "<h3>Challenger's gates</h3>" + _gate_table(facts["loop"]["gates"])
        sections.append(
            f'<section><span class="t">{step["seconds"]:.1f} s</span>'
            f"<h2>{number}. {escape(step['title'])}</h2>{body}</section>"
        )
    loop = facts.get("loop") or {}
    outcome = [
        ("rows quarantined by the contract", facts.get("quarantined")),
        ("first champion", facts.get("champion_v1")),
        ("monitor alert on the shifted batch", "yes" if facts.get("alert") else "no"),
        ("drifted columns", ", ".join(facts.get("drifted", [])) or "none"),
        ("challenger", loop.get("challenger", "none (no episode)")),
        ("challenger's fate", loop.get("outcome", "-")),
        ("champion now", facts.get("final_champion")),
    ]
    summary = (
        "<section><h2>Outcome</h2><table>"
        + "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in outcome)
        + "</table></section>"
    )
    links = "".join(f'<li><a href="{escape(f)}">{escape(t)}</a></li>' for t, f in pages.items())
    embeds = "".join(
        f'<h3>{escape(title)}</h3><iframe src="{escape(file)}" title="{escape(title)}"></iframe>'
        for title, file in pages.items()
        if file in ("drift.html", "monitor.html")
        or title.endswith(str(facts.get("final_champion", "")))
    )
    page = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>Shipyard demo: {escape(names.model)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>The closed loop on {escape(names.model)}</h1>"
        f'<p class="sub">Run in {seconds:.0f} s on the embedded default; project folder '
        f"<code>{escape(str(config.project_dir))}</code>.</p>"
        + summary
        + "".join(sections)
        + f"<section><h2>Pages</h2><ul>{links}</ul>{embeds}</section>"
        + "</body></html>"
    )
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    (folder / "story.json").write_text(
        json.dumps({"steps": log.steps, "facts": facts}, indent=2, default=str), encoding="utf-8"
    )
    return index
