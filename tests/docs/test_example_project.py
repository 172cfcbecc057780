"""examples/churn, copied to a fresh folder and run step by step as its README says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from shipyard.cli.main import main
from shipyard.core.config import load_config
from shipyard.models.registry import ModelRegistry
from shipyard.pipelines.closed_loop import loop_history
from tests.conftest import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn"
SHIPYARD = Path(sys.executable).with_name("shipyard")


def cli(project: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["-C", str(project), *args])
    out, err = capsys.readouterr()
    return code, out + err


def script(project: Path, *args: str) -> str:
    done = subprocess.run(  # noqa: S603 (our own interpreter and scripts)
        [sys.executable, *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_ready(port: int, server: subprocess.Popen[bytes], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, "shipyard serve exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"shipyard serve was not ready on port {port} within {seconds} s")


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """OpenMP's threads (scikit-learn's gradient boosting) crawl on a shared, loaded
    machine (10x slower here); one thread, here and in the service, keeps time steady."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with threadpool_limits(1):
        yield


@pytest.mark.usefixtures("one_thread")
def test_example_project_runs_as_its_readme_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "churn"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".shipyard"))
    monkeypatch.chdir(project)
    monkeypatch.delenv("SHIPYARD_PROJECT_DIR", raising=False)

    out = script(project, "prepare_data.py")
    assert "customers.csv (4000 rows)" in out and "new_customers.csv (1000 rows" in out
    code, out = cli(
        project, capsys, "datasets", "ingest", "customers", "data/customers.csv",
        "--contract", "contract.toml",
    )  # fmt: skip
    assert code == 0, out
    assert "2 quarantined" in out and "customers@v1" in out

    code, out = cli(project, capsys, "features", "apply", "features.py")
    assert code == 0, out
    assert "churn_features@v1" in out
    code, out = cli(project, capsys, "features", "materialize")
    assert code == 0, out

    code, out = cli(project, capsys, "run", "train_churn", "--json")
    assert code == 0, out
    run, _ = json.JSONDecoder().raw_decode(out[out.index("{") :])
    assert run["status"] == "finished"
    train_run = next(s["step_run_id"] for s in run["steps"] if s["step"] == "train")

    code, out = cli(
        project, capsys, "models", "register", "churn", "--pipeline-run", run["run_id"][:12],
        "--step", "train", "--training-data", "churn_train", "--feature-service", "churn_features",
    )  # fmt: skip
    assert code == 0, out
    assert "churn@v1" in out
    with ModelRegistry.open(load_config(project)) as registry:
        registered = registry.get("churn@v1")
    assert registered.run_id == train_run  # lineage: the step's run and the data upstream
    assert registered.dataset_versions[:2] == ("churn_train@v1", "customers@v1")
    code, out = cli(
        project, capsys, "models", "evaluate", "churn@v1", "--data", "churn_holdout",
        "--label", "churn", "--gates-from-config",
    )  # fmt: skip
    assert code == 0, out
    assert "Recorded on churn@v1" in out
    code, out = cli(project, capsys, "models", "promote", "churn@v1", "champion", "--reason", "ok")
    assert code == 0, out

    port = free_port()
    env = {**os.environ, "SHIPYARD_SERVING_POLL_SECONDS": "0.5"}
    server = subprocess.Popen(  # noqa: S603
        [str(SHIPYARD), "serve", "churn@champion", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, server)
        out = script(
            project, "send_traffic.py", "--url", f"http://127.0.0.1:{port}", "--rows", "300"
        )
        assert "300 customers scored" in out
    finally:
        server.terminate()
        server.wait(timeout=30)

    code, out = cli(project, capsys, "monitor", "labels", "data/new_labels.csv")
    assert code == 0, out
    code, out = cli(project, capsys, "monitor", "check", "churn", "--window", "300")
    assert code == 1, out  # the shifted customers raise the alert
    assert "ALERT" in out and "number_customer_service_calls" in out

    code, out = cli(
        project, capsys, "datasets", "ingest", "customers", "data/customers.csv",
        "data/new_customers.csv", "--contract", "contract.toml",
    )  # fmt: skip
    assert code == 0, out
    assert "customers@v2" in out
    code, out = cli(project, capsys, "scheduler", "--max-ticks", "1")
    assert code == 0, out
    code, out = cli(project, capsys, "monitor", "history", "churn", "--json")
    assert code == 0, out
    # The episode trained a challenger and its fate follows its gates.
    with ModelRegistry.open(load_config(project)) as registry:
        (episode,) = loop_history(registry, model="churn")
        champion = registry.get("churn@champion")
    steps = [event["step"] for event in episode.events]
    assert steps[:3] == ["triggered", "trained", "evaluated"], steps
    assert episode.challenger_version == 2
    evaluated = next(e for e in episode.events if e["step"] == "evaluated")
    failed = [g for g in evaluated["figures"]["gates"] if g["status"] == "failed"]
    if failed:
        assert episode.outcome == "rejected" and champion.number == 1
    else:
        assert episode.outcome == "promoted" and champion.number == 2
