"""Shared machinery for Shipyard's benchmarks: peer environments, timing, reporting.

Every benchmark compares Shipyard with the tool a user would otherwise pick, in the same
run on the same machine. The peer lives in its own virtual environment under
``benchmarks/.venvs/`` (git-ignored) so that its dependencies never touch Shipyard's, and
is installed there on first use at a pinned version.

Example::

    python = ensure_peer_venv("mlflow-3.17.2", ["mlflow==3.17.2"])
    timings = interleaved_timings(
        {"shipyard": [sys.executable, "-c", "import shipyard"],
         "mlflow": [str(python), "-c", "import mlflow"]},
        repeats=21,
    )
    print(median(timings["mlflow"]) / median(timings["shipyard"]))
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "VENVS_DIR",
    "BenchmarkError",
    "Result",
    "emit_json",
    "ensure_peer_venv",
    "interleaved_timings",
    "print_table",
    "progress",
]

VENVS_DIR = Path(__file__).resolve().parent / ".venvs"
_MARKER = "shipyard-benchmark-requirements.txt"
# A cold install of a large peer (MLflow pulls ~100 wheels) takes minutes; past this, the
# benchmark cannot meet its own 20-minute budget, so fail with a clear message instead.
_INSTALL_TIMEOUT_S = 15 * 60


class BenchmarkError(RuntimeError):
    """A benchmark could not run: a peer failed to install, or a timed command failed."""


@dataclass(frozen=True)
class Result:
    """One figure of a benchmark, with the target it is held to."""

    name: str
    value: float
    unit: str
    op: Literal[">=", "<="]
    target: float

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "op": self.op,
            "target": self.target,
        }


def progress(message: str) -> None:
    """Tell the reader what is happening, on stderr so stdout stays table + JSON."""
    print(message, file=sys.stderr, flush=True)


def ensure_peer_venv(name: str, requirements: list[str]) -> Path:
    """Return the python of ``benchmarks/.venvs/<name>``, creating and filling it if needed.

    The venv is built from the interpreter running the benchmark (same Python version as
    Shipyard's side, so the comparison is of the packages, not the interpreters). The
    pinned ``requirements`` are installed with pip (normal pip cache) unless a marker file
    records exactly this list from an earlier successful install.
    """
    venv_dir = VENVS_DIR / name
    python = venv_dir / "bin" / "python"
    marker = venv_dir / _MARKER
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python

    if not python.exists():
        progress(f"creating {venv_dir} ...")
        if venv_dir.exists():
            shutil.rmtree(venv_dir)  # a half-made venv from an interrupted run
        venv_dir.parent.mkdir(parents=True, exist_ok=True)
        _run_setup([sys.executable, "-m", "venv", str(venv_dir)], f"create venv {venv_dir}")

    marker.unlink(missing_ok=True)
    progress(f"installing {' '.join(requirements)} into {venv_dir} (first run takes minutes) ...")
    started = time.perf_counter()
    _run_setup(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *requirements],
        f"pip install {' '.join(requirements)}",
    )
    progress(f"installed in {time.perf_counter() - started:.0f} s")
    marker.write_text(wanted)
    return python


def _run_setup(command: list[str], what: str) -> None:
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(
            f"{what} did not finish in {_INSTALL_TIMEOUT_S // 60} minutes. Check the network "
            "to PyPI, or install it by hand into that venv and rerun."
        ) from exc
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-20:])
        raise BenchmarkError(f"{what} failed (exit {completed.returncode}):\n{tail}")


def interleaved_timings(
    commands: dict[str, list[str]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall time in milliseconds of each command as a fresh process, ``repeats`` times.

    Runs are interleaved round by round, and the order within a round rotates, so that a
    burst of machine noise lands on every command rather than on one side. ``warmup``
    untimed rounds first fill the OS file cache and the bytecode caches for all sides
    alike. Commands run from an empty temporary folder, so nothing in the current folder
    can shadow an import. A command that exits non-zero raises :class:`BenchmarkError`.
    """
    names = list(commands)
    timings: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as cwd:
        for round_index in range(warmup + repeats):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed_ms = _time_once(name, commands[name], cwd)
                if round_index >= warmup:
                    timings[name].append(elapsed_ms)
            if round_index >= warmup:
                progress(f"  round {round_index - warmup + 1}/{repeats}")
    return timings


def _time_once(name: str, command: list[str], cwd: str) -> float:
    started = time.perf_counter_ns()
    completed = subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    elapsed_ms = (time.perf_counter_ns() - started) / 1e6
    if completed.returncode != 0:
        stderr = completed.stderr.decode(errors="replace").strip()
        raise BenchmarkError(
            f"{name!r} ({' '.join(command)}) exited {completed.returncode}:\n{stderr[-2000:]}"
        )
    return elapsed_ms


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None
) -> None:
    """Print a plain aligned table; numbers right-aligned, everything else left."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max(len(header), *(len(row[i]) for row in cells)) if cells else len(header)
        for i, header in enumerate(headers)
    ]
    numeric = [
        bool(rows) and all(isinstance(row[i], int | float) for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    if title:
        print(f"\n{title}")
    print(line(list(headers)))
    print("  ".join("-" * width for width in widths))
    for row in cells:
        print(line(row))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def emit_json(benchmark: str, results: Sequence[Result] | Sequence[Mapping[str, object]]) -> None:
    """Print the benchmark's one-line JSON summary; call it last, it must be the last line."""
    payload = [r.as_json() if isinstance(r, Result) else dict(r) for r in results]
    print(json.dumps({"benchmark": benchmark, "results": payload}), flush=True)
