"""``shipyard init`` and ``shipyard doctor``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shipyard.cli.output import config_from_context, console, print_json, print_table

if TYPE_CHECKING:
    from shipyard.core.config import Config

__all__ = ["Check", "doctor_command", "init_command", "run_checks"]


@click.command("init")
@click.argument("directory", required=False, default=".", type=click.Path(path_type=Path))
@click.option("--name", help="Project name (default: the folder's name).")
def init_command(directory: Path, name: str | None) -> None:
    """Create a Shipyard project in DIRECTORY (default: the current folder).

    Writes shipyard.toml, creates the embedded stores under .shipyard/ (or the ones the
    SHIPYARD_STORE_* variables name) and checks they work.
    """
    from shipyard.core.config import CONFIG_FILE, HOME_FOLDER, load_config, render_config_toml
    from shipyard.core.errors import ConfigError
    from shipyard.core.references import validate_name
    from shipyard.store.stores import open_stores

    if directory.exists() and not directory.is_dir():
        raise ConfigError(
            f"{directory} exists and is not a folder.", hint="Choose another project folder."
        )
    config_path = directory / CONFIG_FILE
    if config_path.exists():
        raise ConfigError(
            f"{config_path} already exists: {directory} is already a Shipyard project.",
            hint="Use `shipyard doctor` to check it, or choose another folder.",
        )
    project_name = validate_name(name or directory.resolve().name, what="project name")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        config_path.write_text(render_config_toml(project_name), encoding="utf-8")
        gitignore = directory / ".gitignore"
        lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
        if f"{HOME_FOLDER}/" not in lines:
            lines.append(f"{HOME_FOLDER}/")
            gitignore.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the project in {directory}: {exc.strerror}.",
            hint="Choose a folder you can write to.",
        ) from exc

    config = load_config(directory)
    with open_stores(config) as stores:
        stores.artifacts.check_writable()
        store_id = stores.metadata.store_id
    out = console()
    out.print(f"Created Shipyard project [bold]{project_name}[/] in {config.project_dir}")
    out.print(f"  metadata   {stores.metadata.display_uri} (store {store_id})")
    out.print(f"  artifacts  {stores.artifacts.uri}")
    out.print("Next: `shipyard doctor` checks every backend.")


@dataclass(frozen=True)
class Check:
    """One backend check's verdict."""

    backend: str
    target: str
    ok: bool
    detail: str
    seconds: float


def _timed(backend: str, target: str, probe: Callable[[], str]) -> Check:
    from shipyard.core.errors import ShipyardError

    start = time.perf_counter()
    try:
        detail = probe()
        ok = True
    except ShipyardError as exc:
        detail, ok = str(exc), False
    return Check(backend, target, ok, detail, time.perf_counter() - start)


def run_checks(ctx: click.Context) -> tuple[Config, list[Check]]:
    """Resolve the configuration and check every configured backend."""
    from shipyard.store.metadata import open_metadata_store
    from shipyard.store.stores import open_artifacts

    config = config_from_context(ctx)

    def metadata_probe() -> str:
        with open_metadata_store(config.store.metadata) as store:
            store.ping()
            return f"{store.dialect}, schema {store.schema_revision()} (current)"

    def artifacts_probe() -> str:
        with open_artifacts(config) as artifacts:
            artifacts.check_writable()
            blob_id = artifacts.put_bytes(b"shipyard doctor probe\n")
            artifacts.verify(blob_id)
            count = sum(1 for _ in artifacts.iter_blobs())
            return f"writable, read-back verified, {count} blob(s)"

    checks = [
        _timed("metadata", _display(config.store.metadata), metadata_probe),
        _timed("artifacts", config.store.artifacts, artifacts_probe),
    ]
    return config, checks


def _display(uri: str) -> str:
    from shipyard.store.metadata import mask_password

    return mask_password(uri)


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def doctor_command(ctx: click.Context, as_json: bool) -> None:
    """Print the resolved configuration and check every configured backend."""
    config, checks = run_checks(ctx)
    settings = [
        ("project.name", config.name, config.origins.get("project.name", "default")),
        ("project.dir", str(config.project_dir), "cwd or SHIPYARD_PROJECT_DIR"),
        ("store.metadata", _display(config.store.metadata), config.origins["store.metadata"]),
        ("store.artifacts", config.store.artifacts, config.origins["store.artifacts"]),
        ("s3.endpoint_url", config.s3.endpoint_url or "-", config.origins["s3.endpoint_url"]),
    ]
    healthy = all(check.ok for check in checks)
    if as_json:
        print_json(
            {
                "configuration": {key: {"value": v, "from": o} for key, v, o in settings},
                "checks": [
                    {
                        "backend": c.backend,
                        "target": c.target,
                        "ok": c.ok,
                        "detail": c.detail,
                        "seconds": round(c.seconds, 4),
                    }
                    for c in checks
                ],
                "healthy": healthy,
            }
        )
    else:
        print_table("Configuration", ["setting", "value", "from"], settings)
        click.echo()
        print_table(
            "Backends",
            ["backend", "target", "verdict", "detail", "time"],
            [
                (
                    c.backend,
                    c.target,
                    "OK" if c.ok else "FAIL",
                    c.detail,
                    f"{c.seconds * 1000:.0f} ms",
                )
                for c in checks
            ],
        )
        click.echo()
        click.echo(
            "All backends OK." if healthy else "Some backends FAILED: see the detail column."
        )
    if not healthy:
        raise click.exceptions.Exit(1)
