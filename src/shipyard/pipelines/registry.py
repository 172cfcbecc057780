"""Finding pipelines by name: ``@pipeline`` registers them; a project's ``pipelines.py`` holds them.

``shipyard run NAME`` looks ``NAME`` up in this order:

1. ``package.module:attribute`` imports that module (the project folder first on
   ``sys.path``) and takes the pipeline there;
2. a bare name is looked up among registered pipelines after importing the project's
   ``pipelines.py`` (or ``pipelines/`` package) from the project folder.

>>> get_pipeline("churn", project_dir)  # doctest: +SKIP
<pipeline 'churn' (pipelines:churn)>
"""

from __future__ import annotations

import difflib
import importlib
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.pipelines.errors import PipelineDefinitionError, PipelineNotFoundError

if TYPE_CHECKING:
    from shipyard.pipelines.definition import Pipeline

__all__ = [
    "PROJECT_MODULE",
    "get_pipeline",
    "import_project_pipelines",
    "project_pipelines",
    "register_pipeline",
]

PROJECT_MODULE = "pipelines"
"""The project folder's module (``pipelines.py`` or ``pipelines/``) that holds its pipelines."""

_registry: dict[str, dict[str, Pipeline]] = {}
_lock = threading.Lock()


def register_pipeline(pipeline: Pipeline) -> None:
    """Register ``pipeline`` under its name (re-registering the same reference replaces it)."""
    with _lock:
        _registry.setdefault(pipeline.name, {})[pipeline.reference] = pipeline


def import_project_pipelines(project_dir: Path) -> Any | None:
    """Import the project's ``pipelines`` module from ``project_dir``; ``None`` if it has none.

    A ``pipelines`` module imported earlier from another folder is replaced, so one
    process can switch projects (tests do).
    """
    folder = project_dir.resolve()
    candidates = (folder / f"{PROJECT_MODULE}.py", folder / PROJECT_MODULE / "__init__.py")
    if not any(path.is_file() for path in candidates):
        return None
    _put_first_on_path(folder)
    loaded = sys.modules.get(PROJECT_MODULE)
    if loaded is not None:
        loaded_file = getattr(loaded, "__file__", None)
        if loaded_file is None or Path(loaded_file).resolve() not in candidates:
            for name in [n for n in sys.modules if n.split(".", 1)[0] == PROJECT_MODULE]:
                del sys.modules[name]
            loaded = None
    if loaded is not None:
        return loaded
    importlib.invalidate_caches()
    return _import(PROJECT_MODULE, f"the project's {PROJECT_MODULE}.py in {folder}")


def project_pipelines(project_dir: Path) -> list[Pipeline]:
    """The pipelines declared in the project's ``pipelines`` module, sorted by name."""
    if import_project_pipelines(project_dir) is None:
        return []
    folder = project_dir.resolve()
    with _lock:
        found = [
            p
            for by_reference in _registry.values()
            for p in by_reference.values()
            if _is_live(p) and Path(p.fn.__code__.co_filename).resolve().is_relative_to(folder)
        ]
    return sorted(found, key=lambda p: p.name)


def _is_live(pipeline: Pipeline) -> bool:
    """Whether the module that declared ``pipeline`` is still the one imported under its
    name (a module imported again, or from another project, leaves stale registrations)."""
    module = sys.modules.get(pipeline.fn.__module__)
    return module is not None and vars(module) is pipeline.fn.__globals__


def get_pipeline(target: str, project_dir: Path) -> Pipeline:
    """The pipeline ``target`` names: ``module:attribute`` or a registered name."""
    from shipyard.pipelines.definition import Pipeline

    if ":" in target:
        module_name, _, attribute = target.partition(":")
        _put_first_on_path(project_dir.resolve())
        module = _import(module_name, f"pipeline reference {target!r}")
        value: Any = module
        for part in attribute.split("."):
            value = getattr(value, part, None)
        if not isinstance(value, Pipeline):
            found = "nothing" if value is None else f"a {type(value).__name__}"
            raise PipelineNotFoundError(
                f"{target!r} is not a pipeline: module {module_name!r} has {found} there.",
                hint="Point at a function decorated with @pipeline.",
            )
        return value
    import_project_pipelines(project_dir)
    with _lock:
        matches = {r: p for r, p in _registry.get(target, {}).items() if _is_live(p)}
        known = sorted(
            name
            for name, by_reference in _registry.items()
            if any(map(_is_live, by_reference.values()))
        )
    if len(matches) == 1:
        return next(iter(matches.values()))
    if len(matches) > 1:
        raise PipelineDefinitionError(
            f"More than one pipeline is named {target!r}: {', '.join(sorted(matches))}.",
            hint="Name one by its reference (module:function), or rename one.",
        )
    close = difflib.get_close_matches(target, known, n=1)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    where = project_dir / f"{PROJECT_MODULE}.py"
    raise PipelineNotFoundError(
        f"No pipeline named {target!r}.{suggestion}",
        hint=(
            f"Known pipelines: {', '.join(known)}."
            if known
            else f"Declare one with @pipeline in {where}, or name it as module:function."
        ),
    )


def _put_first_on_path(folder: Path) -> None:
    entry = str(folder)
    if not sys.path or sys.path[0] != entry:
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)


def _import(module_name: str, what: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.split(".")[0] == exc.name.split(".")[0]:
            raise PipelineNotFoundError(
                f"Cannot import {what}: no module named {exc.name!r}.",
                hint="Check the module path and that it is inside the project folder.",
            ) from exc
        raise PipelineDefinitionError(
            f"Importing {what} failed: {exc}.", hint="Install the missing package."
        ) from exc
    except PipelineDefinitionError:
        raise
    except Exception as exc:
        raise PipelineDefinitionError(
            f"Importing {what} failed: {type(exc).__name__}: {exc}.",
            hint="Fix the error in that module (run it with python to see the traceback).",
        ) from exc
