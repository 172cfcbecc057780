"""The flavor interface, the flavor registry, the manifest record and the formats' errors.

A *flavor* knows how to write one kind of model to files and read it back (scikit-learn
through skops, LightGBM's text model, XGBoost's UBJSON model, ONNX, and two flavors that
need pickle). ``shipyard.formats.save_model`` picks the flavor, lets it write its files into
a fresh folder and adds ``shipyard-model.json``, the *manifest*: the flavor, the library
versions at save time and every file with its content id. ``ModelInfo`` is the manifest as
a frozen record.

A flavor module imports its library inside functions, so ``import shipyard.formats`` stays
light and a flavor whose library is missing fails only when it is used.

A third-party flavor subclasses ``Flavor`` and calls ``register_flavor``::

    class JoblibFreeFlavor(Flavor):
        name = "mylib"
        ...

    register_flavor(JoblibFreeFlavor())
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from shipyard.core.errors import ShipyardError
from shipyard.core.ids import ContentId

__all__ = [
    "EXTRA_OF_MODULE",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT_VERSION",
    "Flavor",
    "FlavorOutput",
    "FlavorUnavailableError",
    "ModelFile",
    "ModelFormatError",
    "ModelInfo",
    "UnsafeModelError",
    "available_flavors",
    "class_path",
    "detect_flavor",
    "flavor_names",
    "get_flavor",
    "installed_version",
    "is_importable",
    "is_valid_file_name",
    "json_classes",
    "json_params",
    "module_roots",
    "register_flavor",
    "require_modules",
    "restore_params",
]

MANIFEST_FILE = "shipyard-model.json"
MANIFEST_FORMAT_VERSION = 1

# The libraries a flavor may require, each with the pip extra that installs it. A manifest
# may only name these: the loader never imports a module a (possibly hostile) manifest names.
EXTRA_OF_MODULE: dict[str, str] = {
    "sklearn": "sklearn",
    "skops": "sklearn",
    "scipy": "sklearn",
    "lightgbm": "lightgbm",
    "xgboost": "xgboost",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "skl2onnx": "onnx",
    "numpy": "",
    "pandas": "pandas",
}
_DISTRIBUTION_OF_MODULE = {"sklearn": "scikit-learn"}

_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


# --- errors ------------------------------------------------------------------------------


class UnsafeModelError(ShipyardError):
    """Loading (or saving) this model would need unsafe deserialization the caller did not
    allow: a pickle without ``allow_pickle=True``, or a skops file with types outside the
    allow-list and not in ``trusted_types``."""

    code = "SY800"


class ModelFormatError(ShipyardError):
    """A model folder or manifest is malformed, names an unknown flavor, or a model cannot
    be written in the requested format."""

    code = "SY810"


class FlavorUnavailableError(ShipyardError):
    """The library a flavor needs is not installed."""

    code = "SY820"


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of a saved model, with the content id of its bytes."""

    name: str
    content_id: ContentId
    size: int


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A saved model's manifest (``shipyard-model.json``) as a record.

    >>> info = read_model_info(Path("models/churn"))  # doctest: +SKIP
    >>> info.flavor, info.model_class  # doctest: +SKIP
    ('sklearn', 'sklearn.pipeline.Pipeline')
    """

    flavor: str
    model_format: str
    """The file format the flavor wrote: ``skops``, ``lightgbm-text``, ``xgboost-ubj``..."""
    model_class: str
    """The saved object's class, ``module.QualifiedName``."""
    files: tuple[ModelFile, ...]
    requires: tuple[str, ...]
    """Modules the flavor needs to load the model (keys of ``EXTRA_OF_MODULE``)."""
    library_versions: dict[str, str]
    python_version: str
    created_at: datetime
    format_version: int = MANIFEST_FORMAT_VERSION
    classes: tuple[Any, ...] | None = None
    """A classifier's classes, in the order of its probability columns."""
    input_example_file: str | None = None
    flavor_options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_id(self) -> ContentId:
        """One id for the model's content: a hash of its files' names and content ids.

        The same files give the same id whenever and wherever the model was saved.
        """
        from shipyard.core.ids import content_id_of_bytes

        listing = "\n".join(f"{f.name}\t{f.content_id}" for f in sorted(self.files, key=_name))
        return content_id_of_bytes(listing.encode())

    def file(self, name: str) -> ModelFile:
        """The manifest entry of file ``name``."""
        for entry in self.files:
            if entry.name == name:
                return entry
        raise ModelFormatError(
            f"The model manifest lists no file {name!r} (it lists "
            f"{', '.join(repr(f.name) for f in self.files) or 'none'}).",
            hint="The model folder is incomplete or was written by another tool; save it again.",
        )


def _name(entry: ModelFile) -> str:
    return entry.name


@dataclass(frozen=True, slots=True)
class FlavorOutput:
    """What ``Flavor.save`` reports besides the files it wrote."""

    model_format: str
    requires: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    """Flavor-specific facts the loader needs (JSON values only)."""
    classes: tuple[Any, ...] | None = None


# --- the flavor interface ----------------------------------------------------------------


class Flavor(ABC):
    """How one kind of model is written to files and read back.

    ``save`` writes files (plain names, no sub-folders) into an empty folder; ``load``
    reads them back. The caller (``save_model``/``load_model``) owns the folder, the
    manifest, hashing and atomicity; a flavor never sees a half-verified file.
    """

    name: ClassVar[str]
    priority: ClassVar[int] = 40
    """Detection order: lower is tried first (boosters before scikit-learn, pickle last)."""
    uses_pickle: ClassVar[bool] = False
    """Whether saving and loading need ``allow_pickle=True``."""

    @abstractmethod
    def matches(self, model: object) -> bool:
        """Whether this flavor is the natural one for ``model``; must not import libraries."""

    @abstractmethod
    def save(self, model: Any, directory: Path) -> FlavorOutput:
        """Write ``model``'s files into the empty folder ``directory``."""

    @abstractmethod
    def load(self, directory: Path, info: ModelInfo, *, trusted_types: Sequence[str]) -> Any:
        """Read the model back from verified files in ``directory``."""


_BUILTIN_FLAVORS: dict[str, str] = {
    "lightgbm": "shipyard.formats.lightgbm:LightGBMFlavor",
    "onnx": "shipyard.formats.onnx:OnnxFlavor",
    "pickle": "shipyard.formats.pickle:PickleFlavor",
    "python": "shipyard.formats.python:PythonFlavor",
    "sklearn": "shipyard.formats.sklearn:SklearnFlavor",
    "xgboost": "shipyard.formats.xgboost:XGBoostFlavor",
}
_registry: dict[str, Flavor] = {}


def _ensure_builtins() -> None:
    for name, target in _BUILTIN_FLAVORS.items():
        if name not in _registry:
            module_name, _, class_name = target.partition(":")
            flavor_class = getattr(importlib.import_module(module_name), class_name)
            _registry[name] = flavor_class()


def register_flavor(flavor: Flavor, *, replace: bool = False) -> None:
    """Add a flavor to the registry (``replace=True`` to swap one out).

    >>> register_flavor(MyFlavor())  # doctest: +SKIP
    """
    _ensure_builtins()
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", flavor.name):
        raise ModelFormatError(
            f"Flavor name {flavor.name!r} is not valid.",
            hint="Use 1-32 lowercase letters, digits or underscores, starting with a letter.",
        )
    if flavor.name in _registry and not replace:
        raise ModelFormatError(
            f"A flavor named {flavor.name!r} is already registered.",
            hint="Pick another name, or pass replace=True to swap it out.",
        )
    _registry[flavor.name] = flavor


def flavor_names() -> tuple[str, ...]:
    """Every registered flavor's name, sorted."""
    _ensure_builtins()
    return tuple(sorted(_registry))


def get_flavor(name: str) -> Flavor:
    """The registered flavor called ``name``; ``ModelFormatError`` listing them otherwise."""
    _ensure_builtins()
    try:
        return _registry[name]
    except KeyError:
        raise ModelFormatError(
            f"Unknown model flavor {name!r}.",
            hint=f"Known flavors: {', '.join(sorted(_registry))}.",
        ) from None


def detect_flavor(model: object, *, allow_pickle: bool) -> Flavor:
    """The flavor ``save_model`` uses for ``model`` when none is named.

    Safe formats win whenever one matches; the pickle-based flavors are candidates only
    with ``allow_pickle=True``.
    """
    _ensure_builtins()
    for flavor in sorted(_registry.values(), key=lambda f: (f.priority, f.name)):
        if flavor.uses_pickle and not allow_pickle:
            continue
        if flavor.matches(model):
            return flavor
    raise ModelFormatError(
        f"Shipyard has no safe format for a {class_path(type(model))} object.",
        hint=(
            "Safe formats cover scikit-learn estimators and pipelines (skops), LightGBM and "
            "XGBoost models, and ONNX models. To store it with pickle, pass allow_pickle=True "
            "(loading it will need allow_pickle=True too), or convert it to ONNX first."
        ),
    )


def available_flavors() -> tuple[str, ...]:
    """The flavors this installation can save and load: their libraries are importable.

    >>> "pickle" in available_flavors()
    True
    """
    needs: dict[str, tuple[str, ...]] = {
        "sklearn": ("sklearn", "skops"),
        "lightgbm": ("lightgbm",),
        "xgboost": ("xgboost",),
        "onnx": ("onnx", "onnxruntime"),
    }
    return tuple(
        name
        for name in flavor_names()
        if all(is_importable(module) for module in needs.get(name, ()))
    )


# --- helpers shared by flavors -----------------------------------------------------------


def class_path(cls: type) -> str:
    """``module.QualifiedName`` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def module_roots(model: object) -> set[str]:
    """The top-level packages of every class in ``type(model)``'s MRO."""
    return {cls.__module__.partition(".")[0] for cls in type(model).__mro__}


def is_valid_file_name(name: object) -> bool:
    """Whether ``name`` is a plain file name a manifest may list (no folders, no dot-files)."""
    return isinstance(name, str) and _FILE_NAME.fullmatch(name) is not None


def installed_version(module: str) -> str | None:
    """The installed version of the distribution that provides ``module``, if any."""
    from importlib import metadata

    try:
        return metadata.version(_DISTRIBUTION_OF_MODULE.get(module, module))
    except metadata.PackageNotFoundError:
        return None


def is_importable(module: str) -> bool:
    """Whether a top-level module can be imported, without importing it."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None marks a module blocked from import
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_modules(modules: Sequence[str], *, what: str) -> None:
    """Raise ``FlavorUnavailableError`` naming the pip extra if a module is not importable."""
    for module in modules:
        if not is_importable(module):
            extra = EXTRA_OF_MODULE.get(module, "")
            install = f"pip install 'shipyard[{extra}]'" if extra else f"pip install {module}"
            raise FlavorUnavailableError(
                f"{what} needs the Python package {module!r}, which is not installed.",
                hint=f"Install it: {install}",
            )


def _json_value(value: Any) -> tuple[bool, Any]:
    """``(True, json_value)`` for values JSON can hold exactly, ``(False, None)`` otherwise.

    Non-finite floats become ``{"$float": "nan"}``-style objects so the file stays strict
    JSON; numpy scalars become Python numbers.
    """
    if value is None or isinstance(value, bool | str | int):
        return True, value
    if isinstance(value, float):
        return True, value if math.isfinite(value) else {"$float": repr(value)}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        return _json_value(item())
    if isinstance(value, list | tuple):
        converted = [_json_value(v) for v in value]
        if all(ok for ok, _ in converted):
            return True, [v for _, v in converted]
        return False, None
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return False, None
        pairs = {k: _json_value(v) for k, v in value.items()}
        if all(ok for ok, _ in pairs.values()):
            return True, {k: v for k, (_, v) in pairs.items()}
    return False, None


def json_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split constructor params into those JSON holds exactly and the names of the rest.

    >>> json_params({"n": 3, "alpha": float("nan"), "cb": print})
    ({'n': 3, 'alpha': {'$float': 'nan'}}, ['cb'])
    """
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in params.items():
        ok, converted = _json_value(value)
        if ok:
            kept[key] = converted
        else:
            dropped.append(key)
    return kept, dropped


def restore_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Invert ``json_params``: ``{"$float": "nan"}`` back to ``float('nan')``."""

    def restore(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"$float"} and value["$float"] in ("nan", "inf", "-inf"):
                return float(value["$float"])
            return {k: restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return value

    return {key: restore(value) for key, value in params.items()}


def json_classes(classes: Any) -> tuple[Any, ...] | None:
    """A classifier's ``classes_`` as a tuple of JSON scalars, or None if it has none."""
    if classes is None:
        return None
    tolist = getattr(classes, "tolist", None)
    values = tolist() if callable(tolist) else list(classes)
    ok, converted = _json_value(list(values))
    if not ok or any(isinstance(v, list | dict) for v in converted):
        return None
    return tuple(converted)
