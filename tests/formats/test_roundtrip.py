"""Round trips on real data: what load_model returns predicts exactly what was saved."""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.core.ids import content_id_of_bytes
from shipyard.formats import (
    ModelInfo,
    load_model,
    read_input_example,
    read_model_info,
    save_model,
)
from shipyard.formats.base import MANIFEST_FILE


def assert_same_predictions(original: Any, loaded: Any, features: Any) -> None:
    expected = original.predict(features)
    actual = loaded.predict(features)
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)
    if hasattr(original, "predict_proba"):
        np.testing.assert_array_equal(
            loaded.predict_proba(features), original.predict_proba(features)
        )


# --- scikit-learn (skops) ----------------------------------------------------------------


def test_sklearn_pipeline_round_trip_on_churn(
    tmp_path: Path, churn: tuple[Any, Any], churn_pipeline: Any
) -> None:
    features, _ = churn
    info = save_model(churn_pipeline, tmp_path / "churn", input_example=features.head(5))

    assert info.flavor == "sklearn" and info.model_format == "skops"
    assert info.model_class == "sklearn.pipeline.Pipeline"
    assert info.classes == ("no", "yes")
    loaded = load_model(tmp_path / "churn")
    assert type(loaded) is type(churn_pipeline)
    assert_same_predictions(churn_pipeline, loaded, features)


def test_gradient_boosting_round_trip(tmp_path: Path, churn: tuple[Any, Any]) -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    features, target = churn
    numeric = features.select_dtypes("number")
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(numeric, target)
    save_model(model, tmp_path / "gb")

    # Its trees (sklearn.tree._tree.Tree) are not trusted by skops itself: the allow-list is.
    assert read_model_info(tmp_path / "gb").flavor_options["types_needing_trust"] == []
    assert_same_predictions(model, load_model(tmp_path / "gb"), numeric)


def test_regressor_round_trip_keeps_missing_value_handling(
    tmp_path: Path, credit: tuple[Any, Any]
) -> None:
    from sklearn.tree import DecisionTreeRegressor

    features, target = credit
    assert features.isna().any().any()  # the real missing values reach the model
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(features, target)
    info = save_model(model, tmp_path / "tree")

    assert info.classes is None
    assert_same_predictions(model, load_model(tmp_path / "tree"), features)


def test_boosters_inside_a_pipeline_go_through_skops(
    tmp_path: Path, churn: tuple[Any, Any]
) -> None:
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = churn
    numeric = features.select_dtypes("number")
    label = (target == "yes").astype(int)
    for name, booster in (
        ("lgbm", lgb.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1)),
        ("xgb", xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1)),
    ):
        pipeline = make_pipeline(StandardScaler(), booster).fit(numeric, label)
        info = save_model(pipeline, tmp_path / name)

        assert info.flavor == "sklearn"  # the pipeline decides; its booster types are allowed
        assert_same_predictions(pipeline, load_model(tmp_path / name), numeric)


# --- LightGBM ----------------------------------------------------------------------------


def test_lgbm_classifier_round_trip(tmp_path: Path, churn_categorical: tuple[Any, Any]) -> None:
    import lightgbm as lgb

    features, target = churn_categorical
    model = lgb.LGBMClassifier(n_estimators=15, verbose=-1, n_jobs=1).fit(features, target)
    info = save_model(model, tmp_path / "lgbm")

    assert info.flavor == "lightgbm" and info.model_format == "lightgbm-text"
    assert {f.name for f in info.files} == {"model.txt", "estimator.json"}
    assert info.classes == ("no", "yes")
    assert (tmp_path / "lgbm" / "model.txt").read_text().startswith("tree")
    loaded = load_model(tmp_path / "lgbm")
    assert type(loaded) is lgb.LGBMClassifier
    assert loaded.get_params() == model.get_params()
    assert list(loaded.feature_names_in_) == list(model.feature_names_in_)
    assert_same_predictions(model, loaded, features)


def test_lgbm_regressor_round_trip_on_credit(tmp_path: Path, credit: tuple[Any, Any]) -> None:
    import lightgbm as lgb

    features, target = credit
    model = lgb.LGBMRegressor(n_estimators=15, verbose=-1, n_jobs=1).fit(
        features.to_numpy(), target
    )
    save_model(model, tmp_path / "lgbm-reg")

    loaded = load_model(tmp_path / "lgbm-reg")
    assert type(loaded) is lgb.LGBMRegressor
    assert_same_predictions(model, loaded, features.to_numpy())


def test_lgb_train_booster_keeps_its_best_iteration(
    tmp_path: Path, churn_categorical: tuple[Any, Any]
) -> None:
    import lightgbm as lgb

    features, target = churn_categorical
    label = (target == "yes").astype(int)
    train, valid = features.iloc[:4000], features.iloc[4000:]
    booster = lgb.train(
        {"objective": "binary", "learning_rate": 0.5, "verbose": -1, "num_threads": 1},
        lgb.Dataset(train, label.iloc[:4000]),
        num_boost_round=60,
        valid_sets=[lgb.Dataset(valid, label.iloc[4000:])],
        callbacks=[lgb.early_stopping(3, verbose=False)],
        keep_training_booster=True,  # keeps the trees grown after the best iteration
    )
    assert 0 < booster.best_iteration < booster.current_iteration()
    save_model(booster, tmp_path / "booster")

    loaded = load_model(tmp_path / "booster")
    assert isinstance(loaded, lgb.Booster)
    assert loaded.best_iteration == booster.best_iteration
    assert loaded.current_iteration() == booster.current_iteration()  # every tree kept
    np.testing.assert_array_equal(loaded.predict(features), booster.predict(features))


# --- XGBoost -----------------------------------------------------------------------------


def test_xgb_classifier_round_trip(tmp_path: Path, churn_categorical: tuple[Any, Any]) -> None:
    import xgboost as xgb

    features, target = churn_categorical
    label = (target == "yes").astype(int)
    model = xgb.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1, enable_categorical=True)
    model.fit(features, label)
    info = save_model(model, tmp_path / "xgb")

    assert info.flavor == "xgboost" and info.model_format == "xgboost-ubj"
    assert info.classes == (0, 1)
    loaded = load_model(tmp_path / "xgb")
    assert type(loaded) is xgb.XGBClassifier
    assert loaded.get_params()["n_estimators"] == 10
    assert_same_predictions(model, loaded, features)


def test_xgb_regressor_round_trip_on_credit(tmp_path: Path, credit: tuple[Any, Any]) -> None:
    import xgboost as xgb

    features, target = credit
    model = xgb.XGBRegressor(n_estimators=10, max_depth=3, n_jobs=1).fit(features, target)
    save_model(model, tmp_path / "xgb-reg")

    assert_same_predictions(model, load_model(tmp_path / "xgb-reg"), features)


def test_xgb_train_booster_round_trip(tmp_path: Path, credit: tuple[Any, Any]) -> None:
    import xgboost as xgb

    features, target = credit
    matrix = xgb.DMatrix(features, target)
    booster = xgb.train({"max_depth": 3, "nthread": 1}, matrix, num_boost_round=10)
    save_model(booster, tmp_path / "xgb-booster")

    loaded = load_model(tmp_path / "xgb-booster")
    assert isinstance(loaded, xgb.Booster)
    np.testing.assert_array_equal(loaded.predict(matrix), booster.predict(matrix))


# --- ONNX --------------------------------------------------------------------------------


def test_onnx_export_of_the_sklearn_pipeline(
    tmp_path: Path, churn: tuple[Any, Any], churn_pipeline: Any
) -> None:
    from shipyard.formats.onnx import OnnxModel, convert_sklearn_to_onnx

    features, _ = churn
    proto = convert_sklearn_to_onnx(churn_pipeline, features.head())
    info = save_model(proto, tmp_path / "onnx")

    assert info.flavor == "onnx" and info.classes == ("no", "yes")
    assert info.flavor_options["outputs"] == ["label", "probabilities"]
    loaded = load_model(tmp_path / "onnx")
    assert isinstance(loaded, OnnxModel)
    expected = churn_pipeline.predict_proba(features)
    probabilities = loaded.predict_proba(features)
    assert probabilities.dtype == np.float32  # float32 inside, hence allclose
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    labels = loaded.predict(features)
    near_tie = np.abs(expected[:, 1] - 0.5) < 1e-5
    assert ((labels == churn_pipeline.predict(features)) | near_tie).all()
    assert list(loaded.classes_) == ["no", "yes"]

    # The loaded wrapper saves again to the same bytes, hence the same content id.
    assert save_model(loaded, tmp_path / "again").content_id == info.content_id


def test_onnx_model_with_one_array_input(tmp_path: Path, credit: tuple[Any, Any]) -> None:
    from sklearn.linear_model import Ridge

    from shipyard.formats.onnx import convert_sklearn_to_onnx

    features, target = credit
    numeric = features.fillna(0.0).to_numpy()
    model = Ridge().fit(numeric, target)
    save_model(convert_sklearn_to_onnx(model, numeric[:5]).SerializeToString(), tmp_path / "m")

    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict(numeric), model.predict(numeric), rtol=1e-4)
    with pytest.raises(Exception, match="no probability output"):
        loaded.predict_proba(numeric)


def test_onnx_input_missing_a_column_names_it(
    tmp_path: Path, churn: tuple[Any, Any], churn_pipeline: Any
) -> None:
    from shipyard.core.errors import DataContractError
    from shipyard.formats.onnx import convert_sklearn_to_onnx

    features, _ = churn
    save_model(convert_sklearn_to_onnx(churn_pipeline, features.head()), tmp_path / "onnx")
    loaded = load_model(tmp_path / "onnx")

    with pytest.raises(DataContractError, match="'total_day_minutes'"):
        loaded.predict(features.drop(columns=["total_day_minutes"]))


# --- the manifest, the example, the metadata ---------------------------------------------


def test_manifest_records_versions_hashes_and_metadata(
    tmp_path: Path, churn: tuple[Any, Any], churn_pipeline: Any
) -> None:
    import sklearn
    import skops

    info = save_model(churn_pipeline, tmp_path / "m", metadata={"owner": "churn-team", "v": [1]})
    folder = tmp_path / "m"
    document = json.loads((folder / MANIFEST_FILE).read_text())

    assert document["format"] == "shipyard-model" and document["format_version"] == 1
    assert document["library_versions"]["sklearn"] == sklearn.__version__
    assert document["library_versions"]["skops"] == skops.__version__
    assert document["python_version"] == platform.python_version()
    for entry in document["files"]:
        data = (folder / entry["name"]).read_bytes()
        assert entry["content_id"] == content_id_of_bytes(data)
        assert entry["size"] == len(data)
    assert read_model_info(folder) == info
    assert info.metadata == {"owner": "churn-team", "v": [1]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.flavor = "pickle"  # type: ignore[misc]
    # Nothing but the model folder is left beside it (no staging folder).
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_input_example_round_trips_with_dtypes_and_missing_values(
    tmp_path: Path, credit: tuple[Any, Any]
) -> None:
    from sklearn.tree import DecisionTreeRegressor

    features, target = credit
    rows = features[features.isna().any(axis=1)].head(3)
    assert len(rows) == 3
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(features, target)
    save_model(model, tmp_path / "m", input_example=features.head(500))

    example = read_input_example(tmp_path / "m")
    assert len(example) == 100  # an example, not a data set
    assert list(example.columns) == list(features.columns)
    assert example.dtypes.tolist() == features.dtypes.tolist()
    save_model(model, tmp_path / "m2", input_example=rows)
    back = read_input_example(tmp_path / "m2")
    assert back.isna().to_numpy().tolist() == rows.isna().to_numpy().tolist()
    np.testing.assert_array_equal(model.predict(back), model.predict(rows))


def test_numpy_input_example_and_no_example(tmp_path: Path, credit: tuple[Any, Any]) -> None:
    import lightgbm as lgb

    features, target = credit
    array = features.to_numpy()
    model = lgb.LGBMRegressor(n_estimators=3, verbose=-1, n_jobs=1).fit(array, target)
    save_model(model, tmp_path / "with", input_example=array[:4])
    save_model(model, tmp_path / "without")

    example = read_input_example(tmp_path / "with")
    assert example.dtype == array.dtype and example.shape == (4, array.shape[1])
    np.testing.assert_array_equal(np.isnan(example), np.isnan(array[:4]))
    assert read_input_example(tmp_path / "without") is None


def test_same_booster_gives_the_same_content_id(
    tmp_path: Path, churn_categorical: tuple[Any, Any]
) -> None:
    import lightgbm as lgb

    features, target = churn_categorical
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1},
        lgb.Dataset(features, (target == "yes").astype(int)),
        num_boost_round=5,
    )
    first: ModelInfo = save_model(booster, tmp_path / "a")
    second = save_model(booster, tmp_path / "b")

    assert first.content_id == second.content_id
    assert first.created_at <= second.created_at
