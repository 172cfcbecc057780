"""Checks of configured numbers, shared by every layer that reads settings.

Gates (``shipyard.evaluation``), the closed loop's canary (``shipyard.pipelines``) and
the config readers above them refuse a bad number with the same sentence, naming where
it came from::

    >>> check_number(0.2, where="Canary.share", low=0.0, high=1.0, low_open=True)
    0.2
    >>> check_number(1.5, where="Canary.share", low=0.0, high=1.0, low_open=True)
    ConfigError: Canary.share must be > 0 and <= 1, not 1.5.  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

from shipyard.core.errors import ConfigError

__all__ = ["check_number", "check_whole"]


def check_number(
    value: Any,
    *,
    where: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float when it is a finite number within the bounds, else ``ConfigError``.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``; ``where`` names the
    setting in the message (``"[gates.churn] latency: p99_ms"``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, not {value!r}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ConfigError(
            f"{where} must be {_span(low, high, low_open, high_open)}, not {value!r}."
        )
    return float(value)


def check_whole(value: Any, *, where: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` when it is a whole number (not a bool) within ``[low, high]``, else
    ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number, not {value!r}.")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(
            f"{where} must be a whole number {_span(low, high, False, False)}, not {value!r}."
        )
    return value


def _span(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    above = f"{'>' if low_open else '>='} {low:g}" if low is not None else ""
    below = f"{'<' if high_open else '<='} {high:g}" if high is not None else ""
    if low is not None and high is not None and not low_open and not high_open:
        return f"between {low:g} and {high:g}"
    return " and ".join(part for part in (above, below) if part)
