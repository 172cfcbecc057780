"""Feature store: Shipyard against Feast (local provider, DuckDB offline, SQLite online).

Issue 6, point 8. One entity (``customer_id``), one feature view of 10 float64 features
with a 2-day TTL, 1,000,000 source rows (100,000 customers x 10 days, one row a day at a
seeded random second), generated deterministically into one Parquet file both sides read
as a file source. Figures, each measured on both sides in the same run:

- Training set for 100,000 entity rows (seeded customers and times; some before any
  value, some for unknown customers, 10% exactly at an event time, 5% exactly at the TTL
  bound and 5% one microsecond past it). Time of the call, and peak memory, each side in
  fresh processes. Shipyard's call is its default path, which saves every training set
  as a dataset version (``bench_features.training``). The headline times calls that
  store a NEW version (Parquet, profile, sample, blobs, catalog row): each training
  process works in a project of its own (definitions applied there, untimed), so its
  first 100,000-row call is one the project has never seen, and the benchmark checks
  that it did add a version. The process then repeats the call on the same rows: that
  call finds the version by content id and stores nothing, and is reported on a
  separate, labelled row (Feast's repeat beside it), never in the headline. Every returned
  row is checked against a pandas ``merge_asof`` reference (``by`` customer, backward,
  exact matches allowed, ``tolerance`` = TTL): rows missing or with any differing value
  are mismatches, for both sides.
- Materializing the 1,000,000 rows (latest value per customer) into each side's online
  store, each in a fresh process, once for Feast (it takes tens of seconds), twice for
  Shipyard.
- Online reads in-process, 2,000 calls of 1 entity and 2,000 of 100 entities, p99 (SQLite
  on both sides), then Shipyard's Redis store. A call is the read and its conversion to
  plain Python columns (feature -> values): Feast's ``get_online_features(...).to_dict()``
  and Shipyard's ``online_features(...).to_columns()``. Values read are checked against
  the data on every 20th call (after the call is timed). Each call's thread CPU time is
  reported beside its wall time: on a busy machine a p99 of wall time mostly measures
  waiting for a core, CPU time what the call itself costs.

Memory: each training-set process imports everything, opens its store, reads the entity
rows and makes a 100-row warm-up call, then resets its kernel high-water mark
(``/proc/self/clear_refs``), notes its RSS, makes the 100,000-row call and reads
``VmHWM``: the call's peak is ``VmHWM - RSS before``, the memory it needed beyond the
ready process (the figure the ratio uses; median of the processes). For context, an
*idle* process does the same preparation and stops, and ``VmHWM(measured) -
VmHWM(idle)`` is shown too; it can read low when preparation itself peaked higher than
the ready process's RSS. ``ru_maxrss`` is not used: Linux carries it over ``exec`` from
the parent, so a child of this 600 MB parent would start at 600 MB. Wall time and
process CPU time are both reported: on a shared machine CPU time shows the work done
when wall time includes waiting for a core.

Import time is measured on its own in each process and never inside a timed figure.
Both sides are given their documented fast settings: Feast with its registry cache never
expiring (``cache_ttl_seconds: 0``), entity key serialization v3, the local compute
engine, and a feature service for reads; Shipyard with its defaults.

Run from the repository root (``--entities 2000`` for a quick smoke run)::

    .venv/bin/python benchmarks/features_vs_feast.py

The last line printed is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _peers import (
    BenchmarkError,
    Result,
    emit_json,
    ensure_peer_venv,
    print_table,
    progress,
)

FEAST_VERSION = "0.67.0"
SCRIPT = Path(__file__).resolve()

ENTITIES = 100_000
DAYS = 10
FEATURES = [f"f{i}" for i in range(10)]
TTL = timedelta(days=2)
SEED = 20_261_126
BASE = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW_START = BASE - timedelta(days=1)
WINDOW_END = BASE + timedelta(days=DAYS + 2)
AS_OF = BASE + timedelta(days=DAYS, hours=12)  # every customer's last value is within TTL
ONLINE_CALLS = 2_000
WARMUP_CALLS = 50
TRAINING_PROCESSES = 3
REDIS_URI = os.environ.get("SHIPYARD_BENCH_REDIS", "redis://127.0.0.1:6379/0")

TRAINING_SPEEDUP_TARGET = 5.0
MEMORY_RATIO_TARGET = 1.0
MISMATCH_TARGET = 0.0
MATERIALIZE_SPEEDUP_TARGET = 10.0
P99_1_TARGET_MS = 0.5
P99_100_TARGET_MS = 3.0
REDIS_P99_1_TARGET_MS = 1.0
REDIS_P99_100_TARGET_MS = 5.0

_PEER_ENV = {"FEAST_USAGE": "False", "DO_NOT_TRACK": "true"}


# --- Data: generated once, deterministically, read by both sides ---------------------------


def generate(folder: Path, entities: int) -> dict[str, Any]:
    """Write source.parquet, entities.parquet and reference.parquet into ``folder``."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    rows = entities * DAYS
    customer = np.repeat(np.arange(entities, dtype=np.int64), DAYS)
    day = np.tile(np.arange(DAYS, dtype=np.int64), entities)
    base_us = int(BASE.timestamp()) * 1_000_000
    second = rng.integers(0, 86_400, size=rows, dtype=np.int64)
    event_us = base_us + day * 86_400_000_000 + second * 1_000_000
    values = rng.standard_normal((rows, len(FEATURES)))
    order = np.argsort(event_us, kind="stable")  # a log file: rows in time order
    ts_type = pa.timestamp("us", tz="UTC")
    source = pa.table(
        {
            "customer_id": customer[order],
            "event_ts": pa.array(event_us[order], ts_type),
            **{name: values[order, i] for i, name in enumerate(FEATURES)},
        }
    )
    pq.write_table(source, folder / "source.parquet", row_group_size=128 * 1024)

    n = entities
    kind = rng.random(n)
    picked = rng.integers(0, rows, size=n)
    ids = rng.integers(0, entities + entities // 100, size=n)  # 1% unknown customers
    ts = base_us - 86_400_000_000 + rng.integers(0, (DAYS + 3) * 86_400_000_000, size=n)
    ttl_us = TTL // timedelta(microseconds=1)
    exact = kind < 0.10
    at_bound = (kind >= 0.10) & (kind < 0.15)
    past_bound = (kind >= 0.15) & (kind < 0.20)
    for mask, offset in ((exact, 0), (at_bound, ttl_us), (past_bound, ttl_us + 1)):
        ids[mask] = customer[picked[mask]]
        ts[mask] = event_us[picked[mask]] + offset
    entity_rows = pa.table(
        {
            "customer_id": ids.astype(np.int64),
            "event_timestamp": pa.array(ts, ts_type),
            "row_id": np.arange(n, dtype=np.int64),
            "label": rng.integers(0, 2, size=n, dtype=np.int64),
        }
    )
    pq.write_table(entity_rows, folder / "entities.parquet")

    started = time.perf_counter()
    left = entity_rows.to_pandas().sort_values("event_timestamp", kind="stable")
    right = source.to_pandas().sort_values("event_ts", kind="stable")
    reference = pd.merge_asof(
        left,
        right,
        left_on="event_timestamp",
        right_on="event_ts",
        by="customer_id",
        direction="backward",
        allow_exact_matches=True,
        tolerance=pd.Timedelta(TTL),
    ).sort_values("row_id")
    reference = reference[["row_id", *FEATURES]].reset_index(drop=True)
    reference.to_parquet(folder / "reference.parquet")
    latest = (right.sort_values(["customer_id", "event_ts"]).groupby("customer_id").tail(1))[
        ["customer_id", *FEATURES]
    ]
    latest.to_parquet(folder / "latest.parquet")
    return {
        "source_rows": rows,
        "entity_rows": n,
        "reference_s": time.perf_counter() - started,
        "reference_with_values": int(reference[FEATURES[0]].notna().sum()),
    }


def count_mismatches(output_path: Path, reference_path: Path) -> dict[str, int]:
    """Rows of the reference missing from an output, or present with any differing value."""
    import numpy as np
    import pandas as pd

    reference = pd.read_parquet(reference_path)
    output = pd.read_parquet(output_path, columns=["row_id", *FEATURES])
    duplicated = int(output["row_id"].duplicated().sum())
    output = output.drop_duplicates("row_id")
    merged = reference.merge(output, on="row_id", how="left", suffixes=("", "_out"), indicator=True)
    missing = int((merged["_merge"] == "left_only").sum())
    present = merged[merged["_merge"] == "both"]
    differ = np.zeros(len(present), dtype=bool)
    for name in FEATURES:
        want = present[name].to_numpy(dtype=float)
        got = present[f"{name}_out"].to_numpy(dtype=float)
        differ |= ~((want == got) | (np.isnan(want) & np.isnan(got)))
    return {
        "rows_returned": len(output) + duplicated,
        "missing": missing,
        "differing": int(differ.sum()),
        "duplicated": duplicated,
        "mismatches": missing + int(differ.sum()),
    }


# --- Memory --------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise BenchmarkError(f"/proc/self/status has no {field}")


def _reset_high_water_mark() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _hwm_mib() -> float:
    return _status_kib("VmHWM") / 1024


# --- The sides -----------------------------------------------------------------------------


class ShipyardSide:
    """Shipyard's FeatureStore on a project folder with its own metadata and online store."""

    def __init__(self, folder: Path, online: str | None = None, project: str | None = None) -> None:
        self.folder = folder
        self.online_uri = online
        self.project = project or "shipyard"
        self.fresh_project = not (folder / self.project).exists()

    def import_libraries(self) -> None:
        import duckdb  # noqa: F401
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        import shipyard.features as sf
        import shipyard.features.materialize
        import shipyard.features.offline_duckdb
        import shipyard.features.online_redis
        import shipyard.features.online_sqlite
        import shipyard.features.serving
        import shipyard.features.training  # noqa: F401 - imported here, not inside timings
        from shipyard.core.config import load_config
        from shipyard.core.errors import NotFoundError
        from shipyard.features.store import FeatureStore

        self.not_found = NotFoundError
        self.sf = sf
        self.load_config = load_config
        self.store_class = FeatureStore

    def open(self) -> None:
        project = self.folder / self.project
        project.mkdir(exist_ok=True)
        env = {"SHIPYARD_PROJECT_DIR": str(project)}
        if self.online_uri:
            env["SHIPYARD_FEATURES_ONLINE"] = self.online_uri
        config = self.load_config(project, environ={**os.environ, **env})
        self.store = self.store_class.open(config)

    def durability(self) -> dict[str, Any]:
        online = self.store.online
        return {"online_store": type(online).__name__, "online_uri": self.online_uri or "sqlite"}

    def apply(self) -> dict[str, Any]:
        sf = self.sf
        customer = sf.Entity("customer", join_keys=["customer_id"])
        view = sf.FeatureView(
            "customer_stats",
            entities=[customer],
            source=sf.FileSource(str(self.folder / "source.parquet")),
            timestamp="event_ts",
            ttl=TTL,
            features=[sf.Feature(name, "float64") for name in FEATURES],
        )
        service = sf.FeatureService("bench_features", [view])
        started = time.perf_counter()
        self.store.apply([customer, view, service])
        return {"seconds": time.perf_counter() - started}

    def training_set(self, entity_rows: Any) -> Any:
        # The default path: the result is saved as a version of bench_features.training.
        result = self.store.training_set(
            entity_rows, "bench_features@v1", timestamp="event_timestamp"
        )
        self.saved_as = result.reference
        return result.table

    def saved_versions(self) -> int | None:
        """How many training sets the project holds (the timed call must add one)."""
        try:
            return len(self.store.datasets.list_versions("bench_features.training"))
        except self.not_found:
            return 0

    def read_entities(self) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(self.folder / "entities.parquet")

    def head(self, table: Any, rows: int) -> Any:
        return table.slice(0, rows)

    def write_output(self, table: Any, path: Path) -> None:
        import pyarrow.parquet as pq

        pq.write_table(table, path)

    def materialize(self) -> dict[str, Any]:
        started, cpu = time.perf_counter(), time.process_time()
        report = self.store.materialize(start=WINDOW_START, end=WINDOW_END, incremental=False)
        return {
            "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu,
            "rows": report.rows,
        }

    def online_reader(self) -> Callable[[list[int]], dict[str, list[Any]]]:
        store = self.store

        def read(ids: list[int]) -> dict[str, list[Any]]:
            rows = [{"customer_id": i} for i in ids]
            # Feature -> values, like Feast's OnlineResponse.to_dict().
            return store.online_features("bench_features@v1", rows, as_of=AS_OF).to_columns()

        return read

    def close(self) -> None:
        self.store.close()


class FeastSide:
    """Feast's FeatureStore, local provider, DuckDB offline store, SQLite online store."""

    def __init__(self, folder: Path, online: str | None = None, project: str | None = None) -> None:
        self.folder = folder
        self.repo = folder / "feast"
        self.fresh_project = False  # Feast saves nothing: one repository serves every call

    def import_libraries(self) -> None:
        import duckdb  # noqa: F401
        import feast
        import ibis  # noqa: F401
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401
        from feast.infra.compute_engines.local import compute  # noqa: F401
        from feast.infra.offline_stores import duckdb as feast_duckdb  # noqa: F401
        from feast.infra.online_stores import sqlite as feast_sqlite  # noqa: F401

        self.feast = feast

    def open(self) -> None:
        self.repo.mkdir(exist_ok=True)
        (self.repo / "data").mkdir(exist_ok=True)
        (self.repo / "feature_store.yaml").write_text(
            "project: bench\n"
            "provider: local\n"
            "registry:\n"
            "  path: data/registry.db\n"
            "  cache_ttl_seconds: 0\n"  # documented: load once, never expire
            "offline_store:\n"
            "  type: duckdb\n"
            "online_store:\n"
            "  type: sqlite\n"
            "  path: data/online_store.db\n"
            "batch_engine: local\n"
            "entity_key_serialization_version: 3\n"
        )
        self.store = self.feast.FeatureStore(repo_path=str(self.repo))

    def durability(self) -> dict[str, Any]:
        import sqlite3

        path = self.repo / "data" / "online_store.db"
        journal = "(not created yet)"
        if path.exists():
            with sqlite3.connect(path) as con:
                journal = con.execute("PRAGMA journal_mode").fetchone()[0]
        return {
            "online_store": "SqliteOnlineStore",
            "journal_mode": journal,
            "synchronous": "FULL (sqlite3 default; Feast sets no PRAGMA)",
        }

    def apply(self) -> dict[str, Any]:
        from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
        from feast.types import Float64, Int64

        customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
        source = FileSource(path=str(self.folder / "source.parquet"), timestamp_field="event_ts")
        view = FeatureView(
            name="customer_stats",
            entities=[customer],
            ttl=TTL,
            schema=[
                Field(name="customer_id", dtype=Int64),
                *(Field(name=name, dtype=Float64) for name in FEATURES),
            ],
            source=source,
            online=True,
        )
        service = FeatureService(name="bench_features", features=[view])
        started = time.perf_counter()
        self.store.apply([customer, view, service])
        return {"seconds": time.perf_counter() - started}

    def _service(self) -> Any:
        if not hasattr(self, "_cached_service"):
            self._cached_service = self.store.get_feature_service("bench_features")
        return self._cached_service

    def training_set(self, entity_rows: Any) -> Any:
        job = self.store.get_historical_features(entity_df=entity_rows, features=self._service())
        return job.to_df()

    def saved_versions(self) -> int | None:
        return None

    def read_entities(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.folder / "entities.parquet")

    def head(self, table: Any, rows: int) -> Any:
        return table.head(rows).copy()

    def write_output(self, table: Any, path: Path) -> None:
        table.to_parquet(path)

    def materialize(self) -> dict[str, Any]:
        started, cpu = time.perf_counter(), time.process_time()
        self.store.materialize(start_date=WINDOW_START, end_date=WINDOW_END)
        return {
            "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu,
            "rows": None,
        }

    def online_reader(self) -> Callable[[list[int]], dict[str, list[Any]]]:
        store, service = self.store, self._service()

        def read(ids: list[int]) -> dict[str, list[Any]]:
            rows = [{"customer_id": i} for i in ids]
            result: dict[str, list[Any]] = store.get_online_features(
                features=service, entity_rows=rows
            ).to_dict()
            return result

        return read

    def close(self) -> None:
        pass


SIDES = {"shipyard": ShipyardSide, "feast": FeastSide}


# --- Worker processes: one job each, a JSON result file -------------------------------------


def run_worker(args: argparse.Namespace) -> int:
    result_path = Path(args.result)
    try:
        result = _work(args)
    except Exception:  # noqa: BLE001 - reported to the parent, which raises it
        result = {"error": traceback.format_exc()}
    result_path.write_text(json.dumps(result))
    return 0 if "error" not in result else 1


def _work(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.folder)
    side = SIDES[args.side](folder, args.online, args.project)
    started = time.perf_counter()
    side.import_libraries()
    result: dict[str, Any] = {"import_s": time.perf_counter() - started}
    opened = time.perf_counter()
    side.open()
    result["open_s"] = time.perf_counter() - opened
    result["python"] = platform.python_version()
    try:
        if args.job == "apply":
            result.update(side.apply())
            result["durability"] = side.durability()
        elif args.job in ("training", "idle"):
            if side.fresh_project:
                side.apply()  # a project of its own, so its first call stores a new version
            result.update(_training(side, args, folder))
        elif args.job == "materialize":
            result.update(side.materialize())
            result["durability"] = side.durability()
        elif args.job == "online":
            result.update(_online(side, args, folder))
        else:
            raise BenchmarkError(f"unknown job {args.job}")
    finally:
        side.close()
    return result


def _training(side: Any, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    entity_rows = side.read_entities()
    side.training_set(side.head(entity_rows, 100))  # warm-up: lazy imports, caches
    if args.job == "idle":
        return {"hwm_mib": _hwm_mib()}
    versions_before = side.saved_versions()
    peak_mib = _hwm_mib()  # this process's peak so far: the measured call's is read next
    before_kib = _status_kib("VmRSS")
    reset = _reset_high_water_mark()
    started, cpu = time.perf_counter(), time.process_time()
    output = side.training_set(entity_rows)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    hwm_kib = _status_kib("VmHWM")
    peak_mib = max(peak_mib, hwm_kib / 1024)
    versions_after = side.saved_versions()
    if versions_before is not None and versions_after != versions_before + 1:
        raise BenchmarkError(
            f"the timed call should have stored a new training-set version; the project "
            f"held {versions_before} before it and {versions_after} after"
        )
    if args.output:
        side.write_output(output, Path(args.output))
    del output
    repeat_seconds, repeat_cpu = [], []
    for _ in range(args.repeats - 1):  # the same rows again: Shipyard finds the version
        started, cpu = time.perf_counter(), time.process_time()
        side.training_set(entity_rows)
        repeat_seconds.append(time.perf_counter() - started)
        repeat_cpu.append(time.process_time() - cpu)
    if versions_after is not None and side.saved_versions() != versions_after:
        raise BenchmarkError("a repeat of the same rows stored another version")
    return {
        "saved_as": getattr(side, "saved_as", None),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "repeat_seconds": repeat_seconds,
        "repeat_cpu_seconds": repeat_cpu,
        "hwm_mib": peak_mib,
        "hwm_delta_mib": (hwm_kib - before_kib) / 1024 if reset else None,
    }


def _online(side: Any, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import random

    import pandas as pd

    read = side.online_reader()
    rng = random.Random(SEED + 1)
    population = args.entities
    latest = pd.read_parquet(folder / "latest.parquet").set_index("customer_id")
    figures: dict[str, Any] = {}
    for batch in (1, 100):
        for _ in range(WARMUP_CALLS):
            read([rng.randrange(population) for _ in range(batch)])
        timings, cpu = [], []
        wrong = checked = 0
        for call in range(args.calls):
            ids = [rng.randrange(population) for _ in range(batch)]
            started, cpu_started = time.perf_counter_ns(), time.thread_time_ns()
            values = read(ids)
            timings.append((time.perf_counter_ns() - started) / 1e6)
            cpu.append((time.thread_time_ns() - cpu_started) / 1e6)
            if call % 20 == 0:  # check a sample of what was read against the data
                for index, customer in enumerate(ids):
                    want = latest.loc[customer]
                    checked += 1
                    wrong += any(values[name][index] != want[name] for name in FEATURES)
        timings.sort()
        cpu.sort()
        figures[f"batch_{batch}"] = {
            "p50_ms": statistics.median(timings),
            "p99_ms": timings[int(len(timings) * 0.99) - 1],
            "cpu_p50_ms": statistics.median(cpu),
            "cpu_p99_ms": cpu[int(len(cpu) * 0.99) - 1],
            "max_ms": timings[-1],
            "checked": checked,
            "wrong": wrong,
        }
    return figures


class Runner:
    """Starts worker processes of each side and collects their results."""

    def __init__(self, folder: Path, pythons: dict[str, Path], entities: int) -> None:
        self.folder = folder
        self.pythons = pythons
        self.entities = entities
        self.count = 0
        self.env = {**os.environ, **_PEER_ENV}

    def run(self, side: str, job: str, **options: Any) -> dict[str, Any]:
        self.count += 1
        result_path = self.folder / f"result-{self.count}.json"
        log_path = self.folder / f"worker-{self.count}-{side}-{job}.log"
        command = [
            str(self.pythons[side]),
            str(SCRIPT),
            "--worker",
            "--side",
            side,
            "--job",
            job,
            "--folder",
            str(self.folder),
            "--result",
            str(result_path),
            "--entities",
            str(self.entities),
        ]
        for key, value in options.items():
            if value is not None:
                command += [f"--{key.replace('_', '-')}", str(value)]
        with log_path.open("wb") as log:
            completed = subprocess.run(
                command, cwd=self.folder, env=self.env, stdout=log, stderr=log, check=False
            )
        if not result_path.exists():
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            raise BenchmarkError(f"{side} {job} exited {completed.returncode}:\n{tail}")
        result: dict[str, Any] = json.loads(result_path.read_text())
        if "error" in result:
            raise BenchmarkError(f"{side} {job} failed:\n{result['error']}")
        return result


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


# --- The parent ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--online", help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=ONLINE_CALLS, help="online calls per size")
    parser.add_argument(
        "--entities", type=int, default=ENTITIES, help="customers (10 rows each) and entity rows"
    )
    parser.add_argument(
        "--training-processes", type=int, default=TRAINING_PROCESSES, help="per side"
    )
    parser.add_argument("--feast-materialize-runs", type=int, default=1)
    parser.add_argument("--skip-redis", action="store_true", help="no Redis figures")
    args = parser.parse_args()
    if args.worker:
        return run_worker(args)

    begun = time.perf_counter()
    loads = LoadSampler()
    peer_python = ensure_peer_venv(f"feast-{FEAST_VERSION}", [f"feast[duckdb]=={FEAST_VERSION}"])
    pythons = {"shipyard": Path(sys.executable), "feast": peer_python}
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-features-") as root:
        folder = Path(root)
        progress(f"generating {args.entities * DAYS:,} source rows and the reference ...")
        figures["data"] = generate(folder, args.entities)
        runner = Runner(folder, pythons, args.entities)
        progress("applying the definitions on both sides (untimed) ...")
        figures["apply"] = {side: runner.run(side, "apply") for side in ("shipyard", "feast")}
        figures["training"] = _measure_training(runner, args, folder)
        figures["materialize"] = _measure_materialize(runner, args)
        figures["online"] = _measure_online(runner, args)
    loads.stop()
    _report(args, figures, loads.values, time.perf_counter() - begun)
    return 0


def _measure_training(runner: Runner, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {side: {"runs": [], "idle": []} for side in ("shipyard", "feast")}
    for index in range(args.training_processes):
        order = ["shipyard", "feast"] if index % 2 == 0 else ["feast", "shipyard"]
        for side in order:
            progress(f"training set, {side}, process {index + 1}/{args.training_processes} ...")
            output = folder / f"training-{side}.parquet" if index == 0 else None
            project = f"shipyard-training-{index}"  # Shipyard: a project of its own
            out[side]["runs"].append(runner.run(side, "training", output=output, project=project))
            if index == 0:
                out[side]["check"] = count_mismatches(
                    folder / f"training-{side}.parquet", folder / "reference.parquet"
                )
                out[side]["idle"].append(runner.run(side, "idle", project="shipyard-idle"))
    for side in ("shipyard", "feast"):
        runs = out[side]["runs"]
        seconds = [run["seconds"] for run in runs]
        cpu = [run["cpu_seconds"] for run in runs]
        repeat = [s for run in runs for s in run["repeat_seconds"]]
        repeat_cpu = [s for run in runs for s in run["repeat_cpu_seconds"]]
        idle = statistics.median(run["hwm_mib"] for run in out[side]["idle"])
        out[side]["seconds_median"] = statistics.median(seconds)
        out[side]["seconds_min"] = min(seconds)
        out[side]["cpu_median"] = statistics.median(cpu)
        out[side]["repeat_median"] = statistics.median(repeat) if repeat else None
        out[side]["repeat_min"] = min(repeat) if repeat else None
        out[side]["repeat_cpu_median"] = statistics.median(repeat_cpu) if repeat_cpu else None
        out[side]["hwm_over_idle_mib"] = statistics.median(run["hwm_mib"] for run in runs) - idle
        out[side]["idle_mib"] = idle
        hwm = [run["hwm_delta_mib"] for run in runs if run["hwm_delta_mib"] is not None]
        if len(hwm) != len(runs):
            raise BenchmarkError(
                "/proc/self/clear_refs is not writable here, so the call's peak memory "
                "cannot be isolated; run on Linux with /proc mounted read-write."
            )
        out[side]["peak_mib"] = statistics.median(hwm)
        out[side]["import_s"] = statistics.median(run["import_s"] for run in runs)
    return out


def _measure_materialize(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"shipyard": [], "feast": []}
    for index in range(max(2, args.feast_materialize_runs)):
        online = f"sqlite:online-{index}.db"
        progress(f"materializing, shipyard, run {index + 1} ...")
        out["shipyard"].append(runner.run("shipyard", "materialize", online=online))
        if index < args.feast_materialize_runs:
            progress(f"materializing, feast, run {index + 1} (tens of seconds) ...")
            out["feast"].append(runner.run("feast", "materialize"))
    return out


def _measure_online(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    progress(f"online reads, shipyard sqlite, {args.calls} calls x (1, 100) entities ...")
    out["shipyard"] = runner.run(
        "shipyard", "online", online="sqlite:online-0.db", calls=args.calls
    )
    progress(f"online reads, feast sqlite, {args.calls} calls x (1, 100) entities ...")
    out["feast"] = runner.run("feast", "online", calls=args.calls)
    if args.skip_redis:
        return out
    prefix = f"shipyard-bench-{uuid.uuid4().hex[:12]}:"
    redis_uri = f"{REDIS_URI}?prefix={prefix}"
    try:
        progress("materializing into Redis, shipyard ...")
        out["redis_materialize"] = runner.run("shipyard", "materialize", online=redis_uri)
        progress(f"online reads, shipyard redis, {args.calls} calls x (1, 100) entities ...")
        out["redis"] = runner.run("shipyard", "online", online=redis_uri, calls=args.calls)
    finally:
        _delete_redis_prefix(prefix)
    return out


def _delete_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URI)
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}*", count=5_000):
            batch.append(key)
            if len(batch) >= 5_000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
    finally:
        client.close()


def _report(
    args: argparse.Namespace, figures: dict[str, Any], loads: list[float], elapsed: float
) -> None:
    data, training = figures["data"], figures["training"]
    materialize, online = figures["materialize"], figures["online"]
    ship, feast = training["shipyard"], training["feast"]
    print(
        f"\nfeatures_vs_feast: {data['source_rows']:,} source rows, {data['entity_rows']:,} "
        f"entity rows; Feast {FEAST_VERSION}; Python {platform.python_version()}; "
        f"{os.cpu_count()} cores; load average {min(loads):.1f}-{max(loads):.1f} "
        f"(median {statistics.median(loads):.1f}); {elapsed:.0f} s in all"
    )
    print_table(
        [
            "side",
            "median s",
            "min s",
            "CPU s",
            "calls",
            "call peak MiB",
            "HWM - idle HWM MiB",
            "idle HWM MiB",
            "import s",
        ],
        [
            [
                name,
                side["seconds_median"],
                side["seconds_min"],
                side["cpu_median"],
                len(side["runs"]),
                side["peak_mib"],
                side["hwm_over_idle_mib"],
                side["idle_mib"],
                side["import_s"],
            ]
            for name, side in (("shipyard", ship), ("feast", feast))
        ],
        title=(
            f"Training set, {data['entity_rows']:,} entity rows: first call of a fresh "
            "process; Shipyard's stores a NEW version (headline)"
        ),
    )
    print_table(
        ["side", "median s", "min s", "CPU s", "calls"],
        [
            [
                name,
                side["repeat_median"],
                side["repeat_min"],
                side["repeat_cpu_median"],
                sum(len(run["repeat_seconds"]) for run in side["runs"]),
            ]
            for name, side in (("shipyard", ship), ("feast", feast))
            if side["repeat_median"] is not None
        ],
        title=(
            "Training set, same rows repeated in the process: Shipyard finds the version "
            "by content id and stores nothing (not the headline)"
        ),
    )
    print_table(
        ["side", "rows returned", "missing", "differing", "duplicated", "mismatches"],
        [
            [
                name,
                side["check"]["rows_returned"],
                side["check"]["missing"],
                side["check"]["differing"],
                side["check"]["duplicated"],
                side["check"]["mismatches"],
            ]
            for name, side in (("shipyard", ship), ("feast", feast))
        ],
        title=(
            f"Training set against the pandas merge_asof reference ({data['entity_rows']:,} "
            f"rows, {data['reference_with_values']:,} with values)"
        ),
    )
    ship_mat = [run["seconds"] for run in materialize["shipyard"]]
    feast_mat = [run["seconds"] for run in materialize["feast"]]
    print_table(
        ["side", "runs", "median s", "min s", "CPU s", "rows written"],
        [
            [
                "shipyard",
                len(ship_mat),
                statistics.median(ship_mat),
                min(ship_mat),
                statistics.median(run["cpu_seconds"] for run in materialize["shipyard"]),
                materialize["shipyard"][0]["rows"],
            ],
            [
                "feast",
                len(feast_mat),
                statistics.median(feast_mat),
                min(feast_mat),
                statistics.median(run["cpu_seconds"] for run in materialize["feast"]),
                "n/a",
            ],
        ],
        title=f"Materializing {data['source_rows']:,} rows into the SQLite online store",
    )
    rows = []
    for label, result in (
        ("shipyard sqlite", online["shipyard"]),
        ("feast sqlite", online["feast"]),
        ("shipyard redis", online.get("redis")),
    ):
        if result is None:
            continue
        for batch in (1, 100):
            item = result[f"batch_{batch}"]
            rows.append(
                [
                    label,
                    batch,
                    item["p50_ms"],
                    item["p99_ms"],
                    item.get("cpu_p50_ms", "n/a"),
                    item.get("cpu_p99_ms", "n/a"),
                    item["max_ms"],
                    f"{item['wrong']}/{item['checked']}",
                ]
            )
    print_table(
        [
            "store",
            "entities",
            "p50 ms",
            "p99 ms",
            "CPU p50 ms",
            "CPU p99 ms",
            "max ms",
            "wrong values/checked",
        ],
        rows,
        title=f"Online reads in-process, {args.calls} calls each",
    )
    print_table(
        ["side", "durability"],
        [
            ["shipyard", json.dumps(materialize["shipyard"][0]["durability"])],
            ["feast", json.dumps(materialize["feast"][0]["durability"])],
        ],
        title="Durability of the online stores as measured",
    )
    if "redis_materialize" in online:
        print(f"\nShipyard materialize into Redis: {online['redis_materialize']['seconds']:.2f} s")

    results = [
        Result(
            "training_set_speedup",
            feast["seconds_median"] / ship["seconds_median"],
            "x",
            ">=",
            TRAINING_SPEEDUP_TARGET,
        ),
        Result(
            "training_set_memory_ratio",
            ship["peak_mib"] / feast["peak_mib"],
            "ratio",
            "<=",
            MEMORY_RATIO_TARGET,
        ),
        Result(
            "training_set_mismatches",
            float(ship["check"]["mismatches"]),
            "rows",
            "<=",
            MISMATCH_TARGET,
        ),
        Result(
            "materialize_speedup",
            statistics.median(feast_mat) / statistics.median(ship_mat),
            "x",
            ">=",
            MATERIALIZE_SPEEDUP_TARGET,
        ),
        Result(
            "online_p99_1_ms", online["shipyard"]["batch_1"]["p99_ms"], "ms", "<=", P99_1_TARGET_MS
        ),
        Result(
            "online_p99_100_ms",
            online["shipyard"]["batch_100"]["p99_ms"],
            "ms",
            "<=",
            P99_100_TARGET_MS,
        ),
    ]
    if "redis" in online:
        results += [
            Result(
                "redis_online_p99_1_ms",
                online["redis"]["batch_1"]["p99_ms"],
                "ms",
                "<=",
                REDIS_P99_1_TARGET_MS,
            ),
            Result(
                "redis_online_p99_100_ms",
                online["redis"]["batch_100"]["p99_ms"],
                "ms",
                "<=",
                REDIS_P99_100_TARGET_MS,
            ),
        ]
    print_table(
        ["result", "value", "unit", "target", "met"],
        [
            [r.name, r.value, r.unit, f"{r.op} {r.target}", "yes" if r.met else "NO"]
            for r in results
        ],
        title="Results",
    )
    saved = sorted({run["saved_as"] for run in ship["runs"] if run.get("saved_as")})
    print(f"\nShipyard saved its training sets as: {', '.join(saved) or 'nothing'}")
    print(
        f"\nFeast's own mismatches: {feast['check']['mismatches']} rows "
        f"({feast['check']['missing']} missing, {feast['check']['differing']} differing)"
    )
    emit_json("features_vs_feast", results)


if __name__ == "__main__":
    sys.exit(main())
