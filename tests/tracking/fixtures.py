"""Put tracking records straight into a metadata store, without the tracking client.

Read-side tests (queries, search, the ``runs`` CLI) build their runs here with plain
inserts, so they do not depend on the write side; ``insert_synthetic_runs`` fills a store
with many runs quickly (executemany) for measurements.

>>> with store.transaction() as conn:
...     experiment = insert_experiment(conn, "churn")
...     [run_id] = insert_runs(conn, experiment, [RunSpec("gbm", params={"lr": "0.1"})])
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Text, bindparam, insert
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection

from shipyard.core.ids import new_id
from shipyard.store.schema.tracking import (
    environments,
    experiments,
    run_artifacts,
    run_inputs,
    run_latest_metrics,
    run_metrics,
    run_params,
    run_tags,
    runs,
)

__all__ = [
    "BASE_TIME",
    "PREFIX_TWINS",
    "SAME_START",
    "RunSpec",
    "insert_environment",
    "insert_experiment",
    "insert_runs",
    "insert_synthetic_runs",
    "populate_sample",
    "postgres_database",
]

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
"""Runs without an explicit start time start one minute apart from here."""

MetricValues = float | Sequence[tuple[int, float]]
"""A metric's final value, or its whole history as ``(step, value)`` pairs."""


@dataclass
class RunSpec:
    """One run to insert; everything but the name has a default."""

    name: str
    status: str = "finished"
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, MetricValues] = field(default_factory=dict)
    start_time: datetime | None = None
    duration: timedelta | None = timedelta(minutes=2)
    user: str = "ana"
    lifecycle: str = "active"
    parent_id: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    source: str | None = None
    environment_id: str | None = None
    error: str | None = None
    inputs: Sequence[tuple[str, str, str]] = ()
    """``(dataset, version_id, role)`` triples."""
    artifacts: Sequence[tuple[str, str, int, str]] = ()
    """``(path, blob_id, size, kind)`` quadruples."""
    run_id: str | None = None


def insert_experiment(
    conn: Connection,
    name: str,
    *,
    lifecycle: str = "active",
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    created_at: datetime | None = None,
) -> str:
    """Insert an experiment; return its id."""
    experiment_id = new_id()
    conn.execute(
        insert(experiments).values(
            id=experiment_id,
            name=name,
            description=description,
            tags=dict(tags or {}),
            lifecycle=lifecycle,
            created_at=created_at or BASE_TIME,
            deleted_at=BASE_TIME if lifecycle == "deleted" else None,
        )
    )
    return experiment_id


def insert_environment(
    conn: Connection, environment_id: str, packages: Mapping[str, str] | None = None
) -> str:
    """Insert a Python environment description under ``environment_id``; return the id."""
    conn.execute(
        insert(environments).values(
            id=environment_id,
            python_version="3.11.7",
            platform="Linux-x86_64",
            packages=dict(packages or {"numpy": "2.1.0"}),
            created_at=BASE_TIME,
        )
    )
    return environment_id


def insert_runs(conn: Connection, experiment_id: str, specs: Iterable[RunSpec]) -> list[str]:
    """Insert runs with everything they hold; return their ids in order.

    NaN metric values go in as the write side stores them: the text 'NaN' on SQLite
    (whose driver would bind a float NaN as NULL), a float NaN on PostgreSQL.
    """
    nan: float | str = "NaN" if conn.dialect.name == "sqlite" else math.nan
    run_rows: list[dict[str, Any]] = []
    params: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    latest: list[dict[str, Any]] = []
    inputs: list[dict[str, Any]] = []
    artifacts: list[dict[str, Any]] = []
    for index, spec in enumerate(specs):
        run_id = spec.run_id or new_id()
        start = spec.start_time or BASE_TIME + timedelta(minutes=index)
        end = start + spec.duration if spec.duration is not None else None
        run_rows.append(
            {
                "id": run_id,
                "experiment_id": experiment_id,
                "parent_id": spec.parent_id,
                "name": spec.name,
                "status": spec.status,
                "lifecycle": spec.lifecycle,
                "user": spec.user,
                "source": spec.source,
                "git_commit": spec.git_commit,
                "git_dirty": spec.git_dirty,
                "code_diff_blob": None,
                "environment_id": spec.environment_id,
                "error": spec.error,
                "start_time": start,
                "end_time": end,
                "heartbeat_at": end or start,
                "deleted_at": start if spec.lifecycle == "deleted" else None,
            }
        )
        # The narrow tables carry their run's start time, as the writer writes them (t0005).
        params.extend(
            {"run_id": run_id, "key": k, "value": v, "start_time": start}
            for k, v in spec.params.items()
        )
        tags.extend(
            {"run_id": run_id, "key": k, "value": v, "start_time": start}
            for k, v in spec.tags.items()
        )
        stamp = start.timestamp()
        for key, values in spec.metrics.items():
            points = [(0, float(values))] if isinstance(values, int | float) else list(values)
            history.extend(
                {
                    "run_id": run_id,
                    "key": key,
                    "step": s,
                    "timestamp": stamp + s,
                    "value": nan if math.isnan(v) else v,
                }
                for s, v in points
            )
            step, value = max(points, key=lambda point: point[0])
            latest.append(
                {
                    "run_id": run_id,
                    "key": key,
                    "step": step,
                    "timestamp": stamp + step,
                    "value": nan if math.isnan(value) else value,
                    "start_time": start,
                }
            )
        inputs.extend(
            {"run_id": run_id, "dataset": d, "version_id": v, "role": r} for d, v, r in spec.inputs
        )
        artifacts.extend(
            {"run_id": run_id, "path": p, "blob_id": b, "size": s, "kind": k}
            for p, b, s, k in spec.artifacts
        )
    if not _narrow_tables_hold_start_times(conn):  # a store before t0004 (migration tests)
        for row in (*params, *tags, *latest):
            del row["start_time"]
    for table, rows in (
        (runs, run_rows),
        (run_params, params),
        (run_tags, tags),
        (run_metrics, history),
        (run_latest_metrics, latest),
        (run_inputs, inputs),
        (run_artifacts, artifacts),
    ):
        if not rows:
            continue
        statement = insert(table)
        if table in (run_metrics, run_latest_metrics) and conn.dialect.name == "sqlite":
            # As the write side does: bound as text, so that 'NaN' stays the text 'NaN'.
            statement = statement.values(value=bindparam("metric_value", type_=Text))
            rows = [{**row, "metric_value": row.pop("value")} for row in rows]
        conn.execute(statement, rows)
    return [row["id"] for row in run_rows]


def _narrow_tables_hold_start_times(conn: Connection) -> bool:
    columns = sa_inspect(conn).get_columns(run_params.name)
    return any(column["name"] == "start_time" for column in columns)


def insert_synthetic_runs(
    conn: Connection,
    experiment_id: str,
    count: int,
    *,
    params: int = 10,
    metrics: int = 10,
    tags: int = 3,
    distinct_values: int = 10,
    seed: int = 0,
    batch: int = 5_000,
) -> int:
    """Insert ``count`` finished runs named ``run-N`` with params ``p0..``, metrics ``m0..``
    (one history point each, uniform in [0, 1)) and tags ``t0..``; return ``count``.

    Param ``pK`` of each run is ``v0``..``v{distinct_values - 1}`` at random; tag ``tK`` is
    ``team0``..``team4``. Deterministic for a given ``seed``.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    for first in range(0, count, batch):
        specs = [
            RunSpec(
                name=f"run-{index}",
                start_time=BASE_TIME + timedelta(seconds=index),
                params={f"p{k}": f"v{rng.randrange(distinct_values)}" for k in range(params)},
                metrics={f"m{k}": rng.random() for k in range(metrics)},
                tags={f"t{k}": f"team{rng.randrange(5)}" for k in range(tags)},
            )
            for index in range(first, min(first + batch, count))
        ]
        insert_runs(conn, experiment_id, specs)
    return count


# --- A varied sample, shared by the read-side tests ---------------------------------------

PREFIX_TWINS = ("abcdef01" + "0" * 24, "abcdef02" + "0" * 24)
"""Two run ids sharing the prefix 'abcdef' (an ambiguous abbreviation)."""
SAME_START = BASE_TIME + timedelta(days=3)
"""The start time two sample runs share (ties broken by run id)."""


def populate_sample(conn: Connection) -> dict[str, str]:
    """Experiments 'churn', 'fraud' and the deleted 'archive', with runs covering what a
    search can meet: ties, missing keys, NaN and infinite metrics, odd characters, nested,
    running, failed and deleted runs. Returns ``{run name: run id}`` (and experiment ids
    under ``experiment:<name>``).
    """
    churn = insert_experiment(conn, "churn", description="monthly churn", tags={"team": "x"})
    fraud = insert_experiment(conn, "fraud")
    archive = insert_experiment(conn, "archive", lifecycle="deleted")
    nan, inf = float("nan"), float("inf")
    specs = [
        RunSpec(
            "gbm-a",
            params={"model": "gbm", "lr": "0.1", "depth": "6"},
            metrics={"auc": [(0, 0.7), (1, 0.81), (2, 0.86)], "loss": [(0, 0.9), (2, 0.35)]},
            tags={"team": "churn", "mlflow.runName": "gbm-a"},
            git_commit="a1b2c3d",
            git_dirty=True,
            source="train.py",
        ),
        RunSpec(
            "gbm-b",
            params={"model": "gbm", "lr": "0.01", "depth": "3"},
            metrics={"auc": 0.86, "loss": 0.4},
            tags={"team": "churn"},
            git_commit="a1b2c3d",
        ),
        RunSpec(
            "gbm-c",
            params={"model": "gbm", "lr": "1e-3"},
            metrics={"auc": 0.79},
            tags={"team": "growth"},
            status="failed",
            error="out of memory",
        ),
        RunSpec(
            "logreg-a",
            params={"model": "logreg", "lr": "0.1", "note": "it's"},
            metrics={"auc": 0.72, "loss": 0.6, "f1": 0.5},
            tags={"val loss": "high"},
            user="bo",
        ),
        RunSpec(
            "logreg-b",
            params={"model": "logreg", "note": "100%"},
            metrics={"auc": nan, "loss": 0.55},
            tags={"team": "churn"},
        ),
        RunSpec(
            "rf-a",
            params={"model": "rf", "note": "a_b"},
            metrics={"auc": inf, "loss": -1.0},
            status="killed",
        ),
        RunSpec(
            "rf-b",
            params={"model": "Gbm", "note": "x*y?[z]"},
            tags={"team": "Churn"},
            status="running",
            duration=None,
        ),
        RunSpec(
            "unicode-ü",
            params={"model": "日本", "note": "back\\slash"},
            metrics={"auc": 0.5},
            tags={"team": "データ"},
        ),
        RunSpec("deleted-1", params={"model": "gbm"}, metrics={"auc": 0.99}, lifecycle="deleted"),
        RunSpec(
            "same-start-1", params={"model": "svm"}, metrics={"auc": 0.6}, start_time=SAME_START
        ),
        RunSpec(
            "same-start-2", params={"model": "svm"}, metrics={"auc": 0.6}, start_time=SAME_START
        ),
        RunSpec("twin-1", params={"model": "svm"}, run_id=PREFIX_TWINS[0]),
        RunSpec("twin-2", params={"model": "svm"}, run_id=PREFIX_TWINS[1]),
    ]
    rng = random.Random(7)  # noqa: S311 - reproducible test data, not secrets
    specs.extend(
        RunSpec(
            f"bulk-{index:02d}",
            params={"model": rng.choice(["gbm", "rf", "logreg"]), "seed": str(index)},
            metrics={key: round(rng.random(), 2) for key in ("auc", "loss") if rng.random() > 0.2},
            tags={"team": "churn"} if index % 3 else {},
            status=rng.choice(["finished", "finished", "failed"]),
            start_time=BASE_TIME + timedelta(hours=index),
        )
        for index in range(16)
    )
    ids = dict(zip([spec.name for spec in specs], insert_runs(conn, churn, specs), strict=True))
    [child] = insert_runs(
        conn,
        churn,
        [RunSpec("child-1", params={"model": "gbm"}, metrics={"auc": 0.9}, parent_id=ids["gbm-a"],
                 start_time=BASE_TIME + timedelta(days=5))],
    )  # fmt: skip
    ids["child-1"] = child
    fraud_specs = [
        RunSpec("fraud-1", params={"model": "gbm"}, metrics={"auc": 0.95}),
        RunSpec("fraud-2", params={"model": "xgb"}, metrics={"auc": 0.85}),
    ]
    ids.update(zip(["fraud-1", "fraud-2"], insert_runs(conn, fraud, fraud_specs), strict=True))
    [archived] = insert_runs(
        conn, archive, [RunSpec("archived-1", params={"model": "gbm"}, lifecycle="deleted")]
    )
    ids["archived-1"] = archived
    ids.update(
        {"experiment:churn": churn, "experiment:fraud": fraud, "experiment:archive": archive}
    )
    return ids


def postgres_database(admin_uri: str) -> Iterator[str]:
    """A fresh PostgreSQL database for a module's shared store, dropped afterwards."""
    import uuid

    import psycopg

    name = f"sy_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_uri.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
