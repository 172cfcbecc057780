"""``shipyard demo``: the end-to-end story on the embedded default.

Today it walks through what has landed: a project, its stores checked, content-addressed
artifacts with references, verification and garbage collection. Each later capability
(datasets, features, tracking, gates, serving, monitoring) adds its step here, so the
README's main command stays the same as the product grows.
"""

from __future__ import annotations

import json
import shutil
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

import click

from shipyard.cli.output import console

__all__ = ["demo_command"]


@click.command("demo")
@click.argument(
    "directory", required=False, default="shipyard-demo", type=click.Path(path_type=Path)
)
@click.option("--fresh/--reuse", default=True, show_default=True, help="Start from scratch.")
def demo_command(directory: Path, fresh: bool) -> None:
    """Run the end-to-end demo in DIRECTORY (default: ./shipyard-demo)."""
    from shipyard.core.config import CONFIG_FILE, load_config, render_config_toml
    from shipyard.core.errors import ConfigError
    from shipyard.store.gc import collect_garbage
    from shipyard.store.metadata import BlobRef
    from shipyard.store.stores import open_stores

    out = console()
    started = time.perf_counter()
    if fresh and directory.exists():
        if not (directory / CONFIG_FILE).is_file():
            raise ConfigError(
                f"{directory} exists and is not a Shipyard project; the demo will not delete it.",
                hint="Name another folder: shipyard demo DIR.",
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / CONFIG_FILE).exists():
        (directory / CONFIG_FILE).write_text(render_config_toml("demo"), encoding="utf-8")
    config = load_config(directory)

    out.rule("[bold]1. A project on the embedded default")
    with open_stores(config) as stores:
        out.print(f"metadata   {stores.metadata.display_uri}  (store {stores.metadata.store_id})")
        out.print(f"artifacts  {stores.artifacts.uri}")
        stores.metadata.ping()
        stores.artifacts.check_writable()
        out.print("both stores reachable and writable; schema", stores.metadata.schema_revision())

        out.rule("[bold]2. Content-addressed artifacts")
        environment = sorted(
            f"{dist.metadata['Name']}=={dist.version}"
            for dist in importlib_metadata.distributions()
        )
        payload = json.dumps({"packages": environment}, indent=1).encode()
        first = stores.artifacts.put_bytes(payload)
        second = stores.artifacts.put_bytes(payload)
        out.print(f"this Python environment ({len(environment)} packages) stored as {first}")
        out.print(f"stored again: same bytes, same id ({'yes' if first == second else 'NO'})")
        with stores.metadata.transaction() as conn:
            stores.metadata.add_blob_refs(
                conn, [BlobRef(first, owner_kind="demo", owner_id="environment", role="freeze")]
            )
            stores.metadata.record_event(
                conn, "demo", "artifact.stored", "blob", first, {"bytes": len(payload)}
            )
        scratch = stores.artifacts.put_bytes(b"a scratch blob nobody references\n")
        out.print(f"an unreferenced scratch blob: {scratch}")

        out.rule("[bold]3. Verification and garbage collection")
        for blob in stores.artifacts.iter_blobs():
            stores.artifacts.verify(blob.id)
        out.print("every blob re-hashed to its id")
        report = collect_garbage(
            stores.artifacts, stores.metadata.referenced_blob_ids, grace_seconds=0
        )
        out.print(
            f"gc: {report.examined} examined, {report.kept_referenced} referenced and kept, "
            f"{report.deleted} deleted ({report.bytes_freed} bytes)"
        )
        if stores.artifacts.exists(scratch) or not stores.artifacts.exists(first):
            raise click.ClickException("garbage collection kept the wrong blobs")
    out.rule()
    out.print(
        f"Done in {time.perf_counter() - started:.1f} s. Project left in {config.project_dir}; "
        f"try `shipyard -C {directory} doctor` or `shipyard -C {directory} store info`."
    )
