"""DriftDetector over whole tables: defaults by sample size, roles, windows, bad input."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shipyard.core.errors import DataContractError
from shipyard.monitoring.drift import DriftDetector, check_drift
from shipyard.monitoring.reference import Reference
from shipyard.monitoring.windows import (
    window_from_table,
    windows_by_count,
    windows_by_time,
)


def _table(rows: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "income": rng.lognormal(10 + shift, 0.5, rows),
            "age": rng.integers(18, 90, rows),
            "calls": rng.poisson(1.5, rows),
            "balance": rng.normal(1_000, 300, rows),
            "plan": rng.choice(np.array(["basic", "plus", "pro"]), rows, p=[0.6, 0.3, 0.1]),
            "region": rng.choice(np.array([f"r{i}" for i in range(20)]), rows),
        }
    )


def test_a_million_rows_of_the_same_distribution_do_not_alert() -> None:
    reference, current = _table(1_000_000, 1), _table(1_000_000, 2)
    started = time.perf_counter()
    report = DriftDetector().fit(reference).detect(current)
    elapsed = time.perf_counter() - started
    assert not report.alert, [(c.name, c.reason) for c in report.columns if c.drifted]
    assert {c.method for c in report.columns} == {"wasserstein", "jensen_shannon"}
    # a p-value alone would be no guide at this size; the effect sizes stay tiny
    assert max(c.statistic for c in report.columns) < 0.05
    assert elapsed < 20, f"6 columns x 1M rows took {elapsed:.1f} s"
    # ... while a real shift of the same size of data does alert
    shifted = current.set_column(0, "income", pc.multiply(current.column("income"), 1.25))
    again = DriftDetector(columns=["income", "plan"]).fit(reference).detect(shifted)
    assert again.drifted_columns == ("income",)


def test_small_windows_are_decided_by_a_test() -> None:
    detector = DriftDetector().fit(_table(5_000, 1))
    report = detector.detect(_table(400, 2))
    assert {c.method for c in report.columns} == {"ks", "chi_square"}
    assert not report.alert
    shifted = detector.detect(_table(400, 3, shift=0.4))
    # per column, a test at alpha 0.05 (so about 1 column in 20 alerts by chance)
    assert "income" in shifted.drifted_columns
    assert shifted.column("income").p_value < 0.05


def test_prediction_and_label_columns_use_the_same_detectors() -> None:
    rng = np.random.default_rng(5)
    reference = _table(4_000, 1).append_column("score", pa.array(rng.beta(2, 5, 4_000)))
    reference = reference.append_column("label", pa.array(rng.random(4_000) < 0.2))
    current = _table(4_000, 2).append_column("score", pa.array(rng.beta(5, 2, 4_000)))
    current = current.append_column("label", pa.array(rng.random(4_000) < 0.6))
    detector = DriftDetector(columns=["income"], prediction="score", label="label")
    report = detector.fit(reference).detect(current)
    roles = {c.name: (c.role, c.kind, c.drifted) for c in report.columns}
    assert roles == {
        "income": ("feature", "numeric", False),
        "score": ("prediction", "numeric", True),
        "label": ("label", "categorical", True),
    }
    assert report.share_drifted == 0.0 and not report.dataset_drift  # features only
    assert report.alert


def test_missing_columns_types_and_missing_values_in_the_window() -> None:
    reference = _table(3_000, 1)
    current = _table(3_000, 2).drop_columns(["region"])
    current = current.set_column(
        current.schema.get_field_index("plan"), "plan", pa.array([1.5] * 3_000)
    )
    balance = current.column("balance").to_numpy().copy()
    balance[:600] = np.nan
    current = current.set_column(
        current.schema.get_field_index("balance"), "balance", pa.array(balance)
    )
    income = pa.array(["x"] * 3_000)
    current = current.set_column(0, "income", income)
    report = DriftDetector().fit(reference).detect(current)
    reasons = {c.name: c.reason for c in report.columns if c.drifted}
    assert "not in the window" in reasons["region"]
    assert "cannot be read as numeric" in reasons["income"]
    assert "missing rate 0.00% -> 20.00%" in reasons["balance"]
    # a number column read as categories: its values are new categories
    assert "new categories" in reasons["plan"]


def test_categorical_override_and_incomplete_profiles() -> None:
    reference = _table(3_000, 1)
    detector = DriftDetector(categorical=["calls"]).fit(reference)
    assert detector.reference_.columns["calls"].kind == "categorical"
    report = detector.detect(_table(3_000, 2))
    assert report.column("calls").kind == "categorical" and not report.alert


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"numeric_method": "t-test"}, "not a numeric drift method"),
        ({"categorical_method": "ks"}, "not a categorical"),
        ({"thresholds": {"bogus": 1}}, "unknown method"),
        ({"thresholds": {"psi": -1}}, "expected a number"),
        ({"alpha": 5}, r"expected a number in \(0, 1\]"),
        ({"drift_share": 0}, r"expected a number in \(0, 1\]"),
        ({"statistics": "some"}, "expected 'all' or 'decision'"),
        ({"columns": ["nope"]}, "not in the table"),
        ({"prediction": 3}, "expected a column name"),
        ({"small_sample": "many"}, "whole number"),
    ],
)
def test_bad_configuration(config: dict[str, object], message: str) -> None:
    with pytest.raises(DataContractError, match=message):
        DriftDetector(**config).fit(_table(100, 1))  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    with pytest.raises(DataContractError, match="not fitted"):
        DriftDetector().detect(_table(10, 1))
    with pytest.raises(DataContractError, match="Reference or a pyarrow.Table"):
        DriftDetector().fit({"a": [1, 2]})  # type: ignore[arg-type]
    with pytest.raises(DataContractError, match="pyarrow.Table"):
        DriftDetector().fit(_table(100, 1)).detect([1, 2, 3])  # type: ignore[arg-type]
    only_dates = pa.table({"when": pa.array([datetime(2026, 1, 1, tzinfo=UTC)])})
    with pytest.raises(DataContractError, match="no numeric, string or boolean"):
        DriftDetector().fit(only_dates)
    with pytest.raises(DataContractError, match="sample_rows"):
        Reference.from_table(_table(10, 1), sample_rows=0)
    reference = Reference.from_table(_table(100, 1), columns=["income"])
    with pytest.raises(DataContractError, match="not comparable columns"):
        DriftDetector(columns=["age"]).fit(reference)
    empty = DriftDetector().fit(_table(100, 1)).detect(_table(0, 2))
    assert empty.window_rows == 0 and not empty.column("income").drifted


def test_windows_by_count_and_by_time() -> None:
    table = _table(2_500, 1)
    windows = windows_by_count(table, 1_000)
    assert [w.rows for w in windows] == [1_000, 1_000, 500]
    assert windows[2].label == "rows 2000-2499"
    start = datetime(2026, 11, 1, tzinfo=UTC)
    stamps = pa.array(
        [start + timedelta(hours=int(h)) for h in np.arange(2_500) % 72],
        pa.timestamp("us", tz="UTC"),
    )
    stamped = table.append_column("ts", stamps)
    days = windows_by_time(stamped, "ts", timedelta(days=1))
    assert [w.label for w in days] == [(start + timedelta(days=d)).isoformat() for d in range(3)]
    assert sum(w.rows for w in days) == 2_500
    assert days[1].start == start + timedelta(days=1) and days[1].end == start + timedelta(days=2)
    reports = DriftDetector(columns=["income"]).fit(table).detect_windows(days)
    assert [r.window for r in reports] == [w.label for w in days]
    assert reports[0].window_start == start
    for bad in (0, -5, 2.5, True):
        with pytest.raises(DataContractError, match="whole number of rows"):
            windows_by_count(table, bad)  # type: ignore[arg-type]
    with pytest.raises(DataContractError, match="not a timestamp"):
        windows_by_time(stamped, "income", timedelta(days=1))
    with pytest.raises(DataContractError, match="positive timedelta"):
        windows_by_time(stamped, "ts", timedelta(0))
    with pytest.raises(DataContractError, match="not in the table"):
        windows_by_time(stamped, "nope", timedelta(days=1))
    with pytest.raises(DataContractError, match="pyarrow.Table"):
        window_from_table("rows")  # type: ignore[arg-type]


def test_check_drift_in_one_call() -> None:
    report = check_drift(_table(2_000, 1), _table(2_000, 2, shift=0.5), columns=["income"])
    assert report.drifted_columns == ("income",)
