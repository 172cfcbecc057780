"""LightGBM models in LightGBM's own text model format (no pickle).

A ``lightgbm.Booster`` (from ``lightgbm.train``) is written with ``Booster.save_model``
as ``model.txt``, every iteration included, and read back with
``lightgbm.Booster(model_file=...)``; its best iteration is kept in the manifest so
``predict`` uses the same number of trees as before.

The scikit-learn wrappers (``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker``) are
rebuilt rather than deserialized: ``model.txt`` holds the booster, ``estimator.json`` the
constructor params (those JSON holds exactly; others, such as a ``RandomState``, only
matter for training and are listed under ``dropped_params``) and the few facts ``fit``
learns besides the booster (objective, feature count, the classes). Loading constructs a
fresh estimator of the same LightGBM class and sets those facts, so predictions are
bit-for-bit the same and the booster file stays readable by any LightGBM tool. A custom
(callable) objective cannot be rebuilt this way and is refused at save time. A user
subclass of a LightGBM estimator is loaded as the LightGBM class it derives from.

Example::

    save_model(lgb.LGBMClassifier(n_estimators=50).fit(X, y), Path("models/lgbm"))
    load_model(Path("models/lgbm")).predict_proba(X)
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

__all__ = ["LightGBMFlavor"]

MODEL_FILE = "model.txt"
ESTIMATOR_FILE = "estimator.json"
logger = logging.getLogger("shipyard.formats")


class LightGBMFlavor(Flavor):
    """``lightgbm.Booster`` and LightGBM's scikit-learn estimators."""

    name = "lightgbm"
    priority = 20

    def matches(self, model: object) -> bool:
        return "lightgbm" in module_roots(model) and not isinstance(model, type)

    def save(self, model: Any, directory: Path) -> FlavorOutput:
        import lightgbm as lgb

        if isinstance(model, lgb.Booster):
            _save_booster(model, directory / MODEL_FILE)
            return FlavorOutput(
                model_format="lightgbm-text",
                requires=("lightgbm",),
                options={"kind": "booster", "best_iteration": int(model.best_iteration)},
            )
        if isinstance(model, lgb.LGBMModel):
            return _save_estimator(model, directory)
        raise ModelFormatError(
            f"The lightgbm flavor saves a Booster or an LGBMModel, not {class_path(type(model))}.",
            hint="Save the underlying booster (model.booster_) or the fitted estimator.",
        )

    def load(self, directory: Path, info: ModelInfo, *, trusted_types: Sequence[str]) -> Any:
        import lightgbm as lgb

        kind = info.flavor_options.get("kind")
        booster = lgb.Booster(model_file=str(directory / info.file(MODEL_FILE).name))
        if kind == "booster":
            booster.best_iteration = _int_option(info, "best_iteration")
            return booster
        if kind == "sklearn":
            return _rebuild_estimator(booster, directory / info.file(ESTIMATOR_FILE).name)
        raise ModelFormatError(
            f"The lightgbm model's manifest has flavor_options.kind {kind!r}; "
            "expected 'booster' or 'sklearn'.",
            hint="The manifest is damaged; save the model again.",
        )


def _save_booster(booster: Any, path: Path) -> None:
    # num_iteration=-1 keeps every tree: the default keeps only up to the best iteration.
    booster.save_model(str(path), num_iteration=-1)


def _save_estimator(model: Any, directory: Path) -> FlavorOutput:
    from lightgbm import sklearn as lgb_sklearn

    if not model.__sklearn_is_fitted__():
        raise ModelFormatError(
            f"The {type(model).__name__} is not fitted; there is no model to save.",
            hint="Call fit() before saving it.",
        )
    if callable(model.objective) or callable(getattr(model, "_objective", None)):
        raise ModelFormatError(
            f"The {type(model).__name__} uses a custom (callable) objective, which "
            "LightGBM's model format cannot hold.",
            hint="Save model.booster_ (raw scores), or pass flavor='pickle', allow_pickle=True.",
        )
    base = next(
        cls
        for cls in type(model).__mro__
        if cls.__module__ == lgb_sklearn.__name__ and issubclass(cls, lgb_sklearn.LGBMModel)
    )
    if base is not type(model):
        logger.info(
            "%s is saved as LightGBM's %s; it loads as that class.",
            class_path(type(model)),
            base.__name__,
        )
    params, dropped = json_params(model.get_params(deep=False))
    best_score, _ = json_params({"best": _plain(model._best_score)})
    state = {
        "estimator_class": base.__name__,
        "params": params,
        "dropped_params": dropped,
        "objective": model._objective,
        "n_features_in": int(model._n_features_in),
        "fitted_with_feature_names": bool(getattr(model, "_fitted_with_feature_names", False)),
        "best_iteration": int(model._best_iteration),
        "best_score": best_score.get("best", {}),
        "classes": _typed_classes(getattr(model, "_classes", None)),
    }
    _save_booster(model.booster_, directory / MODEL_FILE)
    text = json.dumps(state, indent=2, sort_keys=True, allow_nan=False)
    (directory / ESTIMATOR_FILE).write_text(text + "\n", encoding="utf-8")
    return FlavorOutput(
        model_format="lightgbm-text",
        requires=("lightgbm", "sklearn"),
        options={"kind": "sklearn", "estimator_class": base.__name__},
        classes=json_classes(getattr(model, "_classes", None)),
    )


def _rebuild_estimator(booster: Any, state_path: Path) -> Any:
    import numpy as np
    from lightgbm import sklearn as lgb_sklearn
    from lightgbm.compat import _LGBMLabelEncoder

    state = json.loads(state_path.read_text(encoding="utf-8"))
    name = state.get("estimator_class")
    cls = getattr(lgb_sklearn, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, lgb_sklearn.LGBMModel)):
        raise ModelFormatError(
            f"{str(state_path)!r} names estimator class {name!r}, which is not a LightGBM "
            "scikit-learn estimator.",
            hint="The file is damaged or was not written by Shipyard; save the model again.",
        )
    estimator = cls(**restore_params(state["params"]))
    booster.best_iteration = int(state["best_iteration"])
    # The attributes LGBMModel.fit sets besides the booster (lightgbm 4.x).
    estimator._Booster = booster
    estimator._n_features = booster.num_feature()
    estimator._n_features_in = int(state["n_features_in"])
    estimator._fitted_with_feature_names = bool(state["fitted_with_feature_names"])
    estimator._objective = state["objective"]
    estimator._best_iteration = int(state["best_iteration"])
    estimator._best_score = state["best_score"]
    estimator._evals_result = {}
    classes = state.get("classes")
    if classes is not None:
        values = np.asarray(classes["values"], dtype=np.dtype(classes["dtype"]))
        encoder = _LGBMLabelEncoder().fit(values)
        estimator._le = encoder
        estimator._classes = encoder.classes_
        estimator._n_classes = len(encoder.classes_)
        estimator._class_map = dict(
            zip(encoder.classes_, encoder.transform(encoder.classes_), strict=True)
        )
    estimator.fitted_ = True
    return estimator


def _typed_classes(classes: Any) -> dict[str, Any] | None:
    if classes is None:
        return None
    values = json_classes(classes)
    if values is None:
        raise ModelFormatError(
            "The classifier's classes cannot be stored as JSON (they are not numbers, "
            "strings or booleans).",
            hint="Encode the target as strings or integers before fitting.",
        )
    return {"dtype": classes.dtype.str, "values": list(values)}


def _plain(value: Any) -> Any:
    """Nested (default/ordered) dicts as plain dicts."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _int_option(info: ModelInfo, key: str) -> int:
    value = info.flavor_options.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelFormatError(
            f"The lightgbm model's manifest has flavor_options.{key} {value!r}; "
            "expected an integer.",
            hint="The manifest is damaged; save the model again.",
        )
    return value
