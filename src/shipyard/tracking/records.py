"""The records tracking reads and writes: frozen, typed, what the store holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "ArtifactEntry",
    "DatasetInput",
    "Experiment",
    "Lifecycle",
    "Metric",
    "Run",
    "RunPage",
    "RunStatus",
    "TERMINAL_STATUSES",
]

RunStatus = Literal["running", "finished", "failed", "killed"]
Lifecycle = Literal["active", "deleted"]

TERMINAL_STATUSES: frozenset[str] = frozenset({"finished", "failed", "killed"})


@dataclass(frozen=True, slots=True)
class Experiment:
    """A named group of runs."""

    id: str
    name: str
    description: str | None
    tags: dict[str, str]
    lifecycle: Lifecycle
    created_at: datetime
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Metric:
    """One logged value of a metric."""

    key: str
    value: float
    step: int
    timestamp: float
    """Seconds since the epoch, taken when the caller logged it."""


@dataclass(frozen=True, slots=True)
class DatasetInput:
    """A dataset version a run read."""

    dataset: str
    version_id: str
    role: str


@dataclass(frozen=True, slots=True)
class ArtifactEntry:
    """One file of a run's artifact tree."""

    path: str
    blob_id: str
    size: int
    kind: str


@dataclass(frozen=True, slots=True)
class Run:
    """A tracked run with its params, tags and latest metric values.

    The full metric history is read separately (``TrackingClient.get_metric_history``).
    """

    id: str
    experiment_id: str
    name: str
    status: RunStatus
    lifecycle: Lifecycle
    user: str
    start_time: datetime
    end_time: datetime | None
    heartbeat_at: datetime
    parent_id: str | None = None
    source: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    code_diff_blob: str | None = None
    environment_id: str | None = None
    error: str | None = None
    deleted_at: datetime | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    """Latest value of each metric (highest step, then latest timestamp)."""
    inputs: tuple[DatasetInput, ...] = ()

    @property
    def duration_seconds(self) -> float | None:
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of search results; pass ``next_page_token`` back for the next page."""

    runs: tuple[Run, ...]
    next_page_token: str | None
    total: int | None = None
    """How many runs match in all, when the caller asked for it."""
