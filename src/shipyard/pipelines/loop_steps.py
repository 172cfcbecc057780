"""The work of an episode's two long steps: train a challenger, and evaluate it.

``shipyard.pipelines.closed_loop`` records each step (stage, event, figures); these
functions do the work and return what to record: a one-line message and the figures.

- :func:`train_challenger` runs the policy's pipeline on the newest dataset versions its
  ``dataset(...)`` inputs resolve to, and registers its model output as the challenger,
  with the dataset versions the run read as its training data and the champion's
  feature service;
- :func:`evaluate_challenger` runs the policy's gates (``[gates.MODEL]`` or gate objects)
  against the champion on the newest ``evaluation_data``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.models.records import ModelVersion
    from shipyard.models.registry import ModelRegistry
    from shipyard.pipelines.policy import Policy

__all__ = ["evaluate_challenger", "train_challenger"]


def train_challenger(
    config: Config,
    registry: ModelRegistry,
    policy: Policy,
    run_id: int,
    champion: ModelVersion | None,
) -> tuple[ModelVersion, str, dict[str, Any]]:
    """Run the policy's pipeline and register its model as the challenger of episode
    ``run_id``; returns it, the step's message and its figures."""
    from shipyard.pipelines.runner import run_pipeline

    result = run_pipeline(
        policy.pipeline, dict(policy.params), config=config, executor=policy.executor
    )
    datasets = _run_datasets(result.run)
    estimator, output = _model_output(registry, policy, result)
    challenger = registry.register(
        policy.model,
        model=estimator,
        # The step's tracking run that trained it (the original run for a cached step).
        source_run=_producing_run(result.run, result.outputs[output]),
        training_data=datasets or None,
        # The challenger serves the same requests: it reads the same feature service.
        feature_service=champion.feature_service if champion else None,
        description=f"challenger trained by policy {policy.key} (episode {run_id})",
        tags={"shipyard.loop.episode": str(run_id), "shipyard.pipeline.run": result.run_id},
        allow_pickle=policy.allow_pickle,
        actor=f"policy:{policy.key}",
    )
    message = (
        f"pipeline {policy.pipeline} run {result.run_id[:12]} trained "
        f"{challenger.reference} on {', '.join(datasets) or 'no dataset version'}"
    )
    figures = {
        "pipeline_run": result.run_id,
        "output": output,
        "datasets": datasets,
        "challenger": challenger.reference,
    }
    return challenger, message, figures


def evaluate_challenger(
    config: Config,
    registry: ModelRegistry,
    policy: Policy,
    challenger: ModelVersion,
    champion: ModelVersion | None,
) -> tuple[bool, str, dict[str, Any]]:
    """Run the policy's gates on ``challenger``; returns whether every gate passed, the
    step's message and its figures (metrics, each gate's result)."""
    from shipyard.evaluation.gate_config import gates_from_config
    from shipyard.evaluation.report import gate_result_dict
    from shipyard.evaluation.runner import evaluate

    gates = gates_from_config(config, policy.model) if policy.gates == "config" else policy.gates
    report = evaluate(
        challenger.reference,
        data=policy.evaluation_data,
        label=policy.label,
        gates=list(gates),  # type: ignore[arg-type]  # Policy checked they are Gate objects
        registry=registry,
        allow_pickle=policy.allow_pickle,
    )
    figures = {
        "dataset": report.dataset,
        "rows": report.rows,
        "metrics": {k: v for k, v in report.metrics.items() if v is not None},
        "gates": [gate_result_dict(r) for r in report.gate_results],
        "champion": champion.reference if champion else None,
    }
    failed = [f"{r.gate} {r.figure} vs {r.bound}" for r in report.failed_gates]
    message = f"{challenger.reference} on {report.dataset}: " + (
        "every gate passed" if report.passed else f"failed {'; '.join(failed)}"
    )
    return report.passed, message, figures


def _model_output(registry: ModelRegistry, policy: Policy, result: Any) -> tuple[Any, str]:
    from shipyard.pipelines.cache import load_outputs
    from shipyard.pipelines.outputs import read_output

    stores = registry.stores
    with stores.metadata.connect() as conn:
        records = load_outputs(conn, list(result.outputs.values()))
    models = {
        name: records[oid]
        for name, oid in result.outputs.items()
        if oid in records and records[oid].kind == "model"
    }
    if policy.output is not None:
        if policy.output not in models:
            raise ConfigError(
                f"Pipeline {policy.pipeline} returned no model output named "
                f"{policy.output!r} (its model outputs: {sorted(models) or 'none'}).",
                hint="Return the fitted model from the pipeline, e.g. {'model': train(...)}.",
            )
        name = policy.output
    elif len(models) == 1:
        name = next(iter(models))
    else:
        raise ConfigError(
            f"Pipeline {policy.pipeline} returned {len(models)} model outputs "
            f"({sorted(models) or 'none'}); the policy cannot tell the challenger.",
            hint="Return exactly one model, or name it with Policy(output=...).",
        )
    model = read_output(
        models[name],
        stores.artifacts,
        allow_pickle=policy.allow_pickle,
        reader=f"policy {policy.key}",
    )
    return model, name


def _producing_run(run: Any, output_id: str) -> str | None:
    for step in run.steps:
        if output_id in step.outputs.values():
            found: str | None = step.step_run_id or step.source_run_id
            return found
    return None


def _run_datasets(run: Any) -> list[str]:
    found: list[str] = []
    for step in run.steps:
        parts = step.key_parts or {}
        for reference in (parts.get("datasets") or {}).values():
            if isinstance(reference, str) and reference not in found:
                found.append(reference)
    return found
