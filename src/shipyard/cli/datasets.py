"""``shipyard datasets``: ingest, check, version files, and inspect dataset versions.

\b
  shipyard datasets ingest credit data/credit_data.csv --contract credit.toml
  shipyard datasets ingest customers --sql "SELECT * FROM customers" --database URI
  shipyard datasets ingest images data/images/ --files
  shipyard datasets check data/credit_data.csv --contract credit.toml
  shipyard datasets list [NAME]          shipyard datasets show credit@v2
  shipyard datasets diff credit@v1 credit@v2
  shipyard datasets lineage credit@v2    shipyard datasets status [images]
  shipyard datasets export credit@v2 out/credit.csv
  shipyard datasets copy credit@v2 --to postgresql://me@db/shipyard --to s3://bucket/prod
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shipyard.cli.datasets_output import fmt, print_report, print_result, print_version
from shipyard.cli.datasets_sources import JSON_OPTION, parse_tags, source_of, source_options
from shipyard.cli.output import config_from_context, console, print_json, print_table

if TYPE_CHECKING:
    from shipyard.data.client import DatasetClient
    from shipyard.data.ingestion import StageProgress

__all__ = ["datasets_group"]

_STAGES = {
    "infer": "inferring types",
    "read": "reading",
    "profile": "profiling",
    "store": "storing",
    "hash": "hashing",
}


@click.group("datasets")
def datasets_group() -> None:
    """Ingest data through contracts into immutable versions; version files; lineage."""


@contextmanager
def _client(ctx: click.Context) -> Iterator[DatasetClient]:
    from shipyard.data.client import DatasetClient

    with DatasetClient.open(config_from_context(ctx)) as client:
        yield client


@contextmanager
def _progress(enabled: bool) -> Iterator[StageProgress | None]:
    """A rich progress bar on stderr, fed by the ingestion's stage callbacks."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(_STAGES.get(stage, stage), total=total)
        progress.update(tasks[stage], completed=done, total=total)

    with progress:
        yield update


@datasets_group.command("ingest")
@click.argument("name")
@click.argument("paths", nargs=-1)
@source_options
@click.option(
    "--files",
    "as_files",
    is_flag=True,
    help="Version the files' bytes (any file or folder), not a table.",
)
@click.option(
    "--link",
    type=click.Choice(["auto", "copy", "hardlink"]),
    default="auto",
    show_default=True,
    help="With --files: how large files enter a local store.",
)
@click.option(
    "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag the version (repeatable)."
)
@click.option("--description", help="Describe the dataset.")
@click.pass_context
def ingest_command(
    ctx: click.Context,
    name: str,
    paths: tuple[str, ...],
    contract_path: str | None,
    source_format: str | None,
    delimiter: str | None,
    encoding: str | None,
    max_row_bytes: int | None,
    sql: str | None,
    database: str | None,
    quarantine_out: str | None,
    as_json: bool,
    as_files: bool,
    link: str,
    tags: tuple[str, ...],
    description: str | None,
) -> None:
    """Ingest PATHS (files, folders, globs) or a query as a new version of NAME."""
    from shipyard.core.references import validate_name

    validate_name(name, what="dataset name")
    tag_values = parse_tags(tags)
    if as_files:
        from shipyard.core.errors import ConfigError

        if len(paths) != 1 or contract_path or sql:
            raise ConfigError("--files versions exactly one file or folder (no contract, no SQL).")
        _version_files(ctx, name, Path(paths[0]), link, tag_values, as_json)
        return
    from shipyard.data.contracts import load_contract
    from shipyard.data.errors import ContractFailed

    contract = load_contract(contract_path) if contract_path else None
    source = source_of(paths, source_format, delimiter, encoding, max_row_bytes, sql, database)
    with _client(ctx) as client, _progress(not as_json) as progress:
        try:
            result = client.ingest(
                name,
                source,
                contract,
                tags=tag_values,
                description=description,
                quarantine_path=quarantine_out,
                progress=progress,
            )
        except ContractFailed as failure:
            if as_json:
                print_json({"version": None, "created": False, "report": failure.report.to_dict()})
            else:
                print_report(failure.report)
            raise
    print_result(result, as_json)


def _version_files(
    ctx: click.Context,
    name: str,
    path: Path,
    link: str,
    tags: dict[str, str],
    as_json: bool,
) -> None:
    """``ingest --files``: the file-version path, with as little start-up as possible."""
    from shipyard.data.file_changes import Prehash, stat_cache
    from shipyard.data.files_sqlite import open_embedded_catalog

    config = config_from_context(ctx)
    # Read and hash while the stores open (imports, connections): the same wall time
    # does both. Large files only when they will be linked (a copy hashes them).
    linking = link != "copy" and not config.store.artifacts.startswith("s3://")
    early = Prehash(path, stat_cache(config), large=linking)
    # On the embedded store, the version is recorded with sqlite3 alone: importing
    # SQLAlchemy and every table definition would cost more than the rest.
    embedded = open_embedded_catalog(config)
    if embedded is not None:
        from shipyard.data.files import record_files

        with embedded, _progress(not as_json) as progress:
            result = record_files(
                embedded,
                stat_cache(config),
                name,
                path,
                tags=tags,
                link=link,  # type: ignore[arg-type]  # click.Choice checked it
                progress=progress,
                read_ahead=early.result(),
            )
    else:
        with _client(ctx) as client, _progress(not as_json) as progress:
            result = client.version_files(
                name,
                path,
                tags=tags,
                link=link,  # type: ignore[arg-type]  # click.Choice checked it
                progress=progress,
                read_ahead=early.result(),
            )
    print_result(result, as_json)


@datasets_group.command("check")
@click.argument("paths", nargs=-1)
@source_options
@click.pass_context
def check_command(
    ctx: click.Context,
    paths: tuple[str, ...],
    contract_path: str | None,
    source_format: str | None,
    delimiter: str | None,
    encoding: str | None,
    max_row_bytes: int | None,
    sql: str | None,
    database: str | None,
    quarantine_out: str | None,
    as_json: bool,
) -> None:
    """Check data against a contract without creating a version (exit 1 if it fails)."""
    from shipyard.data.contracts import load_contract

    contract = load_contract(contract_path) if contract_path else None
    source = source_of(paths, source_format, delimiter, encoding, max_row_bytes, sql, database)
    with _client(ctx) as client, _progress(not as_json) as progress:
        report = client.check(source, contract, quarantine_path=quarantine_out, progress=progress)
    if as_json:
        print_json(report.to_dict())
    else:
        print_report(report)
        verdict = "passes" if report.passed else "FAILS"
        console().print(f"The data {verdict} its contract: {report.summary()}.", markup=False)
    if not report.passed:
        raise click.exceptions.Exit(1)


@datasets_group.command("list")
@click.argument("name", required=False)
@JSON_OPTION
@click.pass_context
def list_command(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List datasets, or the versions of NAME (newest first)."""
    with _client(ctx) as client:
        if name is None:
            datasets = client.list_datasets()
            if as_json:
                print_json(
                    [
                        {
                            "name": d.name,
                            "kind": d.kind,
                            "versions": d.versions,
                            "latest": d.latest,
                            "description": d.description,
                            "created_at": d.created_at.isoformat(),
                        }
                        for d in datasets
                    ]
                )
                return
            print_table(
                None,
                ["dataset", "kind", "versions", "latest", "created"],
                [
                    (
                        d.name,
                        d.kind,
                        d.versions,
                        f"v{d.latest}" if d.latest else "-",
                        d.created_at.strftime("%Y-%m-%d %H:%M"),
                    )
                    for d in datasets
                ],
            )
            return
        versions = client.list_versions(name)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    print_table(
        name,
        ["version", "content", "rows", "bytes", "quarantined", "created", "tags", "aliases"],
        [
            (
                f"v{v.number}",
                v.short_id,
                f"{v.num_rows:,}",
                f"{v.num_bytes:,}",
                f"{v.quarantined_rows:,}",
                v.created_at.strftime("%Y-%m-%d %H:%M"),
                " ".join(f"{k}={x}" for k, x in v.tags.items()),
                " ".join(v.aliases),
            )
            for v in versions
        ],
    )


@datasets_group.command("show")
@click.argument("reference")
@JSON_OPTION
@click.pass_context
def show_command(ctx: click.Context, reference: str, as_json: bool) -> None:
    """Show a version: where it came from, its schema and column statistics."""
    with _client(ctx) as client:
        version = client.get_version(reference)
        profile = (
            client.profile(reference) if version.kind == "table" and version.profile_blob else None
        )
    if as_json:
        print_json({**version.to_dict(), "profile": profile})
        return
    print_version(version)
    if profile is not None:
        columns = profile["columns"]
        rows = []
        for column in version.schema:
            stats = columns.get(column.name, {})
            rows.append(
                (
                    column.name,
                    column.type,
                    "" if column.nullable else "not null",
                    fmt(stats.get("nulls")),
                    fmt(stats.get("distinct")),
                    fmt(stats.get("min")),
                    fmt(stats.get("max")),
                    fmt(stats.get("mean")),
                )
            )
        print_table(
            "Columns", ["column", "type", "", "nulls", "distinct", "min", "max", "mean"], rows
        )


@datasets_group.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--key", "keys", multiple=True, help="Match rows by this key column (repeatable).")
@JSON_OPTION
@click.pass_context
def diff_command(ctx: click.Context, a: str, b: str, keys: tuple[str, ...], as_json: bool) -> None:
    """What changed from version A to version B: schema, rows, statistics."""
    with _client(ctx) as client:
        result = client.diff(a, b, key=list(keys) or None)
    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    if result.same_content:
        out.print(f"{result.a} and {result.b} hold the same content.", markup=False)
        return
    if result.files_added or result.files_removed or result.files_modified:
        for marker, paths in (
            ("A", result.files_added),
            ("D", result.files_removed),
            ("M", result.files_modified),
        ):
            for path in paths:
                out.print(f"{marker} {path}", markup=False)
        return
    if result.schema_changes:
        print_table(
            "Schema",
            ["column", "change", "before", "after"],
            [(c.column, c.change, c.before or "", c.after or "") for c in result.schema_changes],
        )
    line = (
        f"rows: {result.rows_a:,} -> {result.rows_b:,}; "
        f"{result.rows_added:,} added, {result.rows_removed:,} removed"
    )
    if result.rows_changed is not None and result.key:
        line += f", {result.rows_changed:,} changed (by key {', '.join(result.key)})"
    out.print(line, markup=False)
    if result.stat_changes:
        print_table(
            "Statistics",
            ["column", "statistic", "before", "after"],
            [(s.column, s.statistic, fmt(s.before), fmt(s.after)) for s in result.stat_changes],
        )


@datasets_group.command("lineage")
@click.argument("reference")
@JSON_OPTION
@click.pass_context
def lineage_command(ctx: click.Context, reference: str, as_json: bool) -> None:
    """Where a version came from: its source and the versions it was derived from."""
    from rich.tree import Tree

    with _client(ctx) as client:
        node = client.lineage(reference)
    if as_json:
        print_json(node.to_dict())
        return

    def label(n: Any) -> str:
        source = n.source
        kind = source.get("kind", "")
        parts = [f"{n.reference} [{n.content_id[7:19]}]"]
        if n.input_name:
            parts.insert(0, f"{n.input_name}:")
        if kind in ("csv", "parquet", "jsonl"):
            files = source.get("files", [])
            parts.append(
                f"<- {kind} "
                + ", ".join(f"{f['path']} ({str(f['sha256'])[7:19]})" for f in files[:3])
                + (" ..." if len(files) > 3 else "")
            )
        elif kind == "sql":
            parts.append(f"<- query on {source.get('database')}: {source.get('query')}")
        elif kind == "sql_transform":
            parts.append(f"<- SQL: {source.get('sql')}")
        elif kind == "python_transform":
            code = str(source.get("code_sha256") or "?")[7:19]
            parts.append(f"<- Python {source.get('function')} (code {code})")
        elif kind:
            parts.append(f"<- {kind} {source.get('display') or source.get('path') or ''}")
        return " ".join(parts)

    def grow(tree: Any, n: Any) -> None:
        for child in n.upstream:
            grow(tree.add(label(child), highlight=False), child)

    root = Tree(label(node), highlight=False)
    grow(root, node)
    console().print(root)


@datasets_group.command("status")
@click.argument("name", required=False)
@click.option("--path", type=click.Path(), help="Compare this folder instead of the versioned one.")
@JSON_OPTION
@click.pass_context
def status_command(ctx: click.Context, name: str | None, path: str | None, as_json: bool) -> None:
    """What changed in file datasets' folders since their latest versions (exit 1 if any)."""
    from shipyard.data.file_changes import quick_status

    config = config_from_context(ctx)
    folder = Path(path) if path else None
    statuses = quick_status(config, name, folder)  # the standard library only: fast
    if statuses is None:
        with _client(ctx) as client:
            names = (
                [name]
                if name
                else [d.name for d in client.list_datasets() if d.kind == "files" and d.latest]
            )
            statuses = [client.status(n, folder) for n in names]
    if as_json:
        print_json([s.to_dict() for s in statuses])
    elif not statuses:
        click.echo("No file datasets. Version one: shipyard datasets ingest NAME PATH --files")
    for status in [] if as_json else statuses:
        if status.clean:
            click.echo(f"{status.version}: clean ({status.unchanged:,} files, {status.root})")
            continue
        click.echo(f"{status.version}: changed since it was versioned ({status.root})")
        for marker, paths in (
            ("added", status.added),
            ("deleted", status.removed),
            ("modified", status.modified),
        ):
            for item in paths:
                click.echo(f"  {marker:9} {item}")
    if any(not s.clean for s in statuses):
        raise click.exceptions.Exit(1)


@datasets_group.command("export")
@click.argument("reference")
@click.argument("destination", type=click.Path())
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["parquet", "csv"]),
    help="Table format (default: from the extension).",
)
@click.option(
    "--what",
    type=click.Choice(["data", "quarantine", "sample"]),
    default="data",
    show_default=True,
    help="Which table of the version to export.",
)
@click.pass_context
def export_command(
    ctx: click.Context, reference: str, destination: str, export_format: str | None, what: str
) -> None:
    """Write a version to files: a table to one Parquet/CSV file, file versions to a folder."""
    with _client(ctx) as client:
        path = client.export(reference, destination, format=export_format, what=what)  # type: ignore[arg-type]
    console().print(f"Exported {reference} to {path}.", markup=False)


@datasets_group.command("alias")
@click.argument("reference")
@click.argument("alias")
@click.pass_context
def alias_command(ctx: click.Context, reference: str, alias: str) -> None:
    """Point NAME@ALIAS at the version REFERENCE names (e.g. credit@v3 prod)."""
    with _client(ctx) as client:
        version = client.set_alias(reference, alias)
    console().print(f"{version.dataset}@{alias} -> {version.reference}.", markup=False)


@datasets_group.command("copy")
@click.argument("reference")
@click.option(
    "--to",
    "targets",
    multiple=True,
    required=True,
    metavar="URI",
    help="Target store; repeat for both. A database URI (postgresql://, sqlite:///) names "
    "the metadata store; a folder or s3:// URI the artifact store. A store not named is "
    "this project's own.",
)
@click.option("--s3-endpoint-url", help="Endpoint of the target S3 service (default: [s3]).")
@JSON_OPTION
@click.pass_context
def copy_command(
    ctx: click.Context,
    reference: str,
    targets: tuple[str, ...],
    s3_endpoint_url: str | None,
    as_json: bool,
) -> None:
    """Copy one version (its record and every blob, verified) to other stores.

    \b
    Examples:
      shipyard datasets copy credit@v2 --to postgresql://me@db/shipyard --to s3://bucket/prod
      shipyard datasets copy images@latest --to sqlite:///../prod/.shipyard/metadata.db \\
          --to ../prod/.shipyard/artifacts
    The source is not changed; a version whose content the target already holds is not
    copied again. To move a whole project, use `shipyard store migrate`.
    """
    import dataclasses

    from shipyard.cli.store import _DATABASE_URI
    from shipyard.core.errors import ConfigError
    from shipyard.core.references import parse_reference
    from shipyard.data.exports import copy_version
    from shipyard.store.metadata import mask_password

    parse_reference(reference)  # a malformed reference fails before any store opens
    config = config_from_context(ctx)
    metadata_to = [uri for uri in targets if _DATABASE_URI.match(uri)]
    artifacts_to = [uri for uri in targets if not _DATABASE_URI.match(uri)]
    if len(metadata_to) > 1 or len(artifacts_to) > 1:
        raise ConfigError(
            f"--to names {len(metadata_to)} databases and {len(artifacts_to)} artifact stores.",
            hint="Give at most one database URI and one artifact store URI.",
        )
    target = config.with_store(
        metadata=metadata_to[0] if metadata_to else None,
        artifacts=artifacts_to[0] if artifacts_to else None,
    )
    if s3_endpoint_url:
        target = dataclasses.replace(
            target, s3=dataclasses.replace(target.s3, endpoint_url=s3_endpoint_url)
        )
    if target.store == config.store:
        raise ConfigError(
            "The target stores are the project's current stores.",
            hint="Name at least one other store with --to.",
        )
    with _client(ctx) as client:
        copied = copy_version(reference, client, target)
    if as_json:
        print_json(
            {
                "version": copied.to_dict(),
                "metadata": mask_password(target.store.metadata),
                "artifacts": target.store.artifacts,
            }
        )
        return
    click.echo(
        f"{reference} is {copied.reference} in {mask_password(target.store.metadata)} and "
        f"{target.store.artifacts} (content {copied.short_id}; blobs verified)."
    )
