"""The closed loop's canary: its success criteria, and judging it from the prediction log.

A :class:`Canary` states what a challenger must show on its share of live traffic before
it is promoted: a minimum number of requests, an error-rate and a latency limit, and,
where labels have arrived, a metric no worse than the champion's over the same period.
:func:`judge_canary` reads both arms from the prediction log and names every failed
criterion. The error rate is failed requests over every request of the canary arm:
serving logs a model call that raised as a record with ``error`` set
(``monitoring.prediction_log.log_failed_call``), beside the scored ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from shipyard.core.errors import ConfigError
from shipyard.core.validation import check_number, check_whole

if TYPE_CHECKING:
    from shipyard.models.records import ModelVersion
    from shipyard.models.registry import ModelRegistry

__all__ = ["Canary", "judge_canary"]


@dataclass(frozen=True)
class Canary:
    """A canary's share of traffic and the criteria it must meet before promotion.

    ``min_requests`` canary records must be logged within ``max_wait``; among them at most
    ``max_error_rate`` failed (the model call raised, or gave no finite score), a p99
    latency within ``max_p99_ms`` (when given) and, once ``min_labels`` labelled records
    exist on both arms, ``metric_vs_champion`` (``roc_auc``, ``recall``...) no more than
    ``max_metric_drop`` below the champion's over the same period.
    """

    share: float = 0.1
    min_requests: int = 200
    max_error_rate: float = 0.01
    max_p99_ms: float | None = None
    metric_vs_champion: str | None = None
    max_metric_drop: float = 0.0
    min_labels: int = 30
    max_wait: timedelta = timedelta(hours=24)
    sticky_by: Literal["entity", "request"] = "request"

    def __post_init__(self) -> None:
        check_number(
            self.share, where="Canary.share", low=0.0, high=1.0, low_open=True, high_open=True
        )
        check_whole(self.min_requests, where="Canary.min_requests", low=1)
        check_number(self.max_error_rate, where="Canary.max_error_rate", low=0.0, high=1.0)
        if self.max_p99_ms is not None:
            check_number(self.max_p99_ms, where="Canary.max_p99_ms", low=0.0)
        check_number(self.max_metric_drop, where="Canary.max_metric_drop", low=0.0)
        check_whole(self.min_labels, where="Canary.min_labels", low=1)
        if self.metric_vs_champion is not None:
            from shipyard.evaluation.metrics import BINARY_METRICS

            if self.metric_vs_champion not in BINARY_METRICS:
                raise ConfigError(
                    f"Canary.metric_vs_champion is {self.metric_vs_champion!r}; it is not a "
                    "binary classification metric.",
                    hint=f"Use one of {', '.join(BINARY_METRICS)}.",
                )
        if not isinstance(self.max_wait, timedelta) or self.max_wait <= timedelta(0):
            raise ConfigError(
                f"Canary.max_wait is {self.max_wait!r}; expected a positive timedelta."
            )
        if self.sticky_by not in ("entity", "request"):
            raise ConfigError(f"Canary.sticky_by is {self.sticky_by!r}; use entity or request.")


def judge_canary(
    registry: ModelRegistry,
    canary: Canary,
    challenger: ModelVersion,
    champion_version: int | None,
    since: datetime,
) -> dict[str, Any]:
    """The canary's figures from the prediction log since ``since``, and the criteria
    it failed (``failed``: a list of sentences; empty when it passed)."""
    import numpy as np
    from sqlalchemy import select

    from shipyard.store.schema.monitoring import prediction_labels, prediction_log

    log, labels = prediction_log, prediction_labels
    query = (
        select(
            log.c.arm,
            log.c.version,
            log.c.score,
            log.c.scores,
            log.c.error,
            log.c.latency_ms,
            log.c.threshold,
            labels.c.label,
        )
        .select_from(log.outerjoin(labels, labels.c.request_id == log.c.request_id))
        .where(log.c.model == challenger.name, log.c.logged_at >= since)
    )
    canary_rows: list[Any] = []
    champion_rows: list[Any] = []
    with registry.stores.metadata.connect() as conn:
        for row in conn.execute(query):
            if row.arm == "canary" and row.version == challenger.number:
                canary_rows.append(row)
            elif row.arm == "champion" and row.version == champion_version:
                champion_rows.append(row)
    requests = len(canary_rows)
    errors = sum(1 for r in canary_rows if _failed(r))
    latencies = np.array([r.latency_ms for r in canary_rows], dtype=np.float64)
    p99 = float(np.percentile(latencies, 99)) if requests else None
    figures: dict[str, Any] = {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else None,
        "p99_ms": p99,
        "champion_requests": len(champion_rows),
        "failed": [],
    }
    if requests < canary.min_requests:
        return figures
    failed: list[str] = []
    if errors / requests > canary.max_error_rate:
        failed.append(f"error rate {errors / requests:.2%} > {canary.max_error_rate:.2%}")
    if canary.max_p99_ms is not None and p99 is not None and p99 > canary.max_p99_ms:
        failed.append(f"p99 latency {p99:.1f} ms > {canary.max_p99_ms:g} ms")
    if canary.metric_vs_champion is not None:
        figures.update(_metric_vs_champion(canary, challenger, canary_rows, champion_rows, failed))
    figures["failed"] = failed
    return figures


def _failed(row: Any) -> bool:
    """A failed request: a model call that raised (``error``), or an answer without a
    finite score (nor class probabilities)."""
    if row.error is not None:
        return True
    if row.score is None:
        return row.scores is None
    return not math.isfinite(row.score)


def _metric_vs_champion(
    canary: Canary,
    challenger: ModelVersion,
    canary_rows: list[Any],
    champion_rows: list[Any],
    failed: list[str],
) -> dict[str, Any]:
    import numpy as np

    from shipyard.evaluation.metrics import binary_metric

    metric = str(canary.metric_vs_champion)
    classes = challenger.signature.classes
    positive = classes[1] if classes and len(classes) == 2 else 1

    def figure(rows: list[Any]) -> tuple[float | None, int]:
        kept = [r for r in rows if r.label is not None and r.score is not None and not r.error]
        if len(kept) < canary.min_labels:
            return None, len(kept)
        y = np.array([str(r.label) == str(positive) for r in kept], dtype=np.int64)
        s = np.array([r.score for r in kept], dtype=np.float64)
        cut = float(np.median([r.threshold for r in kept if r.threshold is not None] or [0.5]))
        value = binary_metric(metric, y, s, cut)
        return (value if math.isfinite(value) else None), len(kept)

    mine, mine_n = figure(canary_rows)
    theirs, theirs_n = figure(champion_rows)
    out: dict[str, Any] = {
        "metric": metric,
        "canary_metric": mine,
        "champion_metric": theirs,
        "canary_labels": mine_n,
        "champion_labels": theirs_n,
    }
    if mine is None or theirs is None:
        out["metric_check"] = f"skipped: fewer than {canary.min_labels} labelled rows per arm"
    elif mine < theirs - canary.max_metric_drop:
        failed.append(f"{metric} {mine:.4f} < champion {theirs:.4f} - {canary.max_metric_drop:g}")
    return out
