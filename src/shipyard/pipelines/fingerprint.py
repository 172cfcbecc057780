"""The code part of a step's cache key: its source and the project code it reaches.

Starting from the step's function, the walk follows every name its code (and the code
nested in it) loads, resolved in the function's globals and closure:

- a function, class or module whose file lies in the project folder is included (its
  normalised source; a module's whole file) and walked in turn, with a visited set, so a
  helper of a helper in another module counts;
- a simple constant (number, string, tuple of them...) the step reads is included by
  value, so ``THRESHOLD = 0.7`` at module level is part of the key;
- code outside the project (the standard library, installed packages, Shipyard itself)
  is not: declare the libraries a step depends on with ``@step(libraries=[...])`` and
  their installed versions join the key instead.

Sources are normalised through the ``ast`` module: comments, blank lines, formatting,
docstrings and the step's decorator do not change the key; any change to what the code
does does. A result is memoised per function and reused while the files it read are
unchanged (same size and modification time), which keeps a cached step cheap.

>>> fingerprint = code_fingerprint(train.fn, project_dir)  # doctest: +SKIP
>>> [name for name, _ in fingerprint.parts]  # doctest: +SKIP
['pipelines:train', 'features:encode', 'module features']
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.ids import ContentId, content_id_of_bytes
from shipyard.pipelines.canonical import canonical_json, json_problem

__all__ = ["CodeFingerprint", "code_fingerprint", "is_project_file"]

_MAX_CONSTANT_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class CodeFingerprint:
    """The digest of a step's code, and what went into it (for explaining cache misses)."""

    digest: ContentId
    parts: tuple[tuple[str, str], ...]
    """``(what, digest)`` pairs, sorted: ``module:qualname`` of a function or class,
    ``module NAME`` of a whole module, ``constant module.NAME`` of a constant."""


_memo: dict[
    tuple[Callable[..., Any], str], tuple[CodeFingerprint, tuple[tuple[str, int, int], ...]]
]
_memo = {}
_memo_lock = threading.Lock()


def code_fingerprint(fn: Callable[..., Any], project_dir: Path) -> CodeFingerprint:
    """The fingerprint of ``fn``'s code and the project code it reaches (see module doc)."""
    root = str(project_dir.resolve())
    key = (fn, root)
    with _memo_lock:
        memo = _memo.get(key)
    if memo is not None and _files_unchanged(memo[1]):
        return memo[0]
    walker = _Walker(Path(root))
    walker.visit_function(fn, root=True)
    parts = tuple(sorted(walker.parts.items()))
    fingerprint = CodeFingerprint(content_id_of_bytes(canonical_json(parts)), parts)
    with _memo_lock:
        _memo[key] = (fingerprint, tuple(walker.files.items_with_stats()))
    return fingerprint


def is_project_file(path: str | os.PathLike[str] | None, project_dir: Path) -> bool:
    """Whether ``path`` is project code: under ``project_dir``, not an installed package."""
    if not path:
        return False
    try:
        resolved = Path(path).resolve()
    except (OSError, ValueError):
        return False
    if not resolved.is_relative_to(project_dir):
        return False
    return not any(resolved.is_relative_to(excluded) for excluded in _excluded_roots()) and not (
        {"site-packages", "dist-packages"} & set(resolved.parts)
    )


def _excluded_roots() -> tuple[Path, ...]:
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    roots.add(Path(__file__).resolve().parent.parent)  # Shipyard itself, even from a checkout
    return tuple(root.resolve() for root in roots)


class _Files:
    """The files a fingerprint read, with the stat that proves them unchanged later."""

    def __init__(self) -> None:
        self._stats: dict[str, tuple[int, int]] = {}

    def note(self, path: str | None) -> None:
        if path and path not in self._stats:
            try:
                stat = os.stat(path)
            except OSError:
                return
            self._stats[path] = (stat.st_mtime_ns, stat.st_size)

    def items_with_stats(self) -> Iterator[tuple[str, int, int]]:
        for path, (mtime, size) in sorted(self._stats.items()):
            yield path, mtime, size


def _files_unchanged(files: tuple[tuple[str, int, int], ...]) -> bool:
    for path, mtime, size in files:
        try:
            stat = os.stat(path)
        except OSError:
            return False
        if stat.st_mtime_ns != mtime or stat.st_size != size:
            return False
    return True


class _Walker:
    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self.parts: dict[str, str] = {}
        self.files = _Files()
        self._seen: set[int] = set()
        self._keep: list[object] = []  # ids stay unique while the walk runs

    def _first_visit(self, obj: object) -> bool:
        if id(obj) in self._seen:
            return False
        self._seen.add(id(obj))
        self._keep.append(obj)
        return True

    def _is_local(self, obj: object) -> bool:
        try:
            path = inspect.getsourcefile(obj)  # type: ignore[arg-type]
        except TypeError:
            return False
        return is_project_file(path, self.project_dir)

    def visit_function(self, fn: Callable[..., Any], *, root: bool = False) -> None:
        fn = _unwrap(fn)
        if not isinstance(fn, types.FunctionType) or not self._first_visit(fn):
            return
        self.files.note(inspect.getsourcefile(fn) if fn.__code__ else None)
        name = f"{fn.__module__}:{fn.__qualname__}"
        self.parts[name] = _function_digest(fn)
        self._visit_references(fn)

    def _visit_references(self, fn: types.FunctionType) -> None:
        namespace = fn.__globals__
        module = fn.__module__
        for name in sorted(_loaded_names(fn.__code__)):
            if name in namespace:
                self._visit_value(namespace[name], f"{module}.{name}")
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell: the variable is not assigned yet
                continue
            self._visit_value(value, f"{module}:{fn.__qualname__}.{name}")
        for default in (*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()):
            self._visit_value(default, f"{module}:{fn.__qualname__} default")

    def _visit_value(self, value: Any, label: str) -> None:
        from shipyard.pipelines.definition import Step

        if isinstance(value, Step):
            value = value.fn
        if isinstance(value, types.FunctionType):
            if self._is_local(_unwrap(value)):
                self.visit_function(value)
        elif isinstance(value, type):
            if self._is_local(value):
                self._visit_class(value)
        elif isinstance(value, types.ModuleType):
            if is_project_file(getattr(value, "__file__", None), self.project_dir):
                self._visit_module(value)
        elif _is_constant(value):
            self._add_constant(label, value)

    def _visit_class(self, cls: type) -> None:
        if not self._first_visit(cls):
            return
        self.files.note(inspect.getsourcefile(cls))
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            source = repr(sorted(vars(cls)))
        self.parts[f"{cls.__module__}:{cls.__qualname__}"] = _source_digest(source)
        for member in vars(cls).values():
            target = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
            if isinstance(target, property):
                target = target.fget
            if isinstance(target, types.FunctionType) and self._first_visit(target):
                self._visit_references(target)

    def _visit_module(self, module: types.ModuleType) -> None:
        from shipyard.pipelines.definition import Step

        if not self._first_visit(module):
            return
        path = getattr(module, "__file__", None)
        self.files.note(path)
        try:
            with open(str(path), "rb") as handle:
                data = handle.read()
        except OSError:
            data = repr(sorted(vars(module))).encode()
        self.parts[f"module {module.__name__}"] = _source_digest(data.decode("utf-8", "replace"))
        for value in list(vars(module).values()):
            if isinstance(value, (types.FunctionType, type, types.ModuleType, Step)):
                self._visit_value(value, module.__name__)

    def _add_constant(self, label: str, value: Any) -> None:
        try:
            data = canonical_json(value) if json_problem(value) is None else repr(value).encode()
        except (TypeError, ValueError):
            data = repr(value).encode()
        if len(data) > _MAX_CONSTANT_BYTES:
            data = hashlib.sha256(data).hexdigest().encode()
        self.parts[f"constant {label}"] = hashlib.sha256(data).hexdigest()


def _unwrap(fn: Any) -> Any:
    try:
        return inspect.unwrap(fn)
    except ValueError:  # a cycle of __wrapped__
        return fn


def _is_constant(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_is_constant(item) for item in value)
    return False


def _loaded_names(code: types.CodeType) -> set[str]:
    """Names a code object (and the functions, classes, lambdas inside it) looks up."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _loaded_names(const)
    return names


def _function_digest(fn: types.FunctionType) -> str:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return _code_digest(fn.__code__)
    return _source_digest(source, strip_decorators=True)


def _source_digest(source: str, *, strip_decorators: bool = False) -> str:
    """The digest of source code as its AST: formatting, comments and docstrings ignored."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:  # e.g. a lambda cut out of the middle of a line
        return hashlib.sha256(source.strip().encode()).hexdigest()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    if strip_decorators and tree.body:
        first = tree.body[0]
        if isinstance(first, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first.decorator_list = []
    dumped = ast.dump(tree, annotate_fields=False, include_attributes=False)
    return hashlib.sha256(dumped.encode()).hexdigest()


def _code_digest(code: types.CodeType) -> str:
    """A digest of compiled code when its source is gone (names, constants, bytecode)."""
    digest = hashlib.sha256(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            digest.update(_code_digest(const).encode())
        else:
            digest.update(repr(const).encode())
    return digest.hexdigest()
