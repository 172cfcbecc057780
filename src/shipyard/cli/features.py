"""``shipyard features``: apply definitions, build training sets, materialize, read online,
check skew.

\b
  shipyard features apply features.py          (or a module path: pkg.features)
  shipyard features list [--kind view] [--json]
  shipyard features show customer_stats [--json]
  shipyard features materialize [VIEW...] [--full] [--start ISO] [--end ISO]
  shipyard features get churn_features@v1 -e customer_id=7 -e customer_id=8
  shipyard features skew served.parquet --service churn_features@v1
  shipyard features training-set churn_features@v1 --entities labels.csv --timestamp label_ts
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shipyard.cli.output import config_from_context, console, print_json, print_table

if TYPE_CHECKING:
    from shipyard.features.store import FeatureStore

__all__ = ["features_group"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_KINDS = ("entity", "view", "on_demand", "service")
_INT = re.compile(r"-?[0-9]{1,19}")


@click.group("features")
def features_group() -> None:
    """Feature definitions, point-in-time training sets, online features, skew checks."""


@contextmanager
def _store(ctx: click.Context) -> Iterator[FeatureStore]:
    from shipyard.features.store import FeatureStore

    with FeatureStore.open(config_from_context(ctx)) as store:
        yield store


def _when(value: str | None, option: str) -> datetime | None:
    from shipyard.core.errors import ConfigError

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"{option} {value!r} is not a date or time.",
            hint="Use ISO-8601, e.g. 2024-01-31T12:00:00Z (no zone means UTC).",
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@features_group.command("apply")
@click.argument("target")
@_JSON
@click.pass_context
def apply_command(ctx: click.Context, target: str, as_json: bool) -> None:
    """Apply the definitions in TARGET (a .py file or a module path); version changes."""
    from shipyard.features.loading import load_definitions

    definitions = load_definitions(target)
    with _store(ctx) as store:
        report = store.apply(definitions)
    if as_json:
        print_json(
            {
                "created": [d.to_dict() for d in report.created],
                "unchanged": [d.to_dict() for d in report.unchanged],
            }
        )
        return
    for item in report.created:
        click.echo(f"applied {item.kind} {item.reference}")
    click.echo(report.summary())


@features_group.command("list")
@click.option("--kind", type=click.Choice(_KINDS), help="Only this kind of definition.")
@_JSON
@click.pass_context
def list_command(ctx: click.Context, kind: str | None, as_json: bool) -> None:
    """List applied definitions (latest version of each)."""
    with _store(ctx) as store:
        items = store.list(kind)  # type: ignore[arg-type]
    if as_json:
        print_json([d.to_dict() for d in items])
        return
    rows = [
        (d.kind, d.name, f"v{d.version}", _summary(d.kind, d.spec), d.created_at.isoformat())
        for d in items
    ]
    print_table(None, ("kind", "name", "version", "detail", "applied"), rows)


def _summary(kind: str, spec: Any) -> str:
    if kind == "entity":
        return "keys: " + ", ".join(spec["join_keys"])
    if kind == "view":
        source = spec["source"].get("dataset") or spec["source"].get("file")
        return f"{len(spec['features'])} features from {source}"
    if kind == "on_demand":
        return "outputs: " + ", ".join(o["name"] for o in spec["outputs"])
    return f"{sum(len(i.get('features', i.get('outputs', []))) for i in spec['items'])} features"


@features_group.command("show")
@click.argument("reference")
@click.option("--kind", type=click.Choice(_KINDS), help="Which kind REFERENCE names.")
@_JSON
@click.pass_context
def show_command(ctx: click.Context, reference: str, kind: str | None, as_json: bool) -> None:
    """Show a definition (NAME or NAME@vN) and its versions."""
    from shipyard.core.errors import NotFoundError
    from shipyard.core.references import parse_reference

    name = parse_reference(reference).name
    with _store(ctx) as store:
        found = []
        for candidate in (kind,) if kind else _KINDS:
            try:
                found.append(store.definition(candidate, reference))  # type: ignore[arg-type]
            except NotFoundError:
                continue
        if not found:
            raise NotFoundError(
                f"No definition named {reference!r}.",
                hint="Run `shipyard features list` to see what is applied.",
            )
        versions = {d.kind: store.versions(d.kind, name) for d in found}
    if as_json:
        print_json(
            [{**d.to_dict(), "versions": [v.reference for v in versions[d.kind]]} for d in found]
        )
        return
    out = console()
    for item in found:
        out.print(f"[bold]{item.kind} {item.reference}[/bold]", highlight=False)
        out.print(f"applied {item.created_at.isoformat()} by {item.created_by}")
        out.print("versions: " + ", ".join(v.reference for v in versions[item.kind]))
        click.echo(json.dumps(dict(item.spec), indent=2, sort_keys=True))


@features_group.command("materialize")
@click.argument("views", nargs=-1)
@click.option("--start", help="Window start (ISO-8601); default: where the last run ended.")
@click.option("--end", help="Window end (ISO-8601); default: now.")
@click.option("--full", is_flag=True, help="Ignore earlier runs: materialize everything.")
@_JSON
@click.pass_context
def materialize_command(
    ctx: click.Context,
    views: tuple[str, ...],
    start: str | None,
    end: str | None,
    full: bool,
    as_json: bool,
) -> None:
    """Copy the latest feature values to the online store (all views by default)."""
    with _store(ctx) as store:
        report = store.materialize(
            list(views) or None,
            start=_when(start, "--start"),
            end=_when(end, "--end"),
            incremental=not full,
        )
    if as_json:
        print_json(
            {
                "online_store": report.online_store,
                "views": [
                    {
                        "view": v.view,
                        "version": v.view_version,
                        "start": v.start,
                        "end": v.end,
                        "rows": v.rows,
                        "seconds": round(v.seconds, 3),
                    }
                    for v in report.views
                ],
            }
        )
        return
    rows = [
        (v.view, f"v{v.view_version}", v.start or "beginning", v.end, v.rows, f"{v.seconds:.2f}s")
        for v in report.views
    ]
    print_table(
        f"materialized to {report.online_store}",
        ("view", "version", "from", "to", "rows", "time"),
        rows,
    )


def _pairs(text: str, option: str) -> dict[str, Any]:
    """``a=1,b=x`` (integers become ints) or a JSON object, as a dict."""
    from shipyard.core.errors import ConfigError

    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{option} {text!r} is not valid JSON: {exc.msg}.") from exc
        if not isinstance(value, dict):
            raise ConfigError(f"{option} {text!r} must be a JSON object.")
        return value
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, raw = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"{option} {text!r} is not KEY=VALUE[,KEY=VALUE] or a JSON object.",
                hint='e.g. -e customer_id=7 or -e \'{"customer_id": "007"}\'.',
            )
        out[key.strip()] = int(raw) if _INT.fullmatch(raw.strip()) else raw.strip()
    return out


@features_group.command("get")
@click.argument("service")
@click.option(
    "-e",
    "--entity",
    "entities",
    multiple=True,
    required=True,
    help="One entity: KEY=VALUE[,KEY=VALUE] or a JSON object. Repeat for more.",
)
@click.option(
    "-r",
    "--request",
    "requests",
    multiple=True,
    help="A request value for on-demand features: NAME=VALUE (same for every entity).",
)
@click.option("--as-of", help="Measure TTL at this time (ISO-8601; default now).")
@_JSON
@click.pass_context
def get_command(
    ctx: click.Context,
    service: str,
    entities: tuple[str, ...],
    requests: tuple[str, ...],
    as_of: str | None,
    as_json: bool,
) -> None:
    """Read online features of a SERVICE (NAME or NAME@vN) for some entities."""
    rows = [_pairs(text, "--entity") for text in entities]
    request: dict[str, Any] = {}
    for text in requests:
        for key, value in _pairs(text, "--request").items():
            request[key] = [_number(value)] * len(rows)
    with _store(ctx) as store:
        result = store.online_features(
            service, rows, as_of=_when(as_of, "--as-of"), request=request or None
        )
    if as_json:
        print_json(result.to_dicts())
        return
    table = []
    for entity, row in zip(result.entities, result.rows, strict=True):
        label = ", ".join(f"{k}={v}" for k, v in entity.items())
        for name in result.features:
            value = row[name]
            table.append((label, name, value.value, value.status, value.event_ts or ""))
    print_table(None, ("entity", "feature", "value", "status", "event time"), table)


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _read_log(path: str) -> Any:
    from shipyard.core.errors import DataContractError, NotFoundError

    file = Path(path)
    if not file.is_file():
        if "@" in path or not file.suffix:
            return path  # a dataset reference
        raise NotFoundError(f"Log file {path} does not exist.")
    import pyarrow as pa

    try:
        if file.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(file)
        if file.suffix == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(file)
        if file.suffix in (".jsonl", ".json"):
            import pyarrow.json as pajson

            return pajson.read_json(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataContractError(f"Cannot read log file {path}: {exc}") from exc
    raise DataContractError(
        f"Log file {path} has suffix {file.suffix!r}.",
        hint="Give a .parquet, .csv or .jsonl file, or a dataset reference.",
    )


@features_group.command("skew")
@click.argument("log")
@click.option("--service", required=True, help="The feature service the values were served for.")
@click.option(
    "--timestamp", default="request_ts", show_default=True, help="The log's request time column."
)
@_JSON
@click.pass_context
def skew_command(ctx: click.Context, log: str, service: str, timestamp: str, as_json: bool) -> None:
    """Compare logged online values (LOG: file or dataset) with a point-in-time replay."""
    rows = _read_log(log)
    with _store(ctx) as store:
        report = store.skew(rows, service, timestamp=timestamp)
    if as_json:
        print_json(report.to_dict())
        return
    print_table(
        f"skew of {report.service} over {report.rows_checked} logged rows",
        ("feature", "compared", "mismatched", "rate"),
        [(f.feature, f.compared, f.mismatched, f"{f.rate:.2%}") for f in report.features],
    )
    for row in report.offending[:20]:
        click.echo(
            f"  row {row['row']}: {row['feature']} served {row['served']!r}, "
            f"expected {row['expected']!r}"
        )


_TABLE_SUFFIXES = (".parquet", ".csv")


def _read_entities(path: str) -> Any:
    """The entity rows of ``--entities``: a CSV or Parquet file, read as Arrow."""
    from shipyard.core.errors import DataContractError, NotFoundError

    file = Path(path)
    if file.suffix.lower() not in _TABLE_SUFFIXES:
        raise DataContractError(
            f"--entities {path} has suffix {file.suffix!r}.",
            hint="Give a .csv or .parquet file of entity rows (join keys, timestamp, labels).",
        )
    if not file.is_file():
        raise NotFoundError(
            f"--entities {path} does not exist.", hint="Check the path of the entity rows file."
        )
    import pyarrow as pa

    try:
        if file.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(file).read()
        import pyarrow.csv as pacsv

        return pacsv.read_csv(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataContractError(
            f"Cannot read the entity rows in {path}: {exc}",
            hint="Check the file is a valid CSV (with a header row) or Parquet file.",
        ) from exc


def _check_output(path: str | None) -> Path | None:
    """``--output``, checked before any work: a .parquet or .csv file in an existing folder."""
    from shipyard.core.errors import ConfigError

    if path is None:
        return None
    file = Path(path)
    if file.suffix.lower() not in _TABLE_SUFFIXES:
        raise ConfigError(
            f"--output {path} has suffix {file.suffix!r}.", hint="Give a .parquet or .csv path."
        )
    if not file.parent.is_dir():
        raise ConfigError(
            f"--output {path}: folder {file.parent} does not exist.",
            hint="Create the folder first, or write elsewhere.",
        )
    return file


def _write_output(table: Any, file: Path) -> None:
    from shipyard.core.errors import BackendError

    try:
        if file.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, file)
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, file)
    except OSError as exc:
        raise BackendError(
            f"Cannot write the training set to {file}: {exc}",
            hint="The training set is saved as a dataset version; export it from there.",
        ) from exc


@features_group.command("training-set")
@click.argument("service")
@click.option(
    "--entities",
    "entities_path",
    required=True,
    help="CSV or Parquet file of entity rows: join keys, the timestamp column, labels.",
)
@click.option(
    "--timestamp",
    default="event_ts",
    show_default=True,
    help="The entity rows' timestamp column (features are read as of each row's time).",
)
@click.option("--save-as", help="Dataset to save it in (default: SERVICE's name + '.training').")
@click.option("--output", help="Also write the training set to this .parquet or .csv file.")
@_JSON
@click.pass_context
def training_set_command(
    ctx: click.Context,
    service: str,
    entities_path: str,
    timestamp: str,
    save_as: str | None,
    output: str | None,
    as_json: bool,
) -> None:
    """Build a point-in-time training set of SERVICE (NAME or NAME@vN) and save it.

    Every entity row gets the features as they were at its timestamp (never later); its
    other columns (labels) are kept. The result is saved as a dataset version (with its
    profile), printed as a reference a model or monitor can point at.
    """
    from shipyard.core.errors import DataContractError

    output_file = _check_output(output)
    rows = _read_entities(entities_path)
    with _store(ctx) as store:
        try:
            result = store.training_set(rows, service, timestamp=timestamp, save_as=save_as)
        except DataContractError as exc:
            # The store speaks of "the entity rows"; the user knows them as this file.
            raise DataContractError(f"{entities_path}: {exc.message}", hint=exc.hint) from exc
    if output_file is not None:
        _write_output(result.table, output_file)
    version = result.version
    if as_json:
        print_json(
            {
                "reference": result.reference,
                "content_id": version.content_id,
                "service": result.service,
                "rows": result.table.num_rows,
                "features": list(result.features),
                "with_values": {
                    name: result.table.num_rows - result.table.column(name).null_count
                    for name in result.features
                },
                "output": str(output_file) if output_file else None,
            }
        )
        return
    click.echo(
        f"saved {result.reference}: {result.table.num_rows:,} rows, "
        f"{len(result.features)} features of {result.service}"
    )
    if output_file is not None:
        click.echo(f"wrote {output_file}")
