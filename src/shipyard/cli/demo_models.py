"""The demo's model code, written into the project's ``pipelines.py``.

The candidates the demo trains and the pipeline the closed loop re-runs use the same
source text (:data:`MODEL_CODE`): the demo writes it into the project and runs that very
text, so what the user reads in ``pipelines.py`` is what trained every version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shipyard.cli.demo_data import Roles

__all__ = ["CANDIDATES", "MODEL_CODE", "model_functions", "pipeline_source"]

CANDIDATES: dict[str, str] = {
    "logistic": "logistic regression on scaled numbers and one-hot categories",
    "gbm": "histogram gradient boosting (scikit-learn)",
    "forest": "random forest, 80 trees, leaves >= 10 rows",
}
"""Candidate algorithms, by the name ``fit(frame, kind)`` takes."""

MODEL_CODE = '''
def make_model(kind, categorical, numeric):
    """A scikit-learn pipeline: impute, encode categories, then the chosen algorithm."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if kind == "logistic":
        categories = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="missing"),
            OneHotEncoder(handle_unknown="ignore"),
        )
        numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        model = LogisticRegression(max_iter=500, class_weight="balanced")
    else:
        categories = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="missing"),
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
        )
        numbers = SimpleImputer(strategy="median")
        if kind == "gbm":
            model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=0)
        else:
            model = RandomForestClassifier(
                n_estimators=80, min_samples_leaf=10, n_jobs=1, random_state=0
            )
    steps = []
    if categorical:
        steps.append(("categories", categories, list(categorical)))
    if numeric:
        steps.append(("numbers", numbers, list(numeric)))
    return make_pipeline(ColumnTransformer(steps), model)


def fit(frame, kind=None):
    """Fit the model of ``kind`` (default: the pipeline's) on a training-set frame."""
    features = frame[list(NUMERIC) + list(CATEGORICAL)].copy()
    for name in CATEGORICAL:
        features[name] = features[name].astype(object)
    model = make_model(kind or KIND, CATEGORICAL, NUMERIC)
    return model.fit(features, frame[LABEL].astype("int64"))
'''

_PIPELINE = '''

from shipyard.pipelines import dataset, pipeline, step


@step(libraries=["scikit-learn"])
def train(table):
    return fit(table.to_pandas())


@pipeline
def train_{model}() -> dict:
    """Retrain on the newest training set; the closed loop registers the result."""
    return {{"model": train(dataset("{train}"))}}
'''


def _constants(roles: Roles, kind: str) -> str:
    return (
        f"LABEL = {roles.target!r}  # 1 = {roles.positive!r}, 0 = {roles.negative!r}\n"
        f"NUMERIC = {list(roles.numeric)!r}\n"
        f"CATEGORICAL = {list(roles.categorical)!r}\n"
        f"KIND = {kind!r}\n"
    )


def pipeline_source(roles: Roles, *, model: str, train: str, kind: str) -> str:
    """The project's ``pipelines.py``: constants, the model code and the pipeline."""
    header = (
        f'"""Training pipeline of model {model!r}, written by `shipyard demo`.\n\n'
        f"Run it with `shipyard run train_{model}`; the closed-loop policy re-runs it when\n"
        'the monitor alerts. Change the model here and the next episode uses it.\n"""\n\n'
    )
    return (
        header + _constants(roles, kind) + MODEL_CODE + _PIPELINE.format(model=model, train=train)
    )


def model_functions(roles: Roles, kind: str) -> Callable[..., Any]:
    """``fit(frame, kind)`` compiled from the same text the project's pipeline holds."""
    namespace: dict[str, Any] = {}
    # The very source written into pipelines.py, so candidates and retraining agree.
    exec(_constants(roles, kind) + MODEL_CODE, namespace)  # noqa: S102
    fit: Callable[..., Any] = namespace["fit"]
    return fit
