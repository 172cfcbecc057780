"""Per-column drift detectors, one class per method, on the estimator contract.

The constructor stores configuration only; ``fit(reference)`` learns from a reference
column and returns ``self``; learned state ends in ``_``; ``score(current)`` returns a
:class:`DetectorResult`. A column is a :class:`~shipyard.monitoring.reference.ColumnSummary`,
an Arrow array, a numpy array or a list.

============================  ===========  ===========================================
detector                      columns      drifted when
============================  ===========  ===========================================
:class:`KolmogorovSmirnov`    numeric      p-value < ``alpha``
:class:`Wasserstein`          numeric      W1 / reference std >= ``threshold`` (0.1)
:class:`PopulationStability`  both         PSI >= ``threshold`` (0.2)
:class:`JensenShannon`        both         JS distance >= ``threshold`` (0.1)
:class:`ChiSquare`            both         p-value < ``alpha``
:class:`CategoryChange`       categorical  new categories hold >= ``min_share`` of the
                                           window, or a common category vanished
:class:`MissingRate`          both         Cohen's h >= ``threshold`` and p < ``alpha``
============================  ===========  ===========================================

Numeric columns are binned for PSI, Jensen-Shannon and chi-square at the reference's
quantiles (``bins`` equal-share bins, outer bins open-ended, so values beyond the
reference's range count); categorical columns compare category by category.

>>> detector = Wasserstein().fit(reference_values)
>>> detector.score(current_values).drifted
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Self

import numpy as np

from shipyard.core.errors import DataContractError
from shipyard.monitoring import drift_stats as st
from shipyard.monitoring.reference import ColumnKind, ColumnSummary, column_kind, summarize_column

__all__ = [
    "CategoryChange",
    "ChiSquare",
    "ColumnComparison",
    "Detector",
    "DetectorResult",
    "JensenShannon",
    "KolmogorovSmirnov",
    "MissingRate",
    "PopulationStability",
    "Wasserstein",
]

_STD_FLOOR = 0.001
"""Wasserstein is divided by the reference's standard deviation, floored here so a
constant reference column does not divide by zero (Evidently uses the same floor)."""


@dataclass(frozen=True, slots=True)
class DetectorResult:
    """One method's verdict on one column: its ``statistic`` against ``threshold`` (a
    p-value's ``alpha`` for tests), the p-value where the method has one, and details
    (new and vanished categories, rates)."""

    method: str
    statistic: float
    threshold: float
    drifted: bool
    p_value: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "statistic": _finite(self.statistic),
            "threshold": self.threshold,
            "p_value": _finite(self.p_value),
            "drifted": self.drifted,
            "details": dict(self.details),
        }


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


class ColumnComparison:
    """A reference column and a current column of the same kind, with what several
    detectors share (the CDF merge, bins, category counts) computed once."""

    def __init__(self, reference: ColumnSummary, current: ColumnSummary) -> None:
        if reference.kind != current.kind:
            raise DataContractError(
                f"Column {current.name!r} is {current.kind} in the window but "
                f"{reference.kind} in the reference.",
                hint="Cast the window's column to the reference's type.",
            )
        self.reference = reference
        self.current = current
        self._bins: dict[int, tuple[list[str], np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}

    @cached_property
    def cdf(self) -> tuple[float, float]:
        """(KS D, Wasserstein-1) of the numeric values."""
        return st.cdf_distances(self.reference.values, self.current.values)

    def binned(self, bins: int) -> tuple[list[str], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(bin labels, reference counts, current counts): quantile bins of a numeric
        column, categories of a categorical one (unlisted values of an incomplete
        reference profile pooled into ``(other)``)."""
        if bins not in self._bins:
            self._bins[bins] = self._binned(bins)
        return self._bins[bins]

    def _binned(self, bins: int) -> tuple[list[str], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        reference, current = self.reference, self.current
        if reference.kind == "numeric":
            edges = st.quantile_edges(reference.values, bins)
            labels = [f"< {e:.6g}" for e in edges[:1]] + [
                f"[{a:.6g}, {b:.6g})" for a, b in zip(edges[:-1], edges[1:], strict=True)
            ]
            labels += [f">= {e:.6g}" for e in edges[-1:]] if len(edges) else ["all"]
            return (
                labels,
                st.bin_counts(reference.values, edges),
                st.bin_counts(current.values, edges),
            )
        position = {c: i for i, c in enumerate(reference.categories)}
        ref_counts = list(reference.counts.tolist())
        labels = list(reference.categories)
        cur_counts = [0] * len(labels)
        pooled = 0
        for category, count in zip(current.categories, current.counts.tolist(), strict=True):
            index = position.get(category)
            if index is not None:
                cur_counts[index] += count
            elif not reference.complete:
                pooled += count
            else:
                labels.append(category)
                ref_counts.append(0)
                cur_counts.append(count)
        if not reference.complete:
            labels.append("(other)")
            ref_counts.append(reference.other)
            cur_counts.append(pooled)
        return labels, np.array(ref_counts, dtype=np.int64), np.array(cur_counts, dtype=np.int64)


def as_summary(column: Any, name: str = "column", kind: ColumnKind | None = None) -> ColumnSummary:
    """A ColumnSummary of whatever column-like value a detector is given."""
    import pyarrow as pa

    if isinstance(column, ColumnSummary):
        return column
    if isinstance(column, np.ndarray):
        array: pa.Array | pa.ChunkedArray = pa.array(column)
    elif isinstance(column, pa.Array | pa.ChunkedArray):
        array = column
    elif isinstance(column, list | tuple):
        try:
            array = pa.array(column)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataContractError(
                f"Column {name!r} mixes value types that do not form one column: {exc}",
                hint="Give it values of one type (numbers, or strings).",
            ) from exc
    else:
        raise DataContractError(
            f"Column {name!r} is a {type(column).__name__}; a detector takes a pyarrow "
            "array, a numpy array, a list or a ColumnSummary.",
            hint="Pass table.column(name) or a numpy array.",
        )
    found = column_kind(array.type)
    if found is None and not (kind == "categorical" and pa.types.is_null(array.type)):
        raise DataContractError(
            f"Column {name!r} has type {array.type}; detectors compare numbers, strings "
            "and booleans.",
            hint="Cast it to a number or a string first.",
        )
    return summarize_column(name, array, kind or found or "categorical")


class Detector:
    """Base of the per-column detectors (see the module doc for the contract)."""

    method: ClassVar[str] = ""
    kinds: ClassVar[tuple[ColumnKind, ...]] = ("numeric", "categorical")

    reference_: ColumnSummary

    def fit(self, reference: Any) -> Self:
        """Learn the reference column; returns ``self``."""
        self._validate()
        summary = as_summary(reference, "reference")
        if summary.kind not in self.kinds:
            raise DataContractError(
                f"{type(self).__name__} compares {' or '.join(self.kinds)} columns; "
                f"column {summary.name!r} is {summary.kind}.",
                hint="Use a detector made for that kind of column.",
            )
        self.reference_ = summary
        return self

    def score(self, current: Any) -> DetectorResult:
        """Compare a current column with the fitted reference."""
        reference = getattr(self, "reference_", None)
        if reference is None:
            raise DataContractError(
                f"{type(self).__name__} is not fitted yet.",
                hint="Call fit(reference) before score(current).",
            )
        if isinstance(current, ColumnComparison):
            return self.compare(current)
        summary = as_summary(current, reference.name, reference.kind)
        return self.compare(ColumnComparison(reference, summary))

    def compare(self, comparison: ColumnComparison) -> DetectorResult:
        """Score a prepared comparison (shared by several detectors on one column)."""
        raise NotImplementedError

    def _validate(self) -> None:
        for name in ("alpha", "threshold", "min_share"):
            value = getattr(self, name, None)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise DataContractError(
                    f"{type(self).__name__}({name}={value!r}): expected a number >= 0.",
                    hint=f"Pass {name} as a float, e.g. 0.05.",
                )
        bins = getattr(self, "bins", None)
        if bins is not None and (isinstance(bins, bool) or not isinstance(bins, int) or bins < 2):
            raise DataContractError(
                f"{type(self).__name__}(bins={bins!r}): expected a whole number >= 2.",
                hint="Pass bins=10, for example.",
            )

    def __repr__(self) -> str:
        config = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({config})"


class KolmogorovSmirnov(Detector):
    """Two-sample KS test on numeric values: drifted when p < ``alpha``."""

    method = "ks"
    kinds = ("numeric",)

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def compare(self, comparison: ColumnComparison) -> DetectorResult:
        statistic, _ = comparison.cdf
        p = st.ks_p_value(
            statistic, len(comparison.reference.values), len(comparison.current.values)
        )
        return DetectorResult(self.method, statistic, self.alpha, bool(p < self.alpha), p)


class Wasserstein(Detector):
    """Normed Wasserstein-1 distance (in reference standard deviations): drifted at or
    above ``threshold``. An effect size: it does not grow with the window's size."""

    method = "wasserstein"
    kinds = ("numeric",)

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = threshold

    def compare(self, comparison: ColumnComparison) -> DetectorResult:
        _, distance = comparison.cdf
        std = comparison.reference.std
        norm = max(std if math.isfinite(std) else 0.0, _STD_FLOOR)
        value = distance / norm
        return DetectorResult(
            self.method,
            value,
            self.threshold,
            bool(value >= self.threshold),
            details={"distance": _finite(distance), "reference_std": _finite(std)},
        )


class PopulationStability(Detector):
    """Population stability index over quantile bins or categories: drifted at or above
    ``threshold`` (0.1 is a moderate shift, 0.2 a large one)."""

    method = "psi"

    def __init__(self, bins: int = 10, threshold: float = 0.2) -> None:
        self.bins = bins
        self.threshold = threshold

    def compare(self, comparison: ColumnComparison) -> DetectorResult:
        _, ref_counts, cur_counts = comparison.binned(self.bins)
        value = st.population_stability_index(
            st.proportions(ref_counts), st.proportions(cur_counts)
        )
        return DetectorResult(self.method, value, self.threshold, bool(value >= self.threshold))


class JensenShannon(Detector):
    """Jensen-Shannon distance (natural log) over quantile bins or categories: drifted at
    or above ``threshold``. An effect size, bounded by sqrt(ln 2) ~ 0.83."""

    method = "jensen_shannon"

    def __init__(self, bins: int = 10, threshold: float = 0.1) -> None:
        self.bins = bins
        self.threshold = threshold

    def compare(self, comparison: ColumnComparison) -> DetectorResult:
        _, ref_counts, cur_counts = comparison.binned(self.bins)
        value = st.jensen_shannon_distance(st.proportions(ref_counts), st.proportions(cur_counts))
        return DetectorResult(self.method, value, self.threshold, bool(value >= self.threshold))


class ChiSquare(Detector):
    """Pearson's chi-square test of homogeneity over categories (or quantile bins of a
    numeric column): drifted when p < ``alpha``."""

    method = "chi_square"

    def __init__(self, bins: int = 10, alpha: float = 0.05) -> None:
        self.bins = bins
        self.alpha = alpha

    def compare(self, comparison: ColumnComparison) -> DetectorResult:
        _, ref_counts, cur_counts = comparison.binned(self.bins)
        statistic, p, dof = st.chi_square_test(ref_counts, cur_counts)
        return DetectorResult(
            self.method,
            statistic,
            self.alpha,
            bool(p < self.alpha),
            p,
            details={"degrees_of_freedom": dof},
        )


class CategoryChange(Detector):
    """New and vanished categories.

    Drifted when categories the reference never had hold at least ``min_share`` of the
    window (beyond the share the reference profile left unnamed), or when a category
    holding at least ``min_share`` of the reference, expected ``min_expected`` times or
    more in a window this size, does not occur at all.
    """

    method = "categories"
    kinds = ("categorical",)

    def __init__(self, min_share: float = 0.01, min_expected: float = 10.0) -> None:
        self.min_share = min_share
        self.min_expected = min_expected

    def compare(self, comparison: ColumnComparison) -> DetectorResult:
        reference, current = comparison.reference, comparison.current
        known = set(reference.categories)
        ref_total = max(reference.sample_size, 1)
        cur_total = max(current.sample_size, 1)
        new = {
            c: int(n)
            for c, n in zip(current.categories, current.counts.tolist(), strict=True)
            if c not in known
        }
        seen = set(current.categories)
        vanished = [
            c
            for c, n in zip(reference.categories, reference.counts.tolist(), strict=True)
            if c not in seen
        ]
        significant = [
            c
            for c, n in zip(reference.categories, reference.counts.tolist(), strict=True)
            if c not in seen
            and n / ref_total >= self.min_share
            and n / ref_total * current.present >= self.min_expected
        ]
        new_share = sum(new.values()) / cur_total
        unnamed = reference.other / ref_total
        drifted = (current.present > 0 and new_share - unnamed >= self.min_share) or bool(
            significant
        )
        top_new = sorted(new, key=lambda c: (-new[c], c))[:20]
        return DetectorResult(
            self.method,
            new_share,
            self.min_share,
            drifted,
            details={
                "new": top_new,
                "new_count": len(new),
                "new_share": new_share,
                "vanished": vanished[:20],
                "vanished_count": len(vanished),
                "vanished_significant": significant[:20],
                "reference_complete": reference.complete,
            },
        )


class MissingRate(Detector):
    """A change of the share of missing values (null, NaN, infinite): drifted when its
    effect size, Cohen's h, reaches ``threshold`` (0.2: from 0% to 1% missing) and a
    two-proportion z-test gives p < ``alpha``."""

    method = "missing_rate"

    def __init__(self, threshold: float = 0.2, alpha: float = 0.05) -> None:
        self.threshold = threshold
        self.alpha = alpha

    def compare(self, comparison: ColumnComparison) -> DetectorResult:
        reference, current = comparison.reference, comparison.current
        h = abs(st.cohens_h(reference.missing_rate, current.missing_rate))
        p = st.two_proportion_p_value(
            reference.missing, reference.rows, current.missing, current.rows
        )
        drifted = bool(h >= self.threshold and (math.isnan(p) or p < self.alpha))
        if current.rows == 0 or reference.rows == 0:
            drifted = False
        return DetectorResult(
            self.method,
            h,
            self.threshold,
            drifted,
            p,
            details={
                "reference_rate": reference.missing_rate,
                "current_rate": current.missing_rate,
            },
        )
