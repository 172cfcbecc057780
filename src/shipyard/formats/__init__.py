"""Model save and load formats: safe by default, pickle only on an explicit, logged opt-in.

One folder per saved model: the flavor's files plus ``shipyard-model.json`` (flavor,
library versions, every file's content id). scikit-learn goes through skops, LightGBM and
XGBoost through their own model formats, ONNX stays ONNX; pickle needs
``allow_pickle=True`` to save and to load. Tracking, the registry and pipelines all save
and load models through this package.

Example::

    from shipyard.formats import load_model, save_model

    info = save_model(pipeline, Path("models/churn"), input_example=X_train.head())
    model = load_model(Path("models/churn"))
"""

from shipyard.formats.api import load_model, read_input_example, save_model, verify_model_files
from shipyard.formats.base import (
    Flavor,
    FlavorOutput,
    FlavorUnavailableError,
    ModelFile,
    ModelFormatError,
    ModelInfo,
    UnsafeModelError,
    available_flavors,
    detect_flavor,
    flavor_names,
    get_flavor,
    register_flavor,
)
from shipyard.formats.manifest import read_model_info
from shipyard.formats.onnx import OnnxModel, convert_sklearn_to_onnx

__all__ = [
    "Flavor",
    "FlavorOutput",
    "FlavorUnavailableError",
    "ModelFile",
    "ModelFormatError",
    "ModelInfo",
    "OnnxModel",
    "UnsafeModelError",
    "available_flavors",
    "convert_sklearn_to_onnx",
    "detect_flavor",
    "flavor_names",
    "get_flavor",
    "load_model",
    "read_input_example",
    "read_model_info",
    "register_flavor",
    "save_model",
    "verify_model_files",
]
