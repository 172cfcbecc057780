"""Triggers: events that start a pipeline run, checked by ``shipyard scheduler``.

``on_dataset("churn")`` fires when a new version of dataset ``churn`` is committed; with
``param="version"`` the run gets that version's reference (``churn@v7``) as
its ``version`` parameter, so the run reads exactly the version that triggered it.

>>> @pipeline(triggers=[on_dataset("churn", param="version")])
... def retrain(version: str = "churn") -> None: ...

A trigger remembers what it last saw in the scheduler's state (``pipeline_schedules``),
so a restarted scheduler neither misses a version committed while it was down nor runs
one twice. (Monitoring alerts will be the next kind of trigger.)
"""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.core.errors import ReferenceError_
from shipyard.core.references import validate_name
from shipyard.pipelines.errors import PipelineDefinitionError

__all__ = ["DatasetTrigger", "Trigger", "on_dataset"]


@dataclass(frozen=True, slots=True)
class DatasetTrigger:
    """Fires on each new version of ``dataset`` (see ``on_dataset``)."""

    dataset: str
    param: str | None = None

    @property
    def key(self) -> str:
        """The trigger's name in the scheduler's state, unique within a pipeline."""
        return f"dataset:{self.dataset}"

    def describe(self) -> str:
        return f"new version of dataset {self.dataset!r}"


Trigger = DatasetTrigger
"""Every kind of trigger (one kind so far)."""


def on_dataset(dataset: str, *, param: str | None = None) -> DatasetTrigger:
    """Run the pipeline on each new version of ``dataset``.

    ``param`` names a pipeline parameter that receives the new version's reference.
    """
    try:
        validate_name(dataset, what="dataset name")
    except ReferenceError_ as exc:
        raise PipelineDefinitionError(f"on_dataset: {exc.message}", hint=exc.hint) from exc
    if param is not None and not param.isidentifier():
        raise PipelineDefinitionError(
            f"on_dataset({dataset!r}, param={param!r}): param names a pipeline parameter.",
        )
    return DatasetTrigger(dataset, param)
