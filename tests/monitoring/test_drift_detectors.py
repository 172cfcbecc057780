"""Per-column detectors: the estimator contract, verdicts on planted shifts, bad input."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from shipyard.core.errors import DataContractError
from shipyard.monitoring import detectors as dt
from shipyard.monitoring.reference import summarize_column

RNG = np.random.default_rng(7)
REFERENCE = RNG.normal(10, 2, 5_000)
SAME = RNG.normal(10, 2, 5_000)
SHIFTED = RNG.normal(11, 2, 5_000)  # half a standard deviation
NUMERIC = [
    dt.KolmogorovSmirnov,
    dt.Wasserstein,
    dt.PopulationStability,
    dt.JensenShannon,
    dt.ChiSquare,
]


@pytest.mark.parametrize("cls", [*NUMERIC, dt.MissingRate])
def test_estimator_contract(cls: type[dt.Detector]) -> None:
    detector = cls()
    assert not [k for k in vars(detector) if k.endswith("_")]  # the constructor learns nothing
    with pytest.raises(DataContractError, match="not fitted"):
        detector.score(SAME)
    assert detector.fit(REFERENCE) is detector
    assert detector.reference_.kind == "numeric"
    assert repr(detector).startswith(cls.__name__)


@pytest.mark.parametrize("cls", NUMERIC)
def test_numeric_detectors_flag_a_shift_and_not_the_same_distribution(
    cls: type[dt.Detector],
) -> None:
    detector = cls().fit(REFERENCE)
    assert not detector.score(SAME).drifted
    result = detector.score(SHIFTED)
    assert result.drifted, result
    assert result.method == cls.method


def test_statistics_agree_with_scipy_on_raw_arrays() -> None:
    ks = dt.KolmogorovSmirnov().fit(REFERENCE).score(SHIFTED)
    expected = stats.ks_2samp(REFERENCE, SHIFTED)
    assert ks.statistic == pytest.approx(expected.statistic)
    assert ks.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    wasserstein = dt.Wasserstein().fit(REFERENCE).score(SHIFTED)
    assert wasserstein.statistic == pytest.approx(
        stats.wasserstein_distance(REFERENCE, SHIFTED) / np.std(REFERENCE)
    )


def test_values_beyond_the_reference_range_count() -> None:
    psi = dt.PopulationStability().fit(REFERENCE)
    beyond = psi.score(REFERENCE + 100)  # everything falls in the open upper bin
    assert beyond.drifted and beyond.statistic > 5


def test_categorical_detectors() -> None:
    reference = pa.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200)
    same = pa.array(["a"] * 490 + ["b"] * 310 + ["c"] * 200)
    moved = pa.array(["a"] * 200 + ["b"] * 300 + ["c"] * 500)
    for cls in (dt.ChiSquare, dt.JensenShannon, dt.PopulationStability):
        detector = cls().fit(reference)
        assert detector.reference_.kind == "categorical"
        assert not detector.score(same).drifted
        assert detector.score(moved).drifted
    chi = dt.ChiSquare().fit(reference).score(moved)
    table = np.array([[500, 300, 200], [200, 300, 500]])
    assert chi.p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)


def test_new_and_vanished_categories() -> None:
    reference = ["red"] * 600 + ["green"] * 300 + ["blue"] * 100
    detector = dt.CategoryChange().fit(reference)
    assert not detector.score(["red"] * 60 + ["green"] * 30 + ["blue"] * 10).drifted
    new = detector.score(["red"] * 550 + ["green"] * 300 + ["blue"] * 100 + ["purple"] * 50)
    assert new.drifted and new.details["new"] == ["purple"]
    assert new.statistic == pytest.approx(0.05)
    vanished = detector.score(["red"] * 700 + ["green"] * 300)
    assert vanished.drifted and vanished.details["vanished_significant"] == ["blue"]
    # too small a window to expect 'blue' (10% of 20 rows = 2 expected): no alert
    assert not detector.score(["red"] * 14 + ["green"] * 6).drifted
    with pytest.raises(DataContractError, match="categorical"):
        dt.CategoryChange().fit(REFERENCE)


def test_missing_rate_change_needs_both_effect_and_evidence() -> None:
    reference = pa.array([1.0] * 10_000)
    detector = dt.MissingRate().fit(reference)
    some = pa.array([1.0] * 9_500 + [None] * 500)  # 0% -> 5%
    result = detector.score(some)
    assert result.drifted and result.details["current_rate"] == pytest.approx(0.05)
    # NaN and infinities count as missing, like nulls
    assert detector.score(np.r_[np.ones(950), np.full(50, np.nan)]).drifted
    assert detector.score(np.r_[np.ones(950), np.full(50, np.inf)]).drifted
    assert not detector.score(pa.array([1.0] * 1_000)).drifted
    # 5% missing, then 1 of 5 values missing: a large effect, but no evidence yet
    usual = dt.MissingRate().fit(pa.array([1.0] * 9_500 + [None] * 500))
    small = usual.score(pa.array([1.0] * 4 + [None]))
    assert small.statistic > 0.2 and small.p_value > 0.05 and not small.drifted


@pytest.mark.parametrize(
    "config",
    [
        lambda: dt.Wasserstein(threshold=-1),
        lambda: dt.Wasserstein(threshold="0.1"),  # type: ignore[arg-type]
        lambda: dt.KolmogorovSmirnov(alpha=True),  # type: ignore[arg-type]
        lambda: dt.PopulationStability(bins=1),
        lambda: dt.JensenShannon(bins=2.5),  # type: ignore[arg-type]
    ],
)
def test_bad_configuration_is_refused_at_fit(config) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataContractError, match="expected"):
        config().fit(REFERENCE)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": 1}, "detector takes"),
        ([1, "x", 2.5], "mixes value types"),
        (pa.array([b"\x00"]), "compare numbers, strings"),
        ("abc", "detector takes"),
    ],
)
def test_bad_columns_are_refused(value: object, message: str) -> None:
    with pytest.raises(DataContractError, match=message):
        dt.Wasserstein().fit(value)


def test_kind_mismatch_between_reference_and_window() -> None:
    detector = dt.Wasserstein().fit(REFERENCE)
    with pytest.raises(DataContractError, match="cannot be read as numbers"):
        detector.score(pa.array(["x", "y"]))
    with pytest.raises(DataContractError, match="numeric"):
        dt.KolmogorovSmirnov().fit(["a", "b"])


def test_empty_and_constant_columns_do_not_crash() -> None:
    constant = dt.Wasserstein().fit(np.ones(100))
    assert constant.score(np.ones(100)).statistic == 0.0
    assert constant.score(np.full(100, 2.0)).drifted  # std floored, so the jump shows
    empty = dt.KolmogorovSmirnov().fit(REFERENCE).score(pa.array([], pa.float64()))
    assert math.isnan(empty.statistic) and not empty.drifted
    assert dt.ChiSquare().fit(["a"]).score(pa.array([None, None], pa.string())).p_value == 1.0


def test_summaries_read_dictionary_and_chunked_columns() -> None:
    chunked = pa.chunked_array([["a", "b"], ["a", None]])
    summary = summarize_column("c", chunked.dictionary_encode(), "categorical")
    assert dict(zip(summary.categories, summary.counts.tolist(), strict=True)) == {"a": 2, "b": 1}
    assert summary.missing == 1
    booleans = summarize_column("b", pa.array([True, False, True]), "categorical")
    assert booleans.categories == ("true", "false")
