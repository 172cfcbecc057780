"""Hot swap under load, canary and shadow, and the prediction log they write."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from shipyard.core.errors import NotFoundError
from shipyard.models import ModelRegistry
from shipyard.monitoring.labels import log_labels
from shipyard.store.schema.monitoring import prediction_labels, prediction_log
from shipyard.store.stores import open_stores
from tests.serving.helpers import ChurnProject, Client, running_service


@pytest.fixture
def registry(churn_project: ChurnProject) -> Iterator[ModelRegistry]:
    with ModelRegistry.open(churn_project.config) as opened:
        yield opened
        # Leave the shared project as the other tests expect it.
        config = opened.alias_config("churn", "champion")
        if config.canary is not None:
            opened.clear_canary("churn", "champion")
        if config.shadow is not None:
            opened.clear_shadow("churn", "champion")
        if config.version != 1:
            opened.set_alias("churn@v1", "champion", reason="reset after test")


def _log_rows(project: ChurnProject, request_id_prefix: str) -> list[dict[str, object]]:
    with open_stores(project.config) as stores, stores.metadata.connect() as conn:
        rows = conn.execute(
            select(prediction_log).where(prediction_log.c.request_id.like(f"{request_id_prefix}%"))
        ).mappings()
        return [dict(row) for row in rows]


def test_alias_move_under_load_swaps_with_zero_failed_requests(
    churn_project: ChurnProject, registry: ModelRegistry
) -> None:
    with running_service(churn_project) as (app, port):
        stop = threading.Event()
        results: list[tuple[int, int]] = []
        record = churn_project.record(1)

        def load() -> None:
            client = Client(port)
            while not stop.is_set():
                try:
                    status, body = client.predict(record)
                except Exception as exc:  # a dropped connection is a failure too
                    results.append((-1, 0))
                    print("client error", exc)
                    continue
                results.append((status, body.get("version", 0)))
            client.close()

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        registry.set_alias("churn@v2", "champion", reason="swap under load")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(v == 2 for _, v in results[-20:]):
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        for worker in workers:
            worker.join()
        statuses = {status for status, _ in results}
        assert statuses == {200}, f"failed requests during the swap: {statuses}"
        versions = [version for _, version in results]
        assert versions[0] == 1 and versions[-1] == 2
        first_two = versions.index(2)
        assert all(v == 2 for v in versions[first_two + 40 :])  # the swap sticks
        assert app.metrics.swaps.values[("churn",)] == 1


def test_canary_is_sticky_and_shadow_is_only_logged(
    churn_project: ChurnProject, registry: ModelRegistry
) -> None:
    registry.set_canary("churn", "champion", version=2, share=0.5, sticky_by="request")
    registry.set_shadow("churn", "champion", version=2)
    with running_service(churn_project) as (app, port):
        client = Client(port)
        record = churn_project.record(2)
        arms = {}
        for index in range(40):
            request_id = f"canary-{index}"
            first = client.predict(record, {"X-Request-ID": request_id})[1]
            again = client.predict(record, {"X-Request-ID": request_id})[1]
            assert (first["arm"], first["version"]) == (again["arm"], again["version"])
            arms[request_id] = (first["arm"], first["version"])
        assert {("champion", 1), ("canary", 2)} == set(arms.values())
        client.close()
        app.writer.flush()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the shadow runs after the answer is sent
            app.writer.flush()
            rows = _log_rows(churn_project, "canary-")
            if sum(row["arm"] == "shadow" for row in rows) == 40:
                break
            time.sleep(0.1)
    by_arm: dict[str, set[str]] = {}
    for row in rows:
        by_arm.setdefault(str(row["arm"]), set()).add(str(row["request_id"]))
        assert row["model"] == "churn" and row["alias"] == "champion"
    assert by_arm["shadow"] == set(arms)  # every record, whatever its arm
    assert all(row["version"] == 2 for row in rows if row["arm"] == "shadow")
    assert by_arm["canary"] == {rid for rid, (arm, _) in arms.items() if arm == "canary"}


def test_prediction_log_masks_drops_and_takes_labels(
    churn_project: ChurnProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.core.config import load_config

    monkeypatch.setenv("SHIPYARD_MONITORING_LOG_MASK", "account_length")
    monkeypatch.setenv("SHIPYARD_MONITORING_LOG_DROP", "voice_mail_plan, total_day_minutes")
    config = load_config(churn_project.folder)
    with running_service(churn_project, config=config) as (app, port):
        client = Client(port)
        record = dict(churn_project.record(3), total_day_minutes=5000.0)
        status, body = client.predict(record, {"X-Request-ID": "logged-1"})
        assert status == 200
        client.close()
        app.writer.flush()
    (row,) = _log_rows(churn_project, "logged-1")
    assert row["inputs"]["account_length"] == "***"
    assert "voice_mail_plan" not in row["inputs"] and "total_day_minutes" not in row["inputs"]
    assert row["inputs"]["total_eve_minutes"] == record["total_eve_minutes"]
    assert row["flags"] == [{"field": "total_day_minutes", "reason": body["flags"][0]["reason"]}]
    assert row["score"] == pytest.approx(body["score"]) and row["label"] == body["label"]
    assert row["threshold"] == 0.5 and row["version"] == 1 and row["latency_ms"] > 0
    log_labels("logged-1", "yes", config=config)
    log_labels("logged-1", "no", config=config)  # the last label wins
    with open_stores(config) as stores, stores.metadata.connect() as conn:
        label = conn.execute(
            select(prediction_labels.c.label).where(prediction_labels.c.request_id == "logged-1")
        ).scalar_one()
    assert label == "no"
    with pytest.raises(NotFoundError, match="no-such-request"):
        log_labels("no-such-request", 1, config=config)
