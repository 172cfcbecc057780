"""Model kinds: how the registry feeds a loaded model and reads its answer.

A *model kind* sits between the stored model (a ``shipyard.formats`` flavor) and
``LoadedModel.predict``: it says what input the model takes (a pandas DataFrame, a numpy
matrix, a dict of columns, or the rows as they came) and how to turn its answer into
scores. Built in: ``sklearn``, ``lightgbm``, ``xgboost``, ``onnx`` and ``python`` (one
tabular implementation, feeding each library what it was trained on).

The extension point: another kind of model (the RAG issue's ``rag`` applications, say)
brings a formats flavor (``shipyard.formats.register_flavor``) and a kind::

    class RagKind(ModelKind):
        name = "rag"
        flavors = ("rag",)
        input_format = "rows"              # the request rows as they came

        def scorer(self, model, signature):
            return lambda rows: model.answer(rows)

    register_model_kind(RagKind())

``ModelRegistry.register`` then stores such models with ``model_type="rag"`` and
``LoadedModel.predict`` calls its scorer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from shipyard.models.errors import ModelInputError
from shipyard.models.records import Signature

__all__ = [
    "InputFormat",
    "ModelKind",
    "TabularKind",
    "kind_for_flavor",
    "kind_named",
    "register_model_kind",
]

InputFormat = Literal["pandas", "numpy", "columns", "rows"]
Scorer = Callable[[Any], Any]


class ModelKind(ABC):
    """How one kind of model is fed and read. Subclass and ``register_model_kind`` it."""

    name: ClassVar[str]
    flavors: ClassVar[tuple[str, ...]]
    """The ``shipyard.formats`` flavors whose models are of this kind."""

    @abstractmethod
    def input_format(self, model: Any, signature: Signature) -> InputFormat:
        """What ``scorer`` and ``raw`` take: a DataFrame, a matrix, columns or rows."""

    @abstractmethod
    def scorer(self, model: Any, signature: Signature) -> Scorer:
        """A function from the model's input to its scores (see ``Prediction.scores``)."""

    def raw(self, model: Any, signature: Signature) -> Scorer:
        """The bare library call (``predict_proba`` or ``predict``), for overhead figures."""
        return self.scorer(model, signature)


class TabularKind(ModelKind):
    """Tabular models: scikit-learn, LightGBM, XGBoost, ONNX and generic Python models."""

    name: ClassVar[str] = "tabular"
    flavors: ClassVar[tuple[str, ...]] = ()

    def input_format(self, model: Any, signature: Signature) -> InputFormat:
        from shipyard.models.signatures import feature_names

        input_names = getattr(model, "input_names", None)
        if self.name == "onnx":
            return "columns" if isinstance(input_names, tuple) and len(input_names) > 1 else "numpy"
        if self.name == "python":
            return "pandas"
        if feature_names(model) is not None:
            return "pandas"  # trained on a DataFrame: column names (and dtypes) matter
        if any(spec.type in ("string", "bool") for spec in signature.inputs):
            return "pandas"
        return "numpy"

    def raw(self, model: Any, signature: Signature) -> Scorer:
        if _is_xgboost_booster(model):
            return lambda frame: model.inplace_predict(frame)
        if signature.task in ("binary_classification", "multiclass_classification") and callable(
            getattr(model, "predict_proba", None)
        ):
            return model.predict_proba  # type: ignore[no-any-return]
        return model.predict  # type: ignore[no-any-return]

    def scorer(self, model: Any, signature: Signature) -> Scorer:
        import numpy as np

        raw = self.raw(model, signature)
        task = signature.task
        if task == "binary_classification":

            def binary(frame: Any) -> Any:
                out = np.asarray(raw(frame), dtype=np.float64)
                if out.ndim == 2:
                    out = out[:, -1] if out.shape[1] >= 2 else out[:, 0]
                return out

            return binary
        if task == "multiclass_classification":

            def multiclass(frame: Any) -> Any:
                out = np.asarray(raw(frame), dtype=np.float64)
                return out.reshape(len(out), -1)

            return multiclass
        if task == "regression":

            def regression(frame: Any) -> Any:
                out = np.asarray(raw(frame), dtype=np.float64)
                return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

            return regression

        def other(frame: Any) -> Any:
            out = np.asarray(raw(frame))
            return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

        return other


def _is_xgboost_booster(model: Any) -> bool:
    cls = type(model)
    return cls.__name__ == "Booster" and cls.__module__.partition(".")[0] == "xgboost"


class SklearnKind(TabularKind):
    name = "sklearn"
    flavors = ("sklearn",)


class LightGBMKind(TabularKind):
    name = "lightgbm"
    flavors = ("lightgbm",)


class XGBoostKind(TabularKind):
    name = "xgboost"
    flavors = ("xgboost",)


class OnnxKind(TabularKind):
    name = "onnx"
    flavors = ("onnx",)


class PythonKind(TabularKind):
    """A generic Python model (the ``python`` flavor, or any object pickled)."""

    name = "python"
    flavors = ("python", "pickle")


_KINDS: dict[str, ModelKind] = {}


def _ensure_builtins() -> None:
    if _KINDS:
        return
    for kind in (SklearnKind(), LightGBMKind(), XGBoostKind(), OnnxKind(), PythonKind()):
        _KINDS[kind.name] = kind


def register_model_kind(kind: ModelKind, *, replace: bool = False) -> None:
    """Add a model kind (``rag``...); ``replace=True`` swaps an existing one out."""
    _ensure_builtins()
    if kind.name in _KINDS and not replace:
        raise ModelInputError(
            f"A model kind named {kind.name!r} is already registered.",
            hint="Pick another name, or pass replace=True.",
        )
    _KINDS[kind.name] = kind


def kind_named(name: str) -> ModelKind:
    """The registered kind called ``name``."""
    _ensure_builtins()
    try:
        return _KINDS[name]
    except KeyError:
        raise ModelInputError(
            f"Unknown model type {name!r}.",
            hint=f"Known model types: {', '.join(sorted(_KINDS))}. A 'rag' type comes with "
            "the RAG package (see shipyard.models.kinds).",
        ) from None


def kind_for_flavor(flavor: str) -> ModelKind:
    """The kind whose models a formats flavor stores."""
    _ensure_builtins()
    for kind in _KINDS.values():
        if flavor in kind.flavors:
            return kind
    raise ModelInputError(
        f"No model type handles models of the {flavor!r} flavor.",
        hint="Register a ModelKind for it (see shipyard.models.kinds).",
    )
