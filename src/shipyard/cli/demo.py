"""``shipyard demo``: the closed loop end to end, on real data, on the embedded default.

\b
  shipyard demo                          # the shipped churn table, in ./shipyard-demo
  shipyard demo DIR --data FILE.csv --target COLUMN [--positive VALUE] ...

Each step goes through the real subsystems (``demo_story``): ingestion through a
contract that quarantines the corrupted rows the demo adds openly, feature definitions
and a point-in-time training set, tracked candidate runs, evaluation against business
targets, the registry's ``champion``, the HTTP service with its prediction log, a shifted
batch, the monitor's alert and the closed-loop policy's decision. It writes an HTML
report and leaves the project for the CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shipyard.cli.output import console

if TYPE_CHECKING:
    from rich.console import Console

    from shipyard.cli.demo_data import Prepared

__all__ = ["demo_command"]

_KINDS = ("logistic", "gbm", "forest")


def _names(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _check_libraries() -> None:
    from shipyard.core.errors import ConfigError

    missing = []
    for module, package in (
        ("pandas", "pandas"),
        ("sklearn", "scikit-learn"),
        ("skops", "skops"),
        ("uvicorn", "uvicorn"),
    ):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ConfigError(
            f"The demo needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            "not installed.",
            hint="pip install 'shipyard[demo]'",
        )


def _project(directory: Path) -> Path:
    from shipyard.core.config import CONFIG_FILE, render_config_toml
    from shipyard.core.errors import ConfigError

    if directory.exists():
        if not directory.is_dir() or not (directory / CONFIG_FILE).is_file():
            raise ConfigError(
                f"{directory} exists and is not a Shipyard project; the demo will not delete it.",
                hint="Name another folder: shipyard demo DIR.",
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / CONFIG_FILE).write_text(render_config_toml("demo"), encoding="utf-8")
    return directory


def _model_name(data: Path | None, model: str | None) -> str:
    from shipyard.core.errors import ConfigError, ReferenceError_
    from shipyard.core.references import validate_name

    if model is None:
        stem = "churn" if data is None else re.sub(r"[^a-z0-9_]+", "_", data.stem.lower())
        model = stem.strip("_") or "model"
        if not model[0].isalpha():
            model = f"m_{model}"
    try:
        validate_name(model, what="model name")
    except ReferenceError_ as exc:
        raise ConfigError(f"--model: {exc.message}", hint=exc.hint) from exc
    return model


@click.command("demo")
@click.argument(
    "directory", required=False, default="shipyard-demo", type=click.Path(path_type=Path)
)
@click.option(
    "--data",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A binary-classification CSV (default: the churn table shipped with Shipyard).",
)
@click.option("--target", default=None, help="The label column (required with --data).")
@click.option("--positive", default=None, help="The target value to find (default: inferred).")
@click.option("--entity", default="customer", show_default=True, help="What a row is.")
@click.option("--id-column", default=None, help="The row id column (default: added).")
@click.option("--time-column", default=None, help="The event time column (default: added).")
@click.option("--categorical", default=None, help="Comma-separated categorical columns.")
@click.option("--numeric", default=None, help="Comma-separated numeric columns.")
@click.option("--drop", default=None, help="Comma-separated columns to leave out.")
@click.option("--shift", default=None, help="Numeric columns to shift in the new batch.")
@click.option("--fairness-by", default=None, help="Slice column of the fairness gate.")
@click.option("--model", default=None, help="Model name (default: churn, or the file's name).")
@click.option("--rows", type=click.IntRange(200, 10_000_000), default=None, help="Use N rows.")
@click.option(
    "--traffic",
    type=click.IntRange(30, 100_000),
    default=200,
    show_default=True,
    help="Requests from known customers.",
)
@click.option(
    "--candidates",
    default=",".join(_KINDS),
    show_default=True,
    help="Algorithms to train (logistic, gbm, forest).",
)
@click.option("--min-recall", type=click.FloatRange(0, 1), default=0.60, show_default=True)
@click.option("--at-precision", type=click.FloatRange(0, 1), default=0.80, show_default=True)
@click.option("--min-auc", type=click.FloatRange(0, 1), default=0.75, show_default=True)
@click.option("--p99-ms", type=click.FloatRange(0.1, 60_000), default=200.0, show_default=True)
@click.option("--max-gap", type=click.FloatRange(0, 1), default=0.20, show_default=True)
def demo_command(
    directory: Path,
    data: Path | None,
    target: str | None,
    positive: str | None,
    entity: str,
    id_column: str | None,
    time_column: str | None,
    categorical: str | None,
    numeric: str | None,
    drop: str | None,
    shift: str | None,
    fairness_by: str | None,
    model: str | None,
    rows: int | None,
    traffic: int,
    candidates: str,
    min_recall: float,
    at_precision: float,
    min_auc: float,
    p99_ms: float,
    max_gap: float,
) -> None:
    """Run the closed loop end to end in DIRECTORY (default: ./shipyard-demo).

    A fresh project is made there (a previous demo project in it is replaced). With
    --data and --target, the same story runs on any binary-classification CSV.
    """
    from shipyard.cli.demo_data import CHURN_FILE, infer_roles, prepare, read_table
    from shipyard.core.errors import ConfigError, ReferenceError_
    from shipyard.core.references import validate_name

    # One native thread per model call, before scikit-learn loads (serve() does the same):
    # on a busy machine an OpenMP team turns a 1 ms prediction into 100 ms and more.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if data is not None and target is None:
        raise click.UsageError("--data needs --target COLUMN (the label to predict).")
    kinds = _names(candidates)
    unknown = [k for k in kinds if k not in _KINDS]
    if not kinds or unknown:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}; use some of {', '.join(_KINDS)}.",
            param_hint="--candidates",
        )
    try:
        validate_name(entity, what="entity name")
    except ReferenceError_ as exc:
        raise ConfigError(f"--entity: {exc.message}", hint=exc.hint) from exc
    _check_libraries()
    name = _model_name(data, model)
    path = data if data is not None else CHURN_FILE
    label = target or "churn"
    frame = read_table(path)
    roles = infer_roles(
        frame,
        label,
        path=str(path if data is not None else "the shipped churn table"),
        positive=positive,
        entity=entity,
        id_column=id_column,
        time_column=time_column,
        categorical=_names(categorical),
        numeric=_names(numeric),
        shift=_names(shift),
        fairness_by=fairness_by,
        drop=_names(drop),
    )
    out = console()
    started = time.perf_counter()
    source = f"{path.name}" if data is not None else "the MLC++ churn table shipped with Shipyard"
    prepared = prepare(frame, roles, rows=rows, source=source)
    _run(
        directory,
        prepared,
        name,
        kinds,
        traffic,
        out,
        started,
        (at_precision, min_recall, min_auc, p99_ms, max_gap),
    )


def _run(
    directory: Path,
    prepared: Prepared,
    name: str,
    kinds: tuple[str, ...],
    traffic: int,
    out: Console,
    started: float,
    targets: tuple[float, float, float, float, float],
) -> None:
    from shipyard.cli.demo_loop import run_story
    from shipyard.cli.demo_report import write_report
    from shipyard.cli.demo_story import Names, Targets
    from shipyard.core.config import load_config

    folder = _project(directory)
    config = load_config(folder, environ={})
    entity = prepared.roles.entity
    names = Names(
        model=name,
        entity_table=f"{entity}s",
        view=f"{entity}_profile",
        service=f"{name}_features",
        train=f"{name}_train",
        holdout=f"{name}_holdout",
    )
    at_precision, min_recall, min_auc, p99_ms, max_gap = targets
    log = run_story(
        config,
        prepared,
        names,
        Targets(at_precision, min_recall, min_auc, p99_ms, max_gap),
        out,
        traffic=traffic,
        kinds=kinds,
    )
    seconds = time.perf_counter() - started
    index = write_report(config, names, log, folder / "report", seconds=seconds)
    show = console()
    show.rule()
    show.print(f"Done in {seconds:.0f} s. Report: {index}", highlight=False)
    project = str(directory)
    show.print("Explore the project with the CLI:", highlight=False)
    for command in (
        "datasets list",
        "features list",
        f"runs list --experiment {name}",
        "models list",
        f"models show {name}@champion",
        f"models card {name}@champion --output card.html",
        "monitor history",
        f"monitor report {name} --output monitor.html",
        f"run train_{name}",
        f"serve {name}@champion",
    ):
        show.print(f"  shipyard -C {project} {command}", highlight=False)
