"""Importable test objects: a generic Python model and pre-/post-processing hooks.

They live in a module (not in a test function) because pickle stores classes and
functions by their import path.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class CallsRule:
    """A rule-based "model": churn risk grows with customer service calls."""

    def __init__(self, scale: float = 5.0) -> None:
        self.scale = scale

    def predict(self, frame: Any) -> Any:
        calls = np.asarray(frame["number_customer_service_calls"], dtype=float)
        return np.clip(calls / self.scale, 0.0, 1.0)


def add_calls_per_day(frame: Any) -> Any:
    """A preprocess hook: adds a derived column the model does not need, keeps the rest."""
    out = frame.copy()
    out["calls_per_minute"] = out["total_day_calls"] / (out["total_day_minutes"] + 1.0)
    return out


def halve_scores(scores: Any, frame: Any) -> Any:
    """A postprocess hook: halves every score (easy to check)."""
    return np.asarray(scores) / 2.0


def broken_hook(frame: Any) -> Any:
    raise RuntimeError("this hook always fails")
