"""Autologging against a real SQLite store in a temporary project, on real data."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.core.config import load_config
from shipyard.formats import load_model
from shipyard.tracking import fluent
from shipyard.tracking.autolog import MAX_PARAM_CHARS, autolog, is_enabled
from shipyard.tracking.client import TrackingClient
from shipyard.tracking.records import Run

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackingClient]:
    """A fresh project (SQLite + local artifacts) that fluent uses; a client to read it."""
    monkeypatch.setenv("SHIPYARD_PROJECT_DIR", str(tmp_path / "project"))
    for name in ("SHIPYARD_STORE_METADATA", "SHIPYARD_STORE_ARTIFACTS", "SHIPYARD_EXPERIMENT"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "project").mkdir()
    with TrackingClient(load_config()) as client:
        yield client
    while fluent.active_run() is not None:
        fluent.end_run()


@pytest.fixture
def autologging() -> Iterator[None]:
    autolog()
    yield
    autolog(disable=True)


@pytest.fixture(scope="module")
def churn(datasets_dir: Path) -> tuple[Any, Any]:
    import pandas as pd

    frame = pd.read_csv(datasets_dir / "mlc_churn.csv")
    target = frame.pop("churn")
    return frame, target


@pytest.fixture(scope="module")
def churn_numeric(churn: tuple[Any, Any]) -> tuple[Any, Any]:
    features, target = churn
    return features.select_dtypes("number"), target


@pytest.fixture(scope="module")
def credit(datasets_dir: Path) -> tuple[Any, Any]:
    import pandas as pd

    frame = pd.read_csv(datasets_dir / "credit_data.csv")
    return frame.select_dtypes("number").drop(columns=["Amount"]), frame["Amount"].astype(float)


def all_runs(reader: TrackingClient) -> list[Run]:
    return list(reader.search_runs().runs)


def only_run(reader: TrackingClient) -> Run:
    runs = all_runs(reader)
    assert len(runs) == 1, [run.name for run in runs]
    return runs[0]


def logged_model(reader: TrackingClient, run: Run, destination: Path) -> Any:
    return load_model(reader.download_artifacts(run.id, "model", destination))


def history(reader: TrackingClient, run: Run, key: str) -> tuple[list[int], list[float]]:
    """A metric's steps and values."""
    points = reader.get_metric_history(run.id, key)
    return [point.step for point in points], [point.value for point in points]


# --- scikit-learn ------------------------------------------------------------------------


def churn_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["state", "international_plan"]),
            ("num", StandardScaler(), ["total_day_minutes", "number_customer_service_calls"]),
        ]
    )
    return Pipeline([("prep", prep), ("clf", LogisticRegression(C=0.5, max_iter=300))])


@pytest.mark.usefixtures("autologging")
def test_pipeline_fit_logs_params_training_metrics_and_model(
    reader: TrackingClient, tmp_path: Path, churn: tuple[Any, Any]
) -> None:
    from sklearn import metrics

    features, target = churn
    pipeline = churn_pipeline()
    assert pipeline.fit(features, target) is pipeline

    run = only_run(reader)  # the ColumnTransformer, scaler and classifier fits: not logged
    assert run.status == "finished" and run.name == "Pipeline"
    assert run.tags["shipyard.autolog"] == "sklearn"
    assert run.tags["estimator"] == "sklearn.pipeline.Pipeline"
    assert run.params["clf__C"] == "0.5"
    assert run.params["prep__cat__handle_unknown"] == "ignore"
    predicted = pipeline.predict(features)
    probabilities = pipeline.predict_proba(features)
    assert run.metrics["training_accuracy"] == pytest.approx(
        metrics.accuracy_score(target, predicted)
    )
    assert run.metrics["training_f1"] == pytest.approx(
        metrics.f1_score(target, predicted, average="weighted")
    )
    assert run.metrics["training_log_loss"] == pytest.approx(
        metrics.log_loss(target, probabilities)
    )
    assert run.metrics["training_roc_auc"] == pytest.approx(
        metrics.roc_auc_score(target == "yes", probabilities[:, 1])
    )
    assert {"training_precision", "training_recall"} <= set(run.metrics)
    assert run.metrics["fit_duration_seconds"] > 0
    loaded = logged_model(reader, run, tmp_path / "download")
    np.testing.assert_array_equal(loaded.predict_proba(features), probabilities)


@pytest.mark.usefixtures("autologging")
def test_regressor_training_metrics(reader: TrackingClient, credit: tuple[Any, Any]) -> None:
    from sklearn import metrics
    from sklearn.tree import DecisionTreeRegressor

    features, target = credit
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(features, target)

    run = only_run(reader)
    predicted = model.predict(features)
    mse = metrics.mean_squared_error(target, predicted)
    assert run.metrics["training_mse"] == pytest.approx(mse)
    assert run.metrics["training_rmse"] == pytest.approx(math.sqrt(mse))
    assert run.metrics["training_mae"] == pytest.approx(
        metrics.mean_absolute_error(target, predicted)
    )
    assert run.metrics["training_r2"] == pytest.approx(metrics.r2_score(target, predicted))
    assert "training_accuracy" not in run.metrics


@pytest.mark.usefixtures("autologging")
def test_grid_search_logs_only_the_outermost_fit(
    reader: TrackingClient, churn_numeric: tuple[Any, Any]
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    features, target = churn_numeric
    search = GridSearchCV(LogisticRegression(max_iter=100), {"C": [0.1, 1.0]}, cv=2)
    search.fit(features.head(1000), target.head(1000))

    run = only_run(reader)  # 2 candidates x 2 folds + the refit: one run
    assert run.name == "GridSearchCV"
    assert run.params["best_C"] == str(search.best_params_["C"])
    assert run.params["estimator__max_iter"] == "100"
    assert run.metrics["best_cv_score"] == pytest.approx(search.best_score_)


@pytest.mark.usefixtures("autologging")
def test_fits_inside_a_user_run_use_it_then_nest(
    reader: TrackingClient, churn_numeric: tuple[Any, Any]
) -> None:
    from sklearn.linear_model import LogisticRegression, Ridge

    features, target = churn_numeric
    with fluent.start_run("my-experiment") as mine:
        LogisticRegression(max_iter=50).fit(features, target)
        assert fluent.active_run() is mine  # autolog does not end the user's run
        Ridge().fit(features, target == "yes")
        assert fluent.active_run() is mine

    runs = {run.name: run for run in all_runs(reader)}
    assert set(runs) == {"my-experiment", "Ridge"}
    assert runs["my-experiment"].params["max_iter"] == "50"
    assert runs["my-experiment"].status == "finished"
    assert runs["Ridge"].parent_id == mine.id  # a second fit gets its own child run
    assert "training_r2" in runs["Ridge"].metrics


@pytest.mark.usefixtures("autologging")
def test_user_subclasses_keep_working(
    reader: TrackingClient, churn_numeric: tuple[Any, Any]
) -> None:
    from sklearn.linear_model import LogisticRegression

    class Calibrated(LogisticRegression):
        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Calibrated:
            self.calls_ = getattr(self, "calls_", 0) + 1
            return super().fit(X, y, sample_weight=sample_weight)

    class Inheriting(LogisticRegression):  # defined after autolog(): inherits the patch
        pass

    features, target = churn_numeric
    model = Calibrated(max_iter=50)
    assert model.fit(features, target) is model
    assert model.calls_ == 1
    Inheriting(max_iter=50).fit(features, target)

    runs = {run.name: run for run in all_runs(reader)}
    assert set(runs) == {"Calibrated", "Inheriting"}
    assert runs["Calibrated"].tags["estimator"].endswith("Calibrated")
    assert runs["Calibrated"].params["max_iter"] == "50"


@pytest.mark.usefixtures("autologging")
def test_a_failing_fit_raises_unchanged_and_fails_its_run(
    reader: TrackingClient, credit: tuple[Any, Any]
) -> None:
    from sklearn.linear_model import LinearRegression

    features, target = credit
    assert features.isna().any().any()  # LinearRegression refuses the real missing values
    with pytest.raises(ValueError, match="NaN") as raised:
        LinearRegression().fit(features, target)

    run = only_run(reader)
    assert run.status == "failed"
    assert run.error is not None and str(raised.value)[:40] in run.error
    assert "fit_intercept" in run.params  # params are logged before the fit


@pytest.mark.usefixtures("autologging")
def test_long_params_are_truncated_with_a_note(
    reader: TrackingClient, churn_numeric: tuple[Any, Any]
) -> None:
    from sklearn.dummy import DummyClassifier

    features, target = churn_numeric
    DummyClassifier(strategy="prior", constant="x" * 2000).fit(features, target)

    value = only_run(reader).params["constant"]
    assert value.startswith("x" * MAX_PARAM_CHARS)
    assert value.endswith("[truncated by autolog: 1500 more characters]")


# --- autolog never breaks a fit ----------------------------------------------------------


@pytest.mark.usefixtures("autologging")
def test_logging_failures_are_warnings_not_errors(
    reader: TrackingClient,
    churn_numeric: tuple[Any, Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sklearn.linear_model import LogisticRegression

    features, target = churn_numeric
    # A real conflict: the user's run already has C=5, the estimator says C=1.0.
    with fluent.start_run("conflict") as mine, caplog.at_level(logging.WARNING):
        fluent.log_params({"C": 5})
        model = LogisticRegression(max_iter=50).fit(features, target)
    assert model.predict(features).shape == (len(features),)
    assert "could not log params of sklearn.linear_model._logistic.LogisticRegression" in (
        caplog.text
    )
    run = reader.get_run(mine.id)
    assert run.params["C"] == "5" and "training_accuracy" in run.metrics  # the rest went on

    # Tracking itself failing on the model: a warning, and the fitted model comes back.
    def broken_log_model(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("artifact store is on fire")

    monkeypatch.setattr(fluent, "log_model", broken_log_model)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="shipyard.tracking.autolog"):
        fitted = LogisticRegression(max_iter=50).fit(features, target)
    assert hasattr(fitted, "coef_")
    assert "could not log the model" in caplog.text and "artifact store is on fire" in caplog.text


@pytest.mark.usefixtures("autologging")
def test_a_model_without_a_safe_format_still_fits(
    reader: TrackingClient, churn_numeric: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    features, target = churn_numeric
    pipeline = make_pipeline(FunctionTransformer(lambda x: x / 100), LogisticRegression())
    with caplog.at_level(logging.WARNING, logger="shipyard.tracking.autolog"):
        pipeline.fit(features, target)

    assert "could not log the model" in caplog.text and "lambda" in caplog.text
    run = only_run(reader)
    assert run.status == "finished" and "training_accuracy" in run.metrics
    assert reader.list_artifacts(run.id, "model") == []


def test_no_store_means_an_unlogged_fit(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    churn_numeric: tuple[Any, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("SHIPYARD_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("SHIPYARD_STORE_METADATA", "mysql://nowhere/none")
    features, target = churn_numeric
    autolog(lightgbm=False, xgboost=False)
    try:
        with caplog.at_level(logging.WARNING, logger="shipyard.tracking.autolog"):
            model = LogisticRegression(max_iter=50).fit(features, target)
    finally:
        autolog(disable=True)
    assert hasattr(model, "coef_")
    assert "could not start a run" in caplog.text and "runs unlogged" in caplog.text


# --- switching it on and off -------------------------------------------------------------


def test_enable_is_idempotent_and_disable_restores_the_originals(
    reader: TrackingClient, churn_numeric: tuple[Any, Any]
) -> None:
    import lightgbm
    import xgboost
    from sklearn.base import TransformerMixin
    from sklearn.linear_model import LogisticRegression

    originals = (
        LogisticRegression.__dict__["fit"],
        TransformerMixin.__dict__["fit_transform"],
        lightgbm.train,
        xgboost.train,
    )
    features, target = churn_numeric
    autolog()
    autolog(log_models=False)  # replaces, does not stack
    try:
        assert is_enabled()
        assert LogisticRegression.fit.__wrapped__ is originals[0]  # type: ignore[attr-defined]
        LogisticRegression(max_iter=50).fit(features, target)
        run = only_run(reader)
        assert reader.list_artifacts(run.id, "model") == []  # the second call's options hold
    finally:
        autolog(disable=True)
    assert not is_enabled()
    restored = (
        LogisticRegression.__dict__["fit"],
        TransformerMixin.__dict__["fit_transform"],
        lightgbm.train,
        xgboost.train,
    )
    assert all(now is before for now, before in zip(restored, originals, strict=True))
    LogisticRegression(max_iter=50).fit(features, target)
    assert len(all_runs(reader)) == 1


def test_only_the_chosen_libraries_are_patched(
    reader: TrackingClient, churn_numeric: tuple[Any, Any]
) -> None:
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression

    features, target = churn_numeric
    autolog(sklearn=False, xgboost=False, log_models=False)
    try:
        LogisticRegression(max_iter=50).fit(features, target)
        lgb.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1).fit(features, target)
    finally:
        autolog(disable=True)
    run = only_run(reader)
    assert run.name == "LGBMClassifier" and run.tags["shipyard.autolog"] == "lightgbm"


def test_a_library_that_is_not_installed_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import xgboost

    original = xgboost.train
    monkeypatch.setitem(sys.modules, "xgboost", None)  # as if it were not installed
    autolog(sklearn=False, lightgbm=False)
    try:
        assert not is_enabled()
        assert xgboost.train is original
    finally:
        autolog(disable=True)


# --- LightGBM ----------------------------------------------------------------------------


@pytest.mark.usefixtures("autologging")
def test_lightgbm_train_logs_params_every_iteration_and_the_booster(
    reader: TrackingClient, tmp_path: Path, churn_numeric: tuple[Any, Any]
) -> None:
    import lightgbm as lgb

    features, target = churn_numeric
    label = (target == "yes").astype(int)
    evals: dict[str, Any] = {}
    callbacks = [lgb.record_evaluation(evals)]
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1},
        lgb.Dataset(features.iloc[:4000], label.iloc[:4000]),
        num_boost_round=8,
        valid_sets=[lgb.Dataset(features.iloc[4000:], label.iloc[4000:])],
        callbacks=callbacks,
    )

    assert len(callbacks) == 1  # the user's list is not modified
    run = only_run(reader)
    assert run.name == "lightgbm-train" and run.tags["estimator"] == "lightgbm.train"
    assert run.params["num_leaves"] == "7" and run.params["num_boost_round"] == "8"
    steps, values = history(reader, run, "valid_0-binary_logloss")
    assert steps == list(range(8))
    assert values == pytest.approx(evals["valid_0"]["binary_logloss"])
    loaded = logged_model(reader, run, tmp_path / "download")
    np.testing.assert_array_equal(loaded.predict(features), booster.predict(features))


@pytest.mark.usefixtures("autologging")
def test_lgbm_classifier_with_an_eval_set(
    reader: TrackingClient, tmp_path: Path, churn_numeric: tuple[Any, Any]
) -> None:
    import lightgbm as lgb

    features, churned = churn_numeric
    target = (churned == "yes").astype(int)
    model = lgb.LGBMClassifier(n_estimators=6, verbose=-1, n_jobs=1)
    model.fit(features, target, eval_X=features.iloc[4000:], eval_y=target.iloc[4000:])

    run = only_run(reader)  # LGBMClassifier.fit -> LGBMModel.fit -> train: one run
    assert run.params["n_estimators"] == "6"
    steps, _ = history(reader, run, "valid_0-binary_logloss")
    assert steps == list(range(6))
    assert "training_roc_auc" in run.metrics
    loaded = logged_model(reader, run, tmp_path / "download")
    assert type(loaded) is lgb.LGBMClassifier
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))


# --- XGBoost -----------------------------------------------------------------------------


@pytest.mark.usefixtures("autologging")
def test_xgboost_train_logs_every_iteration(
    reader: TrackingClient, tmp_path: Path, credit: tuple[Any, Any]
) -> None:
    import xgboost as xgb

    features, target = credit
    train = xgb.DMatrix(features, target)
    evals: dict[str, Any] = {}
    booster = xgb.train(
        {"max_depth": 3, "eval_metric": "rmse", "nthread": 1},
        train,
        num_boost_round=5,
        evals=[(train, "train")],
        evals_result=evals,
        verbose_eval=False,
    )

    run = only_run(reader)
    assert run.params["max_depth"] == "3" and run.params["num_boost_round"] == "5"
    steps, values = history(reader, run, "train-rmse")
    assert steps == [0, 1, 2, 3, 4]
    assert values == pytest.approx(evals["train"]["rmse"])
    loaded = logged_model(reader, run, tmp_path / "download")
    np.testing.assert_array_equal(loaded.predict(train), booster.predict(train))


@pytest.mark.usefixtures("autologging")
def test_xgb_classifier_with_an_eval_set_leaves_its_params_alone(
    reader: TrackingClient, churn_numeric: tuple[Any, Any]
) -> None:
    import xgboost as xgb

    features, target = churn_numeric
    label = (target == "yes").astype(int)
    model = xgb.XGBClassifier(n_estimators=4, max_depth=2, n_jobs=1)
    model.fit(features, label, eval_set=[(features, label)], verbose=False)

    assert model.get_params()["callbacks"] is None  # the autolog callback was only lent
    run = only_run(reader)
    assert history(reader, run, "validation_0-logloss")[0] == [0, 1, 2, 3]
    assert run.metrics["training_accuracy"] == pytest.approx(
        float((model.predict(features) == label).mean())
    )
