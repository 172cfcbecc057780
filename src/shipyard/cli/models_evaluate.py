"""``shipyard models evaluate`` and ``shipyard models card``: gates on held-out data, cards.

\b
  shipyard models evaluate churn@v3 --data churn_holdout@v1 --label churn --gates-from-config
  shipyard models evaluate churn@v3 --data events --time-column event_time --label churned
  shipyard models evaluate hr@v2 --data hr_holdout@v1 --label Attrition --slice-by Gender
  shipyard models card churn@v3 --output churn_v3.html
  shipyard models card churn@v3 --output churn_v3.md

``evaluate`` stores the evaluation on the version (metrics, the decision threshold, gate
results, plots, slices), where ``shipyard models promote`` checks it, and exits with 1
when a gate failed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shipyard.cli.output import config_from_context, console, print_json, print_table

if TYPE_CHECKING:
    from shipyard.evaluation.report import EvaluationReport

__all__ = ["card_command", "evaluate_command"]

EXIT_GATE_FAILED = 1
_STATUS_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


@contextmanager
def _status(message: str) -> Iterator[None]:
    """A spinner on stderr while the work runs (only on a terminal)."""
    if not sys.stderr.isatty():
        yield
        return
    with console(stderr=True).status(message):
        yield


def _figure(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _gate_detail(detail: Any) -> str:
    reason = detail.get("reason") or detail.get("note")
    if reason:
        return str(reason)
    if "threshold" in detail and "precision" in detail:
        return (
            f"threshold {detail['threshold']:.4g}: precision {detail['precision']:.3f}, "
            f"recall {detail['recall']:.3f}"
        )
    if "champion" in detail:
        return f"vs {detail.get('champion_version')}: {_figure(detail['champion'])}"
    if "probes" in detail:
        failed = [p for p in detail["probes"] if p.get("status") == "failed"]
        if failed:
            return "; ".join(f"{p['probe']}: {p.get('reason', '')}" for p in failed)[:400]
        return f"{len(detail['probes'])} probes answered or rejected by the contract"
    if "slices" in detail and "highest" in detail:
        return f"highest {detail['highest']}, lowest {detail['lowest']}"
    if "p50_ms" in detail:
        return f"{detail['calls']} calls, p50 {detail['p50_ms']:.1f} ms"
    return ""


def _print_report(report: EvaluationReport) -> None:
    from rich.text import Text

    out = console()
    threshold = f", threshold {report.threshold:.4g}" if report.threshold is not None else ""
    out.print(Text(f"{report.model}: {report.data_description}{threshold}"))
    print_table(
        "Metrics", ["metric", "value"], [[k, _figure(v)] for k, v in report.metrics.items()]
    )
    for column, values in report.slices.items():
        names = [k for k in next(iter(values.values()), {}) if k not in ("rows", "positives")]
        print_table(
            f"By {column}",
            ["slice", "rows", *names],
            [
                [value, entry["rows"], *[_figure(entry.get(n)) for n in names]]
                for value, entry in values.items()
            ],
        )
    if report.gate_results:
        rows = [
            [
                result.gate,
                result.kind,
                _figure(result.figure),
                result.bound,
                Text(result.status, style=_STATUS_STYLE[result.status]),
                _gate_detail(result.detail),
            ]
            for result in report.gate_results
        ]
        print_table("Gates", ["gate", "kind", "figure", "bound", "status", "detail"], rows)
        failed = report.failed_gates
        if failed:
            out.print(Text(f"FAILED: {', '.join(r.gate for r in failed)}", style="bold red"))
        else:
            out.print(Text(f"PASSED: {len(report.gate_results)} gate(s)", style="green"))
    else:
        out.print(Text("No gates: metrics only (add --gates-from-config or [gates.MODEL])."))
    if report.recorded:
        out.print(Text(f"Recorded on {report.model}."))


@click.command("evaluate")
@click.argument("reference", metavar="MODEL@REF")
@click.option(
    "--data",
    "data",
    required=True,
    metavar="DATASET_REF",
    help="Held-out dataset version (e.g. churn_holdout@v1; a bare name is its newest).",
)
@click.option("--label", "label", required=True, metavar="COLUMN", help="The label column.")
@click.option(
    "--gates-from-config", is_flag=True, help="Run the gates of [gates.MODEL] in shipyard.toml."
)
@click.option(
    "--slice-by",
    "slice_by",
    multiple=True,
    metavar="COLUMN",
    help="Also report every metric per value of COLUMN (repeatable).",
)
@click.option(
    "--time-column",
    metavar="COLUMN",
    help="Evaluate on the newest labelled rows by COLUMN instead of the whole version.",
)
@click.option(
    "--holdout-fraction",
    type=float,
    default=None,
    metavar="FRACTION",
    help="With --time-column: the newest share of rows to evaluate on (default 0.2).",
)
@click.option(
    "--positive",
    metavar="VALUE",
    help="The positive class, when the model's signature records no classes.",
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Allow loading versions that run stored Python code (trust its author).",
)
@click.option("--no-record", is_flag=True, help="Do not store the evaluation on the version.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def evaluate_command(
    ctx: click.Context,
    reference: str,
    data: str,
    label: str,
    gates_from_config: bool,
    slice_by: tuple[str, ...],
    time_column: str | None,
    holdout_fraction: float | None,
    positive: str | None,
    allow_pickle: bool,
    no_record: bool,
    as_json: bool,
) -> None:
    """Evaluate MODEL@REF on held-out data and run its gates; exit 1 when a gate fails."""
    from shipyard.core.errors import ConfigError
    from shipyard.core.references import parse_reference
    from shipyard.evaluation.data import TimeSplit
    from shipyard.evaluation.gate_config import gates_from_config as config_gates
    from shipyard.evaluation.runner import evaluate
    from shipyard.models.registry import ModelRegistry

    parsed = parse_reference(reference)
    if holdout_fraction is not None and time_column is None:
        raise ConfigError(
            "--holdout-fraction needs --time-column.",
            hint="e.g. --time-column event_time --holdout-fraction 0.2",
        )
    source: str | TimeSplit = data
    if time_column is not None:
        source = TimeSplit(data, time_column, 0.2 if holdout_fraction is None else holdout_fraction)
    config = config_from_context(ctx)
    gates = config_gates(config, parsed.name) if gates_from_config else []
    with ModelRegistry.open(config) as registry, _status(f"Evaluating {reference}..."):
        report = evaluate(
            reference,
            data=source,
            label=label,
            gates=gates,
            slice_by=slice_by,
            positive=positive,
            registry=registry,
            record=not no_record,
            allow_pickle=allow_pickle,
        )
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if not report.passed:
        ctx.exit(EXIT_GATE_FAILED)


def _write_atomically(path: Path, text: str) -> None:
    from shipyard.core.errors import ConfigError
    from shipyard.core.files import write_text_atomically

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"Folder {folder} does not exist.", hint="Create it or fix --output.")
    try:
        write_text_atomically(path, text)
    except OSError as exc:
        raise ConfigError(
            f"Cannot write {path}: {exc.strerror}.", hint="Check the path and its permissions."
        ) from exc


@click.command("card")
@click.argument("reference", metavar="MODEL@REF")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    metavar="FILE",
    help="Where to write the card ('-' for standard output).",
)
@click.option(
    "--format",
    "card_format",
    type=click.Choice(["html", "md"]),
    default=None,
    help="html or md (default: from the file's suffix, else html).",
)
@click.pass_context
def card_command(ctx: click.Context, reference: str, output: str, card_format: str | None) -> None:
    """Write the model card of MODEL@REF (HTML or Markdown): purpose, data, metrics with
    plots, slices, gates, signature and lineage."""
    from shipyard.core.references import parse_reference
    from shipyard.evaluation.card import model_card
    from shipyard.models.registry import ModelRegistry

    parse_reference(reference)
    chosen = card_format or ("md" if output.lower().endswith((".md", ".markdown")) else "html")
    with ModelRegistry.open(config_from_context(ctx)) as registry:
        text = model_card(registry, reference, format=chosen)
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output)
    if path.is_dir():
        from shipyard.core.errors import ConfigError

        raise ConfigError(f"--output {output} is a folder.", hint="Name a file, e.g. card.html.")
    _write_atomically(path, text)
    console(stderr=True).print(f"Wrote {chosen} card of {reference} to {path}.", highlight=False)
