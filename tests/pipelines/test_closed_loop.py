"""The closed loop on real churn data: drift alert -> retrain -> gates -> canary -> decide."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shipyard.core.config import Config, load_config
from shipyard.core.errors import ConfigError, NotFoundError
from shipyard.evaluation.gates import champion, metric
from shipyard.models.registry import ModelRegistry
from shipyard.pipelines.closed_loop import Canary, ClosedLoop, Policy, loop_history
from shipyard.pipelines.scheduler import Scheduler
from tests.monitoring.loop_fixtures import ingest, make_project, read_churn, serve, shifted


@pytest.fixture(scope="module")
def churn(datasets_dir: Path) -> pa.Table:
    return read_churn(datasets_dir)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, churn: pa.Table) -> Path:
    """Champion churn@v1 serves a shifted batch; fresh (shifted) training data and holdout."""
    root = tmp_path_factory.mktemp("loop") / "project"
    config = make_project(root, churn, pipelines=True)
    ingest(config, "churn_holdout", shifted(churn.slice(4000, 1000)), root / "holdout.csv")
    serve(config, shifted(churn.slice(2300, 800)), prefix="shifted")
    ingest(config, "churn_train", shifted(churn.slice(1500, 2500)), root / "fresh.csv")
    return root


@pytest.fixture
def project(tmp_path: Path, template: Path) -> Config:
    root = tmp_path / "project"
    shutil.copytree(template, root)
    return load_config(root, environ={})


def _policy(**overrides: Any) -> Policy:
    values: dict[str, Any] = {
        "model": "churn",
        "pipeline": "train_churn",
        "evaluation_data": "churn_holdout",
        "label": "churn",
        "on": ["drift"],
        "gates": [metric("roc_auc", ">=", 0.6), champion(metric="roc_auc", max_drop=0.05)],
        "window": 800,
        "canary": Canary(share=0.2, min_requests=100, max_error_rate=0.01, max_p99_ms=50),
    }
    values.update(overrides)
    return Policy(**values)


def wait_for_workers(scheduler: Scheduler, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while scheduler.workers.running:
        assert time.monotonic() < deadline, f"episodes still running: {scheduler.workers.running}"
        time.sleep(0.2)
        scheduler.tick()


def _steps(run: Any) -> list[str]:
    return [event["step"] for event in run.events]


def test_drift_retrains_canary_passes_and_the_challenger_is_promoted(
    project: Config, churn: pa.Table
) -> None:
    policy = _policy()
    with ClosedLoop(project, [policy]) as loop:
        run = loop.check_and_start(policy)
        assert run is not None
        assert (run.stage, run.status, run.challenger_version) == ("canary", "running", 2)
        assert "prediction_drift" in run.trigger or "data_drift" in run.trigger
        config = loop.registry.alias_config("churn", "champion")
        assert config.version == 1 and config.canary is not None and config.canary.version == 2
        # Not enough canary traffic yet: the episode waits.
        assert loop.advance(run.id).stage == "canary"
        now = datetime.now(UTC)
        serve(
            project,
            shifted(churn.slice(3100, 150)),
            prefix="canary",
            arm="canary",
            reference="churn@v2",
            start=now,
        )
        run = loop.advance(run.id)
    assert (run.outcome, run.status) == ("promoted", "done")
    assert _steps(run) == [
        "triggered",
        "trained",
        "evaluated",
        "canary_started",
        "canary_cleared",
        "canary_judged",
        "promoted",
        "promoted",
    ]
    trained = run.events[1]["figures"]
    assert trained["datasets"] == ["churn_train@v2"]
    judged = run.events[5]["figures"]
    assert judged["requests"] == 150 and judged["errors"] == 0 and judged["failed"] == []
    with ModelRegistry.open(project) as registry:
        assert registry.get("churn@champion").number == 2
        assert registry.alias_config("churn", "champion").canary is None
        challenger = registry.get("churn@v2")
        assert challenger.dataset_versions == ("churn_train@v2",)
        # Lineage reaches the step run that trained it, a child of the pipeline's run.
        assert challenger.run_id is not None
        assert challenger.tags["shipyard.pipeline.run"] == trained["pipeline_run"]
        moves = registry.audit_log("churn")
        assert moves[0].actor == "policy:churn" and moves[0].to_version == 2


def test_a_canary_that_fails_its_criteria_is_rolled_back(project: Config, churn: pa.Table) -> None:
    policy = _policy()
    with ClosedLoop(project, [policy]) as loop:
        run = loop.check_and_start(policy)
        assert run is not None and run.stage == "canary"
        serve(
            project,
            shifted(churn.slice(3100, 150)),
            prefix="slow",
            arm="canary",
            reference="churn@v2",
            start=datetime.now(UTC),
            latency_ms=120.0,
            broken=True,
        )
        run = loop.advance(run.id)
    assert (run.outcome, run.stage) == ("rolled_back", "rolled_back")
    rolled = next(e for e in run.events if e["step"] == "rolled_back")
    assert "error rate 20.00% > 1.00%" in rolled["message"]
    assert "p99 latency 120.0 ms > 50 ms" in rolled["message"]
    with ModelRegistry.open(project) as registry:
        assert registry.get("churn@champion").number == 1
        assert registry.alias_config("churn", "champion").canary is None


def test_the_scheduler_runs_the_policy_and_gates_reject_the_challenger(project: Config) -> None:
    policy = _policy(gates=[metric("roc_auc", ">=", 0.99)], canary=None)
    messages: list[str] = []
    scheduler = Scheduler(project, pipelines=[], policies=[policy], log=messages.append)
    try:
        scheduler.tick()  # the check alerts; the episode trains in a worker process
        assert scheduler.workers.busy("churn")
        wait_for_workers(scheduler)
    finally:
        scheduler.close()
    [run] = loop_history(project, model="churn")
    assert (run.outcome, run.challenger_version) == ("rejected", 2)
    evaluated = next(e for e in run.events if e["step"] == "evaluated")
    assert evaluated["outcome"] == "failed" and "roc_auc" in evaluated["message"]
    assert any("rejected" in m for m in messages)
    with ModelRegistry.open(project) as registry:
        assert registry.get("churn@champion").number == 1


def test_clean_traffic_starts_no_episode(tmp_path: Path, churn: pa.Table) -> None:
    config = make_project(tmp_path / "clean", churn, pipelines=True)
    serve(config, churn.slice(1500, 800), prefix="clean")
    policy = _policy()
    with ClosedLoop(config, [policy]) as loop:
        assert loop.check_and_start(policy) is None
    assert loop_history(config) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"on": ["weather"]}, "on=\\['weather'\\]"),
        ({"on": []}, "non-empty list"),
        ({"on": "every day"}, "neither a list of alert triggers nor a cron"),
        ({"model": ""}, "model must be a non-empty string"),
        ({"model": "bad name!"}, "Policy"),
        ({"gates": ["roc_auc >= 0.8"]}, "gates must be"),
        ({"promote": "sometimes"}, "promote is 'sometimes'"),
        ({"window": 0}, "window must be"),
        ({"check_every": 5}, "check_every"),
        ({"executor": "cloud"}, "executor"),
        ({"canary": "yes"}, "canary must be"),
    ],
)
def test_bad_policies_are_refused_clearly(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _policy(**overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"share": 1.5}, "Canary.share"),
        ({"min_requests": 0}, "Canary.min_requests"),
        ({"max_error_rate": -1}, "Canary.max_error_rate"),
        ({"metric_vs_champion": "happiness"}, "not a binary classification metric"),
        ({"max_wait": timedelta(0)}, "Canary.max_wait"),
    ],
)
def test_bad_canaries_are_refused_clearly(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Canary(**overrides)


def test_unknown_model_and_duplicate_policies(project: Config) -> None:
    with pytest.raises(ConfigError, match="Two policies are named 'churn'"):
        ClosedLoop(project, [_policy(), _policy()])
    with ClosedLoop(project) as loop, pytest.raises(NotFoundError, match="'ghost'"):
        loop.start(_policy(model="ghost"), "manual")
