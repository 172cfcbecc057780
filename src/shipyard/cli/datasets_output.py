"""How ``shipyard datasets`` prints results, reports and versions (tables, plain lines)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shipyard.cli.output import console, print_json, print_table

if TYPE_CHECKING:
    from shipyard.data.records import DatasetVersion, IngestResult
    from shipyard.data.report import ContractReport

__all__ = ["fmt", "print_report", "print_result", "print_version"]

_SHOWN_VIOLATIONS = 20


def print_result(result: IngestResult, as_json: bool) -> None:
    """An ingestion's outcome: its report (tables), the version made, and notes."""
    version = result.version
    if as_json:
        print_json(
            {
                "version": version.to_dict(),
                "created": result.created,
                "report": result.report.to_dict(),
                "notes": list(result.notes),
            }
        )
        return
    if version.kind == "table":
        print_report(result.report)
    what = (
        f"{version.num_rows:,} rows, {len(version.schema)} columns"
        if version.kind == "table"
        else f"{version.num_rows:,} files, {version.num_bytes:,} bytes"
    )
    # Plain lines (click.echo): a file version's command stays free of rich's import.
    if result.created:
        click.echo(f"Created {version.reference}: {what}; content {version.short_id}.")
    else:
        click.echo(
            f"Unchanged: the content is {version.reference}'s ({version.short_id}); no new version."
        )
    for note in result.notes:
        click.echo(f"note: {note}")


def print_report(report: ContractReport) -> None:
    """A contract report: summary, quarantined rows by rule, first violations, dataset rules."""
    out = console()
    out.print(report.summary() + ".", markup=False)
    if report.rule_counts:
        print_table(
            "Quarantined rows by rule",
            ["rule", "column", "rows"],
            [(c.rule, c.column or "", f"{c.count:,}") for c in report.rule_counts],
        )
    if report.violations:
        shown = report.violations[:_SHOWN_VIOLATIONS]
        print_table(
            f"First {len(shown)} of {report.rows_quarantined:,} quarantined rows",
            ["file", "row", "column", "value", "rule", "problem"],
            [
                (
                    Path(v.file).name if v.file else "",
                    v.row if v.row is not None else "",
                    v.column or "",
                    "null" if v.value is None else v.value,
                    v.rule,
                    v.message,
                )
                for v in shown
            ],
        )
    if report.dataset_rules:
        print_table(
            "Dataset rules",
            ["rule", "severity", "result", "detail"],
            [
                (
                    r.rule,
                    r.severity,
                    "pass" if r.passed else "FAIL",
                    "; ".join([r.detail, *r.examples]),
                )
                for r in report.dataset_rules
            ],
        )


def fmt(value: Any) -> str:
    """A statistic for a table cell: thousands separators, 4 significant digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_version(version: DatasetVersion) -> None:
    """A version's facts: id, kind, size, source, creation, tags, aliases, inputs."""
    source = dict(version.source)
    facts = [
        ("version", version.reference),
        ("content id", version.content_id),
        ("kind", version.kind),
        ("rows" if version.kind == "table" else "files", f"{version.num_rows:,}"),
        ("stored bytes", f"{version.num_bytes:,}"),
        ("quarantined rows", f"{version.quarantined_rows:,}"),
        (
            "source",
            f"{source.get('kind', '')} {source.get('display') or source.get('path') or ''}".strip(),
        ),
        ("created", f"{version.created_at.isoformat(timespec='seconds')} by {version.created_by}"),
    ]
    if version.tags:
        facts.append(("tags", " ".join(f"{k}={v}" for k, v in version.tags.items())))
    if version.aliases:
        facts.append(("aliases", " ".join(version.aliases)))
    facts.extend(
        (f"input {e.input_name}", f"{e.dataset}@v{e.number} ({e.content_id[7:19]})")
        for e in version.upstream
    )
    print_table(None, ["", ""], facts)
