"""Registering versions: from a run and from fitted models of every type, signatures,
lineage, immutability, and every kind of bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shipyard.core.errors import NotFoundError, ReferenceError_
from shipyard.formats import ModelFormatError, UnsafeModelError
from shipyard.models import ModelInputError, Signature, signature_from
from shipyard.models.registry import ModelRegistry
from tests.models.conftest import FEATURES, NUMERIC, ChurnProject
from tests.models.helpers import CallsRule, add_calls_per_day, halve_scores


def test_register_from_run_takes_signature_and_lineage(
    registry: ModelRegistry, churn_template: ChurnProject
) -> None:
    version = registry.register("churn", run_id=churn_template.run_id, description="baseline")
    assert version.reference == "churn@v1"
    assert version.id.startswith("sha256:") and len(version.id) == 71
    assert (version.flavor, version.model_type) == ("sklearn", "sklearn")
    assert version.run_id == churn_template.run_id
    from shipyard.tracking import queries

    with registry.stores.metadata.connect() as conn:
        run = queries.load_run(conn, churn_template.run_id)
    assert version.code_commit == run.git_commit  # lineage: the code the run ran
    assert version.dataset_versions == (churn_template.dataset_ref,)  # the run's train input
    assert not version.uses_pickle
    signature = version.signature
    assert signature.task == "binary_classification"
    assert signature.classes == ("no", "yes")
    assert [spec.name for spec in signature.inputs] == FEATURES
    plan = signature.input("international_plan")
    assert plan.type == "string" and plan.nullable is False
    assert plan.rules == {"allowed": ["no", "yes"]}  # declared in the dataset's contract
    assert set(plan.observed["categories"]) == {"no", "yes"}
    calls = signature.input("number_customer_service_calls")
    assert calls.rules == {"min": 0, "max": 20}
    assert calls.observed["min"] >= 0 and calls.observed["max"] <= 20  # what training saw
    assert signature.input("account_length").rules == {}  # observed only, no rule
    assert [o.name for o in signature.outputs] == ["score", "label"]
    assert len(signature.input_example) == 3
    assert set(signature.input_example[0]) == set(FEATURES)


def test_same_package_gives_same_version_and_numbers_grow(
    registry: ModelRegistry, churn_template: ChurnProject, fitted_pipeline: Any
) -> None:
    first = registry.register("churn", run_id=churn_template.run_id)
    again = registry.register("churn", run_id=churn_template.run_id)
    assert (again.number, again.id) == (first.number, first.id)
    other = registry.register(
        "churn", model=fitted_pipeline, training_data=churn_template.dataset_ref
    )
    assert other.number == 2 and other.id != first.id
    assert [v.number for v in registry.list_versions("churn")] == [2, 1]
    assert registry.get("churn").number == 2  # a bare name is the newest
    assert registry.get(f"churn@{first.short_id}").number == 1
    # The same files under another name: the same id, its own numbering.
    twin = registry.register("churn-copy", run_id=churn_template.run_id)
    assert (twin.id, twin.number) == (first.id, 1)
    assert registry.list_models() == ["churn", "churn-copy"]


def test_fitted_sklearn_model_with_feature_service(
    registry: ModelRegistry, churn_template: ChurnProject, fitted_pipeline: Any
) -> None:
    version = registry.register(
        "churn",
        model=fitted_pipeline,
        training_data=churn_template.dataset_ref,
        feature_service="churn_features@v2",
        tags={"team": "retention"},
    )
    assert version.feature_service == "churn_features@v2"
    assert version.signature.feature_service == "churn_features@v2"
    assert version.tags == {"team": "retention"}
    assert version.code_commit is None and version.run_id is None
    found = registry.versions_using_feature_service("churn_features")
    assert [v.reference for v in found] == ["churn@v1"]
    assert registry.versions_using_feature_service("other_features") == []
    loaded = registry.load(version.reference)
    rows = churn_template.frame[FEATURES].head(4)
    expected = fitted_pipeline.predict_proba(rows)[:, 1]
    assert np.allclose(loaded.predict(rows).scores, expected)


def test_lightgbm_xgboost_onnx_models(registry: ModelRegistry, numeric_xy: tuple[Any, Any]) -> None:
    import lightgbm
    import xgboost
    from sklearn.linear_model import LogisticRegression

    from shipyard.formats import convert_sklearn_to_onnx

    X, y = numeric_xy
    models = {
        "lgbm": lightgbm.LGBMClassifier(n_estimators=15, num_leaves=7, verbose=-1).fit(X, y),
        "xgb": xgboost.XGBClassifier(n_estimators=15, max_depth=3).fit(X, y),
        "onnx": convert_sklearn_to_onnx(
            LogisticRegression(max_iter=300).fit(X.to_numpy(), y), X.head().to_numpy()
        ),
    }
    expected_types = {"lgbm": "lightgbm", "xgb": "xgboost", "onnx": "onnx"}
    for name, model in models.items():
        version = registry.register(name, model=model, input_example=X.head(3))
        assert version.model_type == expected_types[name]
        assert version.signature.task == "binary_classification", name
        assert [s.name for s in version.signature.inputs] == NUMERIC
        prediction = registry.load(version.reference).predict(X.head(20).to_dict("records"))
        assert prediction.scores.shape == (20,)
        assert ((prediction.scores >= 0) & (prediction.scores <= 1)).all()
        assert set(prediction.labels.tolist()) <= {0, 1}
        if name != "onnx":
            assert np.allclose(prediction.scores, model.predict_proba(X.head(20))[:, 1])


def test_generic_python_model_with_hooks_needs_allow_pickle(
    registry: ModelRegistry, churn_frame: Any
) -> None:
    rows = churn_frame[NUMERIC].head(6)
    with pytest.raises(ModelFormatError, match="allow_pickle=True"):
        registry.register("rule", model=CallsRule(), input_example=rows)
    with pytest.raises(ModelInputError, match="allow_pickle"):
        registry.register(
            "rule",
            model=fitted_like_sklearn(),
            input_example=rows,
            preprocess=add_calls_per_day,
        )
    version = registry.register(
        "rule",
        model=CallsRule(scale=4.0),
        input_example=rows,
        preprocess=add_calls_per_day,
        postprocess=halve_scores,
        allow_pickle=True,
        task="regression",
    )
    assert (version.model_type, version.flavor, version.uses_pickle) == ("python", "python", True)
    with pytest.raises(UnsafeModelError, match="allow_pickle=True"):
        registry.load(version.reference)
    loaded = registry.load(version.reference, allow_pickle=True)
    expected = np.clip(rows["number_customer_service_calls"].to_numpy() / 4.0, 0, 1) / 2.0
    assert np.allclose(loaded.predict(rows).scores, expected)
    assert loaded.predict(rows).labels is None


def fitted_like_sklearn() -> Any:
    from sklearn.dummy import DummyClassifier

    return DummyClassifier().fit([[0.0] * len(NUMERIC), [1.0] * len(NUMERIC)], [0, 1])


def test_lambda_hook_is_refused(registry: ModelRegistry, churn_frame: Any) -> None:
    with pytest.raises(ModelInputError, match="module-level function"):
        registry.register(
            "rule",
            model=CallsRule(),
            input_example=churn_frame[NUMERIC].head(3),
            preprocess=lambda frame: frame,
            allow_pickle=True,
        )
    with pytest.raises(ModelInputError, match="callable"):
        registry.register(
            "rule",
            model=CallsRule(),
            input_example=churn_frame[NUMERIC].head(3),
            postprocess="not a function",  # type: ignore[arg-type]
            allow_pickle=True,
        )
    assert registry.list_models() == []  # nothing half-registered


def test_explicit_signature_and_signature_from(
    registry: ModelRegistry, numeric_xy: tuple[Any, Any]
) -> None:
    from sklearn.linear_model import LinearRegression

    X, y = numeric_xy
    model = LinearRegression().fit(X.to_numpy(), y)  # no feature names
    with pytest.raises(ModelInputError, match="which columns"):
        registry.register("reg", model=model)
    signature = signature_from(X.head(2), task="regression")
    assert isinstance(signature, Signature)
    version = registry.register("reg", model=model, signature=signature)
    assert version.signature.task == "regression"
    loaded = registry.load("reg@v1")
    assert loaded.input_format == "numpy"
    shuffled = [dict(reversed(list(row.items()))) for row in X.head(5).to_dict("records")]
    assert np.allclose(loaded.predict(shuffled).scores, model.predict(X.head(5).to_numpy()))
    import pyarrow as pa

    table = pa.Table.from_pandas(X.head(5)[list(reversed(NUMERIC))], preserve_index=False)
    assert np.allclose(loaded.predict(table).scores, model.predict(X.head(5).to_numpy()))


def test_bad_input_is_refused_clearly(
    registry: ModelRegistry, churn_template: ChurnProject, fitted_pipeline: Any
) -> None:
    run_id = churn_template.run_id
    with pytest.raises(ModelInputError, match="exactly one of"):
        registry.register("churn")
    with pytest.raises(ModelInputError, match="Both were given"):
        registry.register("churn", model=fitted_pipeline, run_id=run_id)
    with pytest.raises(ReferenceError_, match="Invalid model name"):
        registry.register("bad name!", run_id=run_id)
    with pytest.raises(NotFoundError, match="does not exist|No run id"):
        registry.register("churn", run_id="0" * 32)
    with pytest.raises(NotFoundError, match="too short|not hexadecimal"):
        registry.register("churn", run_id="xyz")
    with pytest.raises(NotFoundError, match="no model at 'weights'.*under 'model'"):
        registry.register("churn", run_id=run_id, artifact_path="weights")
    with pytest.raises(NotFoundError, match="Dataset 'nope' does not exist"):
        registry.register("churn", run_id=run_id, training_data="nope@v1")
    with pytest.raises(NotFoundError, match="Dataset 'churn' has no version '9'"):
        registry.register("churn", run_id=run_id, training_data="churn@v9")
    with pytest.raises(ModelInputError, match="training_data"):
        registry.register("churn", run_id=run_id, training_data=42)  # type: ignore[arg-type]
    with pytest.raises(ReferenceError_):
        registry.register("churn", run_id=run_id, feature_service="bad@@ref")
    with pytest.raises(ModelInputError, match="tags"):
        registry.register("churn", run_id=run_id, tags=["a"])  # type: ignore[arg-type]
    with pytest.raises(ModelInputError, match="signature must be"):
        registry.register("churn", run_id=run_id, signature={"inputs": []})  # type: ignore[arg-type]
    with pytest.raises(ModelInputError, match="task"):
        registry.register("churn", model=fitted_pipeline, training_data="churn@v1", task="magic")  # type: ignore[arg-type]
    with pytest.raises(ModelInputError, match="description"):
        registry.register("churn", run_id=run_id, description="x" * 20_000)
    assert registry.list_models() == []


def test_run_without_model_and_artifact_that_is_not_a_model(
    project: Any, registry: ModelRegistry, tmp_path: Any
) -> None:
    from shipyard.tracking.client import TrackingClient

    note = tmp_path / "notes.txt"
    note.write_text("hello")
    with TrackingClient(project) as tracking:
        run = tracking.create_run("churn")
        tracking.log_artifact(run.id, note, "model")
        tracking.set_terminated(run.id)
        empty = tracking.create_run("churn")
        tracking.set_terminated(empty.id)
    with pytest.raises(ModelInputError, match="not a saved model"):
        registry.register("churn", run_id=run.id)
    with pytest.raises(NotFoundError, match="logged no model"):
        registry.register("churn", run_id=empty.id)
