"""The drift report: JSON that round-trips, a self-contained HTML page, hostile names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from shipyard.core.errors import DataContractError
from shipyard.monitoring.drift import DriftDetector
from shipyard.monitoring.drift_report import DriftReport

HOSTILE = '<script>alert("x")</script>&"\'</svg>'


def _report(multivariate: bool = False) -> DriftReport:
    rng = np.random.default_rng(0)
    reference = pa.table(
        {
            "amount": rng.gamma(2, 50, 3_000),
            HOSTILE: rng.choice(np.array(["a", "b", HOSTILE]), 3_000),
            "flag": rng.random(3_000) < 0.3,
            "constant": np.ones(3_000),
        }
    )
    amount = rng.gamma(2, 70, 3_000)
    amount[:90] = np.nan
    current = pa.table(
        {
            "amount": amount,
            HOSTILE: rng.choice(np.array(["a", "c", "d"]), 3_000),
            "flag": rng.random(3_000) < 0.3,
            "constant": np.ones(3_000),
        }
    )
    detector = DriftDetector().fit(reference)
    return detector.detect(current, multivariate=multivariate)


def test_json_is_strict_and_round_trips(tmp_path: Path) -> None:
    report = _report(multivariate=True)
    text = report.to_json()
    data = json.loads(text)  # strict JSON: no NaN or Infinity
    assert "NaN" not in text and "Infinity" not in text
    assert data["format"] == "shipyard.drift.v1"
    assert set(data["drifted_columns"]) == {"amount", HOSTILE}
    amount = data["columns"][0]
    assert amount["statistics"].keys() == {"wasserstein", "ks", "psi", "jensen_shannon"}
    assert amount["missing"]["details"]["current_rate"] == pytest.approx(0.03)
    assert data["multivariate"]["auc"] > 0.6
    again = DriftReport.from_dict(data)
    assert again.to_dict() == data
    path = report.save_json(tmp_path / "out" / "drift.json")
    assert json.loads(path.read_text()) == data


def test_html_is_self_contained_and_escapes_names(tmp_path: Path) -> None:
    report = _report()
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page  # the hostile column name is escaped, never markup
    assert "&lt;script&gt;" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    # one plot per column: reference and current drawn side by side
    assert page.count("<svg") == len(report.columns)
    assert 'aria-label="amount (feature, numeric)"' in page
    written = report.save_html(tmp_path / "drift.html", title="Nightly check")
    assert "<title>Nightly check</title>" in written.read_text()


def test_saving_refuses_a_folder_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    report = _report()
    with pytest.raises(DataContractError, match="is a folder"):
        report.save_html(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataContractError, match="Cannot write the report"):
        report.save_json(blocker / "drift.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"format": "other"},
        {"format": "shipyard.drift.v1"},
        {"format": "shipyard.drift.v1", "columns": 3},
    ],
)
def test_reading_a_damaged_report(document: dict[str, object]) -> None:
    with pytest.raises(DataContractError, match="drift report"):
        DriftReport.from_dict(document)


def test_report_lookups() -> None:
    report = _report()
    assert report.column("amount").result("ks") is not None
    assert report.column("constant").statistic == 0.0
    with pytest.raises(DataContractError, match="not in this drift report"):
        report.column("nope")
