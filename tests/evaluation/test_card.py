"""Model cards: self-contained HTML and Markdown with plots, slices, gates and lineage."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

import shipyard.evaluation as sy_eval
from shipyard.core.errors import ConfigError
from shipyard.evaluation.card import CardContent, card_from_report, render_card
from shipyard.evaluation.scoring import EstimatorPredictor
from shipyard.models.records import FieldSpec, GateResult, ModelVersion, Signature

HOSTILE = "<script>alert('x')</script> | churn & friends"


def version(description: str = "Flags customers likely to churn next month.") -> ModelVersion:
    signature = Signature(
        inputs=(FieldSpec("state", "string", False, rules={"allowed": ["KS", "OH"]}),),
        outputs=(FieldSpec("score", "float64", False),),
        task="binary_classification",
        classes=("no", "yes"),
    )
    return ModelVersion(
        id="sha256:" + "ab" * 32,
        name="churn",
        number=3,
        flavor="sklearn",
        model_type="sklearn",
        signature=signature,
        run_id="run123",
        dataset_versions=("churn_train@v1",),
        feature_service=None,
        code_commit="deadbeef",
        description=description,
        tags={"team": "retention"},
        created_by="ana",
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
        aliases=("champion",),
    )


@pytest.fixture(scope="module")
def report(churn_model: Any, churn_holdout: pa.Table) -> sy_eval.EvaluationReport:
    predictor = EstimatorPredictor.from_table(churn_model, churn_holdout.drop_columns(["churn"]))
    return sy_eval.evaluate(
        predictor,
        data=churn_holdout,
        label="churn",
        slice_by=["international_plan"],
        gates=[
            sy_eval.recall_at_precision(0.5, min_recall=0.2),
            sy_eval.metric("roc_auc", ">=", 0.99),
            sy_eval.fairness(metric="recall", by="voice_mail_plan", max_gap=0.5),
        ],
    )


def test_html_card_is_self_contained_with_every_section(report: sy_eval.EvaluationReport) -> None:
    html = card_from_report(report, version())
    for section in ("Purpose", "Data", "Metrics", "Slices", "Gates", "Signature", "Lineage"):
        assert f"<h2>{section}</h2>" in html
    assert "Flags customers likely to churn next month." in html
    assert "churn_train@v1" in html and "deadbeef" in html and "run123" in html
    assert "by international_plan" in html and "fairness_recall_by_voice_mail_plan" in html
    assert "recall_at_precision_0.5" in html and 'class="failed"' in html
    assert "allowed ['KS', 'OH']" in html or "allowed" in html
    # No external resource: no links to scripts, stylesheets or images elsewhere.
    assert not re.search(r"<(script|link|img)\b", html) and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 4  # ROC, PR, calibration, confusion matrix
    for svg in svgs:
        ET.fromstring(svg)  # noqa: S314 - our own SVG: is it well-formed XML?


def test_markdown_card_embeds_plots_as_data_uris(report: sy_eval.EvaluationReport) -> None:
    text = card_from_report(report, version(), format="md")
    assert text.startswith("# Model card: churn@v3")
    assert "| roc_auc | " in text and "## Gates" in text and "Overall: **failed**" in text
    images = re.findall(r"!\[([^\]]+)\]\(data:image/svg\+xml;base64,([^)]+)\)", text)
    assert [title for title, _ in images] == [
        "ROC curve",
        "Precision-recall curve",
        "Calibration",
        "Confusion matrix",
    ]
    for _, data in images:
        ET.fromstring(base64.b64decode(data))  # noqa: S314 - our own SVG


def test_user_text_is_escaped(report: sy_eval.EvaluationReport) -> None:
    html = card_from_report(report, version(HOSTILE))
    assert "<script>" not in html and "&lt;script&gt;" in html
    markdown = card_from_report(report, version(HOSTILE), format="md")
    assert HOSTILE in markdown  # Markdown shows the text; the table cells escape pipes
    hostile_gate = GateResult("a|b", "metric", 1.0, ">= 0", "passed", {"reason": "x|y"})
    table = render_card(CardContent("m", None, gate_results=(hostile_gate,)), "md")
    assert "| a\\|b | metric |" in table


def test_stored_plots_that_are_not_plain_svg_are_not_inlined() -> None:
    plots = {
        "roc": "<svg onload='alert(1)'></svg>",
        "pr": "<img src=x>",
        "calibration": '<svg><a href="javascript:x">t</a></svg>',
    }
    html = render_card(CardContent("m", None, metrics={"auc": 0.5}, plots=plots), "html")
    assert "alert" not in html and "<img" not in html and "javascript" not in html
    assert html.count("plot omitted") == 3


def test_unevaluated_card_and_bad_format() -> None:
    html = render_card(CardContent("churn@v3", version()), "html")
    assert "Not evaluated yet" in html and "No gates were evaluated" in html
    with pytest.raises(ConfigError, match="Card format 'pdf'"):
        render_card(CardContent("churn@v3", version()), "pdf")
