"""The records pipelines read and write: frozen, typed, what the store holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "EventKind",
    "PipelineRun",
    "StepEvent",
    "StepRecord",
    "StepStatus",
]

StepStatus = Literal["pending", "running", "finished", "cached", "failed", "killed", "skipped"]
EventKind = Literal[
    "planned", "started", "cached", "finished", "retrying", "failed", "skipped", "killed"
]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a pipeline run, as recorded.

    ``step_run_id`` is the child tracking run that executed it; a cache hit has none and
    names in ``source_run_id`` the step run that produced the outputs it reused.
    """

    run_id: str
    step: str
    function: str
    position: int
    upstream: tuple[str, ...]
    status: StepStatus
    attempts: int
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Argument path -> output id it read."""
    outputs: Mapping[str, str] = field(default_factory=dict)
    """Output name -> output id."""
    cache_key: str | None = None
    key_parts: Mapping[str, Any] | None = None
    step_run_id: str | None = None
    source_run_id: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class PipelineRun:
    """A pipeline run: what ran (pipeline, params, seed), how it went, and its steps.

    ``status``, the times and ``error`` come from the run's tracking run (the parent of
    its step runs), which is also what a crashed process's heartbeat marks failed.
    """

    run_id: str
    pipeline: str
    reference: str | None
    params: Mapping[str, Any]
    seed: int
    executor: str
    attempt: int
    status: str
    start_time: datetime | None
    end_time: datetime | None
    error: str | None
    steps: tuple[StepRecord, ...] = ()

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.step == name:
                return record
        raise KeyError(name)

    @property
    def duration_seconds(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """The run and its steps as JSON data (``--json`` output)."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "params": dict(self.params),
            "seed": self.seed,
            "executor": self.executor,
            "attempt": self.attempt,
            "start_time": self.start_time.isoformat() if self.start_time else None,
            "end_time": self.end_time.isoformat() if self.end_time else None,
            "error": self.error,
            "steps": [
                {
                    "step": s.step,
                    "status": s.status,
                    "attempts": s.attempts,
                    "cache_key": s.cache_key,
                    "step_run_id": s.step_run_id,
                    "source_run_id": s.source_run_id,
                    "inputs": dict(s.inputs),
                    "outputs": dict(s.outputs),
                    "duration_seconds": s.duration_seconds,
                    "error": s.error,
                }
                for s in self.steps
            ],
        }


@dataclass(frozen=True, slots=True)
class StepEvent:
    """Something that happened to a step while a pipeline ran (for progress displays)."""

    kind: EventKind
    step: str
    attempt: int = 0
    message: str | None = None
    duration_seconds: float | None = None
