"""A pipeline step's model output, found by reference and registered with its lineage.

A step that returns a fitted model stores it as a ``model`` output (``outputs``); this
module finds it from a pipeline run (``--pipeline-run RUN --step train --output output``
on the command line), reads it back and registers it as a model version whose lineage is
the step's tracking run (its git commit, its metrics) and the dataset versions upstream
of the step in that pipeline run.

>>> with ModelRegistry.open() as registry:  # doctest: +SKIP
...     version = register_step_model(registry, "churn", result.run_id, step="train")
...     version.run_id, version.dataset_versions
('9c1e...', ('customers@v1',))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import Connection

from shipyard.core.errors import AmbiguousReferenceError, NotFoundError
from shipyard.pipelines import journal
from shipyard.pipelines.cache import load_outputs
from shipyard.pipelines.outputs import OutputRecord, read_output
from shipyard.pipelines.records import PipelineRun, StepRecord
from shipyard.store.schema.pipelines import pipeline_steps

if TYPE_CHECKING:
    from shipyard.models.records import ModelVersion
    from shipyard.models.registry import ModelRegistry

__all__ = ["StepModel", "find_step_model", "register_step_model"]

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class StepModel:
    """A model output of one step of a pipeline run, and where it came from."""

    pipeline_run_id: str
    pipeline: str
    step: str
    output: str
    record: OutputRecord
    step_run_id: str | None
    """The tracking run that produced the output (for a cache hit, the original run)."""
    datasets: tuple[str, ...]
    """Dataset versions read by the step or by any step upstream of it, in step order."""

    @property
    def reference(self) -> str:
        """``RUN:STEP.OUTPUT`` with the run id shortened, for messages."""
        return f"{self.pipeline_run_id[:12]}:{self.step}.{self.output}"


def find_step_model(
    conn: Connection, pipeline_run: str, *, step: str | None = None, output: str | None = None
) -> StepModel:
    """The model output ``output`` of step ``step`` of pipeline run ``pipeline_run``.

    ``pipeline_run`` is an id or a unique prefix (4+ hex digits). Without ``step`` (or
    ``output``), the run's (or the step's) only model output is taken. Raises
    ``NotFoundError`` naming the run, step or output that does not exist (or is not a
    model) and what does, and ``AmbiguousReferenceError`` when several models match.
    """
    run = journal.get_run(conn, _pipeline_run_id(conn, pipeline_run))
    where = f"pipeline run {run.run_id[:12]} ({run.pipeline})"
    steps = [_named_step(run, step, where)] if step is not None else list(run.steps)
    records = load_outputs(conn, [oid for s in steps for oid in s.outputs.values()])
    if step is not None:
        chosen = steps[0]
        if chosen.status not in ("finished", "cached"):
            raise NotFoundError(
                f"Step {step!r} of {where} is {chosen.status}: it stored no output.",
                hint="Register from a run whose step finished (`shipyard pipelines history "
                f"{run.pipeline}`), or run the pipeline again.",
            )
        if output is not None and output not in chosen.outputs:
            raise NotFoundError(
                f"Step {step!r} of {where} has no output {output!r}; its outputs: "
                f"{', '.join(sorted(chosen.outputs)) or 'none'}.",
                hint="A step returning one value has the output 'output'; "
                "@step(outputs=(...)) names several.",
            )
    candidates = [
        (s, name, records[oid])
        for s in steps
        for name, oid in sorted(s.outputs.items())
        if (output is None or name == output) and oid in records
    ]
    models = [c for c in candidates if c[2].kind == "model"]
    if len(models) != 1:
        _refuse(where, step, output, candidates, models)
    chosen, name, record = models[0]
    return StepModel(
        pipeline_run_id=run.run_id,
        pipeline=run.pipeline,
        step=chosen.step,
        output=name,
        record=record,
        step_run_id=chosen.step_run_id or chosen.source_run_id,
        datasets=_upstream_datasets(run, chosen),
    )


def register_step_model(
    registry: ModelRegistry,
    name: str,
    pipeline_run: str,
    *,
    step: str | None = None,
    output: str | None = None,
    training_data: str | Sequence[str] | None = None,
    feature_service: str | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    allow_pickle: bool = False,
    actor: str | None = None,
) -> ModelVersion:
    """Register a pipeline step's model output as a new version of model ``name``.

    The version's run is the step's tracking run; its dataset lineage is
    ``training_data`` (which also picks the version the signature is inferred from)
    followed by every dataset version upstream of the step; its tags name the pipeline
    run, the step and the output id. ``find_step_model`` says how the output is found.
    """
    with registry.stores.metadata.connect() as conn:
        found = find_step_model(conn, pipeline_run, step=step, output=output)
    model = read_output(
        found.record,
        registry.stores.artifacts,
        allow_pickle=allow_pickle,
        reader=f"the registration of {name!r}",
    )
    given = [training_data] if isinstance(training_data, str) else list(training_data or [])
    datasets = given + [ref for ref in found.datasets if ref not in given]
    return registry.register(
        name,
        model,
        source_run=found.step_run_id,
        training_data=datasets or None,
        feature_service=feature_service,
        description=description
        or f"model {found.output!r} of step {found.step!r}, pipeline {found.pipeline} "
        f"run {found.pipeline_run_id[:12]}",
        tags={
            **(tags or {}),
            "shipyard.pipeline.run": found.pipeline_run_id,
            "shipyard.pipeline.step": found.step,
            "shipyard.pipeline.output": found.record.id,
        },
        allow_pickle=allow_pickle,
        actor=actor,
    )


def _pipeline_run_id(conn: Connection, given: object) -> str:
    text = given.strip().lower() if isinstance(given, str) else ""
    if not 4 <= len(text) <= 32 or not set(text) <= _HEX:
        raise NotFoundError(
            f"{given!r} is not a pipeline run id.",
            hint="Pipeline run ids are 32 hex digits (a prefix of 4 or more works); "
            "`shipyard pipelines history PIPELINE` lists them.",
        )
    found = journal.find_run_ids(conn, text)
    if len(found) > 1:
        raise AmbiguousReferenceError(
            f"Pipeline run id prefix {text!r} matches more than one run.",
            hint="Give more digits.",
        )
    if found:
        return found[0]
    # A step's run id is the usual mistake: point at its pipeline run and step.
    owner = conn.execute(
        select(pipeline_steps.c.run_id, pipeline_steps.c.step)
        .where(pipeline_steps.c.step_run_id.startswith(text))
        .limit(1)
    ).first()
    if owner is not None:
        raise NotFoundError(
            f"{text!r} is the run of step {owner.step!r}, not a pipeline run.",
            hint=f"Pass --pipeline-run {owner.run_id[:12]} --step {owner.step} "
            f"(or register a model the run logged with --run {text}).",
        )
    raise NotFoundError(
        f"No pipeline run {text!r}.",
        hint="`shipyard pipelines history PIPELINE` lists pipeline runs and their ids.",
    )


def _named_step(run: PipelineRun, step: str, where: str) -> StepRecord:
    try:
        return run.step(step)
    except KeyError:
        raise NotFoundError(
            f"{where.capitalize()} has no step {step!r}; its steps: "
            f"{', '.join(s.step for s in run.steps)}.",
            hint="`shipyard pipelines show RUN_ID` lists a run's steps and outputs.",
        ) from None


def _refuse(
    where: str,
    step: str | None,
    output: str | None,
    candidates: Sequence[tuple[StepRecord, str, OutputRecord]],
    models: Sequence[tuple[StepRecord, str, OutputRecord]],
) -> None:
    if models:
        named = ", ".join(f"{s.step}.{name}" for s, name, _ in models)
        raise AmbiguousReferenceError(
            f"{where.capitalize()} has {len(models)} model outputs ({named}); which one?",
            hint="Name it with --step STEP (and --output NAME), e.g. --step "
            f"{models[0][0].step} --output {models[0][1]}.",
        )
    if step is not None and output is not None and candidates:
        (_, _, record) = candidates[0]
        raise NotFoundError(
            f"Output {output!r} of step {step!r} of {where} is a {record.kind} "
            f"({record.python_type}), not a model.",
            hint="Name the output the step returns the fitted model as.",
        )
    found = ", ".join(f"{s.step}.{name} ({record.kind})" for s, name, record in candidates)
    scope = f"Step {step!r} of {where}" if step is not None else where.capitalize()
    raise NotFoundError(
        f"{scope} stored no model output (outputs: {found or 'none'}).",
        hint="A step returning a fitted scikit-learn, LightGBM, XGBoost or ONNX model stores "
        "it as a model output; a model logged with log_model is registered with --run.",
    )


def _upstream_datasets(run: PipelineRun, step: StepRecord) -> tuple[str, ...]:
    """Dataset versions ``step`` and the steps upstream of it read, in step order."""
    by_name = {record.step: record for record in run.steps}
    wanted: set[str] = set()
    pending = [step.step]
    while pending:
        name = pending.pop()
        if name in wanted or name not in by_name:
            continue
        wanted.add(name)
        pending.extend(by_name[name].upstream)
    found: list[str] = []
    for record in run.steps:  # recorded in topological order
        if record.step not in wanted:
            continue
        for reference in ((record.key_parts or {}).get("datasets") or {}).values():
            if isinstance(reference, str) and reference not in found:
                found.append(reference)
    return tuple(found)
