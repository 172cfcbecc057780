"""Data drift: Shipyard's DriftDetector against Evidently's DataDriftPreset, side by side.

Issue 9, point 8. Two tables, 100,000 x 20 and 1,000,000 x 20 (15 numeric columns of
several shapes, 5 categorical string columns), each as a reference half and a current
half of that many rows each, generated from a fixed seed, with drift planted in 4
numeric and 2 categorical columns of the current half. Figures:

- ``speedup_100k``, ``speedup_1m``: Evidently's time / Shipyard's time for the whole
  drift computation (target: at least 20x).
- ``memory_ratio_1m``: Shipyard's peak memory / Evidently's peak memory at 1,000,000
  rows (target: at most 0.25).

The same per-column test on both sides, no multivariate check: normed Wasserstein
distance (W1 / reference standard deviation, drift at >= 0.1) for numeric columns and
Jensen-Shannon distance (natural log, drift at >= 0.1) for categorical ones; these are
Evidently's own defaults above 1,000 rows, passed explicitly
(``DataDriftPreset(num_method="wasserstein", cat_method="jensenshannon")``); Shipyard is
told the same (``numeric_method="wasserstein", categorical_method="jensen_shannon",
statistics="decision"``). Both sides must flag the same columns.

What is timed, on each side: building the reference from the reference table and
testing the current table against it (Shipyard: ``DriftDetector.fit`` then ``detect``;
Evidently: ``Report.run``, which takes the reference table every run). Not timed: the
imports (reported on their own line), and reading the Parquet files written by the
parent (each side reads them into its native form: an Arrow table for Shipyard, a pandas
DataFrame with ``category`` columns for Evidently, its cheapest string representation).

Memory: each side runs in a fresh process. Its idle baseline is ``ru_maxrss`` after the
imports, before any data is read; its peak is ``ru_maxrss`` at the end; the figure is
peak minus baseline, so it counts the data each side holds plus what the computation
allocates, and not the libraries' code. Neither side writes anything (no durability to
state): both results are in memory.

Run from the repository root::

    .venv/bin/python benchmarks/drift_vs_evidently.py

The last line printed is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _peers import Result, emit_json, ensure_peer_venv, print_table, progress

EVIDENTLY_VERSION = "0.7.23"
SCRIPT = Path(__file__).resolve()
SEED = 20_261_126
NUMERIC = 15
CATEGORICAL = 5
DRIFTED_NUMERIC = ("n00", "n01", "n02", "n03")
DRIFTED_CATEGORICAL = ("c00", "c01")


# --- data ------------------------------------------------------------------------------


def generate(rows: int, folder: Path) -> None:
    """Write reference.parquet and current.parquet of ``rows`` rows each (deterministic)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.Generator(np.random.PCG64(SEED))
    sizes = [3, 5, 8, 12, 30]
    for half in ("reference", "current"):
        drifted = half == "current"
        columns: dict[str, Any] = {}
        for i in range(NUMERIC):
            name = f"n{i:02d}"
            shape = i % 5
            if shape == 0:
                values = rng.normal(50, 10, rows)
            elif shape == 1:
                values = rng.lognormal(3, 0.6, rows)
            elif shape == 2:
                values = rng.exponential(4, rows)
            elif shape == 3:
                values = rng.uniform(0, 100, rows)
            else:
                values = rng.poisson(6, rows).astype(np.float64)
            if drifted and name in DRIFTED_NUMERIC:
                values = values * 1.3 + np.std(values) * 0.4  # a shift and a stretch
            if i % 4 == 1:
                values[rng.random(rows) < 0.02] = np.nan  # some missing values
            columns[name] = values
        for j in range(CATEGORICAL):
            name = f"c{j:02d}"
            k = sizes[j]
            weights = np.linspace(1, 3, k)
            if drifted and name in DRIFTED_CATEGORICAL:
                weights = weights[::-1] ** 2  # the common categories become rare
            codes = rng.choice(k, size=rows, p=weights / weights.sum())
            labels = np.array([f"{name}_v{v}" for v in range(k)], dtype=object)
            columns[name] = pa.array(labels[codes], pa.string())
        pq.write_table(pa.table(columns), folder / f"{half}.parquet")


# --- workers (one fresh process per side and size) -------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker_shipyard(folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    import pyarrow.compute  # noqa: F401  (loaded lazily by the detector: import it untimed)
    import pyarrow.parquet as pq

    import shipyard.monitoring.windows  # noqa: F401
    from shipyard.monitoring.drift import DriftDetector

    imported = time.perf_counter() - started
    baseline = _rss_mb()
    reference = pq.read_table(folder / "reference.parquet")
    current = pq.read_table(folder / "current.parquet")
    started = time.perf_counter()
    detector = DriftDetector(
        numeric_method="wasserstein",
        categorical_method="jensen_shannon",
        statistics="decision",
    ).fit(reference)
    report = detector.detect(current)
    elapsed = time.perf_counter() - started
    return {
        "import_s": imported,
        "run_s": elapsed,
        "baseline_mb": baseline,
        "peak_mb": _rss_mb(),
        "drifted": sorted(c.name for c in report.columns if c.drifted),
        "scores": {c.name: c.statistic for c in report.columns},
    }


def worker_evidently(folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    imported = time.perf_counter() - started
    baseline = _rss_mb()
    frames = []
    for half in ("reference", "current"):
        frame = pd.read_parquet(folder / f"{half}.parquet")
        for name in frame.columns:
            if name.startswith("c"):
                frame[name] = frame[name].astype("category")
        frames.append(frame)
    numeric = [c for c in frames[0].columns if c.startswith("n")]
    categorical = [c for c in frames[0].columns if c.startswith("c")]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    started = time.perf_counter()
    reference = Dataset.from_pandas(frames[0], data_definition=definition)
    current = Dataset.from_pandas(frames[1], data_definition=definition)
    report = Report([DataDriftPreset(num_method="wasserstein", cat_method="jensenshannon")])
    snapshot = report.run(current_data=current, reference_data=reference)
    elapsed = time.perf_counter() - started
    drifted, scores = _evidently_verdicts(snapshot.dict(), numeric + categorical)
    return {
        "import_s": imported,
        "run_s": elapsed,
        "baseline_mb": baseline,
        "peak_mb": _rss_mb(),
        "drifted": drifted,
        "scores": scores,
    }


def _evidently_verdicts(
    payload: dict[str, Any], columns: list[str]
) -> tuple[list[str], dict[str, float]]:
    """Per-column scores from the snapshot's ValueDrift metrics; drifted at >= 0.1 (the
    threshold both methods use by default, and the one Shipyard is given)."""
    scores: dict[str, float] = {}
    for metric in payload.get("metrics", []):
        config = metric.get("config", {})
        column = config.get("column")
        if column in columns and "ValueDrift" in str(config.get("type", "")):
            scores[column] = float(metric["value"])
    return sorted(c for c, v in scores.items() if v >= 0.1), scores


# --- parent ------------------------------------------------------------------------------


def run_side(python: str, side: str, folder: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SCRIPT.parent)
    completed = subprocess.run(
        [python, str(SCRIPT), "--worker", side, "--data", str(folder)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=str(SCRIPT.parent),
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=["shipyard", "evidently"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--rounds-100k", type=int, default=3)
    parser.add_argument("--rounds-1m", type=int, default=1)
    args = parser.parse_args()
    if args.worker:
        work = worker_shipyard if args.worker == "shipyard" else worker_evidently
        print(json.dumps(work(args.data)))
        return

    python = ensure_peer_venv(
        f"evidently-{EVIDENTLY_VERSION}", [f"evidently=={EVIDENTLY_VERSION}", "pandas<3"]
    )
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    sizes = {"100k": (100_000, args.rounds_100k), "1m": (1_000_000, args.rounds_1m)}
    figures: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="shipyard-drift-bench-") as tmp:
        for label, (rows, rounds) in sizes.items():
            folder = Path(tmp) / label
            folder.mkdir()
            progress(f"generating {rows:,} x 20 reference and current tables ...")
            generate(rows, folder)
            figures[label] = {"shipyard": [], "evidently": []}
            for round_index in range(rounds):
                order = (
                    ["shipyard", "evidently"] if round_index % 2 == 0 else ["evidently", "shipyard"]
                )
                for side in order:
                    progress(f"  {label} round {round_index + 1}/{rounds}: {side} ...")
                    exe = sys.executable if side == "shipyard" else str(python)
                    figures[label][side].append(run_side(exe, side, folder))
    load_after = os.getloadavg()[0]

    rows_out = []
    results: list[Result] = []
    for label in sizes:
        ship = figures[label]["shipyard"]
        evid = figures[label]["evidently"]
        ship_s = statistics.median(r["run_s"] for r in ship)
        evid_s = statistics.median(r["run_s"] for r in evid)
        ship_mb = max(r["peak_mb"] - r["baseline_mb"] for r in ship)
        evid_mb = max(r["peak_mb"] - r["baseline_mb"] for r in evid)
        agree = all(s["drifted"] == e["drifted"] for s in ship for e in evid)
        rows_out.append(
            [
                label,
                f"{ship_s:.3f} s (min {min(r['run_s'] for r in ship):.3f})",
                f"{evid_s:.2f} s (min {min(r['run_s'] for r in evid):.2f})",
                round(evid_s / ship_s, 1),
                f"{ship_mb:.0f} MB",
                f"{evid_mb:.0f} MB",
                round(ship_mb / evid_mb, 3),
                f"{len(ship[0]['drifted'])}/{len(evid[0]['drifted'])} "
                + ("same" if agree else "DIFFER"),
            ]
        )
        results.append(Result(f"speedup_{label}", round(evid_s / ship_s, 1), "x", ">=", 20))
        if label == "1m":
            results.append(
                Result("memory_ratio_1m", round(ship_mb / evid_mb, 3), "ratio", "<=", 0.25)
            )
        if not agree:
            progress(f"  {label}: shipyard {ship[0]['drifted']} evidently {evid[0]['drifted']}")
    print_table(
        [
            "size",
            "Shipyard",
            "Evidently",
            "speedup",
            "Shipyard mem",
            "Evidently mem",
            "mem ratio",
            "drifted (S/E)",
        ],
        rows_out,
        title=f"Drift, 20 columns, reference and current of N rows each "
        f"(Evidently {EVIDENTLY_VERSION}; memory = peak minus idle ru_maxrss)",
    )
    print_table(
        ["side", "import s (median)"],
        [
            [
                side,
                round(
                    statistics.median(r["import_s"] for lab in sizes for r in figures[lab][side]), 2
                ),
            ]
            for side in ("shipyard", "evidently")
        ],
        title="Imports (not in any ratio)",
    )
    worst = max(
        abs(s["scores"][c] - e["scores"].get(c, float("nan")))
        for lab in sizes
        for s in figures[lab]["shipyard"][:1]
        for e in figures[lab]["evidently"][:1]
        for c in s["scores"]
    )
    print(
        f"\nlargest |Shipyard score - Evidently score| over all columns: {worst:.4f}; "
        f"load average {load_before:.1f} -> {load_after:.1f}; "
        f"{time.perf_counter() - started:.0f} s in all; {platform.machine()}, "
        f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    emit_json("drift_vs_evidently", results)


if __name__ == "__main__":
    main()
