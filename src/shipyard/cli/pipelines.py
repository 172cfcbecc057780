"""``shipyard run``, ``shipyard pipelines`` and ``shipyard scheduler``.

``run`` shows the steps live on a terminal (a table that updates as steps start, hit the
cache, retry, finish or fail) and one plain line per event otherwise (logs, CI).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from shipyard.cli.output import config_from_context, print_json, print_table
from shipyard.pipelines.errors import PipelineInterrupted
from shipyard.pipelines.progress import StepProgress

if TYPE_CHECKING:
    from shipyard.pipelines.definition import Pipeline
    from shipyard.pipelines.records import PipelineRun
    from shipyard.pipelines.runner import PipelineResult

__all__ = ["pipelines_group", "run_command", "scheduler_command"]

_EXECUTORS = click.Choice(["inprocess", "process", "ray"])


def _interrupt_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _interrupted(run_id: str) -> NoReturn:
    click.echo(
        f"Interrupted: pipeline run {run_id} is marked killed. Continue it with: "
        f"shipyard pipelines resume {run_id}",
        err=True,
    )
    raise click.exceptions.Exit(130)


def _with_progress(
    steps: list[str], as_json: bool, execute: Callable[[StepProgress], PipelineResult]
) -> PipelineResult:
    """Run ``execute`` with the live step display; Ctrl-C or SIGTERM ends it as killed."""
    _interrupt_on_sigterm()
    progress = StepProgress(steps, live=sys.stderr.isatty() and not as_json)
    try:
        return execute(progress)
    except PipelineInterrupted as exc:
        progress.close()
        _interrupted(exc.run_id)
    finally:
        progress.close()


def _pick_executor(name: str, workers: int | None) -> Any:
    from shipyard.pipelines.executors import make_executor

    return make_executor(name, max_workers=workers)


def _print_run_summary(run: PipelineRun, as_json: bool) -> None:
    if as_json:
        print_json(run.as_dict())
        return
    counts: dict[str, int] = {}
    for step in run.steps:
        counts[step.status] = counts.get(step.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    click.echo(f"run {run.run_id}: {run.status} ({summary})")


@click.command("run")
@click.argument("pipeline")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="Repeatable.")
@click.option("--no-cache", is_flag=True, help="Run every step, even those with a cache hit.")
@click.option("--executor", type=_EXECUTORS, default="inprocess", show_default=True)
@click.option("--workers", type=click.IntRange(1, 1024), help="Parallel steps (process, ray).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the finished run as JSON.")
@click.pass_context
def run_command(
    ctx: click.Context,
    pipeline: str,
    params: tuple[str, ...],
    no_cache: bool,
    executor: str,
    workers: int | None,
    seed: int,
    as_json: bool,
) -> None:
    """Run PIPELINE (a name from the project's pipelines.py, or module:function)."""
    from shipyard.pipelines.params import parse_param_assignments
    from shipyard.pipelines.registry import get_pipeline
    from shipyard.pipelines.runner import run_pipeline

    config = config_from_context(ctx)
    chosen = get_pipeline(pipeline, config.project_dir)
    values = parse_param_assignments(chosen, params)
    plan_steps = [node.name for node in chosen.plan(values).nodes]
    result = _with_progress(
        plan_steps,
        as_json,
        lambda progress: run_pipeline(
            chosen,
            values,
            config=config,
            executor=_pick_executor(executor, workers),
            cache=not no_cache,
            seed=seed,
            on_event=progress,
        ),
    )
    _print_run_summary(result.run, as_json)


@click.group("pipelines")
def pipelines_group() -> None:
    """List pipelines, show a pipeline or a run, list past runs, resume a failed run."""


@pipelines_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """The pipelines of the project's pipelines.py, with their schedules and triggers."""
    from shipyard.pipelines.registry import project_pipelines

    config = config_from_context(ctx)
    found = project_pipelines(config.project_dir)
    rows = [_pipeline_json(p) for p in found]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo(
            f"No pipelines: declare them with @pipeline in {config.project_dir}/pipelines.py."
        )
        return
    print_table(
        None,
        ["pipeline", "params", "schedule", "triggers", "description"],
        [
            (
                row["name"],
                ", ".join(f"{k}={v['default']!r}" for k, v in row["params"].items()),
                row["schedule"] or "",
                ", ".join(row["triggers"]),
                row["description"],
            )
            for row in rows
        ],
    )


@pipelines_group.command("show")
@click.argument("target")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def show_command(ctx: click.Context, target: str, params: tuple[str, ...], as_json: bool) -> None:
    """A pipeline's steps (TARGET = name) or a run's steps, cache hits and outputs (run id)."""
    from shipyard.pipelines.params import parse_param_assignments
    from shipyard.pipelines.registry import get_pipeline

    config = config_from_context(ctx)
    if _looks_like_run_id(target):
        from shipyard.pipelines.runner import get_pipeline_run

        run = get_pipeline_run(target, config=config)
        if as_json:
            print_json(run.as_dict())
            return
        click.echo(
            f"run {run.run_id} of {run.pipeline}: {run.status}"
            + (f" in {run.duration_seconds:.1f} s" if run.duration_seconds is not None else "")
            + f" (attempt {run.attempt}, executor {run.executor}, seed {run.seed})"
        )
        if run.params:
            click.echo("params: " + ", ".join(f"{k}={v!r}" for k, v in run.params.items()))
        if run.error:
            click.echo(f"error: {run.error}")
        print_table(
            None,
            ["step", "status", "time", "tries", "outputs", "run / from"],
            [
                (
                    s.step,
                    s.status,
                    f"{s.duration_seconds:.2f} s" if s.duration_seconds is not None else "",
                    s.attempts or "",
                    " ".join(f"{k}={v[7:19]}" for k, v in s.outputs.items()),
                    s.step_run_id or (f"cached from {s.source_run_id}" if s.source_run_id else ""),
                )
                for s in run.steps
            ],
        )
        for s in run.steps:
            if s.error and s.status == "failed":
                click.echo(f"{s.step}: {s.error}")
        return
    chosen = get_pipeline(target, config.project_dir)
    plan = chosen.plan(parse_param_assignments(chosen, params))
    payload = _pipeline_json(chosen)
    payload["steps"] = [
        {"step": n.name, "function": n.step.reference, "upstream": list(n.upstream)}
        for n in plan.nodes
    ]
    if as_json:
        print_json(payload)
        return
    click.echo(f"pipeline {chosen.name} ({chosen.reference}): {len(plan.nodes)} steps")
    if chosen.description:
        click.echo(chosen.description)
    print_table(
        None,
        ["step", "reads from", "function"],
        [(s["step"], ", ".join(s["upstream"]), s["function"]) for s in payload["steps"]],
    )


@pipelines_group.command("history")
@click.argument("pipeline", required=False)
@click.option("-n", "--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def history_command(ctx: click.Context, pipeline: str | None, limit: int, as_json: bool) -> None:
    """Past pipeline runs, newest first (of PIPELINE, or of all)."""
    from shipyard.pipelines.runner import list_pipeline_runs

    config = config_from_context(ctx)
    runs = list_pipeline_runs(pipeline, config=config, limit=limit)
    if as_json:
        print_json([run.as_dict() for run in runs])
        return
    if not runs:
        click.echo("No pipeline runs yet." + (f" (pipeline {pipeline!r})" if pipeline else ""))
        return
    print_table(
        None,
        ["run", "pipeline", "status", "started", "time", "attempt", "executor"],
        [
            (
                run.run_id,
                run.pipeline,
                run.status,
                f"{run.start_time:%Y-%m-%d %H:%M:%S}" if run.start_time else "",
                f"{run.duration_seconds:.1f} s" if run.duration_seconds is not None else "",
                run.attempt,
                run.executor,
            )
            for run in runs
        ],
    )


@pipelines_group.command("resume")
@click.argument("run_id")
@click.option("--executor", type=_EXECUTORS, default="inprocess", show_default=True)
@click.option("--workers", type=click.IntRange(1, 1024), help="Parallel steps (process, ray).")
@click.option("--json", "as_json", is_flag=True, help="Print the finished run as JSON.")
@click.pass_context
def resume_command(
    ctx: click.Context, run_id: str, executor: str, workers: int | None, as_json: bool
) -> None:
    """Continue a failed or killed run from the steps it did not finish."""
    from shipyard.pipelines.runner import get_pipeline_run, resume_pipeline

    config = config_from_context(ctx)
    earlier = get_pipeline_run(run_id, config=config)
    result = _with_progress(
        [s.step for s in earlier.steps],
        as_json,
        lambda progress: resume_pipeline(
            earlier.run_id,
            config=config,
            executor=_pick_executor(executor, workers),
            on_event=progress,
        ),
    )
    _print_run_summary(result.run, as_json)


@pipelines_group.command("rerun")
@click.argument("run_id")
@click.option("--cache", is_flag=True, help="Reuse cached steps (default: execute every step).")
@click.option("--executor", type=_EXECUTORS, default="inprocess", show_default=True)
@click.option("--workers", type=click.IntRange(1, 1024), help="Parallel steps (process, ray).")
@click.option("--json", "as_json", is_flag=True, help="Print the finished run as JSON.")
@click.pass_context
def rerun_command(
    ctx: click.Context, run_id: str, cache: bool, executor: str, workers: int | None, as_json: bool
) -> None:
    """Run a recorded run again (same pipeline, params, seed) and compare its outputs."""
    from shipyard.pipelines.runner import get_pipeline_run, rerun_pipeline

    config = config_from_context(ctx)
    earlier = get_pipeline_run(run_id, config=config)
    result = _with_progress(
        [s.step for s in earlier.steps],
        as_json,
        lambda progress: rerun_pipeline(
            earlier.run_id,
            config=config,
            executor=_pick_executor(executor, workers),
            cache=cache,
            on_event=progress,
        ),
    )
    _print_run_summary(result.run, as_json)
    if not as_json:
        before = {s.step: dict(s.outputs) for s in earlier.steps}
        differ = [s.step for s in result.run.steps if dict(s.outputs) != before.get(s.step)]
        click.echo(
            "outputs: identical to run " + earlier.run_id
            if not differ
            else f"outputs differ from run {earlier.run_id} in: {', '.join(differ)}"
        )


@pipelines_group.command("lineage")
@click.argument("output_id")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def lineage_command(ctx: click.Context, output_id: str, as_json: bool) -> None:
    """Where a step output came from: the steps, code, params and dataset versions."""
    from shipyard.pipelines.lineage import LineageNode, lineage

    config = config_from_context(ctx)
    root = lineage(output_id, config=config)

    def payload(node: LineageNode) -> dict[str, Any]:
        return {
            "output_id": node.output_id,
            "kind": node.kind,
            "step": node.step,
            "function": node.function,
            "pipeline": node.pipeline,
            "pipeline_run_id": node.pipeline_run_id,
            "step_run_id": node.step_run_id,
            "git_commit": node.git_commit,
            "code_digest": node.code_digest,
            "params": dict(node.params),
            "datasets": [
                {"argument": d.argument, "reference": d.reference, "content_id": d.content_id}
                for d in node.datasets
            ],
            "inputs": {path: payload(up) for path, up in node.inputs.items()},
        }

    if as_json:
        print_json(payload(root))
        return

    def show(node: LineageNode, indent: str, via: str) -> None:
        params = ", ".join(f"{k}={v}" for k, v in sorted(node.params.items()))
        click.echo(
            f"{indent}{via}{node.kind} {node.output_id[:19]} <- step {node.step} "
            f"({node.function}) in run {node.pipeline_run_id}"
            + (f" [{params}]" if params else "")
            + (f" git {node.git_commit[:10]}" if node.git_commit else "")
        )
        for source in node.datasets:
            click.echo(
                f"{indent}    {source.argument}: dataset {source.reference} "
                f"{source.content_id[:19]}"
            )
        for path, upstream in node.inputs.items():
            show(upstream, indent + "    ", f"{path}: ")

    show(root, "", "")


@click.command("scheduler")
@click.option("--executor", type=_EXECUTORS, default="inprocess", show_default=True)
@click.option("--tick", "tick_seconds", type=click.FloatRange(0.01, 60), default=1.0)
@click.option(
    "--poll",
    "poll_seconds",
    type=click.FloatRange(0.1, 86_400),
    default=10.0,
    help="Seconds between trigger checks.",
)
@click.option(
    "--lease",
    "lease_seconds",
    type=click.FloatRange(1, 86_400),
    default=60.0,
    help="Lease length; another scheduler takes over this long after one dies.",
)
@click.option("--max-ticks", type=click.IntRange(1), help="Stop after N ticks (and wait for runs).")
@click.pass_context
def scheduler_command(
    ctx: click.Context,
    executor: str,
    tick_seconds: float,
    poll_seconds: float,
    lease_seconds: float,
    max_ticks: int | None,
) -> None:
    """Run the project's pipelines on their schedules and triggers, and its closed-loop
    policies (pipelines.py and [policies.NAME]), until stopped."""
    from shipyard.pipelines.scheduler import Scheduler

    config = config_from_context(ctx)
    scheduler = Scheduler(
        config, executor=executor, lease_seconds=lease_seconds, poll_seconds=poll_seconds
    )
    if not scheduler.schedules and not scheduler.triggers and not scheduler.loop.policies:
        click.echo(
            f"No schedules, triggers or policies in {config.project_dir}: declare one with "
            '@pipeline(schedule="0 3 * * *"), triggers=[on_dataset(...)], a Policy(...) in '
            "pipelines.py or a [policies.NAME] table in shipyard.toml.",
            err=True,
        )
    scheduler.install_signal_handlers()
    scheduler.run(max_ticks=max_ticks, tick_seconds=tick_seconds)


def _looks_like_run_id(text: str) -> bool:
    return 6 <= len(text) <= 32 and all(c in "0123456789abcdef" for c in text)


def _pipeline_json(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "name": pipeline.name,
        "reference": pipeline.reference,
        "description": pipeline.description,
        "params": {
            name: {
                "type": spec.type_name,
                "default": None if spec.required else spec.default,
                "required": spec.required,
            }
            for name, spec in pipeline.params.items()
        },
        "schedule": str(pipeline.schedule) if pipeline.schedule else None,
        "triggers": [t.describe() for t in pipeline.triggers],
    }
