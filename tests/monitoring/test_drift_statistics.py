"""The drift statistics against scipy (used in tests only; Shipyard does not need it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from shipyard.monitoring import drift_stats as st


def _samples(rng: np.random.Generator, kind: int) -> tuple[np.ndarray, np.ndarray]:
    n, m = int(rng.integers(1, 400)), int(rng.integers(1, 400))
    if kind == 0:
        return rng.normal(size=n), rng.normal(rng.normal() * 0.5, 1.3, size=m)
    if kind == 1:  # many ties
        return rng.integers(0, 5, n).astype(float), rng.integers(0, 7, m).astype(float)
    # a large offset: the prefix sums must not lose the distance to it
    return rng.exponential(size=n) * 1e3 + 1e9, rng.exponential(size=m) * 1e3 + 1e9


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_cdf_distances_equal_scipy_ks_and_wasserstein(kind: int) -> None:
    rng = np.random.default_rng(kind)
    for _ in range(60):
        a, b = _samples(rng, kind)
        ks, w1 = st.cdf_distances(np.sort(a), np.sort(b))
        assert ks == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
        expected = stats.wasserstein_distance(a, b)
        assert w1 == pytest.approx(expected, rel=1e-9, abs=1e-9 * (1e3 if kind == 2 else 1))


def test_cdf_distances_of_identical_and_empty_samples() -> None:
    values = np.sort(np.random.default_rng(0).normal(size=100))
    assert st.cdf_distances(values, values) == (0.0, 0.0)
    assert all(math.isnan(v) for v in st.cdf_distances(values, np.zeros(0)))


@pytest.mark.parametrize(("n", "m"), [(200, 300), (10_000, 1_000_000), (5_000, 2_000)])
def test_ks_p_value_matches_scipy_asymptotic(n: int, m: int) -> None:
    en = n * m / (n + m)
    for d in (0.5 / math.sqrt(en), 1.0 / math.sqrt(en), 1.5 / math.sqrt(en), 2.2 / math.sqrt(en)):
        expected = stats.kstwo.sf(d, round(en))
        assert st.ks_p_value(d, n, m) == pytest.approx(expected, rel=0.03, abs=2e-4)


def test_ks_p_value_edges() -> None:
    assert st.ks_p_value(0.0, 10, 10) == 1.0
    assert math.isnan(st.ks_p_value(0.3, 0, 10))
    assert st.ks_p_value(1.0, 10_000, 10_000) == 0.0


@pytest.mark.parametrize("dof", [1, 2, 3, 9, 49, 400])
def test_chi2_survival_matches_scipy(dof: int) -> None:
    for x in np.linspace(0.01, 4 * dof + 40, 25):
        assert st.chi2_survival(float(x), dof) == pytest.approx(
            stats.chi2.sf(x, dof), rel=1e-7, abs=1e-14
        )


def test_chi_square_test_matches_scipy_contingency() -> None:
    reference = np.array([500, 300, 150, 50])
    current = np.array([480, 330, 120, 70])
    statistic, p, dof = st.chi_square_test(reference, current)
    expected = stats.chi2_contingency(np.vstack([reference, current]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    assert dof == expected.dof
    # a category empty on both sides does not count as a degree of freedom
    assert st.chi_square_test(np.array([5, 0, 5]), np.array([5, 0, 5]))[2] == 1
    assert st.chi_square_test(np.array([5]), np.array([7])) == (0.0, 1.0, 0)


def test_jensen_shannon_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):
        p, q = rng.random(7), rng.random(7)
        p[rng.integers(7)] = 0.0
        assert st.jensen_shannon_distance(p, q) == pytest.approx(jensenshannon(p, q), abs=1e-12)
    assert st.jensen_shannon_distance(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(
        math.sqrt(math.log(2))
    )


def test_population_stability_index_by_its_formula() -> None:
    expected = np.array([0.25, 0.25, 0.5, 0.0])
    actual = np.array([0.2, 0.3, 0.4, 0.1])
    e = np.maximum(expected, st.PROPORTION_FLOOR)
    by_hand = float(np.sum((actual - e) * np.log(actual / e)))
    assert st.population_stability_index(expected, actual) == pytest.approx(by_hand)
    assert st.population_stability_index(actual, actual) == 0.0


def test_bins_and_proportions() -> None:
    values = np.sort(np.array([1.0, 1, 1, 2, 3, 4, 5, 6, 7, 8]))
    edges = st.quantile_edges(values, 4)
    assert list(edges) == sorted(set(edges))  # ties merged
    counts = st.bin_counts(values, edges)
    assert counts.sum() == len(values)
    assert st.proportions(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_two_proportions() -> None:
    z = stats.norm.sf(abs((30 / 1000 - 60 / 1000) / math.sqrt(0.045 * 0.955 * 2 / 1000))) * 2
    assert st.two_proportion_p_value(30, 1000, 60, 1000) == pytest.approx(z)
    assert st.cohens_h(0.0, 0.01) == pytest.approx(2 * math.asin(0.1))
    assert st.two_proportion_p_value(0, 10, 0, 10) == 1.0
