"""``shipyard store``: inspect, verify, garbage-collect and migrate a project's stores."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from shipyard.cli.output import config_from_context, console, print_json, print_table

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["store_group"]

_DATABASE_URI = re.compile(r"^(sqlite|postgres|postgresql)(\+\w+)?://", re.IGNORECASE)


@click.group("store")
def store_group() -> None:
    """Inspect, verify, garbage-collect and migrate the metadata and artifact stores."""


@store_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def info_command(ctx: click.Context, as_json: bool) -> None:
    """Where the stores live, their schema, and what they hold."""
    from shipyard.store.stores import open_stores

    config = config_from_context(ctx)
    with open_stores(config) as stores:
        blobs = list(stores.artifacts.iter_blobs())
        facts = {
            "metadata": stores.metadata.display_uri,
            "dialect": stores.metadata.dialect,
            "schema_revision": stores.metadata.schema_revision(),
            "store_id": stores.metadata.store_id,
            "artifacts": stores.artifacts.uri,
            "blobs": len(blobs),
            "blob_bytes": sum(blob.size for blob in blobs),
            "referenced_blobs": len(stores.metadata.referenced_blob_ids()),
        }
    if as_json:
        print_json(facts)
    else:
        print_table(None, ["", ""], [(key, value) for key, value in facts.items()])


@store_group.command("verify")
@click.pass_context
def verify_command(ctx: click.Context) -> None:
    """Re-hash every stored blob and check every referenced blob exists."""
    from shipyard.core.errors import IntegrityError
    from shipyard.store.stores import open_stores

    config = config_from_context(ctx)
    problems: list[str] = []
    with open_stores(config) as stores:
        blobs = list(stores.artifacts.iter_blobs())
        with _progress() as progress:
            task = progress.add_task("verifying blobs", total=len(blobs))
            for blob in blobs:
                try:
                    stores.artifacts.verify(blob.id)
                except IntegrityError as exc:
                    problems.append(str(exc))
                progress.advance(task)
        present = {blob.id for blob in blobs}
        missing = sorted(stores.metadata.referenced_blob_ids() - present)
        problems.extend(f"Blob {blob_id} is referenced but missing." for blob_id in missing)
    for line in problems:
        click.echo(f"FAIL {line}", err=True)
    click.echo(f"{len(blobs)} blob(s) checked, {len(problems)} problem(s).")
    if problems:
        raise click.exceptions.Exit(1)


@store_group.command("gc")
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; delete nothing.")
@click.option(
    "--grace",
    "grace_seconds",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Keep unreferenced blobs younger than this many seconds (writes in flight).",
)
@click.pass_context
def gc_command(ctx: click.Context, dry_run: bool, grace_seconds: float) -> None:
    """Delete blobs that no metadata record references."""
    from shipyard.store.gc import collect_garbage
    from shipyard.store.stores import open_stores

    config = config_from_context(ctx)
    with open_stores(config) as stores:
        report = collect_garbage(
            stores.artifacts,
            stores.metadata.referenced_blob_ids,
            grace_seconds=grace_seconds,
            dry_run=dry_run,
        )
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{report.examined} blob(s) examined: {report.kept_referenced} referenced, "
        f"{report.kept_recent} kept as recent, {verb} {report.deleted} "
        f"({report.bytes_freed:,} bytes)."
    )


@store_group.command("migrate")
@click.option(
    "--to",
    "targets",
    multiple=True,
    required=True,
    metavar="URI",
    help="Target store; repeat for both. A database URI (postgresql://, sqlite:///) moves "
    "the metadata; a folder or s3:// URI moves the artifacts.",
)
@click.option("--s3-endpoint-url", help="Endpoint of the target S3 service (default: [s3]).")
@click.pass_context
def migrate_command(
    ctx: click.Context, targets: tuple[str, ...], s3_endpoint_url: str | None
) -> None:
    """Copy this project's metadata and artifacts to other backends, verified.

    \b
    Examples:
      shipyard store migrate --to postgresql://me@db/shipyard --to s3://bucket/churn
      shipyard store migrate --to sqlite:///.shipyard/metadata.db --to .shipyard/artifacts
    The source is not changed. Afterwards, point shipyard.toml (or SHIPYARD_STORE_*) at
    the new stores.
    """
    from shipyard.core.errors import ConfigError
    from shipyard.store.artifacts_factory import open_artifact_store
    from shipyard.store.metadata import mask_password, open_metadata_store
    from shipyard.store.stores import open_stores
    from shipyard.store.transfer import copy_artifacts, copy_metadata, verify_artifacts

    config = config_from_context(ctx)
    metadata_to = [uri for uri in targets if _DATABASE_URI.match(uri)]
    artifacts_to = [uri for uri in targets if not _DATABASE_URI.match(uri)]
    if len(metadata_to) > 1 or len(artifacts_to) > 1:
        raise ConfigError(
            f"--to names {len(metadata_to)} databases and {len(artifacts_to)} artifact stores.",
            hint="Give at most one database URI and one artifact store URI.",
        )
    endpoint = s3_endpoint_url or config.s3.endpoint_url
    target = config.with_store(
        metadata=metadata_to[0] if metadata_to else None,
        artifacts=artifacts_to[0] if artifacts_to else None,
    )
    if target.store == config.store:
        raise ConfigError(
            "The target stores are the project's current stores.",
            hint="Name at least one other store with --to.",
        )
    out = console()
    with open_stores(config) as source:
        if metadata_to:
            with open_metadata_store(target.store.metadata) as destination:
                with _progress() as progress:
                    task = progress.add_task("copying metadata rows", total=None)
                    counts = copy_metadata(
                        source.metadata,
                        destination,
                        progress=lambda _what, n: progress.advance(task, n),
                    )
                rows = sum(counts.values())
                out.print(
                    f"metadata: {rows} row(s) in {len(counts)} table(s) copied to "
                    f"{destination.display_uri}; counts verified."
                )
        if artifacts_to:
            with open_artifact_store(
                target.store.artifacts, base_dir=config.project_dir, s3_endpoint_url=endpoint
            ) as destination_artifacts:
                destination_artifacts.check_writable()
                total = sum(1 for _ in source.artifacts.iter_blobs())
                with _progress() as progress:
                    task = progress.add_task("copying blobs", total=total)
                    copied, present, size = copy_artifacts(
                        source.artifacts,
                        destination_artifacts,
                        progress=lambda _what, n: progress.advance(task, n),
                    )
                    check = progress.add_task("verifying blobs", total=total)
                    verified = verify_artifacts(
                        source.artifacts,
                        destination_artifacts,
                        progress=lambda _what, n: progress.advance(check, n),
                    )
                out.print(
                    f"artifacts: {copied} blob(s) copied ({size:,} bytes), {present} already "
                    f"there, {verified} verified by hash in {destination_artifacts.uri}."
                )
    out.print("Done. To use the new stores, set in shipyard.toml:")
    out.print("  [store]", markup=False)
    out.print(f'  metadata = "{mask_password(target.store.metadata)}"', markup=False)
    out.print(f'  artifacts = "{target.store.artifacts}"', markup=False)
    if endpoint and target.store.artifacts.startswith("s3://"):
        out.print(f'  [s3]\n  endpoint_url = "{endpoint}"', markup=False)


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    )
