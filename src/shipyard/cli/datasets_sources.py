"""The options ``shipyard datasets ingest`` and ``check`` share: what to read, and how."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["JSON_OPTION", "parse_tags", "source_of", "source_options"]

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def parse_tags(tags: tuple[str, ...]) -> dict[str, str]:
    """``--tag KEY=VALUE`` options as a dict; ``ConfigError`` naming a malformed one."""
    from shipyard.core.errors import ConfigError

    parsed = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise ConfigError(f"Tag {tag!r} is not KEY=VALUE.", hint="e.g. --tag source=crm")
        parsed[key] = value
    return parsed


def source_of(
    paths: tuple[str, ...],
    source_format: str | None,
    delimiter: str | None,
    encoding: str | None,
    max_row_bytes: int | None,
    sql: str | None,
    database: str | None,
) -> Any:
    """The source the command line names: files, folders or globs, or a SQL query."""
    from shipyard.core.errors import ConfigError
    from shipyard.data.sources import source_from
    from shipyard.data.sources_sql import SqlSource

    if sql is not None or database is not None:
        if not sql or not database or paths:
            raise ConfigError(
                "A SQL source needs --sql QUERY and --database URI, and no paths.",
                hint='e.g. --sql "SELECT * FROM customers" --database postgresql://me@db/crm',
            )
        return SqlSource(sql, database)
    if not paths:
        raise ConfigError("Name the data to read: a file, folder or glob, or --sql/--database.")
    options: dict[str, Any] = {}
    if delimiter is not None:
        options["delimiter"] = "\t" if delimiter in ("\\t", "tab") else delimiter
    if encoding is not None:
        options["encoding"] = encoding
    if max_row_bytes is not None:
        options["max_row_bytes"] = max_row_bytes
    spec: Any = paths[0] if len(paths) == 1 else list(paths)
    return source_from(spec, format=source_format, **options)


def source_options(command: Any) -> Any:
    """Decorate ``command`` with the contract, format, CSV, SQL and --json options."""
    options = [
        click.option(
            "--contract",
            "contract_path",
            type=click.Path(dir_okay=False),
            help="Contract file (.toml, .yaml, .json).",
        ),
        click.option(
            "--format",
            "source_format",
            type=click.Choice(["csv", "parquet", "jsonl"]),
            help="Format of the files (default: from the extension).",
        ),
        click.option("--delimiter", help="CSV field separator (default ','; 'tab' for tabs)."),
        click.option(
            "--encoding", help="Text encoding of CSV files (default utf-8), e.g. latin-1."
        ),
        click.option(
            "--max-row-bytes",
            type=click.IntRange(min=1024),
            help="Largest CSV row accepted (default 8 MiB).",
        ),
        click.option("--sql", help="Read the rows of this query (with --database)."),
        click.option(
            "--database", metavar="URI", help="SQLAlchemy URI of the database --sql runs on."
        ),
        click.option(
            "--quarantine-out",
            type=click.Path(dir_okay=False),
            help="Also write the quarantined rows to this Parquet file.",
        ),
        JSON_OPTION,
    ]
    for option in reversed(options):
        command = option(command)
    return command
