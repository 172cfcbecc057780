"""XGBoost models in XGBoost's own UBJSON model format (no pickle).

A ``xgboost.Booster`` (from ``xgboost.train``) is written with ``Booster.save_model`` as
``model.ubj`` and read back with ``Booster(model_file=...)``. The scikit-learn wrappers
(``XGBClassifier``, ``XGBRegressor``, ``XGBRanker``...) use XGBoost's own round trip:
``save_model`` writes the booster together with the wrapper's fitted attributes, and a
fresh estimator of the same XGBoost class, built from the constructor params kept in
``estimator.json``, reads them back with ``load_model``. Params JSON cannot hold exactly
(callbacks, a callable metric) only matter for training; they are listed under
``dropped_params``. A user subclass of an XGBoost estimator loads as the XGBoost class it
derives from.

Example::

    save_model(xgb.XGBClassifier(n_estimators=50).fit(X, y), Path("models/xgb"))
    load_model(Path("models/xgb")).predict_proba(X)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shipyard.formats.base import (
    Flavor,
    FlavorOutput,
    ModelFormatError,
    ModelInfo,
    class_path,
    json_classes,
    json_params,
    module_roots,
    restore_params,
)

__all__ = ["XGBoostFlavor"]

MODEL_FILE = "model.ubj"
ESTIMATOR_FILE = "estimator.json"
logger = logging.getLogger("shipyard.formats")


class XGBoostFlavor(Flavor):
    """``xgboost.Booster`` and XGBoost's scikit-learn estimators."""

    name = "xgboost"
    priority = 20

    def matches(self, model: object) -> bool:
        return "xgboost" in module_roots(model) and not isinstance(model, type)

    def save(self, model: Any, directory: Path) -> FlavorOutput:
        import xgboost as xgb

        if isinstance(model, xgb.Booster):
            model.save_model(str(directory / MODEL_FILE))
            return FlavorOutput(
                model_format="xgboost-ubj", requires=("xgboost",), options={"kind": "booster"}
            )
        if isinstance(model, xgb.XGBModel):
            return _save_estimator(model, directory)
        raise ModelFormatError(
            f"The xgboost flavor saves a Booster or an XGBModel, not {class_path(type(model))}.",
            hint="Save the underlying booster (model.get_booster()) or the fitted estimator.",
        )

    def load(self, directory: Path, info: ModelInfo, *, trusted_types: Sequence[str]) -> Any:
        import xgboost as xgb

        kind = info.flavor_options.get("kind")
        model_path = str(directory / info.file(MODEL_FILE).name)
        if kind == "booster":
            return xgb.Booster(model_file=model_path)
        if kind == "sklearn":
            state_path = directory / info.file(ESTIMATOR_FILE).name
            estimator = _new_estimator(state_path)
            estimator.load_model(model_path)
            return estimator
        raise ModelFormatError(
            f"The xgboost model's manifest has flavor_options.kind {kind!r}; "
            "expected 'booster' or 'sklearn'.",
            hint="The manifest is damaged; save the model again.",
        )


def _save_estimator(model: Any, directory: Path) -> FlavorOutput:
    from sklearn.utils.validation import check_is_fitted
    from xgboost import sklearn as xgb_sklearn

    try:
        check_is_fitted(model)
    except Exception as exc:
        raise ModelFormatError(
            f"The {type(model).__name__} is not fitted; there is no model to save.",
            hint="Call fit() before saving it.",
        ) from exc
    base = next(
        cls
        for cls in type(model).__mro__
        if cls.__module__ == xgb_sklearn.__name__ and issubclass(cls, xgb_sklearn.XGBModel)
    )
    if base is not type(model):
        logger.info(
            "%s is saved as XGBoost's %s; it loads as that class.",
            class_path(type(model)),
            base.__name__,
        )
    params, dropped = json_params(model.get_params(deep=False))
    state = {"estimator_class": base.__name__, "params": params, "dropped_params": dropped}
    model.save_model(str(directory / MODEL_FILE))
    text = json.dumps(state, indent=2, sort_keys=True, allow_nan=False)
    (directory / ESTIMATOR_FILE).write_text(text + "\n", encoding="utf-8")
    return FlavorOutput(
        model_format="xgboost-ubj",
        requires=("xgboost", "sklearn"),
        options={"kind": "sklearn", "estimator_class": base.__name__},
        classes=json_classes(getattr(model, "classes_", None)),
    )


def _new_estimator(state_path: Path) -> Any:
    from xgboost import sklearn as xgb_sklearn

    state = json.loads(state_path.read_text(encoding="utf-8"))
    name = state.get("estimator_class")
    cls = getattr(xgb_sklearn, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, xgb_sklearn.XGBModel)):
        raise ModelFormatError(
            f"{str(state_path)!r} names estimator class {name!r}, which is not an XGBoost "
            "scikit-learn estimator.",
            hint="The file is damaged or was not written by Shipyard; save the model again.",
        )
    return cls(**restore_params(state["params"]))
