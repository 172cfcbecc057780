"""Concurrent writers lose nothing: several processes (and threads) logging to one store.

Four processes start together and each logs 2,000 metric values and 50 params to its own
run and 2,000 values and params to one shared run, on SQLite and on PostgreSQL. Every
value must be stored once, and the shared run's latest value must be its highest step.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.store.schema.tracking import run_latest_metrics, run_metrics, run_params, runs
from shipyard.store.stores import Stores
from shipyard.tracking.client import TrackingClient
from tests.tracking import write_support
from tests.tracking.write_support import rows, start_python

metadata_uri = write_support.metadata_uri
stores = write_support.stores

WORKERS = 4
VALUES = 2000
PARAMS = 50

WORKER = """
import json, os, sys, time
from pathlib import Path
from shipyard.core.config import load_config
from shipyard.tracking.client import TrackingClient

worker = int(sys.argv[1])
shared, go = os.environ["SHARED_RUN"], Path(os.environ["GO_FILE"])
with TrackingClient(load_config(), flush_interval=0.05) as client:
    own = client.create_run("concurrency", name=f"worker-{worker}", capture_code=False)
    while not go.exists():
        time.sleep(0.005)
    for step in range(2000):
        client.log_metric(own.id, "loss", 1 / (step + 1), step=step)
        client.log_metric(shared, "shared", float(worker), step=step * 4 + worker)
        if step % 40 == 0:
            client.log_param(own.id, f"p{step // 40}", step)
            client.log_param(shared, f"worker{worker}-p{step // 40}", step)
            client.log_param(shared, "common", "same")  # same value from every worker
    client.set_terminated(own.id)
print(json.dumps({"run": own.id}))
"""


def count(stores: Stores, table: sa.Table, run_id: str, **where: object) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(table.c.run_id == run_id)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    with stores.metadata.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.mark.slow
def test_processes_logging_at_once_lose_nothing(
    metadata_uri: str, stores: Stores, tmp_path: Path
) -> None:
    with TrackingClient(stores=stores) as client:
        shared = client.create_run("concurrency", name="shared", capture_code=False)
    go = tmp_path / "go"
    env = {
        "SHIPYARD_PROJECT_DIR": str(tmp_path),
        "SHIPYARD_STORE_METADATA": metadata_uri,
        "SHIPYARD_STORE_ARTIFACTS": str(tmp_path / "artifacts"),
        "SHARED_RUN": shared.id,
        "GO_FILE": str(go),
    }
    children = [
        start_python(WORKER.replace("int(sys.argv[1])", str(worker)), env=env)
        for worker in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(rows(stores.metadata, runs)) < WORKERS + 1:  # every worker is ready
            assert all(child.poll() is None for child in children), children[0].communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        go.touch()
        outputs = [child.communicate(timeout=300) for child in children]
    finally:
        for child in children:
            child.kill()
    for child, (_, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr
    own_runs = [json.loads(stdout.strip().splitlines()[-1])["run"] for stdout, _ in outputs]

    for run_id in own_runs:
        assert count(stores, run_metrics, run_id) == VALUES
        assert count(stores, run_params, run_id) == PARAMS
        [latest] = rows(stores.metadata, run_latest_metrics, run_id=run_id)
        assert (latest["step"], latest["value"]) == (VALUES - 1, 1 / VALUES)
        assert rows(stores.metadata, runs, id=run_id)[0]["status"] == "finished"
    assert count(stores, run_metrics, shared.id) == WORKERS * VALUES
    with stores.metadata.connect() as conn:
        steps = conn.execute(
            sa.select(run_metrics.c.step).where(run_metrics.c.run_id == shared.id)
        ).scalars()
        assert sorted(steps) == list(range(WORKERS * VALUES))
    [latest] = rows(stores.metadata, run_latest_metrics, run_id=shared.id)
    assert (latest["step"], latest["value"]) == (WORKERS * VALUES - 1, float(WORKERS - 1))
    assert count(stores, run_params, shared.id) == WORKERS * PARAMS + 1
    assert rows(stores.metadata, run_params, run_id=shared.id, key="common")[0]["value"] == "same"


def test_threads_sharing_a_client_lose_nothing(stores: Stores) -> None:
    with TrackingClient(stores=stores, flush_interval=0.05) as client:
        run = client.create_run(capture_code=False)
        start = threading.Barrier(WORKERS)

        def work(worker: int) -> None:
            start.wait()
            for step in range(VALUES):
                client.log_metric(run.id, f"thread{worker}", float(step), step=step)
                if step % 100 == 0:
                    client.log_param(run.id, f"thread{worker}-{step}", step)

        threads = [threading.Thread(target=work, args=(worker,)) for worker in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        client.set_terminated(run.id)
        stored = client.get_run(run.id)
    assert count(stores, run_metrics, run.id) == WORKERS * VALUES
    assert stored.metrics == {f"thread{w}": float(VALUES - 1) for w in range(WORKERS)}
    assert len(stored.params) == WORKERS * VALUES // 100
