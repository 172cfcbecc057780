"""A multivariate drift check: can a classifier tell reference rows from window rows?

Per-column tests miss drift in the joint distribution (two features that each keep their
marginal but change how they move together). A domain classifier sees it: a gradient
boosted tree model is trained to separate a sample of reference rows (label 0) from a
sample of window rows (label 1), and its cross-validated ROC AUC is the figure: 0.5
means indistinguishable, 1.0 fully separable. The alert threshold is 0.55, raised for
small samples to 0.5 plus four standard errors of the AUC under no drift, so noise alone
does not alert.

Needs scikit-learn (the ``sklearn`` extra); imported on first use.

>>> result = DomainClassifier().fit(reference).score(window_table)
>>> round(result.auc, 3), result.drifted
(0.503, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from shipyard.core.errors import BackendUnavailableError, DataContractError
from shipyard.monitoring.reference import Reference

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.monitoring.windows import Window

__all__ = ["DomainClassifier", "MultivariateResult"]

_MAX_CATEGORIES = 250
"""Category codes kept per column (the tree model bins at most 255 values)."""


@dataclass(frozen=True, slots=True)
class MultivariateResult:
    """The domain classifier's cross-validated ROC AUC against its alert threshold."""

    auc: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    features: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "domain_classifier_auc",
            "auc": self.auc,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "features": list(self.features),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MultivariateResult:
        return cls(
            float(data["auc"]),
            float(data["threshold"]),
            bool(data["drifted"]),
            int(data["reference_rows"]),
            int(data["current_rows"]),
            tuple(str(f) for f in data["features"]),
        )


def null_auc_threshold(reference_rows: int, current_rows: int, floor: float = 0.55) -> float:
    """0.5 plus four standard errors of the AUC of a classifier that cannot separate the
    two samples (Hanley-McNeil at AUC 0.5), and at least ``floor``."""
    n1, n2 = max(reference_rows, 1), max(current_rows, 1)
    standard_error = math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))
    return max(floor, 0.5 + 4 * standard_error)


class DomainClassifier:
    """Domain-classifier drift check on the estimator contract (see the module doc).

    ``max_rows`` rows are sampled from each side; ``folds`` cross-validation folds;
    ``threshold`` fixes the AUC alert threshold (default: by sample size).
    """

    reference_sample_: pa.Table
    columns_: list[str]
    categories_: dict[str, dict[str, int]]
    kinds_: dict[str, str]

    def __init__(
        self,
        *,
        max_rows: int = 5_000,
        folds: int = 3,
        threshold: float | None = None,
        max_iter: int = 60,
        seed: int = 0,
    ) -> None:
        self.max_rows = max_rows
        self.folds = folds
        self.threshold = threshold
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, reference: Reference | pa.Table, columns: Sequence[str] | None = None) -> Self:
        """Keep a sample of the reference rows (the Reference's sample, or the table)."""
        import pyarrow as pa

        if isinstance(self.max_rows, bool) or not isinstance(self.max_rows, int):
            raise DataContractError(
                f"max_rows={self.max_rows!r}: expected a whole number.", hint="Pass 5000."
            )
        if self.max_rows < 50 or not isinstance(self.folds, int) or not 2 <= self.folds <= 10:
            raise DataContractError(
                f"DomainClassifier(max_rows={self.max_rows}, folds={self.folds}): needs "
                "max_rows >= 50 and 2 <= folds <= 10.",
                hint="Keep the defaults (5000 rows, 3 folds).",
            )
        if isinstance(reference, pa.Table):
            reference = Reference.from_table(reference, columns=columns)
        if reference.sample is None or reference.sample.num_rows == 0:
            raise DataContractError(
                f"The reference {reference.source} has no row sample to train on.",
                hint="Build the reference from a dataset version or a table.",
            )
        names = list(columns) if columns is not None else list(reference.columns)
        names = [n for n in names if n in reference.sample.column_names]
        if not names:
            raise DataContractError(
                f"None of the columns is in the reference {reference.source}'s sample.",
                hint="Pass the feature columns to compare.",
            )
        self.columns_ = names
        self.kinds_ = {n: reference.columns[n].kind for n in names}
        self.categories_ = {
            n: {c: i for i, c in enumerate(reference.columns[n].categories[:_MAX_CATEGORIES])}
            for n in names
            if self.kinds_[n] == "categorical"
        }
        self.reference_sample_ = _subsample(reference.sample.select(names), self.max_rows, 1)
        return self

    def score(self, current: pa.Table | Window) -> MultivariateResult:
        """Train and cross-validate on reference rows against ``current`` rows."""
        from shipyard.monitoring.windows import Window

        if getattr(self, "columns_", None) is None:
            raise DataContractError(
                "DomainClassifier is not fitted yet.", hint="Call fit(reference) first."
            )
        table = current.table if isinstance(current, Window) else current
        absent = [n for n in self.columns_ if n not in table.column_names]
        if absent:
            raise DataContractError(
                f"Columns {absent} are missing from the window; the classifier needs them.",
                hint="Compare windows with the reference's columns.",
            )
        window = _subsample(table.select(self.columns_), self.max_rows, 2)
        if window.num_rows < 10:
            raise DataContractError(
                f"The window has {window.num_rows} rows; the multivariate check needs 10 or more.",
                hint="Use a longer window.",
            )
        features = np.vstack([self._encode(self.reference_sample_), self._encode(window)])
        target = np.r_[np.zeros(self.reference_sample_.num_rows), np.ones(window.num_rows)].astype(
            np.int8
        )
        auc = self._cross_validated_auc(features, target)
        threshold = (
            float(self.threshold)
            if self.threshold is not None
            else null_auc_threshold(self.reference_sample_.num_rows, window.num_rows)
        )
        return MultivariateResult(
            auc,
            threshold,
            bool(auc >= threshold),
            self.reference_sample_.num_rows,
            window.num_rows,
            tuple(self.columns_),
        )

    def _encode(self, table: pa.Table) -> np.ndarray[Any, np.dtype[np.float64]]:
        import pyarrow as pa

        columns = []
        for name in self.columns_:
            column = table.column(name)
            if self.kinds_[name] == "numeric":
                values = np.asarray(
                    column.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False),
                    dtype=np.float64,
                ).copy()
                values[~np.isfinite(values)] = np.nan
            else:
                from shipyard.monitoring.reference import category_label

                codes = self.categories_[name]
                unseen = float(min(len(codes), _MAX_CATEGORIES))
                values = np.array(
                    [
                        math.nan if v is None else codes.get(category_label(v), unseen)
                        for v in column.to_pylist()
                    ],
                    dtype=np.float64,
                )
            columns.append(values)
        return np.column_stack(columns)

    def _cross_validated_auc(
        self, features: np.ndarray[Any, Any], target: np.ndarray[Any, Any]
    ) -> float:
        try:
            from sklearn.ensemble import HistGradientBoostingClassifier
            from sklearn.metrics import roc_auc_score
            from sklearn.model_selection import StratifiedKFold, cross_val_predict
        except ImportError as exc:
            raise BackendUnavailableError(
                "The multivariate drift check needs scikit-learn, which is not installed.",
                hint="pip install 'shipyard[sklearn]', or run without multivariate=True.",
            ) from exc
        categorical = [self.kinds_[n] == "categorical" for n in self.columns_]
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=0.1,
            max_leaf_nodes=15,
            categorical_features=np.array(categorical, dtype=bool) if any(categorical) else None,
            early_stopping=False,
            random_state=self.seed,
        )
        folds = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=self.seed)
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        # One thread: on a few thousand rows OpenMP's start-up and spin-waiting cost more
        # than they save, and on a busy machine far more (minutes instead of a second).
        with threadpool_limits(limits=1, user_api="openmp"):
            scores = cross_val_predict(model, features, target, cv=folds, method="predict_proba")
        return float(roc_auc_score(target, scores[:, 1]))


def _subsample(table: pa.Table, rows: int, salt: int) -> pa.Table:
    if table.num_rows <= rows:
        return table
    rng = np.random.Generator(np.random.PCG64(20_261_126 + salt))
    return table.take(np.sort(rng.choice(table.num_rows, size=rows, replace=False)))
