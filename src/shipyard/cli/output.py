"""Shared CLI helpers: the project's configuration from the context, tables, JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from shipyard.core.config import Config

__all__ = ["config_from_context", "console", "print_json", "print_table"]


def config_from_context(ctx: click.Context) -> Config:
    """The configuration of the project chosen by ``-C`` (or found from the cwd)."""
    from shipyard.core.config import load_config
    from shipyard.core.errors import ConfigError

    root = ctx.find_root()
    project = (root.obj or {}).get("project")
    if project is None:
        return load_config()
    path = Path(project)
    if not path.is_dir():
        raise ConfigError(
            f"Project folder {project} does not exist.",
            hint="Create it with `shipyard init DIR` or fix the -C option.",
        )
    return load_config(path)


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Cells are data (run names, file paths, values), never markup: "x[/]" prints as is.
        table.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    console().print(table)
