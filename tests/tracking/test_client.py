"""TrackingClient: experiments, runs, params, metrics, tags, inputs, artifacts, models.

The conformance part runs on SQLite and PostgreSQL (one store per backend per module;
each test makes its own runs and experiment names). Values are checked in the tables
the client writes and through the read API (``get_run``, ``get_metric_history``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.core.errors import AlreadyExistsError, NotFoundError, ReferenceError_
from shipyard.core.ids import content_id_of_bytes
from shipyard.store.metadata import BlobRef
from shipyard.store.schema import blob_refs
from shipyard.store.schema.tracking import (
    environments,
    experiments,
    run_artifacts,
    run_latest_metrics,
    run_metrics,
    run_params,
    run_tags,
    runs,
)
from shipyard.store.stores import Stores
from shipyard.tracking import capture
from shipyard.tracking.client import TrackingClient
from shipyard.tracking.runs import CODE_DIFF_PATH
from shipyard.tracking.validation import RunStateError, TrackingInputError
from tests.tracking import write_support
from tests.tracking.write_support import rows, unique

shared_uri = write_support.shared_uri
shared_stores = write_support.shared_stores
shared_client = write_support.shared_client

VERSION_ID = content_id_of_bytes(b"churn v1")


def blob_refs_of(stores: Stores, run_id: str) -> set[tuple[str, str]]:
    return {
        (row["blob_id"], row["role"])
        for row in rows(stores.metadata, blob_refs, owner_kind="run", owner_id=run_id)
    }


# --- Experiments -------------------------------------------------------------------------


def test_experiments_are_created_found_by_id_or_name_and_listed(
    shared_client: TrackingClient,
) -> None:
    name = unique()
    created = shared_client.create_experiment(name, "monthly churn", tags={"team": "growth"})
    assert created.name == name and created.lifecycle == "active"
    assert created.description == "monthly churn" and created.tags == {"team": "growth"}
    assert shared_client.get_experiment(created.id) == created
    assert shared_client.get_experiment(name) == created
    assert created in shared_client.list_experiments()
    assert shared_client.get_or_create_experiment(name) == created
    with pytest.raises(AlreadyExistsError, match=name):
        shared_client.create_experiment(name)


def test_get_or_create_experiment_creates_once(shared_client: TrackingClient) -> None:
    name = unique()
    first = shared_client.get_or_create_experiment(name)
    second = shared_client.get_or_create_experiment(name)
    assert first == second
    assert len(rows(shared_client.stores.metadata, experiments, name=name)) == 1


def test_unknown_experiment_is_not_found_with_close_names(shared_client: TrackingClient) -> None:
    name = unique("forecast")
    shared_client.create_experiment(name)
    with pytest.raises(NotFoundError, match=f"Did you mean '{name}'"):
        shared_client.get_experiment(name[:-1])


@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "1 to 250"), ("x" * 251, "1 to 250"), (" padded", "leading"), ("tab\there", "control")],
)
def test_bad_experiment_names_are_refused(
    shared_client: TrackingClient, name: str, problem: str
) -> None:
    with pytest.raises(TrackingInputError, match=problem):
        shared_client.create_experiment(name)


# --- Runs ------------------------------------------------------------------------------


def test_create_run_defaults(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(capture_code=False)
    assert shared_client.get_experiment("Default").id == run.experiment_id
    assert run.status == "running" and run.lifecycle == "active"
    assert run.name == f"run-{run.id[:8]}" and run.user == capture.current_user()
    assert run.end_time is None and run.start_time.tzinfo is not None
    shared_client.flush()  # the run is written with the next flush
    [row] = rows(shared_client.stores.metadata, runs, id=run.id)
    # The flush that writes the run may refresh its heartbeat too.
    assert row["status"] == "running" and row["heartbeat_at"] >= run.start_time
    assert shared_client.get_run(run.id).name == run.name


def test_environment_is_stored_once_for_every_run(shared_client: TrackingClient) -> None:
    first = shared_client.create_run(unique(), capture_code=False)
    other_client = TrackingClient(stores=shared_client.stores)
    second = other_client.create_run(unique(), capture_code=False)
    other_client.close()
    assert first.environment_id == second.environment_id == capture.capture_environment().id
    [environment] = rows(shared_client.stores.metadata, environments, id=first.environment_id)
    assert (
        environment["packages"]["sqlalchemy"]
        == capture.capture_environment().packages["sqlalchemy"]
    )
    assert environment["python_version"].endswith(
        f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    )


def test_nested_runs_live_in_their_parents_experiment(shared_client: TrackingClient) -> None:
    name = unique()
    parent = shared_client.create_run(name, name="parent", capture_code=False)
    child = shared_client.create_run(parent_id=parent.id, name="fold-1", capture_code=False)
    assert child.parent_id == parent.id and child.experiment_id == parent.experiment_id
    with pytest.raises(TrackingInputError, match="parent's experiment"):
        shared_client.create_run(unique(), parent_id=parent.id, capture_code=False)
    with pytest.raises(NotFoundError, match="f" * 32):
        shared_client.create_run(parent_id="f" * 32, capture_code=False)


def test_tags_given_at_creation_and_set_later(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), tags={"stage": "dev"}, capture_code=False)
    shared_client.set_tag(run.id, "stage", "prod")  # tags change: the last value wins
    shared_client.set_tags(run.id, {"owner": "ana", "n": 3})
    assert shared_client.get_run(run.id).tags == {"n": "3", "owner": "ana", "stage": "prod"}


def test_terminated_runs_record_status_time_and_error(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    shared_client.log_metric(run.id, "loss", 0.5)
    shared_client.set_terminated(run.id, "failed", "ValueError: bad input")
    ended = shared_client.get_run(run.id)
    assert ended.status == "failed" and ended.error == "ValueError: bad input"
    assert ended.end_time is not None and ended.end_time >= ended.start_time
    assert ended.metrics == {"loss": 0.5}
    with pytest.raises(RunStateError, match="already ended"):
        shared_client.set_terminated(run.id)
    with pytest.raises(TrackingInputError, match="'done'"):
        shared_client.set_terminated(shared_client.create_run(capture_code=False).id, "done")


def test_resume_run_reopens_an_ended_run(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    shared_client.log_param(run.id, "lr", 0.1)
    shared_client.set_terminated(run.id, "killed")
    resumed = shared_client.resume_run(run.id)
    assert resumed.status == "running" and resumed.end_time is None
    with pytest.raises(AlreadyExistsError, match="lr"):  # the reopened run keeps its params
        shared_client.log_param(run.id, "lr", 0.2)
    shared_client.log_metric(run.id, "loss", 0.25)
    shared_client.set_terminated(run.id)
    assert shared_client.get_run(run.id).metrics == {"loss": 0.25}


# --- Code version ------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=T", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with one commit whose train.py is the entry point of this 'process'."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('v1')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "v1")
    monkeypatch.setattr(sys, "argv", [str(repo / "train.py")])
    return repo


def test_run_records_commit_dirtiness_and_diff(
    shared_client: TrackingClient, git_repo: Path
) -> None:
    commit = _git(git_repo, "rev-parse", "HEAD").strip()
    clean = shared_client.create_run(unique())
    assert (clean.git_commit, clean.git_dirty, clean.code_diff_blob) == (commit, False, None)
    assert clean.source == str((git_repo / "train.py").resolve())

    (git_repo / "train.py").write_text("print('v2')\n")
    (git_repo / "untracked.txt").write_text("not part of the diff\n")
    dirty = shared_client.create_run(unique())
    diff = _git(git_repo, "diff", "HEAD").encode()
    assert dirty.git_commit == commit and dirty.git_dirty is True
    assert dirty.code_diff_blob == content_id_of_bytes(diff)
    stores = shared_client.stores
    assert stores.artifacts.get_bytes(content_id_of_bytes(diff)) == diff
    assert b"+print('v2')" in diff and b"untracked" not in diff
    [entry] = shared_client.list_artifacts(dirty.id)
    assert (entry.path, entry.kind, entry.size) == (CODE_DIFF_PATH, "diff", len(diff))
    assert (dirty.code_diff_blob, "code_diff") in blob_refs_of(stores, dirty.id)


def test_a_huge_diff_is_cut(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch, shared_client: TrackingClient
) -> None:
    monkeypatch.setattr(capture, "MAX_DIFF_BYTES", 4096)
    (git_repo / "train.py").write_text("".join(f"print({i})\n" for i in range(20_000)))
    code = capture.capture_code(git_repo)
    assert code is not None and code.dirty
    assert len(code.diff) < 4096 + 100 and code.diff.endswith(b"diff cut at 4,096 bytes\n")
    run = shared_client.create_run(unique())
    assert run.code_diff_blob is not None
    stored = shared_client.stores.artifacts.get_bytes(content_id_of_bytes(code.diff))
    assert stored == code.diff and run.code_diff_blob == content_id_of_bytes(code.diff)


def test_outside_a_repository_the_code_version_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_client: TrackingClient
) -> None:
    script = tmp_path / "loose.py"
    script.write_text("")
    monkeypatch.setattr(sys, "argv", [str(script)])
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert capture.capture_code() is None
    run = shared_client.create_run(unique())
    assert (run.git_commit, run.git_dirty, run.code_diff_blob) == (None, None, None)


# --- Params and metrics --------------------------------------------------------------------


def test_params_are_stringified_and_immutable(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    shared_client.log_params(run.id, {"lr": 0.1, "depth": 6, "model": "gbm", "none": None})
    shared_client.log_param(run.id, "lr", 0.1)  # the same value again is fine
    with pytest.raises(AlreadyExistsError, match="'lr' of run .* is already '0.1'"):
        shared_client.log_param(run.id, "lr", 0.2)
    with pytest.raises(AlreadyExistsError):  # all checked before any is queued
        shared_client.log_params(run.id, {"fresh": 1, "depth": 7})
    assert shared_client.get_run(run.id).params == {
        "depth": "6",
        "lr": "0.1",
        "model": "gbm",
        "none": "None",
    }


def test_a_param_conflict_with_another_client_surfaces_at_the_next_call(
    shared_stores: Stores,
) -> None:
    with (
        TrackingClient(stores=shared_stores) as first,
        TrackingClient(stores=shared_stores) as second,
    ):
        run = first.create_run(unique(), capture_code=False)
        first.flush()  # the run exists for other clients once flushed
        second.log_metric(run.id, "warm", 1.0)  # the second client caches the run now
        first.log_param(run.id, "lr", "0.1")
        first.flush()
        second.log_param(run.id, "lr", "0.2")  # unknown to its cache: queued
        with pytest.raises(AlreadyExistsError, match="already logged as '0.1'"):
            second.flush()
        with pytest.raises(AlreadyExistsError):  # now it knows
            second.log_param(run.id, "lr", "0.3")
        second.log_param(run.id, "lr", "0.1")
        assert first.get_run(run.id).params == {"lr": "0.1"}


def test_metric_history_and_latest_value(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    for step, value in [(2, 0.5), (0, 0.9), (1, 0.7)]:  # logged out of order
        shared_client.log_metric(run.id, "loss", value, step=step)
    shared_client.log_metric(run.id, "auc", 0.8, step=5, timestamp=1_000.0)
    shared_client.log_metric(run.id, "auc", 0.85, step=5, timestamp=2_000.0)  # tie: latest wins
    shared_client.log_metric(run.id, "auc", 0.99, step=4, timestamp=3_000.0)  # lower step
    shared_client.log_metrics(run.id, {"precision": 0.6, "recall": 0.7}, step=3)
    history = shared_client.get_metric_history(run.id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.7), (2, 0.5)]
    assert all(abs(m.timestamp - time.time()) < 60 for m in history)
    assert shared_client.get_run(run.id).metrics == {
        "auc": 0.85,
        "loss": 0.5,
        "precision": 0.6,
        "recall": 0.7,
    }
    [latest] = rows(shared_client.stores.metadata, run_latest_metrics, run_id=run.id, key="auc")
    assert (latest["step"], latest["timestamp"]) == (5, 2_000.0)


def test_nan_and_infinities_are_stored_as_such(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    for step, value in enumerate([float("nan"), float("inf"), float("-inf"), 1.5]):
        shared_client.log_metric(run.id, "odd", value, step=step)
    shared_client.log_metric(run.id, "last_nan", float("nan"))
    values = [m.value for m in shared_client.get_metric_history(run.id, "odd")]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 1.5]
    assert math.isnan(shared_client.get_run(run.id).metrics["last_nan"])


def test_numpy_and_integer_values_are_accepted(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    shared_client.log_metric(run.id, "f32", np.float32(0.5), step=np.int64(3))
    shared_client.log_metric(run.id, "i64", np.int64(7))
    shared_client.log_metric(run.id, "int", 2)
    shared_client.log_metric(run.id, "zero_d", np.array(0.25))
    shared_client.log_metric(run.id, "big", 10**300)
    metrics = shared_client.get_run(run.id).metrics
    assert metrics == {"big": 1e300, "f32": 0.5, "i64": 7.0, "int": 2.0, "zero_d": 0.25}
    assert all(type(value) is float for value in metrics.values())
    [history] = shared_client.get_metric_history(run.id, "f32")
    assert history.step == 3


def test_dataset_inputs_are_linked(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    shared_client.log_input(run.id, "churn", VERSION_ID)
    shared_client.log_input(run.id, "churn", VERSION_ID)  # idempotent
    shared_client.log_input(run.id, "churn", VERSION_ID, role="test")
    inputs = {(i.dataset, i.version_id, i.role) for i in shared_client.get_run(run.id).inputs}
    assert inputs == {("churn", VERSION_ID, "train"), ("churn", VERSION_ID, "test")}
    with pytest.raises(ReferenceError_, match="not a content id"):
        shared_client.log_input(run.id, "churn", "v1")
    with pytest.raises(ReferenceError_, match="dataset name"):
        shared_client.log_input(run.id, "../churn", VERSION_ID)


# --- Bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "1 to 250"),
        ("k" * 251, "251 characters"),
        ("loss;drop", "contains ';'"),
        ("val\nloss", "contains '\\\\n'"),
        (" loss", "at its start or end"),
        (42, "is a int"),
        (None, "is a NoneType"),
    ],
)
def test_bad_keys_are_refused_naming_the_key(
    shared_client: TrackingClient, key: Any, message: str
) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    for log in (
        lambda: shared_client.log_metric(run.id, key, 1.0),
        lambda: shared_client.log_param(run.id, key, 1),
        lambda: shared_client.set_tag(run.id, key, "x"),
    ):
        with pytest.raises(TrackingInputError, match=message):
            log()
    assert shared_client.get_run(run.id).params == {}


def test_good_keys_with_every_allowed_character(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    key = "val/loss-2.final_x y" + "k" * 230
    shared_client.log_metric(run.id, key, 1.0)
    shared_client.log_param(run.id, "précision", 1)
    assert shared_client.get_run(run.id).metrics == {key: 1.0}
    assert shared_client.get_run(run.id).params == {"précision": "1"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "boolean"),
        (np.bool_(False), "boolean"),
        ("0.5", "'0.5' \\(str\\)"),
        (None, "None \\(NoneType\\)"),
        ([0.5], "list"),
        (np.array([0.5, 0.6]), "ndarray"),
        (10**400, "does not fit in a float"),
    ],
)
def test_metric_values_must_be_real_numbers(
    shared_client: TrackingClient, value: Any, message: str
) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    with pytest.raises(TrackingInputError, match=message):
        shared_client.log_metric(run.id, "loss", value)
    with pytest.raises(TrackingInputError, match=message):
        shared_client.log_metrics(run.id, {"fine": 1.0, "loss": value})
    assert shared_client.get_run(run.id).metrics == {}  # nothing half-logged


@pytest.mark.parametrize(
    ("step", "timestamp", "message"),
    [
        (-1, None, "steps are 0 to"),
        (1.5, None, "whole numbers"),
        (True, None, "whole numbers"),
        ("3", None, "whole numbers"),
        (2**63, None, "steps are 0 to"),
        (None, 1_767_225_600_000.0, "milliseconds"),  # 2026-01-01 in ms: a fixed test id
        (None, float("nan"), "finite"),
        (None, -1.0, ">= 0"),
        (None, "now", "seconds since the epoch"),
    ],
)
def test_bad_steps_and_timestamps_are_refused(
    shared_client: TrackingClient, step: Any, timestamp: Any, message: str
) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    with pytest.raises(TrackingInputError, match=message):
        shared_client.log_metric(run.id, "loss", 0.5, step=step, timestamp=timestamp)


def test_param_values_have_a_length_limit(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    shared_client.log_param(run.id, "ok", "x" * 6000)
    with pytest.raises(TrackingInputError, match="6,001 characters long; the limit is 6,000"):
        shared_client.log_param(run.id, "long", "x" * 6001)
    with pytest.raises(TrackingInputError, match="limit is 6,000"):
        shared_client.set_tag(run.id, "long", "x" * 6001)
    with pytest.raises(TrackingInputError, match="mapping"):
        shared_client.log_params(run.id, [("a", 1)])  # type: ignore[arg-type]


def test_unknown_runs_are_not_found_by_id(shared_client: TrackingClient) -> None:
    missing = "0" * 32
    for call in (
        lambda: shared_client.log_metric(missing, "loss", 1.0),
        lambda: shared_client.log_param(missing, "lr", 1),
        lambda: shared_client.set_tag(missing, "a", "b"),
        lambda: shared_client.log_text(missing, "x", "a.txt"),
        lambda: shared_client.set_terminated(missing),
        lambda: shared_client.get_run(missing),
    ):
        with pytest.raises(NotFoundError, match=missing):
            call()
    with pytest.raises(TrackingInputError, match="run id"):
        shared_client.log_metric(12345, "loss", 1.0)  # type: ignore[arg-type]


def test_ended_runs_take_no_more_values(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    shared_client.set_terminated(run.id)
    fresh = TrackingClient(stores=shared_client.stores)  # a client that never saw the run
    for client in (shared_client, fresh):
        for call in (
            lambda c=client: c.log_metric(run.id, "loss", 1.0),
            lambda c=client: c.log_param(run.id, "lr", 1),
            lambda c=client: c.set_tag(run.id, "a", "b"),
            lambda c=client: c.log_input(run.id, "churn", VERSION_ID),
            lambda c=client: c.log_text(run.id, "x", "a.txt"),
        ):
            with pytest.raises(RunStateError, match=f"Run {run.id} is finished"):
                call()
    fresh.close()
    assert rows(shared_client.stores.metadata, run_metrics, run_id=run.id) == []


def test_a_closed_client_refuses_writes(shared_stores: Stores) -> None:
    client = TrackingClient(stores=shared_stores)
    run = client.create_run(unique(), capture_code=False)
    client.close()
    with pytest.raises(RunStateError, match="closed"):
        client.log_metric(run.id, "loss", 1.0)
    with pytest.raises(RunStateError, match="closed"):
        client.create_run(capture_code=False)


# --- Artifacts -----------------------------------------------------------------------------


def test_files_and_folders_land_where_documented(
    shared_client: TrackingClient, tmp_path: Path
) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    (tmp_path / "roc.png").write_bytes(b"\x89PNG fake")
    reports = tmp_path / "reports"
    (reports / "deep").mkdir(parents=True)
    (reports / "summary.md").write_text("# churn\n")
    (reports / "deep" / "table.csv").write_text("a,b\n1,2\n")
    shared_client.log_artifact(run.id, tmp_path / "roc.png")
    shared_client.log_artifact(run.id, str(tmp_path / "roc.png"), "plots")
    shared_client.log_artifact(run.id, reports)
    shared_client.log_artifact(run.id, reports, "eval/v1")
    entry = shared_client.log_text(run.id, "notes", "notes/a.md")
    listed = {e.path: e for e in shared_client.list_artifacts(run.id)}
    assert sorted(listed) == [
        "eval/v1/reports/deep/table.csv",
        "eval/v1/reports/summary.md",
        "notes/a.md",
        "plots/roc.png",
        "reports/deep/table.csv",
        "reports/summary.md",
        "roc.png",
    ]
    assert listed["roc.png"].blob_id == content_id_of_bytes(b"\x89PNG fake")
    assert listed["roc.png"].size == 9 and listed["roc.png"].kind == "file"
    assert entry == listed["notes/a.md"]
    refs = blob_refs_of(shared_client.stores, run.id)
    assert {(e.blob_id, f"artifact:{e.path}") for e in listed.values()} == refs
    assert [e.path for e in shared_client.list_artifacts(run.id, "reports")] == [
        "reports/deep/table.csv",
        "reports/summary.md",
    ]


def test_downloads_keep_artifact_paths(shared_client: TrackingClient, tmp_path: Path) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("A")
    (folder / "sub" / "b.txt").write_text("B")
    shared_client.log_artifact(run.id, folder)
    target = shared_client.download_artifacts(run.id, "out", tmp_path / "dl")
    assert target == tmp_path / "dl" / "out"
    assert (target / "a.txt").read_text() == "A" and (target / "sub" / "b.txt").read_text() == "B"
    single = shared_client.download_artifacts(run.id, "out/sub/b.txt", tmp_path / "one")
    assert single.read_text() == "B"
    everything = shared_client.download_artifacts(run.id, "", tmp_path / "all")
    assert sorted(p.relative_to(everything).as_posix() for p in everything.rglob("*.txt")) == [
        "out/a.txt",
        "out/sub/b.txt",
    ]
    with pytest.raises(NotFoundError, match="no artifact at 'out/missing'"):
        shared_client.download_artifacts(run.id, "out/missing", tmp_path / "x")


def test_logging_a_path_again_replaces_it_and_its_blob_reference(
    shared_client: TrackingClient,
) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    old = shared_client.log_text(run.id, "epoch 1", "checkpoint.txt")
    new = shared_client.log_text(run.id, "epoch 2", "checkpoint.txt")
    assert shared_client.list_artifacts(run.id) == [new]
    assert blob_refs_of(shared_client.stores, run.id) == {(new.blob_id, "artifact:checkpoint.txt")}
    assert old.blob_id != new.blob_id


def test_a_long_artifact_path_gets_a_bounded_unique_role(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    long_a = "deep/" * 50 + "a.txt"
    long_b = "deep/" * 50 + "b.txt"
    shared_client.log_text(run.id, "a", long_a)
    shared_client.log_text(run.id, "b", long_b)
    shared_client.flush()
    roles = {role for _, role in blob_refs_of(shared_client.stores, run.id)}
    assert len(roles) == 2 and all(len(role) <= 128 for role in roles)
    assert sorted(e.path for e in shared_client.list_artifacts(run.id)) == [long_a, long_b]


@pytest.mark.parametrize("path", ["../escape", "/abs/path", "a/../../b", "C:\\windows", "a\x00b"])
def test_artifact_paths_cannot_escape_the_run(
    shared_client: TrackingClient, tmp_path: Path, path: str
) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(TrackingInputError, match="artifact"):
        shared_client.log_artifact(run.id, tmp_path / "f.txt", path)
    with pytest.raises(TrackingInputError, match="artifact path"):
        shared_client.log_text(run.id, "x", path)
    assert shared_client.list_artifacts(run.id) == []


def test_bad_local_paths_are_refused_before_anything_is_stored(
    shared_client: TrackingClient, tmp_path: Path
) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    with pytest.raises(NotFoundError, match="no such file or folder"):
        shared_client.log_artifact(run.id, tmp_path / "missing.csv")
    folder = tmp_path / "with-fifo"
    folder.mkdir()
    content = unique("content").encode()
    (folder / "a.txt").write_bytes(content)
    os.mkfifo(folder / "pipe")
    with pytest.raises(TrackingInputError, match="pipe is not a regular file"):
        shared_client.log_artifact(run.id, folder)
    assert shared_client.list_artifacts(run.id) == []
    assert not shared_client.stores.artifacts.exists(content_id_of_bytes(content))


def test_empty_folder_logs_nothing(shared_client: TrackingClient, tmp_path: Path) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    (tmp_path / "empty").mkdir()
    assert shared_client.log_artifact(run.id, tmp_path / "empty") == []


def test_a_large_file_is_streamed_not_read_into_memory(tmp_path: Path) -> None:
    # Streaming is the artifact path's business, not the database's: one backend is enough.
    stores = write_support.open_test_stores(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "a")
    with stores, TrackingClient(stores=stores) as client:
        run = client.create_run(capture_code=False)
        big = tmp_path / "big" / "weights.bin"
        big.parent.mkdir()
        chunk = os.urandom(1 << 20)
        with big.open("wb") as handle:
            for _ in range(32):
                handle.write(chunk)
        for index in range(300):  # a folder with many small files too
            (big.parent / f"shard-{index:03d}.txt").write_text(str(index))
        tracemalloc.start()
        try:
            entries = client.log_artifact(run.id, big.parent)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(entries) == 301
        assert peak < 8 * (1 << 20), f"logging a 32 MiB file peaked at {peak:,} bytes"
        [weights] = [e for e in entries if e.path == "big/weights.bin"]
        assert weights.size == 32 << 20
        restored = client.download_artifacts(run.id, "big/weights.bin", tmp_path / "dl")
        assert restored.read_bytes()[: 1 << 20] == chunk and restored.stat().st_size == 32 << 20


def test_artifacts_work_on_s3(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    from shipyard.store.artifacts_factory import open_artifact_store
    from shipyard.store.metadata import open_metadata_store

    metadata = open_metadata_store(f"sqlite:///{tmp_path / 'metadata.db'}")
    artifacts = open_artifact_store(f"s3://{s3_bucket}/runs", s3_endpoint_url=s3_endpoint)
    with (
        Stores(metadata, artifacts) as stores,
        TrackingClient(stores=stores) as client,
    ):
        run = client.create_run(capture_code=False)
        folder = tmp_path / "report"
        folder.mkdir()
        (folder / "a.txt").write_text("on s3")
        client.log_artifact(run.id, folder)
        restored = client.download_artifacts(run.id, "report/a.txt", tmp_path / "dl")
        assert restored.read_text() == "on s3"
        assert artifacts.exists(content_id_of_bytes(b"on s3"))


# --- Models --------------------------------------------------------------------------------


def test_log_model_saves_through_formats_and_loads_back(
    shared_client: TrackingClient, tmp_path: Path, datasets_dir: Path
) -> None:
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    from shipyard.formats import load_model

    frame = pd.read_csv(datasets_dir / "credit_data.csv").dropna()
    target = frame.pop("Status")
    frame = frame.select_dtypes("number")
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(frame, target)
    run = shared_client.create_run(unique(), capture_code=False)
    info = shared_client.log_model(run.id, model, "churn-model", input_example=frame.head())
    entries = shared_client.list_artifacts(run.id, "churn-model")
    assert {e.kind for e in entries} == {"model"}
    assert "churn-model/shipyard-model.json" in {e.path for e in entries}
    stored = {e.path: e.blob_id for e in entries}
    assert all(stored[f"churn-model/{f.name}"] == f.content_id for f in info.files)
    folder = shared_client.download_artifacts(run.id, "churn-model", tmp_path / "dl")
    restored = load_model(folder)
    assert (restored.predict(frame.head(50)) == model.predict(frame.head(50))).all()
    with pytest.raises(TrackingInputError, match="model name"):
        shared_client.log_model(run.id, model, "../outside")


def test_blob_refs_name_the_run_and_path(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    entry = shared_client.log_text(run.id, "hello", "hello.txt")
    expected = BlobRef(entry.blob_id, "run", run.id, "artifact:hello.txt")
    shared_client.flush()
    [row] = rows(shared_client.stores.metadata, blob_refs, owner_id=run.id)
    assert BlobRef(row["blob_id"], row["owner_kind"], row["owner_id"], row["role"]) == expected
    [artifact] = rows(shared_client.stores.metadata, run_artifacts, run_id=run.id)
    assert artifact["blob_id"] == entry.blob_id


def test_tags_and_params_tables_hold_what_was_logged(shared_client: TrackingClient) -> None:
    run = shared_client.create_run(unique(), capture_code=False)
    shared_client.log_param(run.id, "lr", 0.1)
    shared_client.set_tag(run.id, "team", "growth")
    shared_client.flush()
    metadata = shared_client.stores.metadata
    assert [(r["key"], r["value"]) for r in rows(metadata, run_params, run_id=run.id)] == [
        ("lr", "0.1")
    ]
    assert [(r["key"], r["value"]) for r in rows(metadata, run_tags, run_id=run.id)] == [
        ("team", "growth")
    ]


def test_search_runs_is_wired_to_the_query_engine(shared_client: TrackingClient) -> None:
    name = unique()
    good = shared_client.create_run(name, name="good", capture_code=False)
    bad = shared_client.create_run(name, name="bad", capture_code=False)
    shared_client.log_metric(good.id, "auc", 0.9)
    shared_client.log_metric(bad.id, "auc", 0.6)
    page = shared_client.search_runs([name], "metrics.auc > 0.8")
    assert [run.id for run in page.runs] == [good.id]
    ordered = shared_client.search_runs([name], order_by=["metrics.auc ASC"])
    assert [run.name for run in ordered.runs] == ["bad", "good"]
