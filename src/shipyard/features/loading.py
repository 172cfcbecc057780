"""Load feature definitions from a Python file or module (``shipyard features apply``).

Like ``feast apply``: the file or module is imported and every Entity, FeatureView,
OnDemandFeature and FeatureService defined at its top level is collected.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from shipyard.core.errors import ConfigError, NotFoundError, ShipyardError
from shipyard.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    OnDemandFeature,
)

__all__ = ["collect_definitions", "load_definitions", "load_module_from_file"]

Definition = Entity | FeatureView | OnDemandFeature | FeatureService


def load_module_from_file(path: Path) -> ModuleType:
    """Import ``path`` as a module named after its resolved path (stable per file)."""
    resolved = path.resolve()
    name = "shipyard_features_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ConfigError(f"Cannot import {path} as Python.", hint="Give a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def collect_definitions(module: ModuleType) -> list[Definition]:
    """Every definition object at the module's top level, in definition order."""
    found: list[Definition] = []
    seen: set[int] = set()
    for value in vars(module).values():
        if isinstance(value, Entity | FeatureView | OnDemandFeature | FeatureService):
            if id(value) not in seen:
                seen.add(id(value))
                found.append(value)
    return found


def _wrapped(target: str, exc: BaseException) -> ConfigError:
    detail = exc.message if isinstance(exc, ShipyardError) else f"{type(exc).__name__}: {exc}"
    return ConfigError(
        f"Loading feature definitions from {target} failed: {detail}",
        hint=getattr(exc, "hint", None)
        or "Fix the definitions file; run it with python to see the full traceback.",
    )


def load_definitions(target: str) -> list[Definition]:
    """Definitions from a ``.py`` file path or a dotted module path.

    Errors in the user's file are wrapped in ``ConfigError`` naming the file and the
    original error, so the CLI reports them without a traceback.
    """
    path = Path(target)
    is_file = target.endswith(".py") or path.exists()
    if is_file and not path.is_file():
        raise NotFoundError(
            f"Definitions file {target} does not exist.",
            hint="Give a .py file or an importable module path (pkg.features).",
        )
    try:
        module = load_module_from_file(path) if is_file else importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if is_file or exc.name != target.split(".")[0]:
            raise _wrapped(target, exc) from exc
        raise NotFoundError(
            f"Cannot import definitions module {target!r}: {exc}.",
            hint="Give a .py file path, or a module path importable from the current folder.",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
        raise _wrapped(target, exc) from exc
    definitions = collect_definitions(module)
    if not definitions:
        raise ConfigError(
            f"{target} defines no entities, feature views, on-demand features or services.",
            hint="Define them at the top level of the file (e.g. stats = FeatureView(...)).",
        )
    return definitions
