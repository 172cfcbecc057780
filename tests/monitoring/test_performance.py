"""Performance in service (issue 9, point 3) on real churn data.

A logistic pipeline trained on rows 0-1999 of ../shared/datasets/mlc_churn.csv is
registered; rows 2000-4999 are scored and written to the prediction log through the
serving helper's ``PredictionLogWriter`` on three days (1,000 rows a day). Day 1's labels
are stored (``store_labels``): the labelled reference the scores are calibrated on.
Days 2 and 3 are first checked with their labels held back (estimates), then with them
(realized): the estimate's error is printed and bounded.
"""

from __future__ import annotations

import math
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from shipyard.core.config import Config, load_config
from shipyard.core.errors import ConfigError, DataContractError, NotFoundError
from shipyard.evaluation import metrics as m
from shipyard.models.records import GateResult
from shipyard.models.registry import ModelRegistry
from shipyard.monitoring.alerts import AlertManager, default_rules
from shipyard.monitoring.labels import store_labels
from shipyard.monitoring.performance import (
    ScoreCalibrator,
    estimate_binary_metrics,
    performance_window,
    read_logged_predictions,
)
from shipyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord
from shipyard.store.metadata import open_metadata_store
from shipyard.store.stores import open_stores

DAY1 = datetime(2026, 11, 1, tzinfo=UTC)
GATES = """
[gates.churn]
metrics = { roc_auc = ">= 0.75" }
recall_at_precision = { precision = 0.5, min_recall = 0.2 }
"""
ESTIMATED = ("accuracy", "precision", "recall", "f1", "roc_auc")


def _pipeline(frame: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = ["state", "area_code", "international_plan", "voice_mail_plan"]
    numeric = [c for c in frame.columns if c not in categorical and c != "churn"]
    model = make_pipeline(
        ColumnTransformer(
            [
                ("c", OneHotEncoder(handle_unknown="ignore"), categorical),
                ("n", StandardScaler(), numeric),
            ]
        ),
        LogisticRegression(max_iter=500),
    )
    return model.fit(frame.drop(columns=["churn"]), frame["churn"])


@pytest.fixture(scope="module")
def churn(datasets_dir: Path) -> pa.Table:
    return pcsv.read_csv(datasets_dir / "mlc_churn.csv")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, churn: pa.Table) -> Path:
    """A project: churn@v1 registered, 3,000 predictions logged, day 1 labelled."""
    root = tmp_path_factory.mktemp("performance") / "project"
    (root / ".shipyard").mkdir(parents=True)
    open_metadata_store(f"sqlite:///{root / '.shipyard' / 'metadata.db'}").close()
    (root / "shipyard.toml").write_text(GATES)
    config = load_config(root, environ={})
    train = churn.slice(0, 2000).to_pandas()
    service = churn.slice(2000, 3000)
    features = service.drop_columns(["churn"])
    with ModelRegistry.open(config) as registry:
        registry.register(
            "churn", _pipeline(train), input_example=train.drop(columns=["churn"]).head(5)
        )
        scores = registry.load("churn@v1").predict(features).scores
        version = registry.get("churn@v1")
        writer = PredictionLogWriter(registry.stores.metadata, flush_interval=0.05)
        for index, row in enumerate(features.to_pylist()):
            writer.log(
                PredictionRecord(
                    request_id=f"r{index}",
                    arm="champion",
                    model="churn",
                    version=1,
                    version_id=version.id,
                    alias=None,
                    inputs=row,
                    score=float(scores[index]),
                    latency_ms=1.0,
                    logged_at=DAY1 + timedelta(days=index // 1000, seconds=index % 1000),
                )
            )
        writer.close()
        assert writer.written == 3000
        labels = service.column("churn").to_pylist()
        report = store_labels(
            registry.stores.metadata,
            [(i + 1, f"r{i}", labels[i]) for i in range(1000)],
            source="day1.csv",
        )
        assert (report.stored, report.bad) == (1000, 0)
    return root


@pytest.fixture
def project(tmp_path: Path, template: Path) -> Config:
    root = tmp_path / "project"
    shutil.copytree(template, root)
    return load_config(root, environ={})


def _label_days_2_and_3(config: Config, churn: pa.Table) -> None:
    labels = churn.slice(2000, 3000).column("churn").to_pylist()
    with open_stores(config) as stores:
        report = store_labels(
            stores.metadata,
            [(i, f"r{i}", labels[i]) for i in range(1000, 3000)],
            source="later.csv",
        )
    assert report.stored == 2000


def test_estimate_before_labels_then_realized_after_real_data(
    project: Config, churn: pa.Table
) -> None:
    before = performance_window(project, "churn", window=timedelta(days=1))
    assert [w.label[:10] for w in before.windows] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [w.labelled for w in before.windows] == [1000, 0, 0]
    assert before.calibration == {"method": "isotonic", "rows": 1000, "source": "labelled log rows"}
    assert [(b.metric, b.text) for b in before.bounds] == [
        ("roc_auc", ">= 0.75"),
        ("precision", ">= 0.5"),
        ("recall", ">= 0.2"),
    ]
    assert {c.basis for c in before.windows[0].checks} == {"realized"}
    assert {c.basis for c in before.windows[1].checks} == {"estimated"}

    _label_days_2_and_3(project, churn)
    after = performance_window(project, "churn@v1", window=timedelta(days=1))
    assert [w.labelled for w in after.windows] == [1000, 1000, 1000]
    print("\nestimated (labels held back) vs realized, churn@v1 on mlc_churn.csv rows 3000-4999:")
    print(f"{'window':<12}{'metric':<10}{'estimated':>10}{'realized':>10}{'error':>9}")
    errors: dict[str, list[float]] = {name: [] for name in ESTIMATED}
    for early, late in zip(before.windows[1:], after.windows[1:], strict=True):
        for name in ESTIMATED:
            guess, truth = early.estimated[name], late.realized[name]
            assert guess is not None and truth is not None
            errors[name].append(guess - truth)
            print(
                f"{late.label[:10]:<12}{name:<10}{guess:>10.4f}{truth:>10.4f}{guess - truth:>+9.4f}"
            )
    worst = {name: max(abs(e) for e in values) for name, values in errors.items()}
    print("largest absolute error per metric:", {k: round(v, 4) for k, v in worst.items()})
    assert worst["accuracy"] < 0.03 and worst["roc_auc"] < 0.05
    assert worst["recall"] < 0.06 and worst["f1"] < 0.1
    # Precision rests on the ~50 rows predicted positive, in the window and in the
    # calibration rows alike: hold it to three binomial standard errors of both.
    for early, late in zip(before.windows[1:], after.windows[1:], strict=True):
        p = late.realized["precision"] or 0.0
        recall, positives = late.realized["recall"] or 0.0, late.positives or 0
        predicted = round(recall * positives / p)  # rows scored >= the threshold
        noise = math.sqrt(2 * p * (1 - p) / predicted)
        assert abs((early.estimated["precision"] or 0.0) - p) < 3 * noise
    # Once labels arrive, checks use them and agree with the evaluation metrics.
    day2 = after.windows[1]
    assert {c.basis for c in day2.checks} == {"realized"}
    service = churn.slice(3000, 1000)
    with ModelRegistry.open(project) as registry:
        scores = registry.load("churn@v1").predict(service.drop_columns(["churn"])).scores
    y = np.array([1 if v == "yes" else 0 for v in service.column("churn").to_pylist()])
    assert day2.realized["roc_auc"] == pytest.approx(m.roc_auc(y, scores))
    assert day2.realized["recall"] == pytest.approx(m.recall(y, scores, 0.5))


def test_estimate_error_over_random_splits_and_a_covariate_shift_real_data(
    project: Config, churn: pa.Table
) -> None:
    """The estimate's error measured on 10 random splits of the 3,000 service rows
    (1,000 labelled to calibrate on, two windows of 1,000 with labels held back), and on
    a covariate shift: customers who called service 3+ times, who churn far more."""
    service = churn.slice(2000, 3000)
    with ModelRegistry.open(project) as registry:
        scores = registry.load("churn@v1").predict(service.drop_columns(["churn"])).scores
    y = np.array([v == "yes" for v in service.column("churn").to_pylist()], dtype=int)
    errors: dict[str, list[float]] = {name: [] for name in ESTIMATED}
    for seed in range(10):
        order = np.random.default_rng(seed).permutation(service.num_rows)
        calibrator = ScoreCalibrator().fit(scores[order[:1000]], y[order[:1000]])
        for window in (order[1000:2000], order[2000:]):
            guess = estimate_binary_metrics(calibrator.predict(scores[window]), scores[window], 0.5)
            for name in ESTIMATED:
                truth = m.binary_metric(name, y[window], scores[window], 0.5)
                errors[name].append((guess[name] or math.nan) - truth)
    mean_error = {n: float(np.mean(np.abs(v))) for n, v in errors.items()}
    print("\nisotonic estimate, 10 random splits x 2 windows of 1,000 rows, absolute error:")
    for name in ESTIMATED:
        values = np.abs(errors[name])
        print(
            f"  {name:<10} mean {values.mean():.4f}  max {values.max():.4f}  "
            f"bias {np.mean(errors[name]):+.4f}"
        )
    assert mean_error["accuracy"] < 0.02 and mean_error["roc_auc"] < 0.04
    assert mean_error["recall"] < 0.04 and mean_error["f1"] < 0.05
    assert mean_error["precision"] < 0.1

    calls = service.column("number_customer_service_calls").to_numpy()
    reference = np.arange(1000)
    shifted = 1000 + np.flatnonzero(calls[1000:] >= 3)
    print(
        f"covariate shift: {shifted.size} rows with 3+ service calls, churn rate "
        f"{y[shifted].mean():.3f} (calibration rows {y[reference].mean():.3f})"
    )
    for method in ("isotonic", "platt", "none"):
        calibrator = ScoreCalibrator(method).fit(scores[reference], y[reference])  # type: ignore[arg-type]
        guess = estimate_binary_metrics(calibrator.predict(scores[shifted]), scores[shifted], 0.5)
        truth = {n: m.binary_metric(n, y[shifted], scores[shifted], 0.5) for n in ESTIMATED}
        line = ", ".join(f"{n} {guess[n]:.3f}/{truth[n]:.3f}" for n in ESTIMATED)
        print(f"  {method:>9} estimated/realized: {line}")
        if method == "isotonic":
            assert abs((guess["accuracy"] or 0) - truth["accuracy"]) < 0.06
            assert abs((guess["recall"] or 0) - truth["recall"]) < 0.15


def test_count_windows_and_a_missed_bound_raises_an_alert(project: Config) -> None:
    report = performance_window(
        project,
        "churn@v1",
        window=500,
        thresholds={"recall": ">= 0.95", "accuracy": ">= 0.5"},
        min_labels=50,
    )
    assert [w.label for w in report.windows][:2] == ["rows 0-499", "rows 500-999"]
    assert len(report.windows) == 6 and sum(w.rows for w in report.windows) == 3000
    assert report.failed_checks and all(c.metric == "recall" for _, c in report.failed_checks)
    findings = {(f.kind, f.subject): f for f in report.findings()}
    assert findings[("estimated_performance", "recall")].breached
    assert findings[("performance", "recall")].breached
    assert not findings[("performance", "accuracy")].breached
    with open_stores(project) as stores:
        fired = AlertManager(stores.metadata, default_rules()).evaluate(report.findings())
    assert sorted((a.kind, a.subject, a.severity) for a in fired) == [
        ("estimated_performance", "recall", "warning"),
        ("performance", "recall", "critical"),
    ]
    document = report.to_dict()
    assert document["format"] == "shipyard.performance.v1" and len(document["windows"]) == 6
    assert report.to_json()  # strict JSON: no NaN


def test_bounds_from_the_latest_evaluation_without_config(project: Config) -> None:
    (project.project_dir / "shipyard.toml").unlink()
    config = load_config(project.project_dir, environ={})
    with ModelRegistry.open(config) as registry:
        registry.record_evaluation(
            "churn@v1",
            dataset="churn_holdout@v1",
            metrics={"roc_auc": 0.8},
            gate_results=(
                GateResult("roc_auc", "metric", 0.8, ">= 0.7", "passed", {"metric": "roc_auc"}),
                GateResult(
                    "recall_at_precision_0.6", "metric", 0.4, ">= 0.3", "passed", {"threshold": 0.4}
                ),
                GateResult("latency_p99", "latency", 3.0, "<= 200 ms", "passed"),
            ),
            threshold=0.4,
        )
        report = performance_window(registry, "churn@v1")
    assert [(b.metric, b.text) for b in report.bounds] == [
        ("roc_auc", ">= 0.7"),
        ("precision", ">= 0.6"),
        ("recall", ">= 0.3"),
    ]
    assert report.threshold == 0.4
    assert [w.label for w in report.windows] == ["all"]


def test_bad_input_gives_clear_errors(project: Config) -> None:
    with pytest.raises(NotFoundError, match="nosuch"):
        performance_window(project, "nosuch@v1")
    with pytest.raises(NotFoundError):
        performance_window(project, "churn@v9")
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"window": 0}, DataContractError, "window"),
        ({"window": "1d"}, DataContractError, "window"),
        ({"window": timedelta(0)}, DataContractError, "positive"),
        ({"window": True}, DataContractError, "window"),
        ({"since": datetime(2026, 11, 1)}, DataContractError, "timezone"),  # noqa: DTZ001
        ({"min_labels": 0}, DataContractError, "min_labels"),
        ({"thresholds": {"recal": ">= 0.6"}}, ConfigError, "recal"),
        ({"thresholds": {"recall": "at least 0.6"}}, ConfigError, "bound"),
        ({"thresholds": {"rmse": "<= 3"}}, ConfigError, "does not apply"),
        ({"thresholds": ["recall"]}, ConfigError, "thresholds"),
        ({"calibration": "magic"}, ConfigError, "calibration"),
    ]
    for arguments, error, message in cases:
        with pytest.raises(error, match=message):
            performance_window(project, "churn@v1", **arguments)
    with pytest.raises(ConfigError, match="Config, Stores or ModelRegistry"):
        performance_window("project", "churn@v1")  # type: ignore[arg-type]
    with pytest.raises(DataContractError, match="model reference"):
        performance_window(project, "")
    # An empty period is a report without windows that says so, not an error.
    empty = performance_window(project, "churn@v1", since=datetime(2030, 1, 1, tzinfo=UTC))
    assert empty.windows == () and "No predictions" in empty.notes[0]
    assert empty.findings() == []


def test_reading_the_newest_labelled_records(project: Config) -> None:
    with open_stores(project) as stores:
        newest = read_logged_predictions(stores.metadata, "churn", 1, labelled_only=True, newest=10)
        everything = read_logged_predictions(stores.metadata, "churn", 1)
    assert newest.request_ids == [f"r{i}" for i in range(990, 1000)]
    assert all(t is not None for t in newest.truths)
    assert everything.rows == 3000 and everything.truths[1500] is None
    assert (np.diff(everything.logged_at.astype(np.int64)) >= 0).all()


def test_labels_that_are_not_a_class_are_counted_not_crashing(project: Config) -> None:
    with open_stores(project) as stores:
        store_labels(stores.metadata, [(1, "r1500", "maybe"), (2, "r1501", 7)], source="bad")
    report = performance_window(project, "churn@v1", window=timedelta(days=1))
    assert report.windows[1].bad_labels == 2 and report.windows[1].labelled == 0


def test_calibration_and_estimation_against_known_answers() -> None:
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(0)
    scores = rng.random(2000)
    y = (rng.random(2000) < scores**2).astype(int)  # over-confident scores
    ours = ScoreCalibrator("isotonic").fit(scores, y).predict(scores)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(scores, y).predict(scores)
    assert np.allclose(ours, theirs)
    platt = ScoreCalibrator("platt").fit(scores, y).predict(scores)
    assert abs(platt.mean() - y.mean()) < 0.02
    # With certain probabilities (the labels themselves) the estimate is the metric.
    exact = estimate_binary_metrics(y.astype(float), scores, 0.5)
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"):
        value = exact[name]
        assert value is not None and math.isclose(
            value, m.binary_metric(name, y, scores, 0.5), abs_tol=1e-9
        ), name
    with pytest.raises(DataContractError, match="both classes"):
        ScoreCalibrator().fit([0.1, 0.2], [0, 0])
    with pytest.raises(DataContractError, match="0 or 1"):
        ScoreCalibrator().fit([0.1, 0.2], [0, 2])
    with pytest.raises(DataContractError, match="not fitted"):
        ScoreCalibrator().predict([0.1])
    with pytest.raises(ConfigError, match="method"):
        ScoreCalibrator("magic").fit([0.1, 0.9], [0, 1])  # type: ignore[arg-type]
    assert estimate_binary_metrics([], [], 0.5)["recall"] is None
