"""A served model that fails on input its contract accepted: whose fault, which answer.

``Flaky`` has a bug (``RuntimeError`` on one planted account length: 500 ``model_failed``,
the service keeps serving) and refuses plans it does not know (``ValueError`` the way
scikit-learn's encoders word it: 422 ``model_error`` naming the field and the record).
The same two failures through ``shipyard predict`` end in one clear error, no traceback.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.cli.main import main
from shipyard.core.config import load_config
from shipyard.core.errors import DataContractError, ModelError
from shipyard.models import ModelRegistry
from shipyard.models.failures import InputRejected
from shipyard.serving.batch import predict_file
from tests.serving.helpers import FEATURES, ChurnProject, Client, running_service

PLANTED = 4242
"""An account length no customer has: Flaky's bug raises on it."""


class Flaky:
    """Scores by service calls; crashes on the planted account, refuses unknown plans."""

    def predict(self, frame: Any) -> Any:
        if (np.asarray(frame["account_length"]) == PLANTED).any():
            raise RuntimeError("lookup table has no entry for account 4242 (secret internals)")
        plans = {str(plan) for plan in np.asarray(frame["international_plan"], dtype=object)}
        unknown = sorted(plans - {"yes", "no"})
        if unknown:
            raise ValueError(f"Found unknown categories {unknown} in column 0 during transform")
        calls = np.asarray(frame["number_customer_service_calls"], dtype=float)
        return np.clip(calls / 5.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> ChurnProject:
    """``churn@champion`` is Flaky (v1): no training here, only a registration."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("model_failures") / "project"
    folder.mkdir()
    frame = pd.read_csv(datasets_dir / "mlc_churn.csv", nrows=40)[[*FEATURES, "churn"]]
    config = load_config(folder)
    with ModelRegistry.open(config) as registry:
        registry.register(
            "churn",
            model=Flaky(),
            input_example=frame[FEATURES].head(5),
            allow_pickle=True,
            task="regression",
        )
        registry.set_alias("churn@v1", "champion", reason="tests")
    return ChurnProject(folder, config, frame)


@pytest.fixture(scope="module")
def client(project: ChurnProject) -> Any:
    with running_service(project, allow_pickle=True) as (_, port):
        opened = Client(port)
        yield opened
        opened.close()


def test_a_model_bug_is_a_500_naming_version_class_and_request_and_serving_goes_on(
    project: ChurnProject, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    good = project.record(0)
    planted = dict(project.record(1), account_length=PLANTED)
    with caplog.at_level(logging.ERROR, logger="shipyard.serving"):
        status, headers, body = client.request(
            "POST", "/v1/models/churn/predict", {"inputs": planted}, {"X-Request-ID": "bug-1"}
        )
        assert status == 500
        assert headers["x-request-id"] == "bug-1"
        assert body["error"] == "model_failed"
        assert (body["model"], body["version"], body["exception"], body["request_id"]) == (
            "churn",
            1,
            "RuntimeError",
            "bug-1",
        )
        assert "churn@v1" in body["message"] and "RuntimeError" in body["message"]
        assert "log" in body["hint"] and body["version_id"]
        text = json.dumps(body)
        assert "Traceback" not in text and "secret internals" not in text
        # One bad record fails its whole request, and only that request.
        status, body = client.predict([good, planted], {"X-Request-ID": "bug-2"})
        assert (status, body["error"], body["request_id"]) == (500, "model_failed", "bug-2")
    status, body = client.predict(good)
    assert status == 200 and 0.0 <= body["score"] <= 1.0
    # The traceback went to the service's log, under the request id.
    assert "bug-1" in caplog.text and "bug-2" in caplog.text
    assert "Traceback" in caplog.text and "RuntimeError: lookup table" in caplog.text
    _, _, metrics = client.request("GET", "/metrics")
    assert 'shipyard_errors_total{model="churn",kind="model_failed"} 2' in metrics


def test_a_value_the_model_refuses_is_a_422_naming_field_and_record(
    project: ChurnProject, client: Client
) -> None:
    good = project.record(0)
    refused = dict(project.record(2), international_plan="maybe")
    status, body = client.predict(refused)
    assert status == 422, body
    assert body["error"] == "model_error"
    assert "'international_plan'" in body["message"]
    assert "Found unknown categories ['maybe']" in body["message"]
    assert [(item["field"], item["rule"]) for item in body["detail"]] == [
        ("international_plan", "model_rejected")
    ]
    status, body = client.predict([good, good, refused])
    assert status == 422
    assert [(d["record"], d["field"]) for d in body["detail"]] == [(2, "international_plan")]
    assert "in record 2" in body["message"]
    assert client.predict(good)[0] == 200
    _, _, metrics = client.request("GET", "/metrics")
    assert 'shipyard_errors_total{model="churn",kind="model_error"} 2' in metrics


def test_loaded_model_sorts_the_two_faults(project: ChurnProject) -> None:
    with ModelRegistry.open(project.config) as registry:
        model = registry.load("churn@v1", allow_pickle=True)
    rows = [project.record(i) for i in range(4)]
    rows[2]["international_plan"] = "maybe"
    with pytest.raises(InputRejected) as refused:
        model.predict(rows)
    assert isinstance(refused.value, DataContractError)
    assert (refused.value.row, refused.value.column) == (2, "international_plan")
    assert isinstance(refused.value.__cause__, ValueError)
    rows[2] = dict(rows[1], account_length=PLANTED)
    with pytest.raises(ModelError, match=r"churn@v1 failed on 4 row\(s\).*RuntimeError") as bug:
        model.predict(rows)
    assert not isinstance(bug.value, DataContractError)
    assert isinstance(bug.value.__cause__, RuntimeError)
    assert "shipyard models rollback churn@ALIAS" in (bug.value.hint or "")


def careless_preprocess(frame: Any) -> Any:
    """A preprocess hook with a bug on the planted account."""
    if (np.asarray(frame["account_length"]) == PLANTED).any():
        raise AttributeError("'NoneType' object has no attribute 'lookup'")
    return frame


def first_score_only(scores: Any, frame: Any) -> Any:
    """A postprocess hook with a bug: one score, whatever the number of rows."""
    return np.asarray(scores)[:1]


def test_hooks_that_fail_or_answer_wrong_are_the_model_s_fault(project: ChurnProject) -> None:
    rows = [project.record(i) for i in range(3)]
    example = project.frame[FEATURES].head(5)
    with ModelRegistry.open(project.config) as registry:
        for name, hooks in (
            ("careless", {"preprocess": careless_preprocess}),
            ("short", {"postprocess": first_score_only}),
        ):
            registry.register(
                name,
                model=Flaky(),
                input_example=example,
                allow_pickle=True,
                task="regression",
                **hooks,
            )
        careless = registry.load("careless@v1", allow_pickle=True)
        short = registry.load("short@v1", allow_pickle=True)
    assert len(careless.predict(rows)) == 3
    rows[1]["account_length"] = PLANTED
    with pytest.raises(ModelError, match="the preprocess hook raised AttributeError") as bug:
        careless.predict(rows)
    assert isinstance(bug.value.__cause__, AttributeError)
    with pytest.raises(ModelError, match=r"short@v1 answered 1 scores for 3 row\(s\)"):
        short.predict([project.record(i) for i in range(3)])


def _parquet(project: ChurnProject, folder: Path, column: str, value: Any) -> Path:
    """The project's rows as Parquet, with ``value`` in ``column`` of row 25."""
    frame = project.frame[FEATURES].copy()
    frame.loc[25, column] = value
    path = folder / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def test_batch_prediction_names_the_rows_of_either_fault(
    project: ChurnProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ModelRegistry.open(project.config) as registry:
        model = registry.load("churn@v1", allow_pickle=True)
    target = tmp_path / "out.parquet"
    source = _parquet(project, tmp_path, "international_plan", "maybe")
    with pytest.raises(InputRejected, match=r"parquet row 26, column 'international_plan'"):
        predict_file(model, source, target, batch_rows=10)
    source = _parquet(project, tmp_path, "account_length", PLANTED)
    with pytest.raises(ModelError, match=r"parquet rows 21-30: Model churn@v1 failed"):
        predict_file(model, source, target, batch_rows=10)
    assert not target.exists() and list(tmp_path.iterdir()) == [source]
    # The CLI: one error line and its fix, no traceback, exit code 1.
    code = main(
        [
            "-C",
            str(project.folder),
            "predict",
            "churn@champion",
            "--input",
            str(source),
            "--output",
            str(target),
            "--batch-rows",
            "10",
            "--allow-pickle",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error[")]
    assert len(errors) == 1 and errors[0].startswith("error[SY900]: ")
    assert "rows 21-30" in errors[0] and "RuntimeError" in errors[0]
    assert "\n  fix: " in err and "Traceback" not in err
