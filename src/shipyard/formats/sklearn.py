"""scikit-learn estimators and pipelines, stored with skops (no pickle).

skops writes an object tree (a zip of JSON plus numpy arrays) and, on load, refuses any
type it does not trust. Shipyard decides the trust, never the file: the types skops
reports as untrusted are accepted only when they come from scikit-learn, numpy, scipy,
LightGBM or XGBoost (minus their file, network and code-loading corners) or are a few
plain containers, or when the caller lists them in ``trusted_types``. Anything else, a
user function inside a ``FunctionTransformer`` or a custom estimator class for instance,
stops the load with ``UnsafeModelError`` naming the types. The manifest also records the
file's canonical digest (``flavor_options["canonical_digest"]``), equal for every save
of one fitted model although the bytes differ.

Example::

    save_model(pipeline, Path("models/churn"))           # -> model.skops
    load_model(Path("models/churn"))                     # allow-listed types only
    load_model(Path("models/custom"), trusted_types=["my_pkg.features.clip_outliers"])
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from shipyard.core.errors import IntegrityError
from shipyard.core.ids import content_id_of_bytes
from shipyard.formats.base import (
    Flavor,
    FlavorOutput,
    ModelFormatError,
    ModelInfo,
    UnsafeModelError,
    module_roots,
)
from shipyard.formats.skops_file import load_skops, read_skops

__all__ = [
    "CANONICAL_DIGEST_OPTION",
    "MODEL_FILE",
    "SAFE_TYPE_PREFIXES",
    "SklearnFlavor",
    "is_safe_type",
    "untrusted_types",
]

MODEL_FILE = "model.skops"
CANONICAL_DIGEST_OPTION = "canonical_digest"
"""The manifest's ``flavor_options`` key holding ``model.skops``'s canonical digest: the
same for every save of one fitted model (see ``shipyard.formats.skops_file``)."""
logger = logging.getLogger("shipyard.formats")

SAFE_TYPE_PREFIXES: tuple[str, ...] = ("sklearn.", "numpy.", "scipy.", "lightgbm.", "xgboost.")
"""Modules whose types and functions a skops file may hold without ``trusted_types``."""

# Inside the safe modules, the parts that read or write files, fetch from the network,
# compile or load native code: a function from here in a FunctionTransformer would run
# on every predict call.
_DENIED_PREFIXES: tuple[str, ...] = (
    "numpy.ctypeslib",
    "numpy.distutils",
    "numpy.f2py",
    "numpy.lib._datasource",
    "numpy.lib._npyio_impl",
    "numpy.lib.format",
    "numpy.lib.npyio",
    "numpy.testing",
    "scipy._lib",
    "scipy.datasets",
    "scipy.io",
    "scipy.sparse._matrix_io",
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.utils._testing",
    "lightgbm.libpath",
    "xgboost.libpath",
    "xgboost.testing",
    "xgboost.tracker",
)
# numpy re-exports its I/O functions at the top level (their __module__ is "numpy").
_DENIED_NAMES = frozenset(
    {
        "numpy.DataSource",
        "numpy.fromfile",
        "numpy.fromregex",
        "numpy.genfromtxt",
        "numpy.load",
        "numpy.loadtxt",
        "numpy.memmap",
        "numpy.save",
        "numpy.savetxt",
        "numpy.savez",
        "numpy.savez_compressed",
    }
)
# Plain containers and values, trusted by exact name (never ``builtins.*``: that holds
# eval, exec, open and __import__).
_SAFE_NAMES = frozenset(
    {
        "builtins.bytearray",
        "builtins.complex",
        "builtins.frozenset",
        "builtins.range",
        "builtins.slice",
        "collections.Counter",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
    }
)


def is_safe_type(name: str) -> bool:
    """Whether Shipyard trusts a type (or function) named by skops, without an opt-in.

    >>> is_safe_type("sklearn.tree._tree.Tree"), is_safe_type("builtins.eval")
    (True, False)
    """
    if name in _SAFE_NAMES:
        return True
    if name in _DENIED_NAMES or any(_within(name, denied) for denied in _DENIED_PREFIXES):
        return False
    return name.startswith(SAFE_TYPE_PREFIXES)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def untrusted_types(path: Path, trusted_types: Iterable[str] = ()) -> list[str]:
    """The types in a skops file that neither the allow-list nor ``trusted_types`` covers."""
    import skops.io

    return _refused(skops.io.get_untrusted_types(file=path), trusted_types)


def _refused(found: Iterable[str], trusted_types: Iterable[str]) -> list[str]:
    extra = set(trusted_types)
    return sorted(name for name in found if name not in extra and not is_safe_type(name))


def _resolvable(name: str) -> bool:
    """Whether ``module.attribute`` names an object in an imported module, as skops will
    look it up on load (a lambda or a nested function has no such name)."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        found: Any = sys.modules.get(".".join(parts[:split]))
        if found is None:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute, _MISSING)
            if found is _MISSING:
                return False
        return True
    return False


_MISSING = object()


class SklearnFlavor(Flavor):
    """scikit-learn estimators and pipelines (and any ``BaseEstimator``) through skops."""

    name = "sklearn"
    priority = 50

    def matches(self, model: object) -> bool:
        return "sklearn" in module_roots(model) and not isinstance(model, type)

    def save(self, model: Any, directory: Path) -> FlavorOutput:
        import skops.io

        data = skops.io.dumps(model)
        (directory / MODEL_FILE).write_bytes(data)  # save_model makes it durable
        contents = read_skops(data)  # one parse of the schema for both facts below
        needs_trust = _refused(contents.untrusted_types, ())
        unloadable = [name for name in needs_trust if not _resolvable(name)]
        if unloadable:
            raise ModelFormatError(
                f"The {type(model).__name__} holds {', '.join(unloadable)}: skops stores a "
                "function by its import path, and a lambda or a nested function has none, "
                "so the model could not be loaded back.",
                hint="Define the function at module level, or pass flavor='pickle', "
                "allow_pickle=True.",
            )
        if needs_trust:
            logger.warning(
                "The %s model holds types outside Shipyard's allow-list (%s); loading it "
                "will need trusted_types=%r.",
                type(model).__name__,
                ", ".join(needs_trust),
                needs_trust,
            )
        return FlavorOutput(
            model_format="skops",
            requires=("sklearn", "skops"),
            options={
                "types_needing_trust": needs_trust,
                CANONICAL_DIGEST_OPTION: contents.canonical_digest,
            },
        )

    def load(self, directory: Path, info: ModelInfo, *, trusted_types: Sequence[str]) -> Any:
        entry = info.file(MODEL_FILE)
        path = directory / entry.name
        # Read once: the bytes checked are the bytes loaded, even if the file changes now.
        data = path.read_bytes()
        if content_id_of_bytes(data) != entry.content_id:
            raise IntegrityError(
                f"{entry.name!r} in {str(directory)!r} changed while it was being loaded.",
                hint="Do not load it; restore the model folder from its source.",
            )

        def refuse_unlisted(found: list[str]) -> None:
            refused = _refused(found, trusted_types)
            if refused:
                listed = ", ".join(repr(name) for name in refused)
                raise UnsafeModelError(
                    f"{str(path)!r} holds types outside Shipyard's allow-list: {listed}. "
                    "Loading them could run code that is not part of scikit-learn, numpy or "
                    "scipy.",
                    hint=f"If you trust where this model came from, pass "
                    f"trusted_types=[{listed}] to load_model.",
                )

        # Every type skops does not trust by itself is checked against the allow-list and
        # the caller's list before anything is built; trusting them all is that decision.
        return load_skops(data, refuse_unlisted)
