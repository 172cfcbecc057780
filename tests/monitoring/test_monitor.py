"""One monitoring check on real churn data: clean traffic is quiet, a shifted batch alerts."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from shipyard.core.config import Config, load_config
from shipyard.core.errors import DataContractError, NotFoundError
from shipyard.models.registry import ModelRegistry
from shipyard.monitoring.monitor import check_history, read_log_window, run_check
from tests.monitoring.loop_fixtures import make_project, read_churn, serve, shifted


@pytest.fixture(scope="module")
def churn(datasets_dir: Path) -> pa.Table:
    return read_churn(datasets_dir)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, churn: pa.Table) -> Path:
    root = tmp_path_factory.mktemp("monitor") / "project"
    config = make_project(root, churn)
    serve(config, churn.slice(1500, 800), prefix="clean")
    return root


@pytest.fixture
def project(tmp_path: Path, template: Path) -> Config:
    root = tmp_path / "project"
    shutil.copytree(template, root)
    return load_config(root, environ={})


def test_clean_traffic_does_not_alert_and_a_shifted_batch_does(
    project: Config, churn: pa.Table
) -> None:
    clean = run_check(project, "churn", window=800)
    assert clean.rows == 800
    assert clean.reference == "churn_train@v1"
    assert not clean.alert, clean.breaches
    assert clean.sent == ()
    serve(project, shifted(churn.slice(2300, 800)), prefix="shifted")
    drifted = run_check(project, "churn", window=800)
    assert drifted.alert
    assert {"number_customer_service_calls", "total_day_charge", "score"} <= set(
        drifted.drifted_columns
    )
    assert {"data_drift", "prediction_drift"} <= set(drifted.alert_kinds)
    assert {a.event for a in drifted.sent} == {"fired"}
    # The same drift again: still an alert, but deduplicated (nothing sent twice).
    again = run_check(project, "churn", window=800)
    assert again.alert and again.sent == ()
    with ModelRegistry.open(project) as registry:
        history = check_history(registry.stores.metadata, model="churn")
    assert [h["alert"] for h in history] == [True, True, False]
    assert history[1]["alerts"] and history[1]["drifted"]


def test_time_window_and_labels_give_performance(project: Config, churn: pa.Table) -> None:
    from shipyard.monitoring.labels import store_labels

    with ModelRegistry.open(project) as registry:
        labels = churn.slice(1500, 800).column("churn").to_pylist()
        store_labels(
            registry.stores.metadata,
            [(i + 1, f"clean-{i}", labels[i]) for i in range(800)],
            source="labels.csv",
        )
        check = run_check(registry, "churn", window=timedelta(hours=2))
    assert check.rows == 800
    assert check.performance is not None
    window = check.performance.windows[0]
    assert window.labelled == 800
    assert window.realized["roc_auc"] is not None and window.realized["roc_auc"] > 0.7


def test_bad_input_is_refused_clearly(project: Config, churn: pa.Table) -> None:
    with pytest.raises(NotFoundError, match="'nope' is not registered"):
        run_check(project, "nope")
    with pytest.raises(DataContractError, match="needs at least 30"):
        run_check(project, "churn", window=timedelta(seconds=1), until=None, min_rows=30)
    with pytest.raises(DataContractError, match="count window"):
        run_check(project, "churn", window=0)
    with pytest.raises(DataContractError, match="number of records or a timedelta"):
        run_check(project, "churn", window="lots")  # type: ignore[arg-type]
    with pytest.raises(DataContractError, match="arm"):
        run_check(project, "churn", arm="blue")
    from tests.monitoring.loop_fixtures import fit

    with ModelRegistry.open(project) as registry:
        frame = churn.slice(0, 300).to_pandas()
        registry.register("orphan", fit(frame), input_example=frame.drop(columns=["churn"]).head(3))
        registry.set_alias("orphan@v1", "champion", actor="test")
        with pytest.raises(DataContractError, match="no training dataset version"):
            run_check(registry, "orphan")
        version = registry.get("churn@v1")
        empty = read_log_window(registry.stores.metadata, version, window=timedelta(seconds=1))
        assert empty.rows == 0
