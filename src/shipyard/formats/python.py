"""A generic Python model: an instance of the user's own class with a ``predict`` method.

There is no safe format for arbitrary code, so this flavor pickles the instance and,
like the pickle flavor, needs ``allow_pickle=True`` to save and to load. What it adds:
saving checks the object has a callable ``predict`` and warns when its class lives in
``__main__`` (a pickle refers to classes by module path, so such a model loads only in
the same script); loading first checks that the class's module is importable, so a
missing package gives a clear error instead of a pickle traceback, and checks the loaded
object still has ``predict``.

Example::

    class Threshold:
        def __init__(self, cut: float) -> None:
            self.cut = cut

        def predict(self, X):
            return (X["score"] > self.cut).astype(int)

    save_model(Threshold(0.7), Path("models/threshold"), allow_pickle=True)
    load_model(Path("models/threshold"), allow_pickle=True).predict(frame)
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shipyard.formats.base import (
    Flavor,
    FlavorOutput,
    FlavorUnavailableError,
    ModelFormatError,
    ModelInfo,
    class_path,
)
from shipyard.formats.pickle import PICKLE_PROTOCOL, dump_pickle, load_pickle

__all__ = ["PythonFlavor"]

MODEL_FILE = "model.pkl"
logger = logging.getLogger("shipyard.formats")


class PythonFlavor(Flavor):
    """A user class instance with ``predict``; pickled, so it needs ``allow_pickle=True``."""

    name = "python"
    priority = 90
    uses_pickle = True

    def matches(self, model: object) -> bool:
        return callable(getattr(model, "predict", None)) and not isinstance(model, type)

    def save(self, model: Any, directory: Path) -> FlavorOutput:
        module = type(model).__module__
        if module == "__main__":
            logger.warning(
                "%s is defined in __main__; the saved model will load only where that "
                "class can be imported. Move it into a module to load it elsewhere.",
                type(model).__qualname__,
            )
        dump_pickle(model, directory / MODEL_FILE)
        return FlavorOutput(
            model_format=f"pickle-{PICKLE_PROTOCOL}",
            requires=(),
            options={"class_module": module, "class_name": type(model).__qualname__},
        )

    def load(self, directory: Path, info: ModelInfo, *, trusted_types: Sequence[str]) -> Any:
        module = info.flavor_options.get("class_module")
        if not isinstance(module, str) or not module:
            raise ModelFormatError(
                f"The python model in {str(directory)!r} does not name its class's module.",
                hint="The manifest is damaged; save the model again.",
            )
        if module != "__main__" and importlib.util.find_spec(module) is None:
            raise FlavorUnavailableError(
                f"The python model in {str(directory)!r} is a {info.model_class}, but module "
                f"{module!r} cannot be imported here.",
                hint="Install the package that defines the class, or add it to sys.path.",
            )
        model = load_pickle(directory, info.file(MODEL_FILE))
        if not callable(getattr(model, "predict", None)):
            raise ModelFormatError(
                f"The python model in {str(directory)!r} loaded as a "
                f"{class_path(type(model))}, which has no predict method.",
                hint="Its class changed since it was saved; save the model again.",
            )
        return model
