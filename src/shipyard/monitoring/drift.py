"""Data drift of a window against a reference: every column, one report.

:class:`DriftDetector` follows the estimator contract: configure it, ``fit`` it on a
:class:`~shipyard.monitoring.reference.Reference` (or an Arrow table), then ``detect``
drift in any number of windows. Prediction (score) and label columns are compared with
the same detectors, and named as such in the report.

Each column gets every statistic of its kind (numeric: KS, normed Wasserstein, PSI,
Jensen-Shannon; categorical: chi-square, Jensen-Shannon, PSI, new and vanished
categories; both: missing rate), and one deciding method. With ``method="auto"`` (the
default) the decision depends on the sample size, because a p-value alone flags every
trivial difference once a window holds millions of rows:

- up to ``small_sample`` values (1,000) on either side: a test, KS (numeric) or
  chi-square (categorical), p < ``alpha``;
- above: an effect size, normed Wasserstein (numeric) or Jensen-Shannon (categorical),
  at or above its threshold (0.1), *and* the same test significant. The effect size does
  not grow with the window, so a million rows of the same distribution do not alert.

A column drifts when its deciding method does, when its missing rate changes
(:class:`~shipyard.monitoring.detectors.MissingRate`), or when new categories appear or
common ones vanish. The dataset drifts when at least ``drift_share`` of the columns do.

>>> detector = DriftDetector(prediction="score").fit(reference_from_dataset("churn@v3"))
>>> report = detector.detect(window_from_dataset("churn@v4"))
>>> report.drifted_columns
('number_customer_service_calls', 'total_day_charge')
>>> report.save_html("drift.html")
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

from shipyard.core.errors import DataContractError
from shipyard.monitoring import detectors as dt
from shipyard.monitoring.drift_report import ColumnDrift, Distribution, DriftReport
from shipyard.monitoring.reference import ColumnSummary, Reference, summarize_column

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.monitoring.multivariate import DomainClassifier
    from shipyard.monitoring.windows import Window

__all__ = ["NUMERIC_METHODS", "CATEGORICAL_METHODS", "DriftDetector", "check_drift"]

NUMERIC_METHODS = ("auto", "ks", "wasserstein", "psi", "jensen_shannon", "chi_square")
CATEGORICAL_METHODS = ("auto", "chi_square", "jensen_shannon", "psi")
_DEFAULT_THRESHOLDS: dict[str, float] = {
    "wasserstein": 0.1,
    "jensen_shannon": 0.1,
    "psi": 0.2,
    "missing_rate": 0.2,
    "categories": 0.01,
}
_DISPLAY_BINS = 30
_DISPLAY_CATEGORIES = 12


class DriftDetector:
    """Drift of every column of a window against a reference (see the module doc).

    ``columns`` limits the compared columns (default: all the reference can compare);
    ``categorical`` names number columns to compare as categories; ``prediction`` and
    ``label`` name score and label columns (compared even if not in ``columns``);
    ``numeric_method``/``categorical_method`` choose the deciding method (``auto`` by
    sample size); ``thresholds`` override effect-size thresholds by method name;
    ``statistics="decision"`` computes only the deciding method and the missing rate
    (faster on very wide tables).
    """

    reference_: Reference
    roles_: dict[str, str]

    def __init__(
        self,
        *,
        columns: Sequence[str] | None = None,
        categorical: Sequence[str] = (),
        prediction: str | Sequence[str] | None = None,
        label: str | Sequence[str] | None = None,
        numeric_method: str = "auto",
        categorical_method: str = "auto",
        thresholds: Mapping[str, float] | None = None,
        alpha: float = 0.05,
        bins: int = 10,
        small_sample: int = 1_000,
        drift_share: float = 0.5,
        statistics: Literal["all", "decision"] = "all",
    ) -> None:
        self.columns = columns
        self.categorical = categorical
        self.prediction = prediction
        self.label = label
        self.numeric_method = numeric_method
        self.categorical_method = categorical_method
        self.thresholds = thresholds
        self.alpha = alpha
        self.bins = bins
        self.small_sample = small_sample
        self.drift_share = drift_share
        self.statistics = statistics

    # --- configuration ------------------------------------------------------------------

    def _validate(self) -> None:
        if self.numeric_method not in NUMERIC_METHODS:
            raise DataContractError(
                f"numeric_method={self.numeric_method!r} is not a numeric drift method.",
                hint=f"Choose one of {list(NUMERIC_METHODS)}.",
            )
        if self.categorical_method not in CATEGORICAL_METHODS:
            raise DataContractError(
                f"categorical_method={self.categorical_method!r} is not a categorical "
                "drift method.",
                hint=f"Choose one of {list(CATEGORICAL_METHODS)}.",
            )
        if self.statistics not in ("all", "decision"):
            raise DataContractError(
                f"statistics={self.statistics!r}: expected 'all' or 'decision'.",
                hint="Use 'decision' to compute only the deciding method.",
            )
        for name, value in (("alpha", self.alpha), ("drift_share", self.drift_share)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                raise DataContractError(
                    f"{name}={value!r}: expected a number in (0, 1].",
                    hint=f"Pass {name}=0.05, for example.",
                )
        if isinstance(self.small_sample, bool) or not isinstance(self.small_sample, int):
            raise DataContractError(
                f"small_sample={self.small_sample!r}: expected a whole number of rows.",
                hint="Keep the default, 1000.",
            )
        for method, value in (self.thresholds or {}).items():
            if method not in _DEFAULT_THRESHOLDS:
                raise DataContractError(
                    f"thresholds has an unknown method {method!r}.",
                    hint=f"Thresholds apply to {sorted(_DEFAULT_THRESHOLDS)}; tests use alpha.",
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise DataContractError(
                    f"thresholds[{method!r}]={value!r}: expected a number >= 0.",
                    hint="Pass a float, e.g. 0.1.",
                )

    def _threshold(self, method: str) -> float:
        return float((self.thresholds or {}).get(method, _DEFAULT_THRESHOLDS[method]))

    @staticmethod
    def _names(value: str | Sequence[str] | None, what: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise DataContractError(
                f"{what}={value!r}: expected a column name or a list of names.",
                hint=f"Pass {what}='score', for example.",
            )
        return list(value)

    # --- estimator ----------------------------------------------------------------------

    def fit(self, reference: Reference | pa.Table) -> Self:
        """Learn the reference (a Reference, or an Arrow table to build one from)."""
        import pyarrow as pa

        self._validate()
        roles: dict[str, str] = {}
        for role, value in (("prediction", self.prediction), ("label", self.label)):
            for name in self._names(value, role):
                roles[name] = role
        if isinstance(reference, pa.Table):
            wanted = None
            if self.columns is not None:
                wanted = list(dict.fromkeys([*self.columns, *roles]))
            reference = Reference.from_table(
                reference, columns=wanted, categorical=list(self.categorical)
            )
        if not isinstance(reference, Reference):
            raise DataContractError(
                f"DriftDetector.fit takes a Reference or a pyarrow.Table, got "
                f"{type(reference).__name__}.",
                hint="Use reference_from_dataset('name@v3') or Reference.from_table(table).",
            )
        names = list(self.columns) if self.columns is not None else list(reference.columns)
        names = list(dict.fromkeys([*names, *roles]))
        unknown = [n for n in names if n not in reference.columns]
        if unknown:
            raise DataContractError(
                f"Columns {unknown} are not comparable columns of the reference "
                f"{reference.source}.",
                hint=f"Choose among {sorted(reference.columns)}.",
            )
        if not names:
            raise DataContractError(
                f"The reference {reference.source} has no numeric, string or boolean column "
                "to compare.",
                hint="Drift compares numbers, strings and booleans.",
            )
        self.reference_ = reference
        self.roles_ = {name: roles.get(name, "feature") for name in names}
        return self

    def detect(
        self,
        current: pa.Table | Window,
        *,
        multivariate: bool | DomainClassifier = False,
    ) -> DriftReport:
        """The drift report of one window (an Arrow table or a Window).

        ``multivariate=True`` adds a domain classifier's AUC (see
        :class:`~shipyard.monitoring.multivariate.DomainClassifier`), or pass a
        configured one.
        """

        from shipyard.monitoring.windows import Window, window_from_table

        reference = getattr(self, "reference_", None)
        if reference is None:
            raise DataContractError(
                "DriftDetector is not fitted yet.",
                hint="Call fit(reference) before detect(window).",
            )
        window = current if isinstance(current, Window) else window_from_table(current)
        table: pa.Table = window.table
        columns = [self._column(name, role, table) for name, role in self.roles_.items()]
        features = [c for c in columns if c.role == "feature"]
        drifted_features = sum(c.drifted for c in features)
        share = drifted_features / len(features) if features else 0.0
        multivariate_result = None
        if multivariate is not False:
            from shipyard.monitoring.multivariate import DomainClassifier

            classifier = multivariate if isinstance(multivariate, DomainClassifier) else None
            classifier = classifier or DomainClassifier()
            feature_names = [c.name for c in features]
            multivariate_result = classifier.fit(reference, columns=feature_names).score(table)
        return DriftReport(
            reference=reference.source,
            window=window.label,
            reference_rows=reference.rows,
            window_rows=table.num_rows,
            columns=tuple(columns),
            share_drifted=share,
            drift_share=float(self.drift_share),
            dataset_drift=bool(features) and share >= self.drift_share,
            multivariate=multivariate_result,
            created_at=datetime.now(UTC),
            window_start=window.start,
            window_end=window.end,
        )

    def detect_windows(self, windows: Iterable[pa.Table | Window]) -> list[DriftReport]:
        """One report per window, in order (drift over time)."""
        return [self.detect(window) for window in windows]

    # --- one column ---------------------------------------------------------------------

    def _column(self, name: str, role: str, table: pa.Table) -> ColumnDrift:
        reference = self.reference_.columns[name]
        if name not in table.column_names:
            return _absent(name, role, reference)
        try:
            current = summarize_column(name, table.column(name), reference.kind, with_std=False)
        except DataContractError as exc:
            return _absent(name, role, reference, f"cannot be read as {reference.kind}: {exc}")
        comparison = dt.ColumnComparison(reference, current)
        method = self._method(reference, current)
        decision = self._detector(method).compare(comparison)
        results = {method: decision}
        if self.statistics == "all":
            for other in self._all_methods(reference.kind):
                if other not in results:
                    results[other] = self._detector(other).compare(comparison)
        guard = None
        if (reference.kind == "numeric" and method == "wasserstein") or (
            reference.kind == "categorical" and method == "jensen_shannon"
        ):
            guard_method = "ks" if reference.kind == "numeric" else "chi_square"
            if self._auto(reference.kind):
                guard = results.get(guard_method) or self._detector(guard_method).compare(
                    comparison
                )
                results[guard_method] = guard
        missing = dt.MissingRate(self._threshold("missing_rate"), self.alpha).compare(comparison)
        categories = None
        if reference.kind == "categorical":
            categories = dt.CategoryChange(self._threshold("categories")).compare(comparison)
            results["categories"] = categories
        decided = decision.drifted and (guard is None or guard.drifted)
        reasons = []
        if decided:
            reasons.append(f"{method} {decision.statistic:.4g} vs {decision.threshold:g}")
        if missing.drifted:
            rates = missing.details
            reasons.append(
                f"missing rate {rates['reference_rate']:.2%} -> {rates['current_rate']:.2%}"
            )
        if categories is not None and categories.drifted:
            reasons.append(_category_reason(categories))
        return ColumnDrift(
            name=name,
            role=role,
            kind=reference.kind,
            method=method,
            statistic=decision.statistic,
            threshold=decision.threshold,
            p_value=guard.p_value if guard is not None else decision.p_value,
            drifted=bool(reasons),
            reason="; ".join(reasons),
            results=tuple(results.values()),
            missing=missing,
            reference_values=reference.sample_size,
            current_values=current.sample_size,
            distribution=_distribution(reference, current),
        )

    def _auto(self, kind: str) -> bool:
        return (self.numeric_method if kind == "numeric" else self.categorical_method) == "auto"

    def _method(self, reference: ColumnSummary, current: ColumnSummary) -> str:
        chosen = self.numeric_method if reference.kind == "numeric" else self.categorical_method
        if chosen != "auto":
            return chosen
        small = min(reference.sample_size, current.sample_size) <= self.small_sample
        if reference.kind == "numeric":
            return "ks" if small else "wasserstein"
        return "chi_square" if small else "jensen_shannon"

    @staticmethod
    def _all_methods(kind: str) -> tuple[str, ...]:
        if kind == "numeric":
            return ("ks", "wasserstein", "psi", "jensen_shannon")
        return ("chi_square", "jensen_shannon", "psi")

    def _detector(self, method: str) -> dt.Detector:
        if method == "ks":
            return dt.KolmogorovSmirnov(self.alpha)
        if method == "wasserstein":
            return dt.Wasserstein(self._threshold("wasserstein"))
        if method == "psi":
            return dt.PopulationStability(self.bins, self._threshold("psi"))
        if method == "jensen_shannon":
            return dt.JensenShannon(self.bins, self._threshold("jensen_shannon"))
        return dt.ChiSquare(self.bins, self.alpha)


def _category_reason(result: dt.DetectorResult) -> str:
    details = result.details
    parts = []
    if details["new"] and result.statistic >= result.threshold:
        parts.append(f"new categories {details['new'][:5]} hold {details['new_share']:.1%}")
    if details["vanished_significant"]:
        parts.append(f"categories {details['vanished_significant'][:5]} vanished")
    return "; ".join(parts) or "category change"


def _absent(
    name: str, role: str, reference: ColumnSummary, why: str = "is not in the window"
) -> ColumnDrift:
    return ColumnDrift(
        name=name,
        role=role,
        kind=reference.kind,
        method="schema",
        statistic=math.nan,
        threshold=math.nan,
        p_value=None,
        drifted=True,
        reason=f"column {why}",
        results=(),
        missing=None,
        reference_values=reference.sample_size,
        current_values=0,
        distribution=None,
    )


def _distribution(reference: ColumnSummary, current: ColumnSummary) -> Distribution:
    """Shares to draw: equal-width bins over both sides' central 99% (numeric), or the
    most common categories and the rest pooled (categorical)."""
    from shipyard.monitoring import drift_stats as st

    missing = (reference.missing_rate, current.missing_rate)
    if reference.kind == "numeric":
        ends = [
            v[int(q * (len(v) - 1))]
            for v in (reference.values, current.values)
            if len(v)
            for q in (0.005, 0.995)
        ]
        if not ends:
            return Distribution("numeric", (), (), (), missing)
        low, high = float(min(ends)), float(max(ends))
        if high <= low:
            high = low + 1.0
        edges = np.linspace(low, high, _DISPLAY_BINS + 1)
        shares = [
            st.proportions(st.bin_counts(v, edges[1:-1]))
            for v in (reference.values, current.values)
        ]
        return Distribution(
            "numeric",
            tuple(float(e) for e in edges),
            tuple(float(s) for s in shares[0]),
            tuple(float(s) for s in shares[1]),
            missing,
        )
    ref_shares, cur_shares = reference.shares(), current.shares()
    ranked = sorted(
        set(ref_shares) | set(cur_shares),
        key=lambda c: (-max(ref_shares.get(c, 0.0), cur_shares.get(c, 0.0)), c),
    )
    shown = ranked[:_DISPLAY_CATEGORIES]
    ref_row = [ref_shares.get(c, 0.0) for c in shown]
    cur_row = [cur_shares.get(c, 0.0) for c in shown]
    if len(ranked) > len(shown) or reference.other:
        shown = [*shown, "(other)"]
        ref_row.append(max(1.0 - sum(ref_row), 0.0) if reference.sample_size else 0.0)
        cur_row.append(max(1.0 - sum(cur_row), 0.0) if current.sample_size else 0.0)
    return Distribution("categorical", tuple(shown), tuple(ref_row), tuple(cur_row), missing)


def check_drift(
    reference: Reference | pa.Table,
    current: pa.Table | Window,
    *,
    multivariate: bool = False,
    **config: Any,
) -> DriftReport:
    """One-call drift check: ``DriftDetector(**config).fit(reference).detect(current)``."""
    return DriftDetector(**config).fit(reference).detect(current, multivariate=multivariate)
