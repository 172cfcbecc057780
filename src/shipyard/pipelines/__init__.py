"""Pipelines: steps and DAGs in plain Python, cached, tracked, resumable, scheduled.

::

    from shipyard.pipelines import pipeline, step

    @step
    def load(path: str) -> pd.DataFrame:
        return pd.read_csv(path)

    @step(libraries=["scikit-learn"], retries=1)
    def train(table: pd.DataFrame, n_estimators: int = 100, seed: int = 0):
        return RandomForestClassifier(n_estimators, random_state=seed).fit(...)

    @pipeline(schedule="0 3 * * *")
    def churn(path: str = "data/churn.csv", n_estimators: int = 100) -> None:
        train(load(path), n_estimators=n_estimators)

``shipyard run churn --param n_estimators=200`` (or ``run_pipeline(churn)``) runs it: the
DAG comes from the data passed between steps; outputs are typed artifacts; a step whose
code, params, inputs, libraries and seed are unchanged is skipped; every run is tracked.
Declaring steps is light: the runner, executors and scheduler load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from shipyard.pipelines.definition import (
    OutputHandle,
    Pipeline,
    Plan,
    Step,
    derive_seed,
    pipeline,
    step,
)
from shipyard.pipelines.errors import (
    PipelineDefinitionError,
    PipelineInterrupted,
    PipelineNotFoundError,
    PipelineParamError,
    PipelineRunFailed,
    StepOutputError,
)
from shipyard.pipelines.graph import DatasetInput, dataset
from shipyard.pipelines.triggers import DatasetTrigger, on_dataset

if TYPE_CHECKING:
    from shipyard.pipelines.cron import CronExpression, parse_cron
    from shipyard.pipelines.executors import Executor, InProcessExecutor, LocalProcessExecutor
    from shipyard.pipelines.lineage import LineageNode, lineage
    from shipyard.pipelines.ray_executor import RayExecutor
    from shipyard.pipelines.records import PipelineRun, StepEvent, StepRecord
    from shipyard.pipelines.registry import get_pipeline, project_pipelines
    from shipyard.pipelines.runner import (
        PipelineResult,
        get_pipeline_run,
        list_pipeline_runs,
        load_output,
        rerun_pipeline,
        resume_pipeline,
        run_pipeline,
    )
    from shipyard.pipelines.scheduler import Scheduler
    from shipyard.pipelines.worker import current_step, log_metrics

__all__ = [
    "CronExpression",
    "DatasetInput",
    "DatasetTrigger",
    "Executor",
    "InProcessExecutor",
    "LineageNode",
    "LocalProcessExecutor",
    "OutputHandle",
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineInterrupted",
    "PipelineNotFoundError",
    "PipelineParamError",
    "PipelineResult",
    "PipelineRun",
    "PipelineRunFailed",
    "Plan",
    "RayExecutor",
    "Scheduler",
    "Step",
    "StepEvent",
    "StepOutputError",
    "StepRecord",
    "current_step",
    "dataset",
    "derive_seed",
    "get_pipeline",
    "get_pipeline_run",
    "lineage",
    "list_pipeline_runs",
    "load_output",
    "log_metrics",
    "on_dataset",
    "parse_cron",
    "pipeline",
    "project_pipelines",
    "rerun_pipeline",
    "resume_pipeline",
    "run_pipeline",
    "step",
]

_LAZY = {
    "CronExpression": "shipyard.pipelines.cron",
    "parse_cron": "shipyard.pipelines.cron",
    "Executor": "shipyard.pipelines.executors",
    "InProcessExecutor": "shipyard.pipelines.executors",
    "LocalProcessExecutor": "shipyard.pipelines.executors",
    "RayExecutor": "shipyard.pipelines.ray_executor",
    "LineageNode": "shipyard.pipelines.lineage",
    "lineage": "shipyard.pipelines.lineage",
    "PipelineRun": "shipyard.pipelines.records",
    "StepEvent": "shipyard.pipelines.records",
    "StepRecord": "shipyard.pipelines.records",
    "get_pipeline": "shipyard.pipelines.registry",
    "project_pipelines": "shipyard.pipelines.registry",
    "PipelineResult": "shipyard.pipelines.runner",
    "get_pipeline_run": "shipyard.pipelines.runner",
    "list_pipeline_runs": "shipyard.pipelines.runner",
    "load_output": "shipyard.pipelines.runner",
    "rerun_pipeline": "shipyard.pipelines.runner",
    "resume_pipeline": "shipyard.pipelines.runner",
    "run_pipeline": "shipyard.pipelines.runner",
    "Scheduler": "shipyard.pipelines.scheduler",
    "current_step": "shipyard.pipelines.worker",
    "log_metrics": "shipyard.pipelines.worker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.pipelines' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
