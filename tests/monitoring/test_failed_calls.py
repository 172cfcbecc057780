"""A served canary that fails on a planted input: its failures reach the prediction log,
and the canary's error rate is failures over every request of its arm."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from shipyard.models import ModelRegistry
from shipyard.monitoring.prediction_log import PredictionLogWriter, log_failed_call
from shipyard.pipelines.canary import Canary, judge_canary
from shipyard.store.schema.monitoring import prediction_log
from shipyard.store.stores import open_stores
from tests.serving.helpers import FEATURES, ChurnProject, Client, build_project, running_service

PLANTED = 4242
"""An account length no customer has: the challenger's bug raises on it."""


class FailsOnPlanted:
    """A challenger with a bug: it scores by service calls, and raises on one input."""

    def predict(self, frame: Any) -> Any:
        if (np.asarray(frame["account_length"]) == PLANTED).any():
            raise RuntimeError("lookup table has no entry for this account")
        calls = np.asarray(frame["number_customer_service_calls"], dtype=float)
        return np.clip(calls / 5.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> ChurnProject:
    built = build_project(tmp_path_factory.mktemp("failed_calls") / "project", datasets_dir)
    with ModelRegistry.open(built.config) as registry:
        challenger = registry.register(
            "churn",
            model=FailsOnPlanted(),
            input_example=built.frame[FEATURES].head(5),
            training_data="churn@v1",
            allow_pickle=True,
            task="regression",
        )
        registry.set_canary("churn", "champion", version=challenger.number, share=0.5)
    return built


def _rows(project: ChurnProject, prefix: str) -> dict[str, dict[str, Any]]:
    with open_stores(project.config) as stores, stores.metadata.connect() as conn:
        query = select(prediction_log).where(prediction_log.c.request_id.like(f"{prefix}%"))
        return {row["request_id"]: dict(row) for row in conn.execute(query).mappings()}


def test_a_served_canary_failing_on_a_planted_input_is_logged_and_judged(
    project: ChurnProject,
) -> None:
    since = datetime.now(UTC)
    statuses: dict[str, int] = {}
    answered: dict[str, Any] = {}
    with running_service(project, allow_pickle=True) as (_, port):
        client = Client(port)
        for index in range(60):
            record = project.record(index)
            if index % 2 == 0:
                record["account_length"] = PLANTED
            request_id = f"planted-{index}"
            statuses[request_id], answered[request_id] = client.predict(
                record, headers={"x-request-id": request_id}
            )
        # A client's mistake (it breaks the contract) never reaches a model: not logged.
        bad = {**project.record(0), "account_length": -1}
        status, _ = client.predict(bad, headers={"x-request-id": "planted-bad"})
        assert status == 422
        client.close()
    rows = _rows(project, "planted-")  # the service flushed its log when it stopped
    failed = {rid for rid, status in statuses.items() if status != 200}
    assert failed, "the canary got no planted input"
    # A bug in the model on a valid input is the server's fault: 500, naming the class.
    assert {statuses[rid] for rid in failed} == {500}
    assert {answered[rid]["error"] for rid in failed} == {"model_failed"}
    assert {answered[rid]["exception"] for rid in failed} == {"RuntimeError"}
    assert "planted-bad" not in rows
    assert set(rows) == set(statuses), "every answered or failed request is logged"
    for rid in failed:
        assert int(rid.split("-")[1]) % 2 == 0  # only planted inputs fail
        row = rows[rid]
        assert (row["arm"], row["version"], row["error"], row["score"]) == (
            "canary",
            3,
            "RuntimeError",
            None,
        )
        assert row["inputs"]["account_length"] == PLANTED
    scored = [row for rid, row in rows.items() if rid not in failed]
    assert all(row["error"] is None and row["score"] is not None for row in scored)
    canary_requests = sum(1 for row in rows.values() if row["arm"] == "canary")
    with ModelRegistry.open(project.config) as registry:
        figures = judge_canary(
            registry,
            Canary(share=0.5, min_requests=10, max_error_rate=0.05),
            registry.get("churn@v3"),
            1,
            since,
        )
    assert figures["requests"] == canary_requests > len(failed)
    assert figures["errors"] == len(failed)
    assert figures["error_rate"] == pytest.approx(len(failed) / canary_requests)
    assert figures["failed"] == [f"error rate {len(failed) / canary_requests:.2%} > 5.00%"]


def test_failed_records_stay_out_of_drift_and_performance_windows(
    project: ChurnProject,
) -> None:
    from shipyard.monitoring.log_window import read_log_window
    from shipyard.monitoring.performance_inputs import read_logged_predictions

    with ModelRegistry.open(project.config) as registry:
        champion = registry.get("churn@v1")
        writer = PredictionLogWriter(registry.stores.metadata, flush_interval=0.05)
        log_failed_call(
            writer,
            ZeroDivisionError("division by zero"),
            model="churn",
            alias="champion",
            arm="champion",
            version=champion,
            request_ids=["window-failed-0", "window-failed-1"],
            inputs=[project.record(0), project.record(1)],
            started=0.0,
        )
        writer.close()
        assert writer.written == 2
        rows = _rows(project, "window-failed-")
        assert {row["error"] for row in rows.values()} == {"ZeroDivisionError"}
        logged = read_log_window(
            registry.stores.metadata, champion, window=100_000, arms=("champion",)
        )
        assert not any(rid.startswith("window-failed-") for rid in logged.request_ids)
        predictions = read_logged_predictions(registry.stores.metadata, "churn", 1)
        assert not any(rid.startswith("window-failed-") for rid in predictions.request_ids)


def test_logging_a_failure_never_raises_over_the_request_s_own_error(
    project: ChurnProject, caplog: pytest.LogCaptureFixture
) -> None:
    with ModelRegistry.open(project.config) as registry:
        version = registry.get("churn@v1")
    arguments: dict[str, Any] = {
        "model": "churn",
        "alias": None,
        "arm": "champion",
        "version": version,
        "request_ids": ["a"],
        "inputs": [{}],
        "started": 0.0,
    }
    log_failed_call(None, RuntimeError("x"), **arguments)  # no log configured: nothing to do
    with caplog.at_level("WARNING", logger="shipyard.monitoring"):
        log_failed_call(_BrokenWriter(), RuntimeError("x"), **arguments)  # type: ignore[arg-type]
    assert "a failed call of churn was not logged: queue gone" in caplog.text


class _BrokenWriter:
    def log(self, record: Any) -> None:
        raise OSError("queue gone")
