"""``LoadedModel.predict``: every input shape, column order, thresholds, bad rows, caching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from shipyard.core.errors import DataContractError, IntegrityError
from shipyard.models import ModelInputError
from shipyard.models.loaded import LoadedModel
from shipyard.models.registry import ModelRegistry
from tests.models.conftest import FEATURES, NUMERIC, ChurnProject


@pytest.fixture
def churn_model(registry: ModelRegistry, churn_template: ChurnProject) -> LoadedModel:
    registry.register("churn", run_id=churn_template.run_id)
    return registry.load("churn@v1")


def test_every_input_shape_gives_the_same_answer(
    churn_model: LoadedModel, churn_frame: Any, fitted_pipeline: Any
) -> None:
    frame = churn_frame[FEATURES].head(8)
    expected = fitted_pipeline.predict_proba(frame)[:, 1]
    records = frame.to_dict("records")
    shuffled = [dict(sorted(row.items(), reverse=True)) | {"extra": 1} for row in records]
    for rows in (
        frame,
        frame[list(reversed(FEATURES))],  # wrong column order
        pa.Table.from_pandas(frame, preserve_index=False),
        records,
        shuffled,  # keys in another order, an extra column
    ):
        prediction = churn_model.predict(rows)
        assert np.allclose(prediction.scores, expected)
        assert prediction.labels.tolist() == [
            "yes" if s >= 0.5 else "no" for s in prediction.scores
        ]
    single = churn_model.predict(records[0])  # one dict
    assert single.scores.shape == (1,) and len(single) == 1
    assert single.version_id == churn_model.version.id


def test_empty_batch_answers_empty(churn_model: LoadedModel) -> None:
    prediction = churn_model.predict([])
    assert prediction.scores.shape == (0,)
    assert prediction.labels is not None and len(prediction.labels) == 0


def test_threshold_from_evaluation_changes_labels(
    registry: ModelRegistry, churn_model: LoadedModel, churn_frame: Any
) -> None:
    rows = churn_frame[FEATURES].head(30)
    scores = churn_model.predict(rows).scores
    cut = float(np.sort(scores)[-5])  # five rows at or above it
    registry.record_evaluation("churn@v1", metrics={"auc": 0.8}, threshold=cut)
    reloaded = registry.load("churn@v1")
    assert reloaded.threshold == cut and reloaded.version.threshold == cut
    assert reloaded.signature.threshold == cut
    assert (reloaded.predict(rows).labels == "yes").sum() == 5
    assert reloaded.model is churn_model.model  # cached per version id, not loaded again


def test_bad_rows_get_errors_naming_row_and_column(churn_model: LoadedModel) -> None:
    good = dict(churn_model.signature.input_example[0])
    with pytest.raises(DataContractError, match=r"Row 1, column 'account_length'.*int64"):
        churn_model.predict([good, {**good, "account_length": "abc"}])
    with pytest.raises(DataContractError, match="'state'"):
        churn_model.predict([{**good, "state": 12}])
    with pytest.raises(ModelInputError, match="Row 0 is a str"):
        churn_model.predict(["not a row"])
    with pytest.raises(ModelInputError, match="rows must be"):
        churn_model.predict(42)
    import pandas as pd

    with pytest.raises(DataContractError, match="lack column.*'state'"):
        churn_model.predict(pd.DataFrame([good]).drop(columns=["state"]))


def test_missing_values_reach_the_model_and_its_failure_is_clear(
    registry: ModelRegistry, numeric_xy: tuple[Any, Any]
) -> None:
    import lightgbm
    from sklearn.linear_model import LogisticRegression

    X, y = numeric_xy
    tolerant = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    strict = LogisticRegression(max_iter=300).fit(X, y)
    registry.register("tolerant", model=tolerant, input_example=X.head(3))
    registry.register("strict", model=strict, input_example=X.head(3))
    row = {**X.head(1).to_dict("records")[0], "total_day_minutes": None}
    row.pop("account_length")  # an absent key is a missing value too
    answer = registry.load("tolerant@v1").predict([row])
    assert 0.0 <= answer.scores[0] <= 1.0
    from_table = registry.load("tolerant@v1").predict(pa.Table.from_pylist([row]))
    assert np.allclose(from_table.scores, answer.scores)  # a batch without the column
    with pytest.raises(DataContractError, match=r"strict@v1 could not score 1 row.*NaN"):
        registry.load("strict@v1").predict([row])


def test_multiclass_and_regression(registry: ModelRegistry, churn_frame: Any) -> None:
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = churn_frame[NUMERIC].astype("float64")
    bands = (
        churn_frame["number_customer_service_calls"].clip(0, 2).map({0: "low", 1: "mid", 2: "high"})
    )
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, bands)
    registry.register("bands", model=classifier, input_example=X.head(3))
    model = registry.load("bands@v1")
    assert model.signature.task == "multiclass_classification"
    prediction = model.predict(X.head(7))
    assert prediction.scores.shape == (7, 3)
    assert prediction.labels.tolist() == classifier.predict(X.head(7)).tolist()
    assert model.predict([]).scores.shape == (0, 3)

    regression = LinearRegression().fit(X, churn_frame["total_day_minutes"])
    registry.register("minutes", model=regression, input_example=X.head(3))
    loaded = registry.load("minutes")
    assert loaded.signature.task == "regression" and loaded.threshold is None
    answer = loaded.predict(X.head(4).to_dict("records"))
    assert answer.labels is None
    assert np.allclose(answer.scores, regression.predict(X.head(4)))


def test_predict_raw_is_the_bare_library_call(churn_model: LoadedModel, churn_frame: Any) -> None:
    frame = churn_model.frame(churn_frame[FEATURES].head(2).to_dict("records"))
    raw = churn_model.predict_raw(frame)
    assert raw.shape == (2, 2)  # predict_proba: both classes
    assert np.allclose(raw[:, 1], churn_model.predict(churn_frame[FEATURES].head(2)).scores)
    churn_model.warm_up()  # scores the signature's input example without error


def test_tampered_files_are_caught(
    project: Any, churn_template: ChurnProject, caplog: pytest.LogCaptureFixture
) -> None:
    with ModelRegistry.open(project) as registry:
        version = registry.register("churn", run_id=churn_template.run_id)
        registry.load(version.reference)
    cached = project.home / "cache" / "models" / version.id.removeprefix("sha256:")
    model_file = next((cached / "model").glob("*.skops"))
    original = model_file.read_bytes()
    # A changed local copy is detected and replaced from the artifact store.
    model_file.write_bytes(original[:-10])
    with ModelRegistry.open(project) as fresh:
        fresh.load(version.reference).warm_up()
    assert "failed their checks" in caplog.text
    assert model_file.read_bytes() == original
    # A changed blob in the artifact store itself is refused.
    from shipyard.formats import read_model_info

    info = read_model_info(cached / "model")
    hexa = info.file(model_file.name).content_id.removeprefix("sha256:")
    stored = next(Path(project.store.artifacts).rglob(hexa))
    stored.chmod(0o644)
    stored.write_bytes(original[:-10])
    import shutil

    shutil.rmtree(cached)
    with ModelRegistry.open(project) as fresh, pytest.raises(IntegrityError):
        fresh.load(version.reference)


def test_onnx_graph_with_one_input_per_column(registry: ModelRegistry, churn_frame: Any) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from shipyard.formats import convert_sklearn_to_onnx

    categorical, numeric = ["international_plan"], ["total_day_minutes", "total_intl_calls"]
    X = churn_frame[categorical + numeric].astype({c: "float64" for c in numeric})
    y = (churn_frame["churn"] == "yes").astype(int)
    encoder = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), categorical), (StandardScaler(), numeric)
    )
    pipeline = make_pipeline(encoder, LogisticRegression(max_iter=300)).fit(X, y)
    registry.register(
        "churn-onnx", model=convert_sklearn_to_onnx(pipeline, X.head()), input_example=X.head(3)
    )
    model = registry.load("churn-onnx@v1")
    assert model.input_format == "columns"
    rows = [dict(reversed(list(row.items()))) for row in X.head(6).to_dict("records")]
    expected = pipeline.predict_proba(X.head(6))[:, 1]
    assert np.allclose(model.predict(rows).scores, expected, atol=1e-5)
    assert np.allclose(model.predict(X.head(6)).scores, expected, atol=1e-5)
