"""``shipyard runs`` and ``shipyard experiments``: list, inspect, compare, delete, restore.

Reads go straight to the metadata store (``shipyard.tracking.queries``); changes go
through ``TrackingClient``, which records them in the audit log. A run is named by its
id or a unique prefix of at least 6 hex digits (the ``run`` column of ``runs list``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shipyard.cli.output import config_from_context, console, print_json

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.engine import Connection

    from shipyard.tracking.client import TrackingClient
    from shipyard.tracking.records import Experiment, Run

__all__ = ["experiments_group", "runs_group"]

_SHOWN_PARAMS = 3
_SHOWN_METRICS = 4
_STATUS_STYLE = {"running": "cyan", "finished": "green", "failed": "red", "killed": "yellow"}


@click.group("runs")
def runs_group() -> None:
    """List, inspect, compare, delete and restore tracked runs."""


@runs_group.command("list")
@click.option(
    "-e",
    "--experiment",
    "experiments",
    multiple=True,
    metavar="NAME",
    help="Only this experiment (repeatable; default: all).",
)
@click.option(
    "-f",
    "--filter",
    "filter_string",
    default="",
    metavar="FILTER",
    help="e.g. \"metrics.auc > 0.8 and params.model = 'gbm'\".",
)
@click.option(
    "-o",
    "--order-by",
    "order_by",
    multiple=True,
    metavar="KEY [ASC|DESC]",
    help="e.g. 'metrics.auc DESC' (repeatable; default: newest first).",
)
@click.option(
    "-n",
    "--max",
    "max_results",
    type=click.IntRange(1, 50_000),
    default=50,
    show_default=True,
    help="Runs per page.",
)
@click.option("--page-token", metavar="TOKEN", help="Continue from where a listing stopped.")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON.")
@click.pass_context
def list_command(
    ctx: click.Context,
    experiments: tuple[str, ...],
    filter_string: str,
    order_by: tuple[str, ...],
    max_results: int,
    page_token: str | None,
    include_deleted: bool,
    as_json: bool,
) -> None:
    """List runs matching a filter, newest first, a page at a time.

    \b
    Examples:
      shipyard runs list -e churn -f "metrics.auc > 0.8 and params.model = 'gbm'"
      shipyard runs list -o "metrics.auc DESC" -n 10
    Filter fields: metrics.KEY, params.KEY, tags.KEY, run_id, name, status, user,
    experiment_id, parent_id, git_commit, start_time, end_time.
    """
    from shipyard.tracking import queries
    from shipyard.tracking.frames import run_to_dict

    with _reading(ctx) as conn:
        experiment_ids = (
            [queries.get_experiment(conn, name).id for name in experiments] if experiments else None
        )
        page = queries.search_runs(
            conn,
            experiment_ids=experiment_ids,
            filter_string=filter_string,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
            include_deleted=include_deleted,
        )
        names = _experiment_names(conn)
    if as_json:
        print_json(
            {
                "runs": [run_to_dict(run, names.get(run.experiment_id)) for run in page.runs],
                "next_page_token": page.next_page_token,
            }
        )
        return
    if not page.runs:
        click.echo("No runs match." if filter_string or experiments else "No runs yet.")
        return
    out = console()
    several = len({run.experiment_id for run in page.runs}) > 1
    # About 13 characters per extra column beside the ~60 the fixed ones take.
    room = max(1, (out.width - 60 - (14 if several else 0)) // 13)
    metrics = _columns([run.metrics for run in page.runs], filter_string, order_by, "metrics.")
    metrics = metrics[: max(1, min(len(metrics), room - min(room // 2, _SHOWN_PARAMS)))]
    params = _columns([run.params for run in page.runs], filter_string, order_by, "params.")
    params = params[: max(0, room - len(metrics))]
    columns = ["run", "name", "status", "start (UTC)", "duration"]
    columns += ["experiment"] if several else []
    columns += [f"params.{key}" for key in params] + [f"metrics.{key}" for key in metrics]
    table = _table(columns, fixed=5)
    for run in page.runs:
        cells: list[Any] = [
            run.id[:8],
            run.name + (" (deleted)" if run.lifecycle == "deleted" else ""),
            _status(run.status),
            f"{run.start_time:%Y-%m-%d %H:%M}",
            _duration(run),
        ]
        cells += [names.get(run.experiment_id, run.experiment_id[:8])] if several else []
        cells += [run.params.get(key, "-") for key in params]
        cells += [_number(run.metrics.get(key)) for key in metrics]
        table.add_row(*(_cell(cell) for cell in cells))
    out.print(table)
    if page.next_page_token:
        out.print(
            f"More runs: add --page-token {page.next_page_token}", markup=False, highlight=False
        )


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.pass_context
def show_command(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Everything about one run.

    Params, latest metrics, tags, inputs, artifacts, code version, environment, error.
    """
    from shipyard.tracking import queries
    from shipyard.tracking.frames import run_to_dict

    with _reading(ctx) as conn:
        run = queries.load_run(conn, run_id)
        artifacts = queries.list_artifacts(conn, run.id)
        environment = (
            queries.get_environment(conn, run.environment_id) if run.environment_id else None
        )
        names = _experiment_names(conn)
    if as_json:
        document = run_to_dict(run, names.get(run.experiment_id))
        document["artifacts"] = [
            {"path": a.path, "blob_id": a.blob_id, "size": a.size, "kind": a.kind}
            for a in artifacts
        ]
        document["environment"] = environment
        print_json(document)
        return
    from rich.text import Text

    out = console()
    out.print(Text(f"Run {run.id}", style="bold"))
    facts = {
        "name": run.name,
        "experiment": f"{names.get(run.experiment_id, '?')} ({run.experiment_id})",
        "status": run.status + (" (deleted)" if run.lifecycle == "deleted" else ""),
        "user": run.user,
        "start": f"{run.start_time:%Y-%m-%d %H:%M:%S} UTC",
        "end": f"{run.end_time:%Y-%m-%d %H:%M:%S} UTC" if run.end_time else "-",
        "duration": _duration(run),
        "parent": run.parent_id or "-",
        "source": run.source or "-",
        "git commit": (run.git_commit or "-") + (" (uncommitted changes)" if run.git_dirty else ""),
        "code diff": run.code_diff_blob or "-",
        "environment": _environment_line(run.environment_id, environment),
    }
    if run.error:
        facts["error"] = run.error
    table = _table(["", ""], header=False)
    for key, value in facts.items():
        table.add_row(_cell(key, style="bold"), _cell(value))
    out.print(table)
    inputs = [[i.dataset, i.version_id, i.role] for i in run.inputs]
    files = [[a.path, f"{a.size:,}", a.kind] for a in artifacts]
    sections: list[tuple[str, list[str], list[list[Any]]]] = [
        ("Params", ["key", "value"], [[k, v] for k, v in run.params.items()]),
        ("Metrics (latest)", ["key", "value"], [[k, _number(v)] for k, v in run.metrics.items()]),
        ("Tags", ["key", "value"], [[k, v] for k, v in run.tags.items()]),
        ("Inputs", ["dataset", "version", "role"], inputs),
        ("Artifacts", ["path", "size", "kind"], files),
    ]
    for title, columns, rows in sections:
        out.print(Text(f"\n{title}", style="bold"))
        if not rows:
            out.print("  none", style="dim")
            continue
        section = _table(columns)
        for row in rows:
            section.add_row(*(_cell(value) for value in row))
        out.print(section)


@runs_group.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write a self-contained HTML page with the table and metric curves.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.pass_context
def compare_command(
    ctx: click.Context, run_ids: tuple[str, ...], html_path: Path | None, as_json: bool
) -> None:
    """Params and final metrics of runs side by side.

    Rows whose values differ are highlighted; --html also draws the metric curves.
    """
    from shipyard.core.errors import ConfigError
    from shipyard.tracking.compare import (
        ComparedValue,
        compare_runs,
        comparison_to_dict,
        render_html,
    )

    with _reading(ctx) as conn:
        comparison = compare_runs(conn, list(run_ids))
    if html_path is not None:
        try:
            html_path.write_text(render_html(comparison), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"Cannot write {html_path}: {exc.strerror or exc}.",
                hint="Choose a path in a folder you can write to.",
            ) from exc
    if as_json:
        print_json(comparison_to_dict(comparison))
        return
    headers = ["key"] + [f"{run.name} ({run.id[:8]})" for run in comparison.runs]
    table = _table(headers)
    attributes: list[tuple[str, list[str]]] = [
        ("status", [run.status for run in comparison.runs]),
        ("duration", [_duration(run) for run in comparison.runs]),
    ]
    for key, texts in attributes:
        table.add_row(_cell(key, style="dim"), *(_cell(text, style="dim") for text in texts))
    groups: list[tuple[str, Sequence[ComparedValue]]] = [
        ("params.", comparison.params),
        ("metrics.", comparison.metrics),
    ]
    for prefix, rows in groups:
        for row in rows:
            style = "bold yellow" if row.differs else ""
            values = [
                "-" if value is None else (value if isinstance(value, str) else _number(value))
                for value in row.values
            ]
            table.add_row(
                _cell(prefix + row.key, style=style), *(_cell(v, style=style) for v in values)
            )
    out = console()
    out.print(table)
    differing = sum(row.differs for row in (*comparison.params, *comparison.metrics))
    out.print(f"{differing} of {len(comparison.params) + len(comparison.metrics)} values differ.")
    if html_path is not None:
        out.print(f"Wrote {html_path}", markup=False, highlight=False)


@runs_group.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
@click.pass_context
def delete_command(ctx: click.Context, run_ids: tuple[str, ...]) -> None:
    """Delete runs and the runs nested in them.

    `shipyard runs restore` undoes it until `shipyard runs purge` runs.
    """
    targets = _resolve_runs(ctx, run_ids)
    with _client(ctx) as client:
        for run in targets:
            client.delete_run(run.id)
            click.echo(f"Deleted run {run.id} ({run.name}).")


@runs_group.command("restore")
@click.argument("run_ids", nargs=-1, required=True)
@click.pass_context
def restore_command(ctx: click.Context, run_ids: tuple[str, ...]) -> None:
    """Restore deleted runs and the nested runs deleted with them."""
    targets = _resolve_runs(ctx, run_ids)
    with _client(ctx) as client:
        for run in targets:
            client.restore_run(run.id)
            click.echo(f"Restored run {run.id} ({run.name}).")


@runs_group.command("purge")
@click.option(
    "--older-than",
    "older_than",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Only records deleted at least this long ago.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def purge_command(ctx: click.Context, older_than: float, yes: bool) -> None:
    """Remove deleted runs and experiments for good.

    Their artifacts are freed by the next `shipyard store gc`. This cannot be undone.
    """
    if not yes:
        click.confirm(
            "Permanently remove deleted runs and experiments"
            + (f" deleted over {older_than:g} s ago" if older_than else "")
            + "?",
            abort=True,
        )
    with _client(ctx) as client:
        removed = client.purge(older_than_seconds=older_than)
    click.echo(f"Purged {removed} record(s). Run `shipyard store gc` to free their artifacts.")


# --- Experiments -----------------------------------------------------------------------


@click.group("experiments")
def experiments_group() -> None:
    """List, create, delete and restore experiments (named groups of runs)."""


@experiments_group.command("list")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted experiments.")
@click.option("--json", "as_json", is_flag=True, help="Print the experiments as JSON.")
@click.pass_context
def experiments_list_command(ctx: click.Context, include_deleted: bool, as_json: bool) -> None:
    """Experiments, oldest first, with how many active runs each holds."""
    from shipyard.tracking import queries
    from shipyard.tracking.frames import experiment_to_dict

    with _reading(ctx) as conn:
        found = queries.list_experiments(conn, include_deleted=include_deleted)
        counts = queries.run_counts(conn)
    if as_json:
        print_json([experiment_to_dict(e) | {"runs": counts.get(e.id, 0)} for e in found])
        return
    if not found:
        click.echo("No experiments yet.")
        return
    table = _table(["id", "name", "runs", "created (UTC)", "state", "description"])
    for experiment in found:
        table.add_row(
            *(
                _cell(value)
                for value in (
                    experiment.id[:8],
                    experiment.name,
                    counts.get(experiment.id, 0),
                    f"{experiment.created_at:%Y-%m-%d %H:%M}",
                    experiment.lifecycle,
                    experiment.description or "",
                )
            )
        )
    console().print(table)


@experiments_group.command("create")
@click.argument("name")
@click.option("--description", "-d", help="What the experiment is for.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.pass_context
def experiments_create_command(
    ctx: click.Context, name: str, description: str | None, tags: tuple[str, ...]
) -> None:
    """Create an experiment."""
    parsed: dict[str, str] = {}
    for tag in tags:
        key, separator, value = tag.partition("=")
        if not separator or not key:
            raise click.BadParameter(f"{tag!r} is not KEY=VALUE.", param_hint="--tag")
        parsed[key] = value
    with _client(ctx) as client:
        experiment = client.create_experiment(name, description, tags=parsed)
    click.echo(f"Created experiment {experiment.name} ({experiment.id}).")


@experiments_group.command("delete")
@click.argument("experiment")
@click.pass_context
def experiments_delete_command(ctx: click.Context, experiment: str) -> None:
    """Delete an experiment and its runs (restorable until purged)."""
    found = _resolve_experiment(ctx, experiment)
    with _client(ctx) as client:
        client.delete_experiment(found.id)
    click.echo(f"Deleted experiment {found.name} ({found.id}) and its runs.")


@experiments_group.command("restore")
@click.argument("experiment")
@click.pass_context
def experiments_restore_command(ctx: click.Context, experiment: str) -> None:
    """Restore a deleted experiment and the runs deleted with it."""
    found = _resolve_experiment(ctx, experiment)
    with _client(ctx) as client:
        client.restore_experiment(found.id)
    click.echo(f"Restored experiment {found.name} ({found.id}).")


# --- Helpers ---------------------------------------------------------------------------


@contextmanager
def _reading(ctx: click.Context) -> Iterator[Connection]:
    from shipyard.store.metadata import open_metadata_store

    config = config_from_context(ctx)
    with open_metadata_store(config.store.metadata) as store, store.connect() as conn:
        yield conn


@contextmanager
def _client(ctx: click.Context) -> Iterator[TrackingClient]:
    from shipyard.tracking.client import TrackingClient

    with TrackingClient(config_from_context(ctx)) as client:
        yield client


def _resolve_runs(ctx: click.Context, run_ids: Sequence[str]) -> list[Run]:
    from shipyard.tracking import queries

    with _reading(ctx) as conn:
        found = [queries.load_run(conn, run_id) for run_id in run_ids]
    return list({run.id: run for run in found}.values())


def _resolve_experiment(ctx: click.Context, experiment: str) -> Experiment:
    from shipyard.tracking import queries

    with _reading(ctx) as conn:
        return queries.get_experiment(conn, experiment)


def _experiment_names(conn: Connection) -> dict[str, str]:
    from shipyard.tracking import queries

    return {e.id: e.name for e in queries.list_experiments(conn, include_deleted=True)}


def _columns(
    values: Sequence[dict[str, Any]], filter_string: str, order_by: Sequence[str], prefix: str
) -> list[str]:
    """The keys worth a column: those the filter or order names, then the most common."""
    limit = _SHOWN_METRICS if prefix == "metrics." else _SHOWN_PARAMS
    counts = Counter(key for mapping in values for key in mapping)
    mentioned = [key for key in counts if prefix + key in f"{filter_string} {' '.join(order_by)}"]
    common = [key for key, _ in counts.most_common() if key not in mentioned]
    return (mentioned + sorted(common[: max(0, limit - len(mentioned))]))[
        : max(limit, len(mentioned))
    ]


def _table(columns: Sequence[str], *, header: bool = True, fixed: int = 0) -> Table:
    """A table whose first ``fixed`` columns never wrap (ids, times); the rest fold."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=header, show_edge=False, pad_edge=False)
    for index, column in enumerate(columns):
        table.add_column(Text(column), overflow="fold", no_wrap=index < fixed)
    return table


def _cell(value: Any, style: str = "") -> Any:
    """Plain text for a table cell: never read as rich markup (names may hold '[')."""
    from rich.text import Text

    return value if isinstance(value, Text) else Text(str(value), style=style)


def _status(status: str) -> Any:
    from rich.text import Text

    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _duration(run: Run) -> str:
    from shipyard.tracking.compare import format_duration

    return (
        format_duration(run.duration_seconds)
        if run.end_time
        else "running"
        if run.status == "running"
        else "-"
    )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    from shipyard.tracking.compare import format_value

    return format_value(value)


def _environment_line(environment_id: str | None, environment: dict[str, Any] | None) -> str:
    if environment_id is None:
        return "-"
    if environment is None:
        return environment_id
    packages = len(environment["packages"])
    return (
        f"Python {environment['python_version']} on {environment['platform']}, "
        f"{packages} package(s) ({environment_id[:19]})"
    )
