"""``shipyard models``: register versions, list and show them, promote and roll back aliases.

\b
  shipyard models register churn --run 3f9a1c2b [--path model] [--training-data churn@v1]
  shipyard models register churn --pipeline-run 8d2e41aa [--step train] [--output output]
  shipyard models list [NAME]             shipyard models show churn@champion
  shipyard models evaluate churn@v3 ...   shipyard models card churn@v3
  shipyard models promote churn@v3 champion --reason "beats v2 on holdout"
  shipyard models promote churn@v3 champion --override-reason "hotfix, incident 123"
  shipyard models rollback churn@champion
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from shipyard.cli.main import LazyGroup
from shipyard.cli.output import config_from_context, console, print_json, print_table

if TYPE_CHECKING:
    from shipyard.models.records import AliasMove, Evaluation, GateResult, ModelVersion
    from shipyard.models.registry import ModelRegistry

__all__ = ["models_group"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.group(
    "models",
    cls=LazyGroup,
    lazy={
        "evaluate": "shipyard.cli.models_evaluate:evaluate_command",
        "card": "shipyard.cli.models_evaluate:card_command",
    },
)
def models_group() -> None:
    """Register model versions, show their signatures, promote and roll back aliases."""


@contextmanager
def _registry(ctx: click.Context) -> Iterator[ModelRegistry]:
    from shipyard.models.registry import ModelRegistry

    with ModelRegistry.open(config_from_context(ctx)) as registry:
        yield registry


@contextmanager
def _status(message: str) -> Iterator[None]:
    """A spinner on stderr while slow work runs (only on a terminal)."""
    import sys

    if not sys.stderr.isatty():
        yield
        return
    with console(stderr=True).status(message):
        yield


def _parse_tags(tags: tuple[str, ...]) -> dict[str, str]:
    from shipyard.core.errors import ConfigError

    parsed = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise ConfigError(f"Tag {tag!r} is not KEY=VALUE.", hint="e.g. --tag team=churn")
        parsed[key] = value
    return parsed


@models_group.command("register")
@click.argument("name")
@click.option("--run", "run_id", metavar="RUN_ID", help="The run that logged the model.")
@click.option(
    "--path",
    "artifact_path",
    default=None,
    help="With --run: the name the run logged the model under (log_model(model, NAME); "
    "default 'model').",
)
@click.option(
    "--pipeline-run",
    "pipeline_run",
    metavar="RUN_ID",
    help="A pipeline run whose step returned the model (instead of --run).",
)
@click.option(
    "--step",
    metavar="STEP",
    help="With --pipeline-run: the step that returned it (default: the run's only model).",
)
@click.option(
    "--output",
    "output",
    metavar="NAME",
    help="With --pipeline-run: the step's output (default: its only model output).",
)
@click.option(
    "--training-data",
    "training_data",
    multiple=True,
    metavar="REF",
    help="Training dataset version, e.g. churn@v1 (default: the run's train inputs, or the "
    "dataset versions upstream of the step).",
)
@click.option("--feature-service", metavar="REF", help="e.g. churn_features@v2.")
@click.option("--description", default="", help="What this version is.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Allow a model stored with pickle (a generic Python model): loading it runs code.",
)
@_JSON
@click.pass_context
def register_command(
    ctx: click.Context,
    name: str,
    run_id: str | None,
    artifact_path: str | None,
    pipeline_run: str | None,
    step: str | None,
    output: str | None,
    training_data: tuple[str, ...],
    feature_service: str | None,
    description: str,
    tags: tuple[str, ...],
    allow_pickle: bool,
    as_json: bool,
) -> None:
    """Register a model as a new version of NAME: the one a tracked run logged (--run), or
    the one a pipeline step returned (--pipeline-run, with --step and --output when the
    run has several models).

    \b
      shipyard models register churn --run 3f9a1c2b --training-data churn@v1
      shipyard models register churn --pipeline-run 8d2e41aa --step train
    """
    from shipyard.models.serialize import version_to_dict

    _check_source(run_id, artifact_path, pipeline_run, step, output)
    parsed_tags = _parse_tags(tags)
    source = f"run {run_id}" if run_id else f"pipeline run {pipeline_run}"
    with _registry(ctx) as registry, _status(f"Registering {name} from {source}..."):
        if pipeline_run is not None:
            from shipyard.pipelines.step_models import register_step_model

            version = register_step_model(
                registry,
                name,
                pipeline_run,
                step=step,
                output=output,
                training_data=list(training_data) or None,
                feature_service=feature_service,
                description=description,
                tags=parsed_tags,
                allow_pickle=allow_pickle,
            )
        else:
            version = registry.register(
                name,
                run_id=run_id,
                artifact_path=artifact_path or "model",
                training_data=list(training_data) or None,
                feature_service=feature_service,
                description=description,
                tags=parsed_tags,
                allow_pickle=allow_pickle,
            )
    if as_json:
        print_json(version_to_dict(version))
        return
    click.echo(
        f"Registered {version.reference} ({version.short_id}, {version.model_type}, "
        f"{len(version.signature.inputs)} inputs, task {version.signature.task})."
    )


def _check_source(
    run_id: str | None,
    artifact_path: str | None,
    pipeline_run: str | None,
    step: str | None,
    output: str | None,
) -> None:
    """Exactly one source: a run's logged model, or a pipeline step's output (exit 2)."""
    if (run_id is None) == (pipeline_run is None):
        raise click.UsageError(
            "Give exactly one of --run (a run that logged the model) and --pipeline-run "
            "(a pipeline run whose step returned it)"
            + (", not both." if run_id is not None else ".")
            + " e.g. shipyard models register churn --pipeline-run RUN_ID --step train"
        )
    if run_id is not None and (step is not None or output is not None):
        raise click.UsageError(
            "--step and --output pick a pipeline step's output; they go with --pipeline-run "
            "(with --run, --path names the model the run logged)."
        )
    if pipeline_run is not None and artifact_path is not None:
        raise click.UsageError(
            "--path names a model a run logged; it goes with --run (with --pipeline-run, "
            "--step and --output pick the step's model output)."
        )


@models_group.command("list")
@click.argument("name", required=False)
@_JSON
@click.pass_context
def list_command(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List models, or the versions of NAME (newest first)."""
    from shipyard.models.serialize import version_to_dict

    with _registry(ctx) as registry:
        if name is None:
            summaries = []
            for model in registry.list_models():
                versions = registry.list_versions(model)
                aliases = sorted(f"{alias}=v{v.number}" for v in versions for alias in v.aliases)
                summaries.append((model, versions, aliases))
        else:
            versions = registry.list_versions(name)
    if name is None:
        if as_json:
            print_json(
                [
                    {
                        "name": model,
                        "versions": len(versions),
                        "latest": versions[0].number if versions else None,
                        "aliases": aliases,
                    }
                    for model, versions, aliases in summaries
                ]
            )
            return
        if not summaries:
            click.echo("No models yet. Register one: shipyard models register NAME --run RUN_ID")
            return
        print_table(
            None,
            ["model", "versions", "latest", "aliases"],
            [
                (model, len(v), f"v{v[0].number}" if v else "-", " ".join(a))
                for model, v, a in summaries
            ],
        )
        return
    if as_json:
        print_json([version_to_dict(v) for v in versions])
        return
    print_table(
        name,
        ["version", "id", "type", "task", "threshold", "run", "created", "aliases"],
        [
            (
                f"v{v.number}",
                v.short_id,
                v.model_type,
                v.signature.task,
                "-" if v.threshold is None else f"{v.threshold:.3g}",
                (v.run_id or "-")[:8],
                v.created_at.strftime("%Y-%m-%d %H:%M"),
                " ".join(v.aliases),
            )
            for v in versions
        ],
    )


@models_group.command("show")
@click.argument("reference")
@_JSON
@click.pass_context
def show_command(ctx: click.Context, reference: str, as_json: bool) -> None:
    """Show a version: signature, lineage, aliases, gates of its newest evaluation."""
    from shipyard.models.serialize import (
        alias_move_to_dict,
        evaluation_to_dict,
        version_to_dict,
    )

    with _registry(ctx) as registry:
        version = registry.get(reference)
        evaluation = registry.latest_evaluation(version.reference)
        moves = [
            m
            for m in registry.audit_log(version.name)
            if version.number in (m.from_version, m.to_version)
        ]
    if as_json:
        print_json(
            {
                **version_to_dict(version),
                "evaluation": None if evaluation is None else evaluation_to_dict(evaluation),
                "alias_moves": [alias_move_to_dict(m) for m in moves],
            }
        )
        return
    _print_version(version)
    _print_evaluation(version, evaluation)
    if moves:
        _print_moves(moves)


def _print_version(version: ModelVersion) -> None:
    out = console()
    out.print(f"[bold]{version.reference}[/bold]  {version.id}", markup=True)
    facts = [
        ("type", f"{version.model_type} ({version.flavor}, {version.model_class})"),
        ("task", version.signature.task),
        ("classes", _cell(version.signature.classes)),
        ("threshold", _cell(version.threshold)),
        ("aliases", " ".join(version.aliases) or "-"),
        ("run", version.run_id or "-"),
        ("code commit", version.code_commit or "-"),
        ("datasets", ", ".join(version.dataset_versions) or "-"),
        ("feature service", version.feature_service or "-"),
        ("created", f"{version.created_at:%Y-%m-%d %H:%M} by {version.created_by}"),
        ("description", version.description or "-"),
        ("tags", " ".join(f"{k}={v}" for k, v in version.tags.items()) or "-"),
        ("pickle", "yes: loading runs stored code" if version.uses_pickle else "no"),
    ]
    print_table(None, ["", ""], facts)
    print_table(
        "Inputs",
        ["column", "type", "nullable", "rules (enforced)", "observed in training"],
        [
            (
                spec.name,
                spec.type,
                "yes" if spec.nullable else "no",
                _mapping(spec.rules),
                _mapping(spec.observed),
            )
            for spec in version.signature.inputs
        ],
    )
    print_table(
        "Outputs",
        ["field", "type"],
        [(spec.name, spec.type) for spec in version.signature.outputs],
    )


def _print_evaluation(version: ModelVersion, evaluation: Evaluation | None) -> None:
    if evaluation is None:
        click.echo(
            f"Not evaluated yet: run `shipyard models evaluate {version.reference}` "
            "before promoting it."
        )
        return
    verdict = "all gates passed" if evaluation.passed else "GATES FAILED"
    click.echo(
        f"Newest evaluation #{evaluation.id} on {evaluation.dataset or '-'} "
        f"({evaluation.created_at:%Y-%m-%d %H:%M}): {verdict}"
    )
    if evaluation.metrics:
        print_table(
            "Metrics",
            ["metric", "value"],
            sorted((k, _cell(v)) for k, v in evaluation.metrics.items()),
        )
    _print_gates(evaluation.gate_results)


def _print_gates(results: tuple[GateResult, ...]) -> None:
    if not results:
        return
    print_table(
        "Gates",
        ["gate", "kind", "figure", "bound", "status"],
        [(r.gate, r.kind, _cell(r.figure), r.bound, r.status) for r in results],
    )


def _print_moves(moves: list[AliasMove]) -> None:
    print_table(
        "Alias moves",
        ["when (UTC)", "alias", "move", "by", "why", "override"],
        [
            (
                f"{m.at:%Y-%m-%d %H:%M:%S}",
                m.alias,
                f"{_v(m.from_version)} -> {_v(m.to_version)} ({m.kind})",
                m.actor,
                m.reason,
                "OVERRIDE" if m.override else "",
            )
            for m in moves
        ],
    )


@models_group.command("promote")
@click.argument("reference")
@click.argument("alias")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@click.option(
    "--override-reason",
    metavar="TEXT",
    help="Promote even though gates failed or were not run; the audit log marks it.",
)
@_JSON
@click.pass_context
def promote_command(
    ctx: click.Context,
    reference: str,
    alias: str,
    reason: str,
    override_reason: str | None,
    as_json: bool,
) -> None:
    """Point ALIAS at the version REFERENCE names, if its newest evaluation passed."""
    from shipyard.models.serialize import alias_move_to_dict

    with _registry(ctx) as registry:
        move = registry.promote(reference, alias, reason=reason, override_reason=override_reason)
    if as_json:
        print_json(alias_move_to_dict(move))
        return
    note = " (OVERRIDE: gates not all passed)" if move.override else ""
    click.echo(
        f"{move.model}@{move.alias}: {_v(move.from_version)} -> {_v(move.to_version)}{note}."
    )


@models_group.command("rollback")
@click.argument("reference", metavar="NAME@ALIAS")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@_JSON
@click.pass_context
def rollback_command(ctx: click.Context, reference: str, reason: str, as_json: bool) -> None:
    """Move NAME@ALIAS back to the version it pointed at before its last move."""
    from shipyard.models.serialize import alias_move_to_dict

    with _registry(ctx) as registry:
        move = registry.rollback(reference, reason=reason)
    if as_json:
        print_json(alias_move_to_dict(move))
        return
    click.echo(
        f"{move.model}@{move.alias}: rolled back {_v(move.from_version)} -> {_v(move.to_version)}."
    )


def _v(number: int | None) -> str:
    return "-" if number is None else f"v{number}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _mapping(values: Any) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, list):
            shown = ", ".join(str(v) for v in value[:6]) + (", ..." if len(value) > 6 else "")
            parts.append(f"{key}=[{shown}]")
        else:
            parts.append(f"{key}={_cell(value)}")
    return " ".join(parts) or "-"
