"""The errors pipelines raise, under the core tree (``shipyard.core.errors``).

::

    ConfigError
    └── PipelineDefinitionError     a step or pipeline declared or called wrongly
        ├── PipelineParamError      a --param that is unknown or of the wrong type
        └── StepOutputError         a step returned something that cannot be stored
    NotFoundError
    └── PipelineNotFoundError       no pipeline by that name or reference
    ShipyardError
    └── PipelineRunFailed           a step failed (after its retries); the run is recorded
    KeyboardInterrupt
    └── PipelineInterrupted         Ctrl-C (or SIGTERM) stopped a run; it is marked killed
"""

from __future__ import annotations

from shipyard.core.errors import ConfigError, NotFoundError, ShipyardError

__all__ = [
    "PipelineDefinitionError",
    "PipelineInterrupted",
    "PipelineNotFoundError",
    "PipelineParamError",
    "PipelineRunFailed",
    "StepOutputError",
]


class PipelineDefinitionError(ConfigError):
    """A step or pipeline is declared or called in a way Shipyard cannot run."""

    code = "SY700"


class PipelineParamError(PipelineDefinitionError):
    """A pipeline parameter is unknown, missing, or does not parse as its annotated type."""

    code = "SY701"


class StepOutputError(PipelineDefinitionError):
    """A step returned a value no safe output format can store."""

    code = "SY702"


class PipelineNotFoundError(NotFoundError):
    """No pipeline is registered under that name, or a reference does not import."""

    code = "SY710"


class PipelineRunFailed(ShipyardError):  # noqa: N818 - reads like the event it reports
    """A pipeline run ended failed: one of its steps raised after its last retry.

    ``run_id`` is the failed run (resume it with ``resume_pipeline``), ``step`` the step
    that failed.
    """

    code = "SY720"

    def __init__(self, message: str, *, run_id: str, step: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.run_id = run_id
        self.step = step


class PipelineInterrupted(KeyboardInterrupt):  # noqa: N818 - it is a KeyboardInterrupt
    """A pipeline run was interrupted; it and its running steps are recorded as killed."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"pipeline run {run_id} was interrupted")
        self.run_id = run_id
