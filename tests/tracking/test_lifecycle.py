"""Deleting, restoring and purging runs and experiments; stale runs; garbage collection.

Each test gets a fresh store on SQLite and on PostgreSQL: purges and stale-run marking
act on the whole store.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.core.errors import AlreadyExistsError
from shipyard.core.ids import ContentId, content_id_of_bytes
from shipyard.store.gc import collect_garbage
from shipyard.store.schema import audit_events, blob_refs
from shipyard.store.schema.tracking import (
    experiments,
    run_artifacts,
    run_latest_metrics,
    run_metrics,
    run_params,
    run_tags,
    runs,
)
from shipyard.store.stores import Stores
from shipyard.tracking.batches import STALE_ERROR_PREFIX
from shipyard.tracking.client import TrackingClient
from shipyard.tracking.validation import RunStateError, TrackingInputError
from tests.tracking import write_support
from tests.tracking.write_support import rows

metadata_uri = write_support.metadata_uri
stores = write_support.stores
client = write_support.client


def lifecycle_of(client: TrackingClient, run_id: str) -> str:
    return str(rows(client.stores.metadata, runs, id=run_id)[0]["lifecycle"])


def test_deleting_a_run_deletes_its_children_and_restore_brings_them_back(
    client: TrackingClient,
) -> None:
    parent = client.create_run("churn", capture_code=False)
    child = client.create_run(parent_id=parent.id, capture_code=False)
    grandchild = client.create_run(parent_id=child.id, capture_code=False)
    client.delete_run(child.id)
    assert [lifecycle_of(client, r.id) for r in (parent, child, grandchild)] == [
        "active",
        "deleted",
        "deleted",
    ]
    assert client.get_run(child.id).deleted_at is not None
    page = client.search_runs(["churn"])
    assert [run.id for run in page.runs] == [parent.id]
    assert len(client.search_runs(["churn"], include_deleted=True).runs) == 3
    with pytest.raises(RunStateError, match="nested in run .* which is deleted"):
        client.restore_run(grandchild.id)
    client.restore_run(child.id)
    assert lifecycle_of(client, grandchild.id) == "active"
    assert client.get_run(child.id).deleted_at is None


def test_restoring_brings_back_only_what_was_deleted_together(client: TrackingClient) -> None:
    parent = client.create_run("churn", capture_code=False)
    early = client.create_run(parent_id=parent.id, capture_code=False)
    late = client.create_run(parent_id=parent.id, capture_code=False)
    client.delete_run(early.id)
    client.delete_run(parent.id)
    client.restore_run(parent.id)
    assert lifecycle_of(client, late.id) == "active"
    assert lifecycle_of(client, early.id) == "deleted"  # it was deleted on its own, before


def test_deleted_runs_take_no_writes(client: TrackingClient, tmp_path: Path) -> None:
    run = client.create_run(capture_code=False)
    client.log_metric(run.id, "loss", 0.5)
    client.delete_run(run.id)
    with pytest.raises(RunStateError, match=f"Run {run.id} is deleted"):
        client.log_metric(run.id, "loss", 0.4)
    with pytest.raises(RunStateError, match="deleted"):
        client.log_text(run.id, "x", "x.txt")
    with pytest.raises(RunStateError, match="deleted"):
        client.set_terminated(run.id)
    client.restore_run(run.id)
    client.log_metric(run.id, "loss", 0.3, step=1)
    assert client.get_run(run.id).metrics == {"loss": 0.3}


def test_deleting_an_experiment_deletes_its_runs_and_blocks_new_ones(
    client: TrackingClient,
) -> None:
    alone = client.create_run("churn", capture_code=False)
    client.delete_run(alone.id)
    together = client.create_run("churn", capture_code=False)
    other = client.create_run("fraud", capture_code=False)
    client.delete_experiment("churn")
    churn = client.get_experiment("churn")
    assert churn.lifecycle == "deleted" and churn.deleted_at is not None
    assert [e.name for e in client.list_experiments()] == ["fraud"]
    assert {e.name for e in client.list_experiments(include_deleted=True)} == {"churn", "fraud"}
    assert lifecycle_of(client, together.id) == "deleted"
    assert lifecycle_of(client, other.id) == "active"
    with pytest.raises(RunStateError, match="Experiment 'churn' is deleted"):
        client.create_run("churn", capture_code=False)
    with pytest.raises(AlreadyExistsError, match="exists but is deleted.*Restore it"):
        client.create_experiment("churn")
    with pytest.raises(RunStateError, match="experiment 'churn', which is deleted"):
        client.restore_run(together.id)
    client.restore_experiment(churn.id)
    assert lifecycle_of(client, together.id) == "active"
    assert lifecycle_of(client, alone.id) == "deleted"
    assert client.create_run("churn", capture_code=False).experiment_id == churn.id


def test_deleting_twice_and_restoring_an_active_run_are_no_ops(client: TrackingClient) -> None:
    run = client.create_run(capture_code=False)
    client.restore_run(run.id)
    client.delete_run(run.id)
    client.delete_run(run.id)
    client.restore_run(run.id)
    assert lifecycle_of(client, run.id) == "active"
    actions = [row["action"] for row in rows(client.stores.metadata, audit_events)]
    assert actions.count("run.delete") == 1 and actions.count("run.restore") == 1


def _fill(client: TrackingClient, run_id: str, tmp_path: Path, unique_text: str) -> None:
    client.log_params(run_id, {"lr": 0.1})
    client.set_tag(run_id, "team", "growth")
    client.log_metric(run_id, "loss", 0.5)
    client.log_input(run_id, "churn", content_id_of_bytes(b"v1"))
    client.log_text(run_id, unique_text, "unique.txt")
    client.log_text(run_id, "shared between runs", "shared.txt")
    client.flush()


def test_purge_removes_rows_and_refs_and_gc_frees_only_unused_blobs(
    client: TrackingClient, stores: Stores, tmp_path: Path
) -> None:
    doomed = client.create_run("churn", capture_code=False)
    child = client.create_run(parent_id=doomed.id, capture_code=False)
    kept = client.create_run("churn", capture_code=False)
    _fill(client, doomed.id, tmp_path, "only in the doomed run")
    _fill(client, child.id, tmp_path, "only in the child run")
    _fill(client, kept.id, tmp_path, "only in the kept run")
    client.set_terminated(doomed.id)
    client.delete_run(doomed.id)
    assert client.purge(older_than_seconds=3600) == 0  # deleted just now: too young
    assert client.purge() == 2  # the run and its child
    metadata = stores.metadata
    for run_id in (doomed.id, child.id):
        for table in (run_params, run_tags, run_metrics, run_latest_metrics, run_artifacts):
            assert rows(metadata, table, run_id=run_id) == []
        assert rows(metadata, runs, id=run_id) == []
        assert rows(metadata, blob_refs, owner_id=run_id) == []
    assert len(rows(metadata, run_params, run_id=kept.id)) == 1
    report = collect_garbage(stores.artifacts, metadata.referenced_blob_ids, grace_seconds=0)
    assert set(report.deleted_ids) == {
        content_id_of_bytes(b"only in the doomed run"),
        content_id_of_bytes(b"only in the child run"),
    }
    restored = client.download_artifacts(kept.id, "", tmp_path / "kept")
    assert (restored / "shared.txt").read_text() == "shared between runs"
    assert (restored / "unique.txt").read_text() == "only in the kept run"
    actions = [row["action"] for row in rows(metadata, audit_events)]
    assert actions.count("run.purge") == 2


def test_purging_an_experiment_removes_all_its_runs_and_code_diffs(
    client: TrackingClient, stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.tracking import capture

    diff = b"diff --git a/train.py b/train.py\n+changed\n"
    monkeypatch.setattr(
        capture, "capture_code", lambda folder=None: capture.CodeVersion("a" * 40, True, diff)
    )
    run = client.create_run("churn")
    assert run.code_diff_blob == content_id_of_bytes(diff)
    client.create_run("churn", capture_code=False)
    survivor = client.create_run("fraud", capture_code=False)
    client.delete_experiment("churn")
    assert client.purge() == 3  # two runs and the experiment
    assert [row["name"] for row in rows(stores.metadata, experiments)] == ["fraud"]
    assert [row["id"] for row in rows(stores.metadata, runs)] == [survivor.id]
    report = collect_garbage(stores.artifacts, stores.metadata.referenced_blob_ids, grace_seconds=0)
    assert ContentId(content_id_of_bytes(diff)) in report.deleted_ids
    churn_again = client.create_experiment("churn")  # the name is free again
    assert churn_again.lifecycle == "active"


def test_purge_refuses_a_negative_age(client: TrackingClient) -> None:
    with pytest.raises(TrackingInputError, match="older_than_seconds must be >= 0"):
        client.purge(older_than_seconds=-1)


# --- Stale runs -----------------------------------------------------------------------------


def _silence(client: TrackingClient, run_id: str, seconds: float) -> None:
    """Pretend the run's process last sent a heartbeat ``seconds`` ago."""
    client.flush()  # the client's runs are written with its next flush
    with client.stores.metadata.transaction() as conn:
        conn.execute(
            sa.update(runs)
            .where(runs.c.id == run_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def test_runs_whose_heartbeat_stopped_are_marked_failed(
    client: TrackingClient, stores: Stores
) -> None:
    with TrackingClient(stores=stores) as dead_process:
        dead = dead_process.create_run(capture_code=False)
        ended = dead_process.create_run(capture_code=False)
        dead_process.set_terminated(ended.id)
    alive = client.create_run(capture_code=False)
    _silence(client, dead.id, 120)
    _silence(client, ended.id, 120)
    _silence(client, alive.id, 120)  # but this client writes to it: alive by definition
    assert client.mark_stale_runs(max_silence_seconds=600) == []
    assert client.mark_stale_runs(max_silence_seconds=60) == [dead.id]
    [row] = rows(stores.metadata, runs, id=dead.id)
    assert row["status"] == "failed" and row["error"].startswith(STALE_ERROR_PREFIX)
    assert "no heartbeat for over 60 s" in row["error"]
    assert row["end_time"] == row["heartbeat_at"]
    assert rows(stores.metadata, runs, id=ended.id)[0]["status"] == "finished"
    assert rows(stores.metadata, runs, id=alive.id)[0]["status"] == "running"
    with pytest.raises(TrackingInputError, match="max_silence_seconds"):
        client.mark_stale_runs(max_silence_seconds=-5)


def test_opening_a_client_fails_long_silent_runs(stores: Stores) -> None:
    with TrackingClient(stores=stores) as first:
        run = first.create_run(capture_code=False)
        recent = first.create_run(capture_code=False)
    _silence_with = TrackingClient(stores=stores, stale_after_seconds=None)
    _silence(_silence_with, run.id, 3600)
    _silence(_silence_with, recent.id, 10)
    _silence_with.close()
    with TrackingClient(stores=stores):
        pass
    assert rows(stores.metadata, runs, id=run.id)[0]["status"] == "failed"
    assert rows(stores.metadata, runs, id=recent.id)[0]["status"] == "running"


def test_a_live_client_keeps_its_runs_heartbeat_fresh(stores: Stores) -> None:
    from shipyard.tracking import writer

    with TrackingClient(stores=stores, flush_interval=0.05) as client:
        client._writer._heartbeat_interval = 0.1  # instead of 5 s
        run = client.create_run(capture_code=False)
        _silence(client, run.id, 3600)
        start = datetime.now(UTC)
        deadline = start + timedelta(seconds=10)
        while rows(stores.metadata, runs, id=run.id)[0]["heartbeat_at"] < start:
            assert datetime.now(UTC) < deadline, "no heartbeat within 10 s"
            time.sleep(0.02)
    assert writer.HEARTBEAT_INTERVAL == 5.0
