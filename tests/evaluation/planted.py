"""Models with planted behaviour for the gate tests (importable, so they can be pickled)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class SlowModel:
    """Wraps a fitted classifier and sleeps ``delay`` seconds per ``predict`` call."""

    def __init__(self, inner: Any, delay: float = 0.05) -> None:
        self.inner = inner
        self.delay = delay
        self.classes_ = inner.classes_

    def predict(self, frame: Any) -> Any:
        time.sleep(self.delay)
        return self.inner.predict(frame)

    def predict_proba(self, frame: Any) -> Any:
        time.sleep(self.delay)
        return self.inner.predict_proba(frame)


class PositionalModel:
    """Reads its input by position (column order), as a bare NumPy model would."""

    def __init__(self, weights: np.ndarray[Any, Any]) -> None:
        self.weights = weights
        self.classes_ = np.array([0, 1])

    def predict_proba(self, frame: Any) -> Any:
        values = np.asarray(frame, dtype=np.float64)
        score = 1 / (1 + np.exp(-(values @ self.weights)))
        return np.column_stack([1 - score, score])

    def predict(self, frame: Any) -> Any:
        return (self.predict_proba(frame)[:, 1] >= 0.5).astype(int)


class FragileModel:
    """Crashes on missing values and answers NaN for categories it never saw."""

    def __init__(self, known: set[str], column: str) -> None:
        self.known = known
        self.column = column
        self.classes_ = np.array([0, 1])

    def predict_proba(self, frame: Any) -> Any:
        if frame.isna().to_numpy().any():
            raise ValueError("Input contains NaN")
        score = np.where(frame[self.column].isin(self.known), 0.3, np.nan)
        return np.column_stack([1 - score, score])

    def predict(self, frame: Any) -> Any:
        return self.predict_proba(frame)[:, 1] >= 0.5
