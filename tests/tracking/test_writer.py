"""The background writer: batching, one transaction per flush, errors that surface, and
what survives a normal exit, an exception, Ctrl-C and SIGKILL (for real, in subprocesses).
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.core.errors import BackendUnavailableError, NotFoundError
from shipyard.store.metadata import MetadataStore
from shipyard.store.schema.tracking import (
    run_artifacts,
    run_inputs,
    run_metrics,
    run_params,
    run_tags,
    runs,
)
from shipyard.store.stores import Stores
from shipyard.tracking.batches import STALE_ERROR_PREFIX
from shipyard.tracking.client import TrackingClient
from shipyard.tracking.validation import RunStateError
from shipyard.tracking.writer import FLUSH_INTERVAL, METRIC, Writer
from tests.tracking import write_support
from tests.tracking.write_support import rows, run_python, start_python, unique

metadata_uri = write_support.metadata_uri
stores = write_support.stores
shared_uri = write_support.shared_uri
shared_stores = write_support.shared_stores

NEVER = 3600.0
"""A flush interval no test waits for: only explicit flushes (or full batches) write."""


def metric_count(store: MetadataStore, run_id: str) -> int:
    query = (
        sa.select(sa.func.count()).select_from(run_metrics).where(run_metrics.c.run_id == run_id)
    )
    with store.connect() as conn:
        return int(conn.execute(query).scalar_one())


def logged_steps(store: MetadataStore, run_id: str) -> set[int]:
    query = sa.select(run_metrics.c.step).where(run_metrics.c.run_id == run_id)
    with store.connect() as conn:
        return set(conn.execute(query).scalars())


def wait_for(condition: object, timeout: float = 10.0) -> float:
    """Poll ``condition()`` until true; return how long it took."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def commits(shared_stores: Stores) -> Iterator[list[float]]:
    """The times of every commit on the store's engine while the test runs."""
    seen: list[float] = []

    def record(conn: object) -> None:
        seen.append(time.monotonic())

    engine = shared_stores.metadata.engine
    sa.event.listen(engine, "commit", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "commit", record)


def test_one_transaction_per_flush(shared_stores: Stores, commits: list[float]) -> None:
    with TrackingClient(stores=shared_stores, flush_interval=NEVER) as client:
        first = client.create_run(unique(), capture_code=False)
        second = client.create_run(unique(), capture_code=False)
        commits.clear()
        for step in range(3000):
            client.log_metric(first.id, "loss", 1 / (step + 1), step=step)
            client.log_metric(second.id, "loss", 1 / (step + 2), step=step)
        client.log_params(first.id, {"lr": 0.1, "depth": 6})
        client.set_tags(second.id, {"team": "growth"})
        client.flush()
        assert len(commits) == 1
        assert metric_count(shared_stores.metadata, first.id) == 3000
        assert metric_count(shared_stores.metadata, second.id) == 3000
        assert len(rows(shared_stores.metadata, run_params, run_id=first.id)) == 2


def test_runs_created_logged_to_and_ended_cost_one_transaction_per_flush(
    shared_stores: Stores, commits: list[float], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("notes")
    with TrackingClient(stores=shared_stores, flush_interval=NEVER) as client:
        name = unique()
        experiment = client.create_experiment(name).id
        commits.clear()
        assert client.get_or_create_experiment(name).id == experiment  # cached: no round trip
        made = []
        for index in range(5):
            run = client.create_run(
                name if index % 2 else experiment,  # by name or id: both cached
                name=f"r{index}",
                tags={"i": index},
                capture_code=False,
            )
            child = client.create_run(parent_id=run.id, capture_code=False)  # parent queued
            client.log_params(run.id, {"lr": 0.1, "i": index})
            client.log_metrics(run.id, {"auc": index / 10, "loss": 1.0}, step=0)
            client.log_artifact(run.id, tmp_path / "notes.txt", "docs")
            client.log_input(run.id, "churn", "sha256:" + "a" * 64, "train")
            client.set_terminated(child.id, "killed")
            client.set_terminated(run.id)
            made.append((run.id, child.id))
        assert commits == []  # all of it is still queued
        assert rows(shared_stores.metadata, runs, experiment_id=experiment) == []
        client.flush()
        assert len(commits) == 1
        store = shared_stores.metadata
        for index, (run_id, child_id) in enumerate(made):
            [row] = rows(store, runs, id=run_id)
            assert (row["name"], row["status"], row["end_time"] is not None) == (
                f"r{index}",
                "finished",
                True,
            )
            assert rows(store, runs, id=child_id)[0]["parent_id"] == run_id
            assert rows(store, runs, id=child_id)[0]["status"] == "killed"
            assert {r["key"]: r["value"] for r in rows(store, run_tags, run_id=run_id)} == {
                "i": str(index)
            }
            assert len(rows(store, run_params, run_id=run_id)) == 2
            assert metric_count(store, run_id) == 2
            assert [r["path"] for r in rows(store, run_artifacts, run_id=run_id)] == [
                "docs/notes.txt"
            ]
            assert [r["dataset"] for r in rows(store, run_inputs, run_id=run_id)] == ["churn"]
            assert row["heartbeat_at"] == row["end_time"]  # inserted ended, as set_terminated
        assert copies_of_start_times(store, [run for pair in made for run in pair]) == {
            (table, True): count
            for table, count in (("run_params", 10), ("run_tags", 5), ("run_latest_metrics", 10))
        }


def copies_of_start_times(store: MetadataStore, run_ids: list[str]) -> dict[tuple[str, bool], int]:
    """How many rows of each narrow table of these runs hold (or not) their run's start
    time, compared as stored (SQLite compares text: the copy must be byte for byte)."""
    counts: dict[tuple[str, bool], int] = {}
    with store.connect() as conn:
        for table in ("run_params", "run_tags", "run_latest_metrics"):
            found = conn.execute(
                sa.text(
                    f"SELECT t.start_time = r.start_time FROM {table} t "  # noqa: S608 - our table names
                    "JOIN runs r ON r.id = t.run_id WHERE t.run_id IN :ids"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": run_ids},
            ).scalars()
            for same in found:
                counts[(table, bool(same))] = counts.get((table, bool(same)), 0) + 1
    return counts


def test_values_carry_their_runs_start_time_whichever_flush_created_the_run(
    shared_stores: Stores,
) -> None:
    with TrackingClient(stores=shared_stores, flush_interval=NEVER) as client:
        experiment = unique()
        earlier = client.create_run(experiment, tags={"a": 1}, capture_code=False)
        client.flush()  # its values come in a later transaction: the writer looks it up
        later = client.create_run(experiment, capture_code=False)
        for run in (earlier, later):
            client.log_params(run.id, {"p": 1})
            client.set_tags(run.id, {"t": 2})
            client.log_metric(run.id, "m", 0.5, step=1)
            client.log_metric(run.id, "m", 0.7, step=2)
        client.flush()
        client.log_metric(earlier.id, "m", 0.9, step=3)  # an update keeps the copy
        client.set_terminated(earlier.id)
        client.flush()
        assert copies_of_start_times(shared_stores.metadata, [earlier.id, later.id]) == {
            ("run_params", True): 2,
            ("run_tags", True): 3,
            ("run_latest_metrics", True): 2,
        }
        page = client.search_runs([experiment], "params.p = '1' and metrics.m > 0.6")
        assert [run.id for run in page.runs] == [later.id, earlier.id]  # newest first
        assert page.runs[1].metrics == {"m": 0.9} and page.runs[1].status == "finished"


def test_sqlite_checkpoints_after_the_flush_not_inside_its_commit(tmp_path: Path) -> None:
    """The write-ahead log is copied into the database by the idle writer once a flush
    has returned, so it is empty of uncopied pages before the next commit: SQLite's own
    checkpoint, inside a commit a caller waits for, then has nothing to do."""
    stores = write_support.open_test_stores(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "a")
    statements: list[tuple[str, str]] = []

    def record(*args: object) -> None:
        statements.append((threading.current_thread().name, str(args[2])))

    sa.event.listen(stores.metadata.engine, "before_cursor_execute", record)
    try:
        with TrackingClient(stores=stores, flush_interval=NEVER) as client:
            run = client.create_run(unique(), capture_code=False)
            client.log_params(run.id, {f"p{index}": index for index in range(500)})
            client.flush()
            wait_for(lambda: any("wal_checkpoint" in sql for _, sql in statements))
            [(thread, _)] = [(t, sql) for t, sql in statements if "wal_checkpoint" in sql]
            assert thread.startswith("shipyard-tracking-writer")
            client.flush()  # the writer is done with it (a flush of nothing: no checkpoint)
            with stores.metadata.connect() as conn:  # nothing left to copy
                [(busy, log, copied)] = conn.exec_driver_sql("PRAGMA wal_checkpoint").all()
            assert busy == 0 and log > 0 and copied == log
    finally:
        sa.event.remove(stores.metadata.engine, "before_cursor_execute", record)
        stores.close()


def test_an_ended_run_refuses_writes_at_once_though_its_end_is_queued(
    shared_stores: Stores,
) -> None:
    with TrackingClient(stores=shared_stores, flush_interval=NEVER) as client:
        run = client.create_run(unique(), capture_code=False)
        client.log_metric(run.id, "loss", 0.5)
        client.set_terminated(run.id, "failed", error="diverged")
        with pytest.raises(RunStateError, match=f"Run {run.id} is failed"):
            client.log_metric(run.id, "loss", 0.4)
        with pytest.raises(RunStateError, match="already ended"):
            client.set_terminated(run.id)
        ended = client.get_run(run.id)
        assert (ended.status, ended.error, ended.metrics) == ("failed", "diverged", {"loss": 0.5})


def test_a_run_queued_in_an_experiment_deleted_elsewhere_is_not_created(
    shared_stores: Stores,
) -> None:
    with (
        TrackingClient(stores=shared_stores, flush_interval=NEVER) as logger,
        TrackingClient(stores=shared_stores) as admin,
    ):
        name = unique()
        kept = logger.create_run(capture_code=False)  # Default: not deleted
        first = logger.create_run(name, capture_code=False)  # caches the experiment
        logger.flush()
        admin.delete_experiment(name)  # the logger's cache does not know yet
        run = logger.create_run(name, capture_code=False)
        logger.log_metric(run.id, "loss", 0.5)
        logger.log_metric(kept.id, "loss", 0.5)
        with pytest.raises(RunStateError, match=f"Run {run.id} was not created: its experiment"):
            logger.flush()
        assert rows(shared_stores.metadata, runs, id=run.id) == []
        assert metric_count(shared_stores.metadata, kept.id) == 1  # the rest was written
        with pytest.raises(RunStateError, match="is deleted"):  # the cache learnt it
            logger.create_run(name, capture_code=False)
        with pytest.raises(NotFoundError, match=run.id):
            logger.log_metric(run.id, "loss", 0.4)
        assert rows(shared_stores.metadata, runs, id=first.id)[0]["lifecycle"] == "deleted"


def test_values_are_written_within_a_flush_interval(shared_stores: Stores) -> None:
    with TrackingClient(stores=shared_stores, flush_interval=0.1) as client:
        run = client.create_run(unique(), capture_code=False)
        time.sleep(0.3)  # let the writer settle into its schedule
        client.log_metric(run.id, "loss", 0.5)
        waited = wait_for(lambda: metric_count(shared_stores.metadata, run.id) == 1)
        assert waited < 2.0  # 0.1 s and a commit; generous for a loaded CI machine


def test_a_full_batch_is_written_before_the_interval(shared_stores: Stores) -> None:
    with TrackingClient(stores=shared_stores) as client:
        run = client.create_run(unique(), capture_code=False)
    writer = Writer(shared_stores.metadata, flush_interval=NEVER, batch_size=100)
    try:
        writer.watch(run.id)
        now = time.time()
        for step in range(250):
            writer.put((METRIC, run.id, "loss", 0.5, step, now))
        wait_for(lambda: metric_count(shared_stores.metadata, run.id) >= 200, timeout=5)
    finally:
        writer.close()
    assert metric_count(shared_stores.metadata, run.id) == 250


def test_a_producer_faster_than_the_database_waits_instead_of_growing(
    shared_stores: Stores,
) -> None:
    with TrackingClient(stores=shared_stores) as client:
        run = client.create_run(unique(), capture_code=False)
    writer = Writer(shared_stores.metadata, flush_interval=NEVER, batch_size=50, max_pending=100)
    try:
        now = time.time()
        for step in range(3000):
            writer.put((METRIC, run.id, "loss", 0.5, step, now))
            assert len(writer._queue) <= 101
        writer.flush()
    finally:
        writer.close()
    assert metric_count(shared_stores.metadata, run.id) == 3000


def test_background_errors_surface_on_the_next_call_once(shared_stores: Stores) -> None:
    with (
        TrackingClient(stores=shared_stores, flush_interval=NEVER) as logger,
        TrackingClient(stores=shared_stores) as admin,
    ):
        run = logger.create_run(unique(), capture_code=False)
        other = logger.create_run(unique(), capture_code=False)
        logger.flush()  # the runs exist for other clients once flushed
        for step in range(10):
            logger.log_metric(run.id, "loss", 0.5, step=step)
            logger.log_metric(other.id, "loss", 0.5, step=step)
        admin.delete_run(run.id)  # while its values wait in the logger's queue
        with pytest.raises(RunStateError, match=f"Run {run.id} was deleted .* 10 values"):
            logger.flush()
        logger.flush()  # raised once, not forever
        assert metric_count(shared_stores.metadata, other.id) == 10  # the rest was written
        assert metric_count(shared_stores.metadata, run.id) == 0
        with pytest.raises(RunStateError, match="deleted"):
            logger.log_metric(run.id, "loss", 0.1)


def test_values_of_a_purged_run_are_reported_not_found(shared_stores: Stores) -> None:
    with (
        TrackingClient(stores=shared_stores, flush_interval=NEVER) as logger,
        TrackingClient(stores=shared_stores) as admin,
    ):
        run = logger.create_run(unique(), capture_code=False)
        logger.flush()
        logger.log_metric(run.id, "loss", 0.5)
        admin.delete_run(run.id)
        admin.purge()
        with pytest.raises(NotFoundError, match=f"Run {run.id} no longer exists .* 1 values"):
            logger.flush()
        with pytest.raises(NotFoundError, match=run.id):
            logger.log_metric(run.id, "loss", 0.5)


def test_an_unreachable_database_keeps_values_and_retries(
    postgres_admin_uri: str, postgres_uri: str, tmp_path: Path
) -> None:
    import psycopg

    database = postgres_uri.rpartition("/")[2]

    def allow_connections(allowed: bool) -> None:
        with psycopg.connect(postgres_admin_uri, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allowed}')
            if not allowed:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (database,),
                )

    with (
        write_support.open_test_stores(postgres_uri, tmp_path / "artifacts") as opened,
        TrackingClient(stores=opened, flush_interval=NEVER) as client,
    ):
        run = client.create_run(capture_code=False)
        client.log_metric(run.id, "loss", 0.9, step=0)
        client.flush()
        allow_connections(False)
        try:
            for step in range(1, 6):
                client.log_metric(run.id, "loss", 0.5, step=step)
            with pytest.raises(BackendUnavailableError, match="retried at every flush"):
                client.flush()
        finally:
            allow_connections(True)
        client.log_metric(run.id, "loss", 0.1, step=6)
        client.flush()
        assert logged_steps(opened.metadata, run.id) == set(range(7))
        assert client.get_run(run.id).metrics == {"loss": 0.1}


def test_a_forked_child_writes_only_its_own_values(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'metadata.db'}"
    with (
        write_support.open_test_stores(uri, tmp_path / "artifacts") as opened,
        TrackingClient(stores=opened, flush_interval=NEVER) as client,
    ):
        run = client.create_run(capture_code=False)
        for step in range(100):
            client.log_metric(run.id, "parent", 0.5, step=step)
        pid = os.fork()
        if pid == 0:  # the child: the parent's queue is not its to write
            code = 1
            try:
                child_run = client.create_run(capture_code=False)
                client.log_metric(child_run.id, "child", 1.0)
                client.log_metric(run.id, "from-child", 1.0)
                client.close()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        client.flush()
        keys = [row["key"] for row in rows(opened.metadata, run_metrics, run_id=run.id)]
        assert keys.count("parent") == 100 and keys.count("from-child") == 1


# --- Whole processes -----------------------------------------------------------------------


def child_code(body: str) -> str:
    """A child script: the fluent API imported, then ``body``."""
    return "import os, sys, time\nimport shipyard as sy\n" + textwrap.dedent(body)


def wait_for_progress(child: subprocess.Popen[str], progress: Path, lines: int) -> None:
    """Wait until the child has logged ``lines`` values; fail with its stderr if it died."""
    deadline = time.monotonic() + 60
    while not (progress.exists() and len(progress.read_text().splitlines()) >= lines):
        if child.poll() is not None:
            pytest.fail(f"the child exited early:\n{child.communicate()[1]}")
        if time.monotonic() > deadline:
            pytest.fail(f"the child logged fewer than {lines} values in 60 s")
        time.sleep(0.02)


def project_env(tmp_path: Path, metadata_uri: str) -> dict[str, str]:
    return {
        "SHIPYARD_PROJECT_DIR": str(tmp_path),
        "SHIPYARD_STORE_METADATA": metadata_uri,
        "SHIPYARD_STORE_ARTIFACTS": str(tmp_path / "artifacts"),
    }


def only_run(stores: Stores) -> dict[str, object]:
    [row] = rows(stores.metadata, runs)
    return row


def test_a_normal_exit_flushes_and_finishes_the_open_run(
    metadata_uri: str, stores: Stores, tmp_path: Path
) -> None:
    result = run_python(
        child_code(
            """
        sy.start_run("no-with")   # never ended by the script
        for step in range(5000):
            sy.log_metric("loss", 1 / (step + 1), step=step)
        sy.log_param("lr", 0.1)
        """
        ),
        env=project_env(tmp_path, metadata_uri),
    )
    assert result.returncode == 0, result.stderr
    run = only_run(stores)
    assert run["status"] == "finished" and run["error"] is None
    assert metric_count(stores.metadata, str(run["id"])) == 5000


def test_an_uncaught_exception_fails_the_open_run(
    metadata_uri: str, stores: Stores, tmp_path: Path
) -> None:
    result = run_python(
        child_code(
            """
        sy.start_run("crashes")
        for step in range(300):
            sy.log_metric("loss", 0.5, step=step)
        raise ValueError("the data ran out")
        """
        ),
        env=project_env(tmp_path, metadata_uri),
    )
    assert result.returncode == 1 and "the data ran out" in result.stderr
    run = only_run(stores)
    assert run["status"] == "failed" and run["error"] == "ValueError: the data ran out"
    assert metric_count(stores.metadata, str(run["id"])) == 300


def test_ctrl_c_kills_the_run_and_keeps_every_value(
    metadata_uri: str, stores: Stores, tmp_path: Path
) -> None:
    progress = tmp_path / "progress.txt"
    child = start_python(
        child_code(
            f"""
        with open({str(progress)!r}, "w", buffering=1) as out, sy.start_run("interrupted"):
            step = 0
            while True:
                sy.log_metric("loss", 0.5, step=step)
                out.write(f"{{step}}\\n")
                step += 1
                time.sleep(0.0005)
        """
        ),
        env=project_env(tmp_path, metadata_uri),
    )
    try:
        wait_for_progress(child, progress, 500)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert "KeyboardInterrupt" in stderr
    logged = {int(line) for line in progress.read_text().splitlines()}
    run = only_run(stores)
    assert run["status"] == "killed" and run["error"] == "KeyboardInterrupt"
    assert logged <= logged_steps(stores.metadata, str(run["id"]))


@pytest.mark.slow
def test_sigkill_loses_at_most_one_flush_interval(
    metadata_uri: str, stores: Stores, tmp_path: Path
) -> None:
    progress = tmp_path / "progress.txt"
    child = start_python(
        child_code(
            f"""
        with open({str(progress)!r}, "w", buffering=1) as out:
            sy.start_run("killed")
            step = 0
            while True:
                sy.log_metric("loss", 0.5, step=step)
                out.write(f"{{step}} {{time.time()!r}}\\n")  # logged by then
                step += 1
                time.sleep(0.0005)
        """
        ),
        env=project_env(tmp_path, metadata_uri),
    )
    try:
        wait_for_progress(child, progress, 2000)
        time.sleep(0.37)  # an instant unrelated to the flush schedule
        killed_at = time.time()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.communicate()
    logged = [line.split() for line in progress.read_text().splitlines() if line.count(" ") == 1]
    commit_allowance = 0.15  # the flush that was committing at the kill (a few ms idle)
    must_be_stored = {
        int(step)
        for step, at in logged
        if float(at) < killed_at - FLUSH_INTERVAL - commit_allowance
    }
    run = only_run(stores)
    stored = logged_steps(stores.metadata, str(run["id"]))
    assert must_be_stored <= stored, f"lost {sorted(must_be_stored - stored)[:10]}..."
    assert len(must_be_stored) > 1500
    lost = len(logged) - len(stored & {int(step) for step, _ in logged})
    assert lost < len(logged) // 2, f"{lost} of {len(logged)} values lost"
    # The run is left running; its stale heartbeat gets it failed.
    assert run["status"] == "running"
    with TrackingClient(stores=stores, stale_after_seconds=None) as client:
        assert client.mark_stale_runs(max_silence_seconds=0) == [run["id"]]
    [row] = rows(stores.metadata, runs, id=run["id"])
    assert row["status"] == "failed" and row["error"].startswith(STALE_ERROR_PREFIX)
    assert row["end_time"] == row["heartbeat_at"]


def test_a_run_marked_stale_while_alive_is_revived_by_its_writer(shared_stores: Stores) -> None:
    with (
        TrackingClient(stores=shared_stores, flush_interval=NEVER) as alive,
        TrackingClient(stores=shared_stores, stale_after_seconds=None) as other,
    ):
        run = alive.create_run(unique(), capture_code=False)
        alive.flush()
        assert run.id in other.mark_stale_runs(max_silence_seconds=0)
        assert rows(shared_stores.metadata, runs, id=run.id)[0]["status"] == "failed"
        alive.log_metric(run.id, "loss", 0.5)
        alive.flush()
        [row] = rows(shared_stores.metadata, runs, id=run.id)
        assert (row["status"], row["error"], row["end_time"]) == ("running", None, None)
        assert metric_count(shared_stores.metadata, run.id) == 1
        alive.set_terminated(run.id)
        alive.flush()  # the end is written with the next flush
        assert rows(shared_stores.metadata, runs, id=run.id)[0]["status"] == "finished"
