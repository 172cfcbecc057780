"""The project's own checks, run by the same test command CI runs.

ruff (lint and format), mypy --strict on the package, and the import-linter layer
contracts. Each test fails with the tool's own report.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run: pip install -e '.[dev]'")
    return found


def _run(*command: str) -> None:
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


def test_ruff_lint() -> None:
    _run(_tool("ruff"), "check", "src", "tests", "benchmarks")


def test_ruff_format() -> None:
    _run(_tool("ruff"), "format", "--check", "src", "tests", "benchmarks")


def test_mypy_strict() -> None:
    _run(_tool("mypy"), "--no-error-summary")


def test_layer_contracts() -> None:
    _run(_tool("lint-imports"), "--no-cache")
