"""The model service over real HTTP: contract, errors, metrics, OpenAPI, auth."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.serving.helpers import ChurnProject, Client, running_service


@pytest.fixture(scope="module")
def service(churn_project: ChurnProject) -> Iterator[tuple[Any, Client]]:
    with running_service(churn_project) as (app, port):
        client = Client(port)
        yield app, client
        client.close()


def test_single_record_gets_score_label_threshold_and_echoed_request_id(
    service: tuple[Any, Client], churn_project: ChurnProject
) -> None:
    _, client = service
    status, headers, body = client.request(
        "POST",
        "/v1/models/churn/predict",
        {"inputs": churn_project.record(0)},
        {"X-Request-ID": "req-1"},
    )
    assert status == 200, body
    assert headers["x-request-id"] == "req-1"
    assert body["request_id"] == "req-1"
    assert body["model"] == "churn" and body["version"] == 1 and body["arm"] == "champion"
    assert 0.0 <= body["score"] <= 1.0
    assert body["threshold"] == 0.5
    assert body["label"] == ("yes" if body["score"] >= 0.5 else "no")
    assert body["flags"] == []


def test_batch_gets_one_request_id_per_record_in_order(
    service: tuple[Any, Client], churn_project: ChurnProject
) -> None:
    _, client = service
    records = [churn_project.record(i) for i in range(5)]
    status, body = client.predict(records, {"X-Request-ID": "batch-7"})
    assert status == 200, body
    predictions = body["predictions"]
    assert [p["request_id"] for p in predictions] == [f"batch-7:{i}" for i in range(5)]
    singles = [client.predict(record)[1]["score"] for record in records]
    assert [p["score"] for p in predictions] == pytest.approx(singles)


def test_contract_errors_name_the_field_and_the_rule(
    service: tuple[Any, Client], churn_project: ChurnProject
) -> None:
    _, client = service
    record = churn_project.record(0)
    bad = dict(record, account_length=-3, international_plan="maybe", total_day_calls="many")
    bad.pop("voice_mail_plan")
    bad["favourite_colour"] = "blue"
    status, body = client.predict(bad)
    assert status == 422
    found = {(item["field"], item["rule"]) for item in body["detail"]}
    assert found == {
        ("account_length", "min"),
        ("international_plan", "allowed"),
        ("total_day_calls", "type"),
        ("voice_mail_plan", "required"),
        ("favourite_colour", "unknown_field"),
    }
    assert "account_length is -3" in body["message"]
    status, body = client.predict([record, dict(record, account_length=None)])
    assert status == 422
    assert body["detail"] == [
        {
            "record": 1,
            "field": "account_length",
            "rule": "not_null",
            "message": "account_length is null; it must have a value",
        }
    ]
    status, body = client.predict(dict(record, account_length=True))
    assert (status, body["detail"][0]["rule"]) == (422, "type")  # a bool is not an integer


def test_values_outside_training_are_accepted_and_flagged(
    service: tuple[Any, Client], churn_project: ChurnProject
) -> None:
    app, client = service
    status, body = client.predict(dict(churn_project.record(0), total_day_minutes=9999.0))
    assert status == 200
    assert body["flags"] == [
        {
            "field": "total_day_minutes",
            "value": 9999.0,
            "reason": body["flags"][0]["reason"],
        }
    ]
    assert body["flags"][0]["reason"].startswith("above the training maximum")
    _, _, metrics = client.request("GET", "/metrics")
    assert 'shipyard_flagged_values_total{model="churn",field="total_day_minutes"}' in metrics


def test_a_category_the_encoder_never_saw_is_a_422_naming_the_field(
    service: tuple[Any, Client], churn_project: ChurnProject
) -> None:
    # The contract has no allowed list for voice_mail_plan (flagged, not refused), but the
    # pipeline's OrdinalEncoder raises ValueError on an unseen category: the client's to fix.
    _, client = service
    records = [churn_project.record(0), dict(churn_project.record(1), voice_mail_plan="maybe")]
    status, body = client.predict(records)
    assert status == 422, body
    assert body["error"] == "model_error"
    assert "unknown categories" in body["message"]
    assert [(d["record"], d["field"], d["rule"]) for d in body["detail"]] == [
        (1, "voice_mail_plan", "model_rejected")
    ]


@pytest.mark.parametrize(
    ("raw", "headers", "status", "error"),
    [
        (b"{not json", {}, 400, "malformed_json"),
        (b'{"inputs": {"account_length": NaN}}', {}, 400, "malformed_json"),
        (b"\xff\xfe", {}, 400, "malformed_json"),
        (b'{"inputs": 3}', {}, 422, "validation_failed"),
        (b'{"inputs": []}', {}, 422, "validation_failed"),
        (b"[1, 2]", {}, 422, "validation_failed"),
        (b'{"inputs": {}, "extra": 1}', {}, 422, "validation_failed"),
        (b'{"inputs": {}}', {"content-type": "text/csv"}, 415, "unsupported_media_type"),
        (b'{"inputs": {}}', {"X-Request-ID": "bad id!"}, 400, "bad_request_id"),
        (b"[" * 100_000 + b"]" * 100_000, {}, 400, "malformed_json"),
    ],
)
def test_malformed_requests_get_4xx_with_a_message(
    service: tuple[Any, Client], raw: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    _, client = service
    got, _, body = client.request("POST", "/v1/models/churn/predict", raw=raw, headers=headers)
    assert (got, body["error"]) == (status, error), body
    assert body["message"]


def test_huge_bodies_and_batches_get_413(
    service: tuple[Any, Client], churn_project: ChurnProject
) -> None:
    app, client = service
    limit = app.settings.max_body_bytes
    status, _, body = client.request("POST", "/v1/models/churn/predict", raw=b" " * (limit + 1))
    assert (status, body["error"]) == (413, "body_too_large")
    # A chunked body (no Content-Length) is cut off while it streams in.
    with socket.create_connection(("127.0.0.1", client.port)) as sock:
        sock.sendall(
            b"POST /v1/models/churn/predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 65536
        for _ in range(limit // len(chunk) + 2):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")
    too_many = [churn_project.record(0)] * (app.settings.max_records + 1)
    small = json.dumps({"inputs": too_many[:1]}).encode()
    assert len(small) * len(too_many) < limit * 4  # the count, not the size, is refused
    app.settings = type(app.settings)(**{**app.settings.__dict__, "max_body_bytes": 1 << 26})
    try:
        status, body = client.predict(too_many)
    finally:
        app.settings = type(app.settings)(**{**app.settings.__dict__, "max_body_bytes": limit})
    assert (status, body["error"]) == (413, "too_many_records")


def test_unknown_models_routes_and_methods(service: tuple[Any, Client]) -> None:
    _, client = service
    status, _, body = client.request("POST", "/v1/models/fraud/predict", {"inputs": {}})
    assert (status, body["error"]) == (404, "unknown_model")
    assert "churn" in body["hint"]
    status, _, body = client.request("GET", "/v1/models/churn/predict")
    assert status == 405
    status, _, body = client.request("GET", "/nowhere")
    assert status == 404


def test_health_readiness_models_metrics_and_openapi(service: tuple[Any, Client]) -> None:
    _, client = service
    assert client.request("GET", "/healthz")[0] == 200
    assert client.request("GET", "/readyz")[2] == {"status": "ready"}
    status, _, listing = client.request("GET", "/v1/models")
    assert listing["models"][0]["arms"][0]["version"] == 1
    status, headers, metrics = client.request("GET", "/metrics")
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    for series in (
        'shipyard_requests_total{model="churn",status="200"}',
        'shipyard_request_duration_seconds_bucket{model="churn",le="+Inf"}',
        'shipyard_batch_rows_count{model="churn",arm="champion"}',
        'shipyard_model_info{model="churn",alias="champion",arm="champion",version="1"',
        "shipyard_prediction_log_written_total",
        "shipyard_ready 1",
    ):
        assert series in metrics
    status, _, document = client.request("GET", "/openapi.json")
    assert document["openapi"] == "3.1.0"
    record = document["components"]["schemas"]["ChurnRecord"]
    assert record["properties"]["account_length"]["minimum"] == 0
    assert record["properties"]["international_plan"]["enum"] == ["yes", "no", None]
    assert record["additionalProperties"] is False
    assert "account_length" in record["required"]


def test_api_key_guards_predictions_not_probes(churn_project: ChurnProject) -> None:
    with running_service(churn_project, api_key="s3cret-key-123") as (_, port):
        client = Client(port)
        status, body = client.predict(churn_project.record(0))
        assert (status, body["error"]) == (401, "unauthorized")
        status, body = client.predict(churn_project.record(0), {"X-API-Key": "wrong-key-000"})
        assert status == 401
        status, body = client.predict(
            churn_project.record(0), {"Authorization": "Bearer s3cret-key-123"}
        )
        assert status == 200
        assert client.predict(churn_project.record(0), {"X-API-Key": "s3cret-key-123"})[0] == 200
        assert client.request("GET", "/healthz")[0] == 200
        assert client.request("GET", "/readyz")[0] == 200
        client.close()


def test_schemathesis_finds_no_server_error(service: tuple[Any, Client]) -> None:
    import subprocess
    import sys
    from pathlib import Path

    _, client = service
    cli = Path(sys.executable).with_name("schemathesis")
    completed = subprocess.run(
        [
            str(cli),
            "run",
            f"http://127.0.0.1:{client.port}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "40",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert "Tested: 3" in completed.stdout  # predict, healthz, readyz: the run was not empty
    # Every generated case passed the no-5xx check. (Schemathesis may also warn that most
    # generated records were rejected (422): the contract refuses them, as it should.)
    import re

    counts = re.search(r"(\d+) generated, (\d+) passed", completed.stdout)
    assert counts is not None and counts.group(1) == counts.group(2), completed.stdout[-3000:]
