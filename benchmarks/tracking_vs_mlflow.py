"""Tracking: Shipyard against MLflow on its default SQLite backend, side by side.

Issue 3, point 7. Four figures, each timed on both sides in the same run:

- 10,000 ``log_metric`` calls, one at a time, until durably stored (target: Shipyard at
  least 500x faster). MLflow: ``MlflowClient.log_metric`` per call, each one SQLite
  transaction. Shipyard: ``TrackingClient.log_metric`` per call (buffered), then
  ``flush()``, which returns once the values are committed. MLflow's ``log_batch`` with
  the same values in batches of 1,000 is shown for context, outside the ratio.
- 200 runs with 10 params and 10 metrics each, every run created, logged to and ended
  (target: 50x). MLflow: ``create_run``, ``log_batch`` of the params, ``log_batch`` of
  the metrics (what ``mlflow.log_params`` / ``mlflow.log_metrics`` call, minus their
  extra ``get_run``), ``set_terminated``. Shipyard: ``create_run``, ``log_params``,
  ``log_metrics``, ``set_terminated``.
- A filtered search over 100,000 runs (targets: under 200 ms, and 20x). Both stores are
  seeded in bulk (untimed) with the same runs (same ids, names, start times, 10 params,
  10 metrics, 3 tags each, from a seeded generator); MLflow's through its own SQLAlchemy
  models' tables, Shipyard's through its tracking tables. Both searches must return the
  same runs, in the same order, as the generator says they should.
- ``import shipyard`` as a fresh process (target: under 150 ms), on its own.

Each side runs in its own long-lived worker process (MLflow with its own venv's python,
Shipyard with this one), in a fresh temporary folder with its own SQLite store. Imports
and store creation happen before any timed section and are reported on their own lines.
The parent sends each worker one operation at a time, so a side is never timed while the
other one works, and repeated operations are interleaved round by round.

Run from the repository root::

    .venv/bin/python benchmarks/tracking_vs_mlflow.py

The last line printed is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from _peers import (
    BenchmarkError,
    Result,
    emit_json,
    ensure_peer_venv,
    interleaved_timings,
    print_table,
    progress,
)

MLFLOW_VERSION = "3.17.2"
SCRIPT = Path(__file__).resolve()

METRIC_CALLS = 10_000
MLFLOW_BATCH = 1_000  # MLflow's limit of metrics per log_batch call
RUNS = 200
PARAMS_PER_RUN = 10
METRICS_PER_RUN = 10
TAGS_PER_RUN = 3
SEARCH_RUNS = 100_000
SEARCH_FILTER = "metrics.m1 > 0.8 and params.p1 = 'v3'"
SEARCH_PAGE = 100
SEED = 20_261_126
SEED_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z; run i starts i seconds later
SEED_CHUNK = 20_000
# Seeding only: a page cache that holds the indexes being filled (random run ids would
# otherwise make every insert a cache miss). The timed operations keep each side's default.
_SEED_CACHE = "PRAGMA cache_size = -524288"  # KiB: 512 MiB

LOG_METRIC_TARGET = 500.0
CREATE_RUNS_TARGET = 50.0
SEARCH_RATIO_TARGET = 20.0
SEARCH_MS_TARGET = 200.0
IMPORT_MS_TARGET = 150.0

_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
# MLflow 3 sends usage telemetry from a background thread; off, so no network noise.
_PEER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


# --- The seeded runs, identical on both sides ---------------------------------------------


@dataclass(frozen=True, slots=True)
class SeedRun:
    id: str
    name: str
    start_ms: int
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def seed_runs(count: int) -> Iterator[SeedRun]:
    """The runs both stores are seeded with: deterministic, whichever Python runs it."""
    rng = random.Random(SEED)
    for index in range(count):
        run_id = f"{rng.getrandbits(128):032x}"
        params = {f"p{k}": f"v{rng.randrange(10)}" for k in range(PARAMS_PER_RUN)}
        metrics = {f"m{k}": rng.random() for k in range(METRICS_PER_RUN)}
        tags = {f"t{k}": f"tag{rng.randrange(5)}" for k in range(TAGS_PER_RUN)}
        yield SeedRun(
            run_id, f"run-{index:06d}", SEED_START_MS + index * 1000, params, metrics, tags
        )


def expected_search(count: int) -> tuple[list[str], int]:
    """The names SEARCH_FILTER must return (newest first, one page) and how many match."""
    matching = [
        run
        for run in seed_runs(count)
        if run.metrics["m1"] > 0.8 and run.params["p1"] == "v3"  # == SEARCH_FILTER
    ]
    matching.sort(key=lambda run: run.start_ms, reverse=True)
    return [run.name for run in matching[:SEARCH_PAGE]], len(matching)


def _chunks(runs: Iterator[SeedRun], size: int) -> Iterator[list[SeedRun]]:
    chunk: list[SeedRun] = []
    for run in runs:
        chunk.append(run)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_params_of(index: int) -> tuple[dict[str, str], dict[str, float]]:
    """Params and metrics of run ``index`` of the 200-runs operation."""
    params = {f"p{k}": f"v{(index + k) % 10}" for k in range(PARAMS_PER_RUN)}
    metrics = {f"m{k}": (index * METRICS_PER_RUN + k) / 1000 for k in range(METRICS_PER_RUN)}
    return params, metrics


# --- The workers: one per side, driven line by line over stdin/stdout -----------------------


class ShipyardSide:
    """Shipyard's TrackingClient on a project folder of its own (SHIPYARD_PROJECT_DIR)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.client: Any = None
        self.search_experiment: str | None = None

    def import_libraries(self) -> None:
        from shipyard.tracking.client import TrackingClient

        self._client_class = TrackingClient

    def open_store(self) -> None:
        self.client = self._client_class()
        self.client.create_experiment("log-metric")
        self.client.create_experiment("create-runs")

    def durability(self) -> dict[str, Any]:
        metadata = self.client.stores.metadata
        with metadata.connect() as conn:
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        return {
            "store": metadata.display_uri,
            "journal_mode": str(journal),
            "synchronous": _SYNCHRONOUS.get(int(synchronous), str(synchronous)),
            "flush_interval_s": self.client.flush_interval,
        }

    def log_metric(self, calls: int, round_index: int) -> dict[str, Any]:
        client = self.client
        run_id = client.create_run(
            "log-metric", name=f"log-metric-{round_index}", capture_code=False
        ).id
        log_metric = client.log_metric
        started = time.perf_counter()
        for step in range(calls):
            log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        client.flush()
        elapsed = time.perf_counter() - started
        client.set_terminated(run_id)
        stored = len(client.get_metric_history(run_id, "loss"))
        return {"seconds": elapsed, "stored": stored}

    def create_runs(self, count: int, round_index: int) -> dict[str, Any]:
        client = self.client
        experiment = client.create_experiment(f"runs-{round_index}").id
        started = time.perf_counter()
        for index in range(count):
            params, metrics = run_params_of(index)
            run_id = client.create_run(experiment, name=f"run-{index}", capture_code=False).id
            client.log_params(run_id, params)
            client.log_metrics(run_id, metrics, step=0)
            client.set_terminated(run_id)
        client.flush()
        elapsed = time.perf_counter() - started
        page = client.search_runs([experiment], max_results=count)
        complete = sum(
            len(run.params) == PARAMS_PER_RUN
            and len(run.metrics) == METRICS_PER_RUN
            and run.status == "finished"
            for run in page.runs
        )
        return {"seconds": elapsed, "complete_runs": complete}

    def seed(self, count: int) -> dict[str, Any]:
        from sqlalchemy import insert

        from shipyard.store.schema.tracking import (
            run_latest_metrics,
            run_metrics,
            run_params,
            run_tags,
            runs,
        )

        started = time.perf_counter()
        experiment = self.client.create_experiment("search").id
        self.search_experiment = experiment
        metadata = self.client.stores.metadata
        # The narrow tables carry their run's start time, as the runs table stores it.
        dialect = metadata.engine.dialect
        stored_time = runs.c.start_time.type.dialect_impl(dialect).bind_processor(dialect)
        for chunk in _chunks(seed_runs(count), SEED_CHUNK):
            run_rows = []
            params, tags, history, latest = [], [], [], []
            for run in chunk:
                seconds = run.start_ms / 1000
                start = datetime.fromtimestamp(seconds, UTC)
                stored_start = stored_time(start)
                end = datetime.fromtimestamp(seconds + 0.5, UTC)
                run_rows.append(
                    {
                        "id": run.id,
                        "experiment_id": experiment,
                        "name": run.name,
                        "status": "finished",
                        "lifecycle": "active",
                        "user": "bench",
                        "start_time": start,
                        "end_time": end,
                        "heartbeat_at": end,
                    }
                )
                params.extend(
                    (run.id, key, value, stored_start) for key, value in run.params.items()
                )
                tags.extend((run.id, key, value, stored_start) for key, value in run.tags.items())
                for key, value in run.metrics.items():
                    history.append((run.id, key, 0, seconds, value))
                    latest.append((run.id, key, value, 0, seconds, stored_start))
            with metadata.transaction() as conn:
                conn.exec_driver_sql(_SEED_CACHE)
                # Through SQLAlchemy: it stores the UTC timestamps as Shipyard reads them.
                conn.execute(insert(runs), run_rows)
                narrow = ("run_id", "key", "value", "start_time")
                _insert_tuples(conn, run_params, narrow, params)
                _insert_tuples(conn, run_tags, narrow, tags)
                _insert_tuples(
                    conn, run_metrics, ("run_id", "key", "step", "timestamp", "value"), history
                )
                _insert_tuples(
                    conn,
                    run_latest_metrics,
                    ("run_id", "key", "value", "step", "timestamp", "start_time"),
                    latest,
                )
        return {"seconds": time.perf_counter() - started}

    def search(self, filter_string: str, max_results: int) -> dict[str, Any]:
        started = time.perf_counter()
        page = self.client.search_runs(
            [self.search_experiment], filter_string=filter_string, max_results=max_results
        )
        elapsed = time.perf_counter() - started
        return {
            "seconds": elapsed,
            "names": [run.name for run in page.runs],
            "ids": [run.id for run in page.runs],
        }

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _insert_tuples(conn: Any, table: Any, columns: tuple[str, ...], rows: list[Any]) -> None:
    """One executemany of plain tuples through the driver (seeding only: much less CPU than
    SQLAlchemy's dicts); the statement is compiled from ``table``, in ``columns`` order."""
    statement = table.insert().compile(dialect=conn.dialect, column_keys=list(columns))
    if tuple(statement.positiontup) != columns:
        raise BenchmarkError(
            f"{table.name} takes its columns as {statement.positiontup}, not {columns}"
        )
    conn.exec_driver_sql(str(statement), rows)


_MLFLOW_RUN_COLUMNS = (
    "run_uuid",
    "name",
    "source_type",
    "source_name",
    "entry_point_name",
    "user_id",
    "status",
    "start_time",
    "end_time",
    "source_version",
    "lifecycle_stage",
    "artifact_uri",
    "experiment_id",
)
_MLFLOW_METRIC_COLUMNS = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")


class MlflowSide:
    """MLflow's MlflowClient on ``sqlite:///<folder>/mlflow.db`` (its SqlAlchemyStore)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.client: Any = None
        self.experiments: dict[str, str] = {}

    def import_libraries(self) -> None:
        import mlflow
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        self._mlflow = mlflow
        self._client_class = MlflowClient
        self._metric = Metric
        self._param = Param
        self._store_class = SqlAlchemyStore

    def open_store(self) -> None:
        self._mlflow.set_tracking_uri(self.uri)
        self.client = self._client_class()
        for name in ("log-metric", "create-runs"):  # the first creates and migrates the DB
            self.experiments[name] = self.client.create_experiment(name)
        # A store of our own on the same database, for the PRAGMAs and the bulk seeding.
        location = self.client.get_experiment(self.experiments["log-metric"]).artifact_location
        self.artifact_root = location.rsplit("/", 1)[0]
        self.store = self._store_class(self.uri, self.artifact_root)

    def durability(self) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        return {
            "store": self.uri,
            "journal_mode": str(journal),
            "synchronous": _SYNCHRONOUS.get(int(synchronous), str(synchronous)),
            "artifact_root": self.artifact_root,
            "async_logging": os.environ.get("MLFLOW_ENABLE_ASYNC_LOGGING", "false"),
        }

    def log_metric(self, calls: int, round_index: int) -> dict[str, Any]:
        client = self.client
        run = client.create_run(self.experiments["log-metric"], run_name=f"lm-{round_index}")
        run_id = run.info.run_id
        log_metric = client.log_metric
        started = time.perf_counter()
        for step in range(calls):
            log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        elapsed = time.perf_counter() - started
        client.set_terminated(run_id)
        stored = len(client.get_metric_history(run_id, "loss"))
        return {"seconds": elapsed, "stored": stored}

    def log_batch(self, calls: int, batch: int, round_index: int) -> dict[str, Any]:
        client, metric = self.client, self._metric
        run = client.create_run(self.experiments["log-metric"], run_name=f"lb-{round_index}")
        run_id = run.info.run_id
        started = time.perf_counter()
        for first in range(0, calls, batch):
            now = int(time.time() * 1000)
            metrics = [
                metric("loss", 1.0 / (step + 1), now, step)
                for step in range(first, min(first + batch, calls))
            ]
            client.log_batch(run_id, metrics=metrics)
        elapsed = time.perf_counter() - started
        client.set_terminated(run_id)
        stored = len(client.get_metric_history(run_id, "loss"))
        return {"seconds": elapsed, "stored": stored}

    def create_runs(self, count: int, round_index: int) -> dict[str, Any]:
        client, metric, param = self.client, self._metric, self._param
        experiment = client.create_experiment(f"runs-{round_index}")
        started = time.perf_counter()
        for index in range(count):
            params, metrics = run_params_of(index)
            run_id = client.create_run(experiment, run_name=f"run-{index}").info.run_id
            client.log_batch(run_id, params=[param(k, v) for k, v in params.items()])
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[metric(k, v, now, 0) for k, v in metrics.items()])
            client.set_terminated(run_id)
        elapsed = time.perf_counter() - started
        found = client.search_runs([experiment], max_results=count)
        complete = sum(
            len(run.data.params) == PARAMS_PER_RUN
            and len(run.data.metrics) == METRICS_PER_RUN
            and run.info.status == "FINISHED"
            for run in found
        )
        return {"seconds": elapsed, "complete_runs": complete}

    def seed(self, count: int) -> dict[str, Any]:
        from mlflow.store.tracking.dbmodels.models import (
            SqlLatestMetric,
            SqlMetric,
            SqlParam,
            SqlRun,
            SqlTag,
        )

        started = time.perf_counter()
        experiment = self.client.create_experiment("search")
        self.experiments["search"] = experiment
        location = self.client.get_experiment(experiment).artifact_location
        for chunk in _chunks(seed_runs(count), SEED_CHUNK):
            run_rows, params, tags, metrics = [], [], [], []
            for run in chunk:
                run_rows.append(
                    (
                        run.id,
                        run.name,
                        "LOCAL",
                        "",
                        "",
                        "bench",
                        "FINISHED",
                        run.start_ms,
                        run.start_ms + 500,
                        "",
                        "active",
                        f"{location}/{run.id}/artifacts",
                        int(experiment),
                    )
                )
                params.extend((key, value, run.id) for key, value in run.params.items())
                # MLflow keeps the run name as a tag too (its create_run adds it).
                tags.append(("mlflow.runName", run.name, run.id))
                tags.extend((key, value, run.id) for key, value in run.tags.items())
                metrics.extend(
                    (key, value, run.start_ms, 0, False, run.id)
                    for key, value in run.metrics.items()
                )
            with self.store.engine.begin() as conn:
                conn.exec_driver_sql(_SEED_CACHE)
                _insert_tuples(conn, SqlRun.__table__, _MLFLOW_RUN_COLUMNS, run_rows)
                _insert_tuples(conn, SqlParam.__table__, ("key", "value", "run_uuid"), params)
                _insert_tuples(conn, SqlTag.__table__, ("key", "value", "run_uuid"), tags)
                for model in (SqlMetric, SqlLatestMetric):
                    _insert_tuples(conn, model.__table__, _MLFLOW_METRIC_COLUMNS, metrics)
        return {"seconds": time.perf_counter() - started}

    def search(self, filter_string: str, max_results: int) -> dict[str, Any]:
        started = time.perf_counter()
        found = self.client.search_runs(
            [self.experiments["search"]], filter_string=filter_string, max_results=max_results
        )
        elapsed = time.perf_counter() - started
        return {
            "seconds": elapsed,
            "names": [run.info.run_name for run in found],
            "ids": [run.info.run_id for run in found],
        }

    def close(self) -> None:
        if self.client is not None:
            self.store.engine.dispose()


def serve(side: str, folder: Path) -> int:
    """The worker's loop: one JSON request per stdin line, one JSON answer per line."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a library prints goes to the log, not into the protocol
    sys.stdout = sys.stderr

    def answer(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")

    worker: ShipyardSide | MlflowSide = (
        ShipyardSide(folder) if side == "shipyard" else MlflowSide(folder)
    )
    try:
        started = time.perf_counter()
        worker.import_libraries()
        imported = time.perf_counter()
        worker.open_store()
        opened = time.perf_counter()
        answer(
            {
                "import_s": imported - started,
                "store_s": opened - imported,
                "durability": worker.durability(),
                "python": platform.python_version(),
            }
        )
    except Exception:  # noqa: BLE001 - reported to the parent, which raises it
        answer({"error": traceback.format_exc()})
        return 1
    for line in sys.stdin:
        request = json.loads(line)
        operation = request.pop("op")
        if operation == "quit":
            worker.close()
            answer({"bye": True})
            return 0
        try:
            answer(getattr(worker, operation)(**request))
        except Exception:  # noqa: BLE001 - reported to the parent, which raises it
            answer({"error": traceback.format_exc()})
    return 0


class Worker:
    """The parent's handle on one side's worker process."""

    def __init__(self, side: str, python: Path, folder: Path, env: dict[str, str]) -> None:
        self.side = side
        folder.mkdir(parents=True)
        self.log_path = folder / "worker.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [str(python), str(SCRIPT), "--worker", side, "--folder", str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=folder,
            env=env,
            text=True,
        )
        self.hello = self.receive()

    def send(self, op: str, **arguments: Any) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self._process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait(timeout=30)
            raise BenchmarkError(f"the {self.side} worker exited ({code}):\n{self._log_tail()}")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise BenchmarkError(f"the {self.side} worker failed:\n{message['error']}")
        return message

    def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        self.send(op, **arguments)
        return self.receive()

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self.call("quit")
                self._process.wait(timeout=120)
            except (BenchmarkError, OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        self._log.close()

    def _log_tail(self) -> str:
        self._log.flush()
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return "\n".join(lines[-30:])


# --- The parent ------------------------------------------------------------------------


class LoadSampler:
    """The 1-minute load average, sampled every few seconds while the benchmark runs."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.values = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.values.append(os.getloadavg()[0])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.values.append(os.getloadavg()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["shipyard", "mlflow"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the 200-runs op")
    parser.add_argument(
        "--shipyard-metric-rounds",
        type=int,
        default=5,
        help="Shipyard's rounds of 10,000 log_metric calls (MLflow's take minutes: 1 round)",
    )
    parser.add_argument(
        "--mlflow-metric-calls",
        type=int,
        default=METRIC_CALLS,
        help="log_metric calls timed on MLflow (fewer: scaled to 10,000, and said so)",
    )
    parser.add_argument("--search-runs", type=int, default=SEARCH_RUNS)
    parser.add_argument("--search-repeats", type=int, default=7)
    parser.add_argument("--import-repeats", type=int, default=7)
    args = parser.parse_args()
    if args.worker:
        return serve(args.worker, args.folder)

    begun = time.perf_counter()
    loads = LoadSampler()
    shipyard_python = Path(sys.executable)  # not resolved: the venv's python, not the base
    peer_python = ensure_peer_venv(f"mlflow-{MLFLOW_VERSION}", [f"mlflow=={MLFLOW_VERSION}"])
    env = {**os.environ, **_PEER_ENV}
    os.environ.update(_PEER_ENV)  # for the import timings too

    progress(f"timing `import shipyard` / `import mlflow`, {args.import_repeats} rounds ...")
    imports = interleaved_timings(
        {
            "shipyard": [str(shipyard_python), "-c", "import shipyard"],
            "mlflow": [str(peer_python), "-c", "import mlflow"],
            "shipyard floor": [str(shipyard_python), "-c", "pass"],
            "mlflow floor": [str(peer_python), "-c", "pass"],
        },
        repeats=args.import_repeats,
    )

    with tempfile.TemporaryDirectory(prefix="shipyard-bench-tracking-") as root:
        progress("starting the workers (imports and store creation, untimed) ...")
        shipyard = Worker(
            "shipyard",
            shipyard_python,
            Path(root) / "shipyard",
            {**env, "SHIPYARD_PROJECT_DIR": str(Path(root) / "shipyard")},
        )
        mlflow = Worker("mlflow", peer_python, Path(root) / "mlflow", env)
        try:
            figures = _measure(args, shipyard, mlflow)
        finally:
            shipyard.close()
            mlflow.close()

    loads.stop()
    _report(args, figures, imports, shipyard.hello, mlflow.hello, loads.values, begun)
    return 0


def _measure(args: argparse.Namespace, shipyard: Worker, mlflow: Worker) -> dict[str, Any]:
    figures: dict[str, Any] = {}

    progress(f"log_metric x {METRIC_CALLS:,}: Shipyard {args.shipyard_metric_rounds} rounds ...")
    shipyard_metric = []
    for round_index in range(args.shipyard_metric_rounds):
        result = shipyard.call("log_metric", calls=METRIC_CALLS, round_index=round_index)
        _check_stored("shipyard", result, METRIC_CALLS)
        shipyard_metric.append(result["seconds"])
        if round_index == 0:
            progress(
                f"log_metric x {args.mlflow_metric_calls:,}: MLflow, one round "
                f"(about {args.mlflow_metric_calls * 0.011:.0f} s on an idle machine) ..."
            )
            result = mlflow.call("log_metric", calls=args.mlflow_metric_calls, round_index=0)
            _check_stored("mlflow", result, args.mlflow_metric_calls)
            figures["mlflow_log_metric_measured_s"] = result["seconds"]
    figures["shipyard_log_metric"] = shipyard_metric
    figures["mlflow_log_metric_s"] = (
        figures["mlflow_log_metric_measured_s"] * METRIC_CALLS / args.mlflow_metric_calls
    )

    progress(f"MLflow log_batch, {METRIC_CALLS:,} metrics in batches of {MLFLOW_BATCH} ...")
    batches = []
    for round_index in range(3):
        result = mlflow.call(
            "log_batch", calls=METRIC_CALLS, batch=MLFLOW_BATCH, round_index=round_index
        )
        _check_stored("mlflow", result, METRIC_CALLS)
        batches.append(result["seconds"])
    figures["mlflow_log_batch"] = batches

    progress(f"{RUNS} runs x ({PARAMS_PER_RUN} params + {METRICS_PER_RUN} metrics) ...")
    create: dict[str, list[float]] = {"shipyard": [], "mlflow": []}
    for round_index in range(args.rounds):
        order = [shipyard, mlflow] if round_index % 2 == 0 else [mlflow, shipyard]
        for worker in order:
            result = worker.call("create_runs", count=RUNS, round_index=round_index)
            if result["complete_runs"] != RUNS:
                raise BenchmarkError(
                    f"{worker.side} stored {result['complete_runs']} of {RUNS} complete runs"
                )
            create[worker.side].append(result["seconds"])
        progress(f"  round {round_index + 1}/{args.rounds}")
    figures["create_runs"] = create

    progress(f"seeding {args.search_runs:,} runs into both stores in bulk (untimed) ...")
    shipyard.send("seed", count=args.search_runs)
    mlflow.send("seed", count=args.search_runs)
    figures["seed_s"] = {"shipyard": shipyard.receive()["seconds"]}
    figures["seed_s"]["mlflow"] = mlflow.receive()["seconds"]
    expected, matching = expected_search(args.search_runs)
    figures["search_matching"] = matching

    progress(f"search {SEARCH_FILTER!r}: 1 warm-up + {args.search_repeats} rounds ...")
    search: dict[str, list[float]] = {"shipyard": [], "mlflow": []}
    for round_index in range(1 + args.search_repeats):
        order = [shipyard, mlflow] if round_index % 2 == 0 else [mlflow, shipyard]
        answers = {}
        for worker in order:
            result = worker.call("search", filter_string=SEARCH_FILTER, max_results=SEARCH_PAGE)
            answers[worker.side] = result
            if round_index > 0:
                search[worker.side].append(result["seconds"])
        _check_answers(answers, expected)
    figures["search"] = search
    figures["search_page"] = len(expected)
    return figures


def _check_stored(side: str, result: dict[str, Any], calls: int) -> None:
    if result["stored"] != calls:
        raise BenchmarkError(f"{side} stored {result['stored']} of {calls} metric values")


def _check_answers(answers: dict[str, dict[str, Any]], expected: list[str]) -> None:
    """Both sides return the runs the generator says match, in the same order."""
    ours, theirs = answers["shipyard"], answers["mlflow"]
    if ours["names"] != expected or theirs["names"] != expected or ours["ids"] != theirs["ids"]:
        raise BenchmarkError(
            "the searches disagree, so their timings would compare different work:\n"
            f"  expected {len(expected)} runs: {expected[:5]}...\n"
            f"  shipyard {len(ours['names'])}: {ours['names'][:5]}...\n"
            f"  mlflow   {len(theirs['names'])}: {theirs['names'][:5]}..."
        )


def _report(
    args: argparse.Namespace,
    figures: dict[str, Any],
    imports: dict[str, list[float]],
    shipyard_hello: dict[str, Any],
    mlflow_hello: dict[str, Any],
    loads: list[float],
    begun: float,
) -> None:
    median = statistics.median
    sy_metric = median(figures["shipyard_log_metric"])
    ml_metric = figures["mlflow_log_metric_s"]
    ml_batch = median(figures["mlflow_log_batch"])
    sy_runs = median(figures["create_runs"]["shipyard"])
    ml_runs = median(figures["create_runs"]["mlflow"])
    sy_search = median(figures["search"]["shipyard"]) * 1000
    ml_search = median(figures["search"]["mlflow"]) * 1000
    seed = figures["seed_s"]
    sy_import = median(imports["shipyard"])
    ml_import = median(imports["mlflow"])
    shortened = args.mlflow_metric_calls != METRIC_CALLS
    scale = METRIC_CALLS / args.mlflow_metric_calls

    results = [
        Result("log_metric_speedup", round(ml_metric / sy_metric, 1), "x", ">=", LOG_METRIC_TARGET),
        Result("create_runs_speedup", round(ml_runs / sy_runs, 1), "x", ">=", CREATE_RUNS_TARGET),
        Result("search_speedup", round(ml_search / sy_search, 1), "x", ">=", SEARCH_RATIO_TARGET),
        Result("search_100k_ms", round(sy_search, 1), "ms", "<=", SEARCH_MS_TARGET),
        Result("import_ms", round(sy_import, 1), "ms", "<=", IMPORT_MS_TARGET),
    ]
    met = {result.name: "yes" if result.met else "NO" for result in results}

    sy_durability = shipyard_hello["durability"]
    ml_durability = mlflow_hello["durability"]
    print("Tracking benchmark: Shipyard vs MLflow (default SQLite backend)")
    print(
        f"mlflow {MLFLOW_VERSION} (peer, own venv) | Python {shipyard_hello['python']} "
        f"(both sides) | {os.cpu_count()} CPUs | 1-min load average {min(loads):.1f} to "
        f"{max(loads):.1f} (median {statistics.median(loads):.1f}) during the run"
    )
    print(
        f"Durability. MLflow: one SQLite transaction per call, journal_mode="
        f"{ml_durability['journal_mode']}, synchronous={ml_durability['synchronous']} "
        "(each commit is fsynced); async logging off (its default); artifacts in its "
        f"default file store ({ml_durability['artifact_root']}). Shipyard: calls are "
        "buffered and written by a background thread; flush() returns once they are "
        f"committed, journal_mode={sy_durability['journal_mode']}, synchronous="
        f"{sy_durability['synchronous']} (a commit survives a process crash; a power loss "
        "may lose commits since the last WAL checkpoint)."
    )
    print(
        "Worker imports and store creation (untimed, on their own): "
        f"Shipyard `shipyard.tracking.client` {shipyard_hello['import_s']:.2f} s, "
        f"store {shipyard_hello['store_s']:.2f} s; MLflow `mlflow` + MlflowClient "
        f"{mlflow_hello['import_s']:.2f} s, store (create + migrate) "
        f"{mlflow_hello['store_s']:.2f} s."
    )
    mlflow_calls = (
        f"{args.mlflow_metric_calls:,} calls timed, scaled x{scale:.3g}"
        if shortened
        else "all 10,000 calls, 1 round"
    )
    rows: list[list[object]] = [
        [
            f"{METRIC_CALLS:,} log_metric calls, until durable",
            _seconds(sy_metric),
            _seconds(ml_metric),
            f"{ml_metric / sy_metric:,.0f}x",
            f">= {LOG_METRIC_TARGET:g}x",
            met["log_metric_speedup"],
        ],
        [
            f"  per call ({mlflow_calls} for MLflow)",
            f"{sy_metric / METRIC_CALLS * 1e6:.1f} us",
            f"{ml_metric / METRIC_CALLS * 1e3:.2f} ms",
            "",
            "",
            "",
        ],
        [
            f"  context: MLflow log_batch, {METRIC_CALLS // MLFLOW_BATCH} x {MLFLOW_BATCH:,}",
            "",
            _seconds(ml_batch),
            f"{ml_batch / sy_metric:,.1f}x",
            "(not a target)",
            "",
        ],
        [
            f"{RUNS} runs x ({PARAMS_PER_RUN} params + {METRICS_PER_RUN} metrics), ended",
            _seconds(sy_runs),
            _seconds(ml_runs),
            f"{ml_runs / sy_runs:,.1f}x",
            f">= {CREATE_RUNS_TARGET:g}x",
            met["create_runs_speedup"],
        ],
        [
            f"search {args.search_runs:,} runs, page of {SEARCH_PAGE}",
            f"{sy_search:.1f} ms",
            f"{ml_search:.1f} ms",
            f"{ml_search / sy_search:,.1f}x",
            f">= {SEARCH_RATIO_TARGET:g}x, <= {SEARCH_MS_TARGET:g} ms",
            f"{met['search_speedup']}, {met['search_100k_ms']}",
        ],
        [
            "import shipyard / import mlflow (fresh process)",
            f"{sy_import:.1f} ms",
            f"{ml_import:.1f} ms",
            f"{ml_import / sy_import:,.1f}x",
            f"<= {IMPORT_MS_TARGET:g} ms",
            met["import_ms"],
        ],
        [
            "  context: python -c pass (the floor, in the above)",
            f"{median(imports['shipyard floor']):.1f} ms",
            f"{median(imports['mlflow floor']):.1f} ms",
            "",
            "",
            "",
        ],
    ]
    print_table(
        ["operation", "Shipyard", "MLflow", "ratio", "target", "met?"],
        rows,
        title="Wall time (ratio = MLflow / Shipyard; above 1 means Shipyard is faster)",
    )
    print(
        f"\nHow each figure was taken: log_metric, Shipyard median of "
        f"{len(figures['shipyard_log_metric'])} rounds "
        f"({_spread(figures['shipyard_log_metric'])}), MLflow {mlflow_calls}; log_batch median "
        f"of {len(figures['mlflow_log_batch'])}; {RUNS} runs, median of {args.rounds} "
        f"interleaved rounds (Shipyard {_spread(figures['create_runs']['shipyard'])}, MLflow "
        f"{_spread(figures['create_runs']['mlflow'])}); search, median of "
        f"{args.search_repeats} interleaved rounds after 1 warm-up (Shipyard "
        f"{_spread(figures['search']['shipyard'], 1000)} ms, MLflow "
        f"{_spread(figures['search']['mlflow'], 1000)} ms); imports, median of "
        f"{args.import_repeats} interleaved fresh processes."
    )
    print(
        f"Search filter: {SEARCH_FILTER} over {args.search_runs:,} runs ({PARAMS_PER_RUN} params, "
        f"{METRICS_PER_RUN} metrics, {TAGS_PER_RUN} tags each); {figures['search_matching']:,} "
        f"match; both sides returned the same {figures['search_page']} runs (ids and names) in "
        "the same order, the newest first, as the generator predicts. Bulk seeding (untimed): "
        f"Shipyard {seed['shipyard']:.0f} s, MLflow {seed['mlflow']:.0f} s."
    )
    if shortened:
        print(
            f"NOTE: MLflow's log_metric was timed on {args.mlflow_metric_calls:,} calls, not "
            f"{METRIC_CALLS:,}; its figure is that time x {scale:.3g}."
        )
    print_table(
        ["result", "value", "unit", "target", "met"],
        [[r.name, r.value, r.unit, f"{r.op} {r.target:g}", met[r.name]] for r in results],
        title="Targets",
    )
    print(f"\nTotal wall time {time.perf_counter() - begun:.0f} s.")
    emit_json("tracking_vs_mlflow", results)


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _spread(values: list[float], scale: float = 1.0) -> str:
    low, high = min(values) * scale, max(values) * scale
    unit = "" if scale != 1.0 else " s"
    return f"{low:.3g} to {high:.3g}{unit}"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
