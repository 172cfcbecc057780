"""``shipyard serve``, ``predict``, ``build`` and ``monitor``: models in service.

\b
  shipyard serve churn@champion [fraud@v3 ...] [--port 8000] [--host 127.0.0.1]
  shipyard predict churn@champion --input customers.parquet --output scored.parquet
  shipyard build churn@champion [--output build/churn] [--image registry/churn:1]
  shipyard monitor labels labels.csv          # request_id,label; bad rows by row number
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from shipyard.cli.output import config_from_context, console, print_json

__all__ = ["build_command", "labels_command", "predict_command", "serve_command"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_ALLOW_PICKLE = click.option(
    "--allow-pickle",
    is_flag=True,
    help="Load versions that run stored Python code (generic models, pre/post hooks).",
)


@click.command("serve")
@click.argument("references", nargs=-1, required=True)
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1: this machine).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option("--poll-seconds", type=float, default=None, help="Registry poll interval.")
@click.option("--no-batching", is_flag=True, help="Score each request on its own.")
@_ALLOW_PICKLE
@click.pass_context
def serve_command(
    ctx: click.Context,
    references: tuple[str, ...],
    host: str | None,
    port: int | None,
    workers: int | None,
    poll_seconds: float | None,
    no_batching: bool,
    allow_pickle: bool,
) -> None:
    """Serve models over HTTP: JSON in and out, contract from each signature.

    REFERENCES are models by name@alias (hot-swapped when the alias moves) or name@vN.
    The API key, if wanted, is set under [serving] api_key or SHIPYARD_SERVING_API_KEY.
    """
    from shipyard.models.registry import ModelRegistry
    from shipyard.serving.server import check_references, serve
    from shipyard.serving.settings import ServingSettings

    config = config_from_context(ctx)
    settings = ServingSettings.from_config(
        config,
        host=host,
        port=port,
        workers=workers,
        poll_seconds=poll_seconds,
        batching=False if no_batching else None,
        allow_pickle=allow_pickle or None,
    )
    with ModelRegistry.open(config) as registry:
        check_references(references, registry)
        described = ", ".join(f"{ref} (v{registry.get(ref).number})" for ref in references)
    out = console(stderr=True)
    out.print(f"Serving {described} on http://{settings.host}:{settings.port}")
    out.print(
        "  POST /v1/models/NAME/predict   GET /openapi.json /healthz /readyz /metrics"
        + ("   (API key required)" if settings.api_key else "")
    )
    serve(references, config, settings=settings)


@click.command("predict")
@click.argument("reference")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Parquet or CSV file to score.",
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Parquet or CSV file to write (inputs + score + label).",
)
@click.option(
    "--batch-rows", type=int, default=50_000, show_default=True, help="Rows held in memory at once."
)
@_ALLOW_PICKLE
@_JSON
@click.pass_context
def predict_command(
    ctx: click.Context,
    reference: str,
    input_path: Path,
    output_path: Path,
    batch_rows: int,
    allow_pickle: bool,
    as_json: bool,
) -> None:
    """Score a file with a model, streaming in bounded memory."""
    from shipyard.models.registry import ModelRegistry
    from shipyard.serving.batch import predict_file

    config = config_from_context(ctx)
    with ModelRegistry.open(config) as registry:
        model = registry.load(reference, allow_pickle=allow_pickle)
        with _progress(not as_json, "scoring") as update:
            report = predict_file(
                model, input_path, output_path, batch_rows=batch_rows, progress=update
            )
    if as_json:
        print_json(
            {
                "model": model.version.reference,
                "input": report.input,
                "output": report.output,
                "rows": report.rows,
            }
        )
        return
    console().print(
        f"Scored {report.rows:,} rows with {model.version.reference} into {report.output}"
    )


@click.command("build")
@click.argument("reference")
@click.option(
    "--output",
    "output",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder to write (default build/NAME).",
)
@click.option(
    "--wheel",
    type=click.Path(path_type=Path),
    default=None,
    help="Shipyard wheel to put in the image (default: built from this checkout).",
)
@click.option("--image", default=None, help="Image name for the manifests (default NAME:vN).")
@click.option("--replicas", type=int, default=2, show_default=True)
@click.option("--max-replicas", type=int, default=10, show_default=True)
@_JSON
@click.pass_context
def build_command(
    ctx: click.Context,
    reference: str,
    output: Path | None,
    wheel: Path | None,
    image: str | None,
    replicas: int,
    max_replicas: int,
    as_json: bool,
) -> None:
    """Write a Dockerfile and Kubernetes manifests (Deployment, Service, HPA, probes)."""
    from shipyard.models.registry import ModelRegistry
    from shipyard.serving.build import build_deployment_files

    config = config_from_context(ctx)
    with ModelRegistry.open(config) as registry:
        version = registry.get(reference)
    folder = output or (config.project_dir / "build" / version.name)
    report = build_deployment_files(
        version,
        reference,
        folder,
        config,
        wheel=wheel,
        image=image,
        replicas=replicas,
        max_replicas=max_replicas,
    )
    if as_json:
        print_json(
            {
                "folder": str(report.folder),
                "files": [str(path) for path in report.files],
                "install": report.install,
            }
        )
        return
    out = console()
    out.print(f"Wrote deployment files for {reference} ({version.reference}) to {report.folder}:")
    for path in report.files:
        out.print(f"  {path.relative_to(report.folder)}")
    out.print(
        "Next: docker build -t IMAGE . && kubectl apply -f k8s/ "
        "(point k8s/configmap.yaml at PostgreSQL/S3 first)."
    )


@click.command("labels")
@click.argument("file", type=click.Path(path_type=Path))
@_JSON
@click.pass_context
def labels_command(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Store ground-truth labels from a CSV/Parquet file with request_id,label columns."""
    from shipyard.core.errors import DataContractError
    from shipyard.monitoring.labels import log_label_file

    report = log_label_file(file, config=config_from_context(ctx))
    bad: list[dict[str, Any]] = [
        {"row": row.row, "request_id": row.request_id, "reason": row.reason}
        for row in report.bad_rows
    ]
    if as_json:
        print_json({"file": str(file), "stored": report.stored, "bad": report.bad, "bad_rows": bad})
    else:
        out = console()
        out.print(f"Stored {report.stored:,} label(s) from {file}.")
        if report.bad:
            out.print(f"Refused {report.bad:,} row(s):")
            for row in bad[:20]:
                out.print(f"  row {row['row']}: request_id {row['request_id']!r}: {row['reason']}")
            if report.bad > 20:
                out.print(f"  ... and {report.bad - 20:,} more (--json lists up to 1,000).")
    if report.bad and not report.stored:
        raise DataContractError(
            f"No label of {file} was stored ({report.bad:,} bad row(s)).",
            hint="Use the request ids the service returned; see the rows listed above.",
        )


class _progress:  # noqa: N801 - used as a context manager, reads like a function
    """A Rich progress bar on stderr fed with (done, total) callbacks, when on a terminal."""

    def __init__(self, enabled: bool, description: str) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.description = description
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, Progress, TimeElapsedColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            "[progress.percentage]{task.percentage:>3.0f}%",
            TimeElapsedColumn(),
            console=console(stderr=True),
            transient=True,
        )
        self._progress.__enter__()
        self._task = self._progress.add_task(self.description, total=None)

        def update(done: int, total: int | None) -> None:
            self._progress.update(self._task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
