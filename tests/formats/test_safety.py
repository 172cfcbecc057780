"""Bad and hostile input: every refusal names the file or field and says what to do."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from shipyard.core.errors import AlreadyExistsError, IntegrityError, NotFoundError, ShipyardError
from shipyard.formats import (
    FlavorUnavailableError,
    ModelFormatError,
    UnsafeModelError,
    load_model,
    read_model_info,
    save_model,
)
from shipyard.formats.base import MANIFEST_FILE
from shipyard.formats.sklearn import is_safe_type

MODULE = __name__


def clip_to_unit(values: Any) -> Any:
    """A user function: skops stores it by reference, so loading it must be opted into."""
    return np.clip(values, 0.0, 1.0)


class MeanRegressor(RegressorMixin, BaseEstimator):
    """A user-defined estimator class."""

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def fit(self, X: Any, y: Any) -> MeanRegressor:
        self.mean_ = float(np.mean(y)) + self.shift
        return self

    def predict(self, X: Any) -> Any:
        return np.full(len(X), self.mean_)


class Threshold:
    """A generic Python model: no library, just predict."""

    def __init__(self, column: str, cut: float) -> None:
        self.column = column
        self.cut = cut

    def predict(self, X: Any) -> Any:
        return (X[self.column] > self.cut).to_numpy().astype(int)


class TouchOnUnpickle:
    """Creates a file when unpickled: stands in for a hostile pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def rewrite_manifest(folder: Path, **changes: Any) -> None:
    path = folder / MANIFEST_FILE
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


@pytest.fixture
def saved_pipeline(tmp_path: Path, churn_pipeline: Any) -> Path:
    save_model(churn_pipeline, tmp_path / "model")
    return tmp_path / "model"


# --- the folder and its manifest ---------------------------------------------------------


def test_missing_folder_and_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError, match="has no shipyard-model.json"):
        load_model(tmp_path / "empty")


def test_malformed_manifest_json(saved_pipeline: Path) -> None:
    (saved_pipeline / MANIFEST_FILE).write_text('{"format": "shipyard-model", ')
    with pytest.raises(ModelFormatError, match="shipyard-model.json' is not valid JSON"):
        load_model(saved_pipeline)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"flavor": 7}, "field 'flavor' must be a non-empty string"),
        ({"files": "model.skops"}, "field 'files' must be a list"),
        ({"files": []}, "field 'files' lists no file"),
        ({"created_at": "yesterday"}, "field 'created_at' is not an ISO 8601"),
        ({"format": "mlflow"}, "field 'format' must be 'shipyard-model'"),
        ({"requires": ["os"]}, "names 'os', which is not a library Shipyard knows"),
        ({"format_version": 99}, "format_version 99"),
        ({"input_example_file": "x.json"}, "'x.json', which is not in 'files'"),
    ],
)
def test_manifest_fields_are_checked_and_named(
    saved_pipeline: Path, changes: dict[str, Any], message: str
) -> None:
    rewrite_manifest(saved_pipeline, **changes)
    with pytest.raises(ModelFormatError, match=message):
        read_model_info(saved_pipeline)


def test_manifest_without_a_field_names_it(saved_pipeline: Path) -> None:
    path = saved_pipeline / MANIFEST_FILE
    document = json.loads(path.read_text())
    del document["model_class"]
    path.write_text(json.dumps(document))
    with pytest.raises(ModelFormatError, match="field 'model_class' is missing"):
        load_model(saved_pipeline)


def test_manifest_with_nan_or_not_an_object(saved_pipeline: Path) -> None:
    path = saved_pipeline / MANIFEST_FILE
    path.write_text(path.read_text().replace('"format_version": 1', '"format_version": NaN'))
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        read_model_info(saved_pipeline)
    path.write_text("[1, 2]")
    with pytest.raises(ModelFormatError, match="must be a JSON object"):
        read_model_info(saved_pipeline)


def test_huge_manifest_is_refused_unread(saved_pipeline: Path) -> None:
    (saved_pipeline / MANIFEST_FILE).write_bytes(b" " * (2 << 20))
    with pytest.raises(ModelFormatError, match="at most 1048576 bytes"):
        read_model_info(saved_pipeline)


def test_manifest_pointing_outside_the_folder(tmp_path: Path, saved_pipeline: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    document = json.loads((saved_pipeline / MANIFEST_FILE).read_text())
    document["files"][0]["name"] = "../secret.txt"
    (saved_pipeline / MANIFEST_FILE).write_text(json.dumps(document))
    with pytest.raises(ModelFormatError, match=r"files\[0\].name.*not a plain file name"):
        load_model(saved_pipeline)


def test_manifest_naming_an_unknown_flavor(saved_pipeline: Path) -> None:
    rewrite_manifest(saved_pipeline, flavor="tensorflow")
    with pytest.raises(ModelFormatError, match="Unknown model flavor 'tensorflow'") as info:
        load_model(saved_pipeline)
    assert "sklearn" in str(info.value)  # the known flavors are listed


def test_tampered_model_file_is_named(saved_pipeline: Path) -> None:
    path = saved_pipeline / "model.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="'model.skops'.*does not match its manifest"):
        load_model(saved_pipeline)


def test_missing_model_file_is_named(saved_pipeline: Path) -> None:
    (saved_pipeline / "model.skops").unlink()
    with pytest.raises(IntegrityError, match="'model.skops' is listed .* but is missing"):
        load_model(saved_pipeline)


def test_symlinked_model_file_is_refused(tmp_path: Path, saved_pipeline: Path) -> None:
    real = tmp_path / "elsewhere.skops"
    os.replace(saved_pipeline / "model.skops", real)
    (saved_pipeline / "model.skops").symlink_to(real)
    with pytest.raises(IntegrityError, match="not a regular file"):
        load_model(saved_pipeline)


# --- skops trust -------------------------------------------------------------------------


def test_skops_user_function_needs_an_explicit_trust(
    tmp_path: Path, churn: tuple[Any, Any]
) -> None:
    from sklearn.preprocessing import FunctionTransformer

    features, _ = churn
    numeric = features.select_dtypes("number").to_numpy() / 400.0
    model = FunctionTransformer(clip_to_unit).fit(numeric)
    info = save_model(model, tmp_path / "ft")
    name = f"{MODULE}.clip_to_unit"
    assert info.flavor_options["types_needing_trust"] == [name]

    with pytest.raises(UnsafeModelError, match=f"allow-list: '{name}'") as error:
        load_model(tmp_path / "ft")
    assert f"trusted_types=['{name}']" in str(error.value)
    loaded = load_model(tmp_path / "ft", trusted_types=[name])
    np.testing.assert_array_equal(loaded.transform(numeric), model.transform(numeric))


def test_skops_custom_estimator_class_needs_an_explicit_trust(
    tmp_path: Path, credit: tuple[Any, Any]
) -> None:
    features, target = credit
    model = MeanRegressor(shift=1.5).fit(features, target)
    save_model(model, tmp_path / "custom")

    with pytest.raises(UnsafeModelError, match=f"'{MODULE}.MeanRegressor'"):
        load_model(tmp_path / "custom")
    with pytest.raises(UnsafeModelError):  # trusting something else does not help
        load_model(tmp_path / "custom", trusted_types=[f"{MODULE}.Threshold"])
    loaded = load_model(tmp_path / "custom", trusted_types=[f"{MODULE}.MeanRegressor"])
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))


@pytest.mark.parametrize("dangerous", [eval, os.system, np.load])
def test_skops_file_with_a_dangerous_function_is_refused(tmp_path: Path, dangerous: Any) -> None:
    from sklearn.preprocessing import FunctionTransformer

    save_model(FunctionTransformer(dangerous), tmp_path / "bad")
    with pytest.raises(UnsafeModelError, match="allow-list"):
        load_model(tmp_path / "bad")


def test_skops_cannot_save_a_lambda_it_could_not_load(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    def local_function(values: Any) -> Any:
        return values

    for function in (lambda values: values, local_function):
        with pytest.raises(ModelFormatError, match="lambda or a nested function"):
            save_model(FunctionTransformer(function), tmp_path / "f")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("numpy.log1p", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("collections.OrderedDict", True),
        ("builtins.eval", False),
        ("builtins.getattr", False),
        ("numpy.load", False),
        ("numpy.testing._private.utils.runstring", False),
        ("numpy.f2py.compile", False),
        ("sklearn.datasets._openml.fetch_openml", False),
        ("scipy.io.loadmat", False),
        ("sklearnx.evil", False),
        ("os.system", False),
    ],
)
def test_allow_list(name: str, safe: bool) -> None:
    assert is_safe_type(name) is safe


# --- pickle ------------------------------------------------------------------------------


def test_pickle_needs_opt_in_to_save_and_to_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame_model = Threshold("total_day_minutes", 250.0)
    with pytest.raises(UnsafeModelError, match="pickle"):
        save_model(frame_model, tmp_path / "p", flavor="pickle")
    assert not (tmp_path / "p").exists()

    info = save_model(frame_model, tmp_path / "p", flavor="pickle", allow_pickle=True)
    with pytest.raises(UnsafeModelError, match="pass allow_pickle=True"):
        load_model(tmp_path / "p")
    with caplog.at_level(logging.WARNING, logger="shipyard.formats"):
        loaded = load_model(tmp_path / "p", allow_pickle=True)
    assert isinstance(loaded, Threshold) and loaded.cut == 250.0
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert str(tmp_path / "p" / "model.pkl") in warning[0].getMessage()
    assert info.file("model.pkl").content_id in warning[0].getMessage()


def test_hostile_pickle_does_not_run_without_opt_in(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    save_model(TouchOnUnpickle(marker), tmp_path / "evil", flavor="pickle", allow_pickle=True)
    assert not marker.exists()

    with pytest.raises(UnsafeModelError):
        load_model(tmp_path / "evil")
    assert not marker.exists()
    # Renaming the flavor in the manifest does not route around the opt-in.
    rewrite_manifest(tmp_path / "evil", flavor="python")
    with pytest.raises(UnsafeModelError):
        load_model(tmp_path / "evil")
    assert not marker.exists()


def test_python_model_round_trip(tmp_path: Path, churn: tuple[Any, Any]) -> None:
    features, _ = churn
    model = Threshold("total_day_minutes", 250.0)
    info = save_model(model, tmp_path / "py", allow_pickle=True)

    assert info.flavor == "python"
    assert info.model_class == f"{MODULE}.Threshold"
    loaded = load_model(tmp_path / "py", allow_pickle=True)
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))


def test_python_model_whose_module_is_gone(tmp_path: Path) -> None:
    save_model(Threshold("x", 1.0), tmp_path / "py", allow_pickle=True)
    path = tmp_path / "py" / MANIFEST_FILE
    document = json.loads(path.read_text())
    document["flavor_options"]["class_module"] = "churn_models_that_were_deleted"
    path.write_text(json.dumps(document))
    with pytest.raises(FlavorUnavailableError, match="'churn_models_that_were_deleted'"):
        load_model(tmp_path / "py", allow_pickle=True)


# --- what cannot be saved, and nothing half-written --------------------------------------


def test_unsupported_object_suggests_allow_pickle(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no safe format for a builtins.dict") as error:
        save_model({"weights": [1, 2]}, tmp_path / "d")
    assert "allow_pickle=True" in str(error.value)
    with pytest.raises(ModelFormatError, match="no safe format for a .*Threshold"):
        save_model(Threshold("x", 1.0), tmp_path / "t")  # has predict, still needs opt-in
    assert list(tmp_path.iterdir()) == []


def test_named_flavor_must_fit_the_model(tmp_path: Path, churn_pipeline: Any) -> None:
    with pytest.raises(ModelFormatError, match="Flavor 'lightgbm' cannot save a .*Pipeline"):
        save_model(churn_pipeline, tmp_path / "m", flavor="lightgbm")
    with pytest.raises(ModelFormatError, match="Unknown model flavor 'keras'"):
        save_model(churn_pipeline, tmp_path / "m", flavor="keras")


def test_invalid_onnx_bytes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="not a valid ONNX model"):
        save_model(b"\x08\x07garbage that is not a protobuf", tmp_path / "o")
    assert list(tmp_path.iterdir()) == []


def onnx_with_external_data(folder: Path) -> bytes:
    """A small valid ONNX model whose weights live in a separate file beside it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])],
        initializer=[weights],
    )
    model = helper.make_model(graph)
    folder.mkdir()
    onnx.save_model(
        model,
        folder / "m.onnx",
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    return (folder / "m.onnx").read_bytes()


def test_onnx_with_external_data_is_refused(tmp_path: Path) -> None:
    data = onnx_with_external_data(tmp_path / "src")
    with pytest.raises(ModelFormatError, match="external data files"):
        save_model(data, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_onnx_file_swapped_for_external_data_is_refused_on_load(
    tmp_path: Path, credit: tuple[Any, Any]
) -> None:
    from sklearn.linear_model import Ridge

    from shipyard.core.ids import content_id_of_bytes
    from shipyard.formats.onnx import convert_sklearn_to_onnx

    features, target = credit
    X = features.fillna(0).to_numpy()[:, :4]
    save_model(convert_sklearn_to_onnx(Ridge().fit(X, target), X[:2]), tmp_path / "o")
    hostile = onnx_with_external_data(tmp_path / "src")
    (tmp_path / "o" / "model.onnx").write_bytes(hostile)
    manifest = json.loads((tmp_path / "o" / MANIFEST_FILE).read_text())
    manifest["files"][0].update(content_id=content_id_of_bytes(hostile), size=len(hostile))
    (tmp_path / "o" / MANIFEST_FILE).write_text(json.dumps(manifest))

    with pytest.raises(ModelFormatError, match="external data files"):
        load_model(tmp_path / "o")


def test_unfitted_and_custom_objective_boosters(tmp_path: Path) -> None:
    import lightgbm as lgb
    import xgboost as xgb

    with pytest.raises(ModelFormatError, match="not fitted"):
        save_model(lgb.LGBMClassifier(), tmp_path / "a")
    with pytest.raises(ModelFormatError, match="not fitted"):
        save_model(xgb.XGBRegressor(), tmp_path / "b")

    def squared(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        return y_pred - y_true, np.ones_like(y_pred)

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 3)), rng.normal(size=200)
    custom = lgb.LGBMRegressor(objective=squared, n_estimators=2, verbose=-1, n_jobs=1).fit(X, y)
    with pytest.raises(ModelFormatError, match="custom \\(callable\\) objective"):
        save_model(custom, tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_failure_after_files_were_written_leaves_nothing(
    tmp_path: Path, churn_pipeline: Any
) -> None:
    with pytest.raises(ModelFormatError, match="input example .* cannot be stored as JSON"):
        save_model(churn_pipeline, tmp_path / "m", input_example={"when": object()})
    assert list(tmp_path.iterdir()) == []


def test_bad_metadata_is_refused_before_writing(tmp_path: Path, churn_pipeline: Any) -> None:
    with pytest.raises(ModelFormatError, match=r"metadata\['score'\] cannot be stored as JSON"):
        save_model(churn_pipeline, tmp_path / "m", metadata={"score": float("nan")})
    with pytest.raises(ModelFormatError, match="string keys"):
        save_model(churn_pipeline, tmp_path / "m", metadata={1: "x"})  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []


def test_a_saved_model_is_never_overwritten(tmp_path: Path, churn_pipeline: Any) -> None:
    first = save_model(churn_pipeline, tmp_path / "m")
    with pytest.raises(AlreadyExistsError, match="never overwritten"):
        save_model(churn_pipeline, tmp_path / "m")
    assert read_model_info(tmp_path / "m") == first
    (tmp_path / "empty").mkdir()
    save_model(churn_pipeline, tmp_path / "empty")  # an empty folder is fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(AlreadyExistsError):
        save_model(churn_pipeline, tmp_path / "file")


# --- libraries ---------------------------------------------------------------------------


def test_missing_library_names_the_pip_extra(
    tmp_path: Path, credit: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightgbm as lgb

    features, target = credit
    save_model(
        lgb.LGBMRegressor(n_estimators=2, verbose=-1, n_jobs=1).fit(features, target),
        tmp_path / "m",
    )
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # as if it were not installed
    with pytest.raises(FlavorUnavailableError, match="pip install 'shipyard\\[lightgbm\\]'"):
        load_model(tmp_path / "m")


def test_major_version_drift_is_logged(
    tmp_path: Path, credit: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    import lightgbm as lgb

    features, target = credit
    model = lgb.LGBMRegressor(n_estimators=2, verbose=-1, n_jobs=1).fit(features, target)
    info = save_model(model, tmp_path / "m")
    rewrite_manifest(
        tmp_path / "m", library_versions={**info.library_versions, "lightgbm": "1.2.0"}
    )

    with caplog.at_level(logging.WARNING, logger="shipyard.formats"):
        loaded = load_model(tmp_path / "m")
    messages = [r.getMessage() for r in caplog.records]
    assert any("saved with lightgbm 1.2.0" in m and lgb.__version__ in m for m in messages)
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    rewrite_manifest(tmp_path / "m", library_versions=info.library_versions)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="shipyard.formats"):
        load_model(tmp_path / "m")  # the versions it was saved with: no warning
    assert caplog.records == []


def test_estimator_file_naming_a_foreign_class_is_refused(
    tmp_path: Path, credit: tuple[Any, Any]
) -> None:
    """Someone who can rewrite the files and the manifest still cannot pick the class."""
    import lightgbm as lgb

    from shipyard.core.ids import content_id_of_bytes

    features, target = credit
    save_model(
        lgb.LGBMRegressor(n_estimators=2, verbose=-1, n_jobs=1).fit(features, target),
        tmp_path / "m",
    )
    state_path = tmp_path / "m" / "estimator.json"
    state = json.loads(state_path.read_text())
    state["estimator_class"] = "Booster"  # an attribute of lightgbm.sklearn, not an estimator
    state_path.write_text(json.dumps(state))
    manifest = json.loads((tmp_path / "m" / MANIFEST_FILE).read_text())
    for entry in manifest["files"]:
        if entry["name"] == "estimator.json":
            entry["content_id"] = content_id_of_bytes(state_path.read_bytes())
            entry["size"] = state_path.stat().st_size
    (tmp_path / "m" / MANIFEST_FILE).write_text(json.dumps(manifest))

    with pytest.raises(ModelFormatError, match="'Booster', which is not a LightGBM"):
        load_model(tmp_path / "m")


def test_every_error_is_a_shipyard_error() -> None:
    for error in (UnsafeModelError, ModelFormatError, FlavorUnavailableError):
        assert issubclass(error, ShipyardError)
        assert error.code.startswith("SY8")
