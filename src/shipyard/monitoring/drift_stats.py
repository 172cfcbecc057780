"""The statistics behind drift detection: distances between distributions and p-values.

Pure numpy (and ``math`` for the scalar special functions), no scipy at run time; the
tests check every function here against scipy. Numeric kernels take *sorted* finite
values: a window is sorted once and every statistic reads the same sorted array.

- :func:`cdf_distances`: the exact two-sample Kolmogorov-Smirnov statistic and the exact
  first Wasserstein distance, from one linear merge of the two sorted samples.
- :func:`bin_counts`: counts of sorted values in bins ``[e_i, e_i+1)``.
- :func:`population_stability_index`, :func:`jensen_shannon_distance`: on proportions.
- :func:`ks_p_value`, :func:`chi_square_test`, :func:`two_proportion_p_value`: p-values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "PROPORTION_FLOOR",
    "bin_counts",
    "cdf_distances",
    "chi2_survival",
    "chi_square_test",
    "cohens_h",
    "jensen_shannon_distance",
    "ks_p_value",
    "population_stability_index",
    "proportions",
    "quantile_edges",
    "two_proportion_p_value",
]

Floats = np.ndarray[Any, np.dtype[np.float64]]

PROPORTION_FLOOR = 1e-4
"""Empty bins count as this share in PSI (a log of zero is infinite); Evidently uses the
same floor, so the two report the same PSI for the same bins."""


def cdf_distances(reference: Floats, current: Floats) -> tuple[float, float]:
    """(Kolmogorov-Smirnov D, Wasserstein-1) between two sorted samples, both exact.

    Both are functionals of ``F_ref(x) - F_cur(x)``: D its largest absolute value, W1 its
    absolute integral. Between two consecutive distinct reference values ``F_ref`` is
    constant and ``F_cur`` rises, so D is read at the interval's ends and the integral
    splits at the one point where ``F_cur`` crosses ``F_ref``; ``F_cur`` and its integral
    come from binary searches and prefix sums of the sorted window. The cost beyond the
    window's sort is one prefix sum plus O(n log m) for a reference of n values, so a
    10,000-value reference against a million-row window stays cheap.
    """
    n, m = len(reference), len(current)
    if n == 0 or m == 0:
        return math.nan, math.nan
    # Arithmetic is centred on the reference median, so the prefix sums lose no precision
    # to an offset; searches run on the raw values, so ties compare exactly.
    shift = float(reference[n // 2])
    raw_points, ref_counts = np.unique(reference, return_counts=True)
    points = raw_points - shift
    prefix = np.empty(m + 1, dtype=np.float64)
    prefix[0] = 0.0
    np.subtract(current, shift, out=prefix[1:])
    np.cumsum(prefix[1:], out=prefix[1:])
    below = np.searchsorted(current, raw_points, side="left")  # window values < point
    upto = np.searchsorted(current, raw_points, side="right")  # window values <= point
    share = np.cumsum(ref_counts) / n  # F_ref on [points[j], points[j + 1])

    next_below = np.append(below[1:], m)  # window values before the interval's end
    ks = max(
        below[0] / m,
        float(np.abs(share - upto / m).max()),
        float(np.abs(share - next_below / m).max()),
    )

    def integral(x: Floats, count: np.ndarray[Any, Any]) -> Floats:
        """Integral of F_cur from -inf to x (centred), given count = values <= x."""
        result: Floats = (count * x - prefix[count]) / m
        return result

    total = float(integral(points[:1], upto[:1])[0])  # F_ref = 0 before the first point
    if len(points) > 1:
        start, end, level = points[:-1], points[1:], share[:-1]
        target = level * m  # F_cur = level where the count reaches target
        crossing_index = np.clip(np.ceil(target).astype(np.int64) - 1, 0, m - 1)
        raw_crossing = np.where(
            below[1:] <= target,
            raw_points[1:],
            np.where(upto[:-1] >= target, raw_points[:-1], current[crossing_index]),
        )
        raw_crossing = np.clip(raw_crossing, raw_points[:-1], raw_points[1:])
        crossing = raw_crossing - shift
        at_start = integral(start, upto[:-1])
        at_end = integral(end, upto[1:])
        at_cross = integral(crossing, np.searchsorted(current, raw_crossing, side="right"))
        rising = level * (crossing - start) - (at_cross - at_start)  # F_cur <= F_ref part
        falling = (at_end - at_cross) - level * (end - crossing)  # F_cur >= F_ref part
        total += float(np.sum(rising) + np.sum(falling))
    last, count = points[-1], int(upto[-1])
    total += ((prefix[m] - prefix[count]) - (m - count) * last) / m  # F_ref = 1 after
    return ks, max(float(total), 0.0)


def quantile_edges(sorted_values: Floats, bins: int) -> Floats:
    """Interior bin edges at the reference's quantiles (ties merged), so each bin holds
    about the same share of the reference; the outer bins are open-ended."""
    if len(sorted_values) == 0 or bins < 2:
        return np.zeros(0, dtype=np.float64)
    positions = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.quantile(sorted_values, positions, method="inverted_cdf")
    unique: Floats = np.unique(edges)
    return unique


def bin_counts(sorted_values: Floats, edges: Floats) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Counts in ``(-inf, e0), [e0, e1), ..., [e_last, inf)`` of sorted values."""
    below = np.searchsorted(sorted_values, edges, side="left")
    bounds = np.concatenate([[0], below, [len(sorted_values)]])
    counts: np.ndarray[Any, np.dtype[np.int64]] = np.diff(bounds).astype(np.int64)
    return counts


def proportions(counts: np.ndarray[Any, Any]) -> Floats:
    total = float(np.sum(counts))
    if total <= 0:
        return np.zeros(len(counts), dtype=np.float64)
    shares: Floats = np.asarray(counts, dtype=np.float64) / total
    return shares


def population_stability_index(expected: Floats, actual: Floats) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins, empty bins floored at
    :data:`PROPORTION_FLOOR`. 0.1 is a moderate shift, 0.2 and above a large one."""
    e = np.maximum(expected, PROPORTION_FLOOR)
    a = np.maximum(actual, PROPORTION_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def jensen_shannon_distance(p: Floats, q: Floats) -> float:
    """The Jensen-Shannon distance (square root of the divergence, natural log, so in
    ``[0, sqrt(ln 2)]``), as ``scipy.spatial.distance.jensenshannon`` computes it."""
    p_sum, q_sum = float(np.sum(p)), float(np.sum(q))
    if p_sum <= 0 or q_sum <= 0:
        return math.nan
    p = p / p_sum
    q = q / q_sum
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    divergence = max(float(np.sum(left) + np.sum(right)) / 2, 0.0)
    return math.sqrt(divergence)


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Two-sided p-value of a two-sample KS statistic: the Kolmogorov distribution at
    ``sqrt(en) * D`` with Stephens' small-sample correction, ``en = n*m/(n+m)``."""
    if n == 0 or m == 0 or math.isnan(statistic):
        return math.nan
    if statistic <= 0:
        return 1.0
    root = math.sqrt(n * m / (n + m))
    lam = (root + 0.12 + 0.11 / root) * statistic
    if lam < 0.2:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2.0 * (-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-16:
            break
    return min(max(total, 0.0), 1.0)


def chi2_survival(x: float, dof: int) -> float:
    """P(X > x) for a chi-square variable with ``dof`` degrees of freedom (the regularized
    upper incomplete gamma function Q(dof/2, x/2); series below a+1, continued fraction
    above, as in Numerical Recipes)."""
    if dof <= 0 or math.isnan(x):
        return math.nan
    if x <= 0:
        return 1.0
    a, z = dof / 2.0, x / 2.0
    log_front = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1:
        term = total = 1.0 / a
        denominator = a
        for _ in range(10_000):
            denominator += 1
            term *= z / denominator
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return min(max(1.0 - total * math.exp(log_front), 0.0), 1.0)
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(max(math.exp(log_front) * h, 0.0), 1.0)


def chi_square_test(
    reference_counts: np.ndarray[Any, Any], current_counts: np.ndarray[Any, Any]
) -> tuple[float, float, int]:
    """(statistic, p-value, degrees of freedom) of Pearson's chi-square test that two
    count vectors over the same categories come from one distribution (a 2 x k
    contingency table; categories empty on both sides are left out)."""
    table = np.vstack([reference_counts, current_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(rows == 0):
        return 0.0, 1.0, 0
    expected = np.outer(rows, table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return statistic, chi2_survival(statistic, dof), dof


def cohens_h(p: float, q: float) -> float:
    """Cohen's h, the effect size of a change between two proportions
    (``2 asin sqrt(q) - 2 asin sqrt(p)``; 0.2 small, 0.5 medium, 0.8 large)."""
    return 2 * math.asin(math.sqrt(min(max(q, 0.0), 1.0))) - 2 * math.asin(
        math.sqrt(min(max(p, 0.0), 1.0))
    )


def two_proportion_p_value(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test."""
    if n_a == 0 or n_b == 0:
        return math.nan
    pooled = (hits_a + hits_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return 1.0
    z = abs(hits_a / n_a - hits_b / n_b) / math.sqrt(variance)
    return math.erfc(z / math.sqrt(2))
