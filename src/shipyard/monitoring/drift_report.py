"""The drift report: per-column verdicts and statistics, as JSON and as HTML.

A :class:`DriftReport` is a frozen record. ``to_dict()``/``to_json()`` give a stable,
versioned JSON document (``shipyard.drift.v1``; non-finite numbers become ``null``) that
:meth:`DriftReport.from_dict` reads back; ``to_html()`` renders a self-contained page
(inline CSS and SVG, no script, no network) with each column's reference and current
distributions drawn side by side (``shipyard.monitoring.drift_html``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError

if TYPE_CHECKING:
    from shipyard.monitoring.detectors import DetectorResult
    from shipyard.monitoring.multivariate import MultivariateResult

__all__ = ["REPORT_FORMAT", "ColumnDrift", "Distribution", "DriftReport"]

REPORT_FORMAT = "shipyard.drift.v1"


def _number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class Distribution:
    """What the report draws for one column: numeric ``bins`` are the edges of equal-width
    bins (one more than the shares), categorical ``bins`` the category labels; shares of
    the non-missing values on each side; ``missing`` the (reference, current) rates."""

    kind: str
    bins: tuple[Any, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]
    missing: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bins": list(self.bins),
            "reference": list(self.reference),
            "current": list(self.current),
            "missing": list(self.missing),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Distribution:
        return cls(
            str(data["kind"]),
            tuple(data["bins"]),
            tuple(float(v) for v in data["reference"]),
            tuple(float(v) for v in data["current"]),
            (float(data["missing"][0]), float(data["missing"][1])),
        )


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """One column's verdict: the deciding ``method`` with its statistic, threshold and
    p-value; ``drifted`` and the ``reason`` in words; every statistic computed
    (``results``); the missing-rate check; the distributions to draw."""

    name: str
    role: str
    kind: str
    method: str
    statistic: float
    threshold: float
    p_value: float | None
    drifted: bool
    reason: str
    results: tuple[DetectorResult, ...]
    missing: DetectorResult | None
    reference_values: int
    current_values: int
    distribution: Distribution | None

    def result(self, method: str) -> DetectorResult | None:
        """The statistic of ``method`` (``ks``, ``psi``...), if computed."""
        return next((r for r in self.results if r.method == method), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "method": self.method,
            "statistic": _number(self.statistic),
            "threshold": _number(self.threshold),
            "p_value": _number(self.p_value),
            "drifted": self.drifted,
            "reason": self.reason,
            "statistics": {r.method: r.to_dict() for r in self.results},
            "missing": self.missing.to_dict() if self.missing else None,
            "reference_values": self.reference_values,
            "current_values": self.current_values,
            "distribution": self.distribution.to_dict() if self.distribution else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnDrift:
        from shipyard.monitoring.detectors import DetectorResult

        def result(item: Mapping[str, Any]) -> DetectorResult:
            return DetectorResult(
                str(item["method"]),
                _float(item["statistic"]),
                _float(item["threshold"]),
                bool(item["drifted"]),
                item.get("p_value"),
                dict(item.get("details") or {}),
            )

        return cls(
            name=str(data["name"]),
            role=str(data["role"]),
            kind=str(data["kind"]),
            method=str(data["method"]),
            statistic=_float(data["statistic"]),
            threshold=_float(data["threshold"]),
            p_value=data.get("p_value"),
            drifted=bool(data["drifted"]),
            reason=str(data.get("reason") or ""),
            results=tuple(result(r) for r in (data.get("statistics") or {}).values()),
            missing=result(data["missing"]) if data.get("missing") else None,
            reference_values=int(data["reference_values"]),
            current_values=int(data["current_values"]),
            distribution=Distribution.from_dict(data["distribution"])
            if data.get("distribution")
            else None,
        )


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Drift of one window against one reference (see the module doc)."""

    reference: str
    window: str
    reference_rows: int
    window_rows: int
    columns: tuple[ColumnDrift, ...]
    share_drifted: float
    drift_share: float
    dataset_drift: bool
    multivariate: MultivariateResult | None
    created_at: datetime
    window_start: datetime | None = None
    window_end: datetime | None = None

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        """Names of the columns that drifted (features, prediction and labels)."""
        return tuple(c.name for c in self.columns if c.drifted)

    @property
    def alert(self) -> bool:
        """Whether anything drifted: a column, or the multivariate check."""
        return bool(self.drifted_columns) or bool(self.multivariate and self.multivariate.drifted)

    def column(self, name: str) -> ColumnDrift:
        for column in self.columns:
            if column.name == name:
                return column
        raise DataContractError(
            f"Column {name!r} is not in this drift report.",
            hint=f"It holds {[c.name for c in self.columns]}.",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "reference": self.reference,
            "window": self.window,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "created_at": self.created_at.isoformat(),
            "reference_rows": self.reference_rows,
            "window_rows": self.window_rows,
            "alert": self.alert,
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "drifted_columns": list(self.drifted_columns),
            "columns": [c.to_dict() for c in self.columns],
            "multivariate": self.multivariate.to_dict() if self.multivariate else None,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """Read back what :meth:`to_dict` wrote (a stored report)."""
        from shipyard.monitoring.multivariate import MultivariateResult

        if not isinstance(data, Mapping) or data.get("format") != REPORT_FORMAT:
            raise DataContractError(
                f"Not a drift report: expected format {REPORT_FORMAT!r}.",
                hint="Pass a document written by DriftReport.to_dict() or to_json().",
            )
        try:
            return cls(
                reference=str(data["reference"]),
                window=str(data["window"]),
                reference_rows=int(data["reference_rows"]),
                window_rows=int(data["window_rows"]),
                columns=tuple(ColumnDrift.from_dict(c) for c in data["columns"]),
                share_drifted=float(data["share_drifted"]),
                drift_share=float(data["drift_share"]),
                dataset_drift=bool(data["dataset_drift"]),
                multivariate=MultivariateResult.from_dict(data["multivariate"])
                if data.get("multivariate")
                else None,
                created_at=datetime.fromisoformat(data["created_at"]),
                window_start=_when(data.get("window_start")),
                window_end=_when(data.get("window_end")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataContractError(
                f"The drift report document is damaged: {type(exc).__name__}: {exc}.",
                hint="Regenerate the report.",
            ) from exc

    def to_html(self, title: str | None = None) -> str:
        """A self-contained HTML page (inline SVG plots, no script, no network)."""
        from shipyard.monitoring.drift_html import render_report

        return render_report(self, title)

    def save_html(self, path: str | Path, title: str | None = None) -> Path:
        """Write :meth:`to_html` to ``path`` (atomically: no half-written file)."""
        return _write(Path(path), self.to_html(title))

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` (atomically)."""
        return _write(Path(path), self.to_json())


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _write(path: Path, text: str) -> Path:
    from shipyard.core.files import write_text_atomically

    if path.is_dir():
        raise DataContractError(
            f"{path} is a folder; cannot write the report there.",
            hint="Give a file path such as drift.html.",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, text)
    except OSError as exc:
        raise DataContractError(
            f"Cannot write the report to {path}: {exc.strerror or exc}.",
            hint="Check that the folder exists and is writable.",
        ) from exc
    return path
