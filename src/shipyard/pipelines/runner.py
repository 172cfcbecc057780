"""Running pipelines: ``run_pipeline``, ``resume_pipeline``, and reading runs and outputs back.

>>> result = run_pipeline("churn", {"n_estimators": 200}, executor="process")  # doctest: +SKIP
>>> result.status, result.run.step("train").status  # doctest: +SKIP
('finished', 'finished')
>>> model = load_output(result.run.step("train").outputs["output"])  # doctest: +SKIP

A pipeline run is a tracking run (experiment: the pipeline's, default its name) whose
params are the pipeline's; each executed step is a child run. A run that fails raises
``PipelineRunFailed`` after everything is recorded; ``resume_pipeline(run_id)`` then
continues it: steps the failed attempt finished are reused when their cache key is
unchanged (even with ``cache=False``), and execution restarts at the failed step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shipyard.core.config import Config, load_config
from shipyard.core.errors import AmbiguousReferenceError, ConfigError, NotFoundError
from shipyard.pipelines import journal
from shipyard.pipelines.canonical import canonical_json
from shipyard.pipelines.definition import Pipeline, Plan
from shipyard.pipelines.engine import Execution
from shipyard.pipelines.errors import (
    PipelineDefinitionError,
    PipelineInterrupted,
    PipelineRunFailed,
)
from shipyard.pipelines.executors import Executor, InProcessExecutor, make_executor
from shipyard.pipelines.outputs import read_output
from shipyard.pipelines.records import PipelineRun, StepEvent, StepRecord
from shipyard.pipelines.registry import get_pipeline
from shipyard.pipelines.worker import StoreLocation
from shipyard.tracking.client import TrackingClient

__all__ = [
    "PipelineResult",
    "get_pipeline_run",
    "list_pipeline_runs",
    "load_output",
    "rerun_pipeline",
    "resume_pipeline",
    "run_pipeline",
]

EventHandler = Callable[[StepEvent], None]


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """A finished pipeline run and the outputs its pipeline function returned."""

    run: PipelineRun
    outputs: Mapping[str, str]
    """Name -> output id of each output the pipeline function returned."""

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def status(self) -> str:
        return self.run.status

    def step(self, name: str) -> StepRecord:
        return self.run.step(name)


def run_pipeline(
    pipeline: Pipeline | str,
    params: Mapping[str, Any] | None = None,
    *,
    config: Config | None = None,
    executor: Executor | str | None = None,
    cache: bool = True,
    seed: int = 0,
    on_event: EventHandler | None = None,
    client: TrackingClient | None = None,
) -> PipelineResult:
    """Plan and run ``pipeline`` (a ``Pipeline`` or a name/reference) with ``params``.

    ``executor`` is an ``Executor`` or ``"inprocess"`` (default), ``"process"``, ``"ray"``;
    ``cache=False`` runs every step (``--no-cache``); ``seed`` seeds every step (each step
    gets ``derive_seed(seed, step)`` unless it fixes its own). ``on_event`` receives a
    ``StepEvent`` as steps start, hit the cache, retry, finish or fail. Raises
    ``PipelineRunFailed`` (the run is recorded) if a step fails after its retries.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise PipelineDefinitionError(f"seed must be an integer >= 0, not {seed!r}.")
    config = config or load_config()
    chosen = (
        pipeline if isinstance(pipeline, Pipeline) else get_pipeline(pipeline, config.project_dir)
    )
    plan = chosen.plan(params or {})
    with _executor(executor) as runner, _client(config, client) as tracking:
        _check_importable(plan, runner)
        parent = tracking.create_run(
            chosen.experiment,
            name=chosen.name,
            tags={
                "shipyard.kind": "pipeline",
                "shipyard.pipeline": chosen.name,
                "shipyard.reference": chosen.reference,
                "shipyard.executor": runner.name,
                "shipyard.seed": seed,
            },
        )
        if plan.params:
            tracking.log_params(parent.id, _texts(plan.params))
        with tracking.stores.metadata.transaction() as conn:
            journal.insert_run(
                conn,
                run_id=parent.id,
                plan=plan,
                reference=chosen.reference,
                seed=seed,
                executor=runner.name,
            )
        return _execute(plan, parent.id, seed, cache, runner, tracking, config, on_event, None)


def resume_pipeline(
    run_id: str,
    *,
    config: Config | None = None,
    executor: Executor | str | None = None,
    on_event: EventHandler | None = None,
    client: TrackingClient | None = None,
) -> PipelineResult:
    """Continue a failed or killed pipeline run from the steps it did not finish.

    The run keeps its id, params and seed; the pipeline is imported again (so a fixed
    step runs its new code). Raises ``ConfigError`` for a run that is still running or
    finished, ``NotFoundError`` for an unknown id.
    """
    config = config or load_config()
    with _executor(executor) as runner, _client(config, client) as tracking:
        with tracking.stores.metadata.connect() as conn:
            record = journal.get_run(conn, _full_run_id(conn, run_id))
        if record.status not in ("failed", "killed"):
            raise ConfigError(
                f"Pipeline run {record.run_id} is {record.status}; only a failed or killed run "
                "can be resumed.",
                hint="Start a new run with `shipyard run` instead."
                if record.status == "finished"
                else "Wait for it to end; a run whose process died is marked failed after its "
                "heartbeat stops (5 minutes).",
            )
        pipeline = get_pipeline(record.reference or record.pipeline, config.project_dir)
        plan = pipeline.plan(record.params)
        _check_importable(plan, runner)
        previous = {step.step: step for step in record.steps}
        keep = [
            node.name
            for node in plan.nodes
            if node.name in previous and previous[node.name].status in ("finished", "cached")
        ]
        tracking.resume_run(record.run_id)
        with tracking.stores.metadata.transaction() as conn:
            journal.start_attempt(conn, record.run_id, plan, runner.name, keep)
        return _execute(
            plan, record.run_id, record.seed, True, runner, tracking, config, on_event, previous
        )


def rerun_pipeline(
    run_id: str,
    *,
    config: Config | None = None,
    executor: Executor | str | None = None,
    cache: bool = False,
    on_event: EventHandler | None = None,
    client: TrackingClient | None = None,
) -> PipelineResult:
    """Run a recorded pipeline run again as a new run: same pipeline, params and seed.

    The cache is off by default, so every step executes: a deterministic step gives the
    output ids the recorded run gave (``shipyard pipelines rerun RUN_ID``).
    """
    config = config or load_config()
    with _client(config, client) as tracking, tracking.stores.metadata.connect() as conn:
        record = journal.get_run(conn, _full_run_id(conn, run_id))
    pipeline = get_pipeline(record.reference or record.pipeline, config.project_dir)
    return run_pipeline(
        pipeline,
        record.params,
        config=config,
        executor=executor,
        cache=cache,
        seed=record.seed,
        on_event=on_event,
        client=client,
    )


def get_pipeline_run(run_id: str, *, config: Config | None = None) -> PipelineRun:
    """A pipeline run with its steps (an id or a unique prefix of one)."""
    with (
        _client(config or load_config(), None) as tracking,
        tracking.stores.metadata.connect() as conn,
    ):
        return journal.get_run(conn, _full_run_id(conn, run_id))


def list_pipeline_runs(
    pipeline: str | None = None, *, config: Config | None = None, limit: int = 20
) -> list[PipelineRun]:
    """Pipeline runs, newest first, optionally of one pipeline."""
    with (
        _client(config or load_config(), None) as tracking,
        tracking.stores.metadata.connect() as conn,
    ):
        return journal.list_runs(conn, pipeline, limit)


def load_output(output_id: str, *, config: Config | None = None, allow_pickle: bool = False) -> Any:
    """Load a step output by its id, as the type the step returned."""
    from shipyard.pipelines.cache import load_outputs
    from shipyard.store.stores import open_stores

    with open_stores(config or load_config()) as stores:
        with stores.metadata.connect() as conn:
            record = load_outputs(conn, [output_id]).get(output_id)
        if record is None:
            raise NotFoundError(
                f"No pipeline output {output_id!r}.",
                hint="Output ids are listed by `shipyard pipelines show RUN_ID`.",
            )
        return read_output(
            record, stores.artifacts, allow_pickle=allow_pickle, reader="load_output"
        )


def _execute(
    plan: Plan,
    run_id: str,
    seed: int,
    use_cache: bool,
    runner: Executor,
    tracking: TrackingClient,
    config: Config,
    on_event: EventHandler | None,
    previous: Mapping[str, StepRecord] | None,
) -> PipelineResult:
    from shipyard.store.metadata import mask_password

    # Workers get the metadata URI without its password (task arguments can be seen in
    # Ray's state API and logs); they read it from the project's configuration themselves.
    location = StoreLocation(
        tracking.stores.artifacts.uri,
        str(config.project_dir),
        config.s3.endpoint_url,
        mask_password(tracking.stores.metadata.uri),
    )
    execution = Execution(
        plan=plan,
        run_id=run_id,
        client=tracking,
        executor=runner,
        location=location,
        project_dir=config.project_dir,
        seed=seed,
        use_cache=use_cache,
        on_event=on_event,
        previous=previous,
    )
    try:
        runner.start(location, tracking.stores)
        execution.run()
    except KeyboardInterrupt as exc:
        tracking.set_terminated(run_id, "killed", error="interrupted (Ctrl-C)")
        tracking.flush()
        raise PipelineInterrupted(run_id) from exc
    except BaseException as exc:
        tracking.set_terminated(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        tracking.flush()
        raise
    if execution.failed:
        step, error = execution.failed[0]
        message = f"step {step!r} failed: {error}"
        tracking.set_terminated(run_id, "failed", error=message)
        tracking.flush()
        raise PipelineRunFailed(
            f"Pipeline {plan.pipeline!r} run {run_id}: {message}",
            run_id=run_id,
            step=step,
            hint=f"Fix the step, then continue the run: shipyard pipelines resume {run_id}",
        )
    tracking.set_terminated(run_id, "finished")
    tracking.flush()  # tracking writes in the background; the record below joins its runs
    with tracking.stores.metadata.connect() as conn:
        record = journal.get_run(conn, run_id)
    outputs = {
        name: record.step(handle.node).outputs[handle.output]
        for name, handle in plan.outputs.items()
    }
    return PipelineResult(record, outputs)


@contextmanager
def _client(config: Config, client: TrackingClient | None) -> Iterator[TrackingClient]:
    if client is not None:
        yield client
        return
    with TrackingClient(config) as opened:
        yield opened


@contextmanager
def _executor(executor: Executor | str | None) -> Iterator[Executor]:
    if executor is None or isinstance(executor, str):
        made = InProcessExecutor() if executor is None else make_executor(executor)
        try:
            yield made
        finally:
            made.close()
        return
    yield executor


def _check_importable(plan: Plan, executor: Executor) -> None:
    if isinstance(executor, InProcessExecutor):
        return
    for node in plan.nodes:
        fn = node.step.fn
        if fn.__module__ == "__main__" or "<locals>" in fn.__qualname__:
            raise PipelineDefinitionError(
                f"Step {node.step.name!r} is defined in "
                f"{'__main__' if fn.__module__ == '__main__' else 'a function body'}; the "
                f"{executor.name} executor imports steps in its workers by module path.",
                hint="Define steps at the top level of an importable module (e.g. the "
                "project's pipelines.py), or use the in-process executor.",
            )


def _full_run_id(conn: Any, run_id: str) -> str:
    if not run_id or len(run_id) > 32 or not all(c in "0123456789abcdef" for c in run_id):
        raise NotFoundError(
            f"{run_id!r} is not a pipeline run id.",
            hint="Run ids are 32 hex digits (a prefix of 4 or more works).",
        )
    if len(run_id) == 32:
        return run_id
    if len(run_id) < 4:
        raise NotFoundError(f"Run id prefix {run_id!r} is too short; give at least 4 digits.")
    found = journal.find_run_ids(conn, run_id)
    if len(found) > 1:
        raise AmbiguousReferenceError(
            f"Run id prefix {run_id!r} matches more than one pipeline run.",
            hint="Give more digits.",
        )
    if not found:
        raise NotFoundError(
            f"No pipeline run {run_id!r}.", hint="`shipyard pipelines history` lists them."
        )
    return found[0]


def _texts(params: Mapping[str, Any]) -> dict[str, str]:
    texts = {}
    for name, value in params.items():
        text = value if isinstance(value, str) else canonical_json(value).decode()
        texts[name] = text if len(text) <= 6000 else text[:5997] + "..."
    return texts
