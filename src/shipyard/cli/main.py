"""Entry point of the ``shipyard`` command: the group, global options, error handling.

Every Shipyard error reaches the user as one or two plain lines (what happened, what to
do) and a non-zero exit, never a traceback. ``SHIPYARD_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from shipyard._version import __version__

if TYPE_CHECKING:
    from shipyard.core.errors import ShipyardError

__all__ = ["cli", "main"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used, to keep start-up fast."""

    def __init__(self, *args: object, lazy: dict[str, str] | None = None, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, _, attribute = self._lazy[cmd_name].partition(":")
            module = __import__(module_name, fromlist=[attribute])
            command: click.Command = getattr(module, attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy={
        "init": "shipyard.cli.project:init_command",
        "doctor": "shipyard.cli.project:doctor_command",
        "store": "shipyard.cli.store:store_group",
        "datasets": "shipyard.cli.datasets:datasets_group",
        "demo": "shipyard.cli.demo:demo_command",
        "run": "shipyard.cli.pipelines:run_command",
        "pipelines": "shipyard.cli.pipelines:pipelines_group",
        "scheduler": "shipyard.cli.pipelines:scheduler_command",
        "runs": "shipyard.cli.runs:runs_group",
        "experiments": "shipyard.cli.runs:experiments_group",
        "models": "shipyard.cli.models:models_group",
        "features": "shipyard.cli.features:features_group",
        "serve": "shipyard.cli.serve:serve_command",
        "predict": "shipyard.cli.serve:predict_command",
        "build": "shipyard.cli.serve:build_command",
        "monitor": "shipyard.cli.monitor:monitor_group",
    },
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="shipyard")
@click.option(
    "-C",
    "--project",
    "project",
    type=click.Path(file_okay=False, path_type=str),
    help="Project folder (default: nearest folder with shipyard.toml, else the current one).",
)
@click.pass_context
def cli(ctx: click.Context, project: str | None) -> None:
    """Shipyard: data, features, tracking, gates, serving, monitoring, retraining."""
    ctx.ensure_object(dict)
    ctx.obj["project"] = project


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (never raises for a user's mistake)."""
    try:
        # Without standalone mode, click returns the code of an ``Exit`` instead of raising.
        result = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:
        # Imported here, not at the top: start-up time of every command counts.
        from shipyard.core.errors import ShipyardError

        if isinstance(exc, ShipyardError):
            _print_error(exc)
            return EXIT_ERROR
        if os.environ.get("SHIPYARD_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "  This is a bug in Shipyard, not your input. Rerun with SHIPYARD_DEBUG=1 "
            "for the traceback and report it.",
            err=True,
        )
        return EXIT_ERROR
    return result if isinstance(result, int) else 0


def _print_error(exc: ShipyardError) -> None:
    if os.environ.get("SHIPYARD_DEBUG"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"error[{exc.code}]: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"  fix: {exc.hint}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
