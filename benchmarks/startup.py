"""Start-up time: ``import shipyard`` and ``shipyard --version`` against MLflow.

A platform that takes seconds to import taxes every script, notebook cell and CLI call.
The foundation's targets: ``import shipyard`` under 150 ms and ``shipyard --version``
under 300 ms, each as a whole fresh process. The peer is MLflow (``import mlflow``,
``mlflow --version``), installed at a pinned version into its own venv.

Each figure is the wall time of a fresh process, measured from here with nothing
subtracted; the bare interpreter (``python -c pass``) is reported beside it as the floor.
All commands are run interleaved, round by round, and the median is reported.

Run from the repository root after the README's set-up::

    .venv/bin/python benchmarks/startup.py [--repeats 21]

The last line printed is the JSON summary.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from _peers import (
    BenchmarkError,
    Result,
    emit_json,
    ensure_peer_venv,
    interleaved_timings,
    print_table,
    progress,
)

MLFLOW_VERSION = "3.17.2"
IMPORT_TARGET_MS = 150.0
CLI_VERSION_TARGET_MS = 300.0
IMPORTTIME_RUNS = 5
IMPORTTIME_TOP = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="timed runs per command")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    args = parser.parse_args()

    shipyard_python = Path(sys.executable)  # not resolved: the venv's python, not the base
    shipyard_script = shipyard_python.parent / "shipyard"
    if not shipyard_script.exists():
        raise BenchmarkError(
            f"{shipyard_script} is missing. Run from the repository root after "
            "`python3 -m venv .venv && .venv/bin/pip install -e .`, with .venv/bin/python."
        )
    peer_python = ensure_peer_venv(f"mlflow-{MLFLOW_VERSION}", [f"mlflow=={MLFLOW_VERSION}"])
    peer_script = peer_python.parent / "mlflow"

    shipyard_version = _output([str(shipyard_script), "--version"])
    peer_version = _output(
        [str(peer_python), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"]
    )
    if peer_version != MLFLOW_VERSION:
        raise BenchmarkError(
            f"the peer venv holds mlflow {peer_version}, not the pinned {MLFLOW_VERSION}; "
            f"delete {peer_python.parent.parent} and rerun."
        )

    commands = {
        "shipyard pass": [str(shipyard_python), "-c", "pass"],
        "mlflow pass": [str(peer_python), "-c", "pass"],
        "shipyard import": [str(shipyard_python), "-c", "import shipyard"],
        "mlflow import": [str(peer_python), "-c", "import mlflow"],
        "shipyard version": [str(shipyard_script), "--version"],
        "mlflow version": [str(peer_script), "--version"],
    }
    progress(f"timing {len(commands)} commands, {args.repeats} interleaved rounds ...")
    timings = interleaved_timings(commands, repeats=args.repeats, warmup=args.warmup)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    minima = {name: min(values) for name, values in timings.items()}

    progress(f"profiling imports with -X importtime ({IMPORTTIME_RUNS} runs each) ...")
    import_profile = _importtime_top(shipyard_python, ["-c", "import shipyard"])
    cli_profile = _importtime_top(shipyard_python, [str(shipyard_script), "--version"])

    print("Start-up benchmark: Shipyard vs MLflow")
    print(
        f"shipyard {shipyard_version.removeprefix('shipyard, version ')} | "
        f"mlflow {peer_version} (peer, own venv) | Python {platform.python_version()} | "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"fresh-process wall time in ms, median and min of {args.repeats} interleaved runs "
        f"after {args.warmup} warm-up round(s); ratio = mlflow median / shipyard median"
    )
    rows: list[list[object]] = []
    for label, key in [
        ("python -c pass (floor)", "pass"),
        ("python -c 'import X'", "import"),
        ("X --version", "version"),
    ]:
        ours, theirs = f"shipyard {key}", f"mlflow {key}"
        rows.append(
            [
                label,
                medians[ours],
                minima[ours],
                medians[theirs],
                minima[theirs],
                f"{medians[theirs] / medians[ours]:.1f}x",
            ]
        )
    print_table(
        ["command", "shipyard med", "min", "mlflow med", "min", "ratio"],
        rows,
        title="Start-up time (ms)",
    )

    for title, profile in [
        ("`python -X importtime -c 'import shipyard'`", import_profile),
        ("`python -X importtime .venv/bin/shipyard --version`", cli_profile),
    ]:
        print_table(
            ["module", "cumulative ms", "self ms"],
            profile,
            title=f"Top {IMPORTTIME_TOP} cumulative imports, {title}, median of {IMPORTTIME_RUNS}",
        )

    results = [
        Result(
            "import_shipyard_ms",
            round(medians["shipyard import"], 1),
            "ms",
            "<=",
            IMPORT_TARGET_MS,
        ),
        Result(
            "cli_version_ms",
            round(medians["shipyard version"], 1),
            "ms",
            "<=",
            CLI_VERSION_TARGET_MS,
        ),
        Result(
            "import_ratio_vs_mlflow",
            round(medians["mlflow import"] / medians["shipyard import"], 2),
            "x",
            ">=",
            1.0,
        ),
        Result(
            "cli_version_ratio_vs_mlflow",
            round(medians["mlflow version"] / medians["shipyard version"], 2),
            "x",
            ">=",
            1.0,
        ),
    ]
    print_table(
        ["result", "value", "unit", "target", "met"],
        [
            [r.name, r.value, r.unit, f"{r.op} {r.target:g}", "yes" if r.met else "NO"]
            for r in results
        ],
        title="Targets",
    )
    print()
    emit_json("startup", results)
    return 0


def _output(command: list[str]) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BenchmarkError(
            f"{' '.join(command)} exited {completed.returncode}:\n{completed.stderr[-2000:]}"
        )
    return completed.stdout.strip()


def _importtime_top(python: Path, arguments: list[str]) -> list[list[object]]:
    """The heaviest imports of ``python -X importtime <arguments>``, medians over a few runs.

    Only what the code imports counts: everything up to and including the interpreter's
    own ``site`` (start-up) is left out.
    """
    cumulative: dict[str, list[float]] = defaultdict(list)
    self_time: dict[str, list[float]] = defaultdict(list)
    for _ in range(IMPORTTIME_RUNS):
        completed = subprocess.run(
            [str(python), "-X", "importtime", *arguments],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise BenchmarkError(
                f"{' '.join(arguments)} failed under -X importtime:\n{completed.stderr[-2000:]}"
            )
        entries: list[tuple[str, int, float, float]] = []
        for line in completed.stderr.splitlines():
            if not line.startswith("import time:") or "imported package" in line:
                continue
            # "import time:   self_us |   cumulative_us | <1 + 2*depth spaces>name"
            self_us, cumulative_us, name_part = line.removeprefix("import time:").split("|")
            name = name_part.strip()
            depth = (len(name_part) - len(name_part.lstrip()) - 1) // 2
            entries.append((name, depth, float(self_us) / 1000, float(cumulative_us) / 1000))
        start = max(
            (
                i + 1
                for i, (name, depth, _, _) in enumerate(entries)
                if name == "site" and not depth
            ),
            default=0,
        )
        for name, _, self_ms, cumulative_ms in entries[start:]:
            cumulative[name].append(cumulative_ms)
            self_time[name].append(self_ms)
    ranked = sorted(cumulative, key=lambda name: statistics.median(cumulative[name]), reverse=True)
    return [
        [name, statistics.median(cumulative[name]), statistics.median(self_time[name])]
        for name in ranked[:IMPORTTIME_TOP]
    ]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
