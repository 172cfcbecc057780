"""Pipelines: cached-step overhead, planning a 1,000-step DAG, and a real pipeline vs Kedro.

Three figures:

- ``cached_step_overhead_ms``: what one cached step adds to a run (key, index lookup,
  blob verification, bookkeeping): the slope between a fully cached 20-step and 220-step
  chain, so the fixed cost of a run (its tracking run, code capture) is not spread over
  the steps. Target: under 5 ms.
- ``plan_1000_steps_s``: tracing a 1,000-step DAG (a chain of fan-in layers) into a
  plan. Target: under 1 s.
- ``small_pipeline_speedup``: the same small real pipeline (the churn CSV: load, clean,
  split, random forest, evaluate at a threshold) in Kedro and in Shipyard, through a
  developer's loop: run it, change the evaluation threshold, run it again. Both sides
  run in-process with their default sequential runner; Kedro keeps data in memory (its
  default), Shipyard stores every output as an artifact and tracks every run (its
  default). Imports are done before the clock starts. Ratio = Kedro time / Shipyard
  time; target: at least 2x. The cold first run and the re-run are also shown apart.

The peer is installed at a pinned version in its own venv (``benchmarks/.venvs/``), with
the same pandas, numpy and scikit-learn versions as Shipyard's venv so the computation
is identical. Rounds alternate the two sides; medians are reported.

Run from the repository root::

    .venv/bin/python benchmarks/pipelines.py [--rounds 5]

The last line printed is the JSON summary.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _peers import BenchmarkError, Result, emit_json, ensure_peer_venv, print_table, progress

KEDRO_VERSION = "1.7.0"
ZENML_VERSION = "0.98.0"
ROOT = Path(__file__).resolve().parent.parent
CHURN_CSV = ROOT.parent / "shared" / "datasets" / "mlc_churn.csv"
CACHED_STEP_TARGET_MS = 5.0
PLAN_TARGET_S = 1.0
SPEEDUP_TARGET = 2.0

# The pipeline's functions, the same text on both sides.
WORKLOAD = """
import pandas as pd


def load(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


def clean(table: pd.DataFrame) -> pd.DataFrame:
    table = table.drop(columns=["state"])
    table = pd.get_dummies(
        table, columns=["area_code", "international_plan", "voice_mail_plan"], dtype="int8"
    )
    table["churn"] = (table["churn"] == "yes").astype("int8")
    return table


def split(table: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        table, test_size=0.25, random_state=seed, stratify=table["churn"]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def train(table: pd.DataFrame, seed: int = 0):
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    return model.fit(table.drop(columns=["churn"]), table["churn"])


def evaluate(model, table: pd.DataFrame, threshold: float = 0.5) -> dict:
    from sklearn.metrics import precision_score, recall_score

    scores = model.predict_proba(table.drop(columns=["churn"]))[:, 1]
    predicted = (scores >= threshold).astype("int8")
    return {
        "recall": float(recall_score(table["churn"], predicted)),
        "precision": float(precision_score(table["churn"], predicted, zero_division=0)),
    }
"""

KEDRO_SIDE = (
    WORKLOAD
    + """

import logging
import sys
import time

from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

logging.getLogger("kedro").setLevel(logging.WARNING)  # no per-node console logging


def run(threshold: float) -> dict:
    pipeline = Pipeline(
        [
            node(load, "params:path", "raw", name="load"),
            node(clean, "raw", "clean", name="clean"),
            node(split, ["clean", "params:seed"], ["train_table", "test_table"], name="split"),
            node(train, ["train_table", "params:seed"], "model", name="train"),
            node(evaluate, ["model", "test_table", "params:threshold"], "metrics", name="evaluate"),
        ]
    )
    catalog = DataCatalog(
        {
            "params:path": MemoryDataset(sys.argv[1]),
            "params:seed": MemoryDataset(0),
            "params:threshold": MemoryDataset(threshold),
        }
    )
    outputs = SequentialRunner().run(pipeline, catalog)
    return outputs["metrics"].load() if hasattr(outputs["metrics"], "load") else outputs["metrics"]
"""
)

SHIPYARD_PIPELINES = (
    WORKLOAD.replace("\ndef ", "\n@step\ndef ")
    .replace(
        "@step\ndef split",
        "@step(outputs=('train', 'test'), libraries=['scikit-learn'])\ndef split",
    )
    .replace("@step\ndef train", "@step(libraries=['scikit-learn'])\ndef train")
    .replace(
        "import pandas as pd",
        "import pandas as pd\n\nfrom shipyard.pipelines import pipeline, step",
    )
    + """

@pipeline
def churn(path: str, threshold: float = 0.5) -> dict:
    train_table, test_table = split(clean(load(path)), seed=0)  # Kedro's seed, not a derived one
    return {"metrics": evaluate(train(train_table, seed=0), test_table, threshold=threshold)}
"""
)

ZENML_SIDE = (
    """
import os
import sys
import time
from typing import Annotated, Tuple  # ZenML reads typing.Tuple, not tuple, as several outputs

from zenml import pipeline, step
from zenml.client import Client

"""
    + WORKLOAD
    + """

Client().active_stack_model  # off the clock, as for the others: create the local store


@step
def load_step(path: str) -> pd.DataFrame:
    return load(path)


@step
def clean_step(table: pd.DataFrame) -> pd.DataFrame:
    return clean(table)


@step
def split_step(
    table: pd.DataFrame, seed: int = 0
) -> Tuple[Annotated[pd.DataFrame, "train_table"], Annotated[pd.DataFrame, "test_table"]]:
    train_table, test_table = split(table, seed)
    return train_table, test_table  # ZenML reads the return statement to count outputs


@step
def train_step(table: pd.DataFrame, seed: int = 0):
    return train(table, seed)


@step
def evaluate_step(model, table: pd.DataFrame, threshold: float = 0.5) -> dict:
    return evaluate(model, table, threshold)


@pipeline
def churn(path: str, threshold: float = 0.5):
    train_table, test_table = split_step(clean_step(load_step(path)), seed=0)
    evaluate_step(train_step(train_table, seed=0), test_table, threshold=threshold)


def run(threshold: float) -> dict:
    result = churn(path=sys.argv[1], threshold=threshold)
    return result.steps["evaluate_step"].output.load()
"""
)

SHIPYARD_SIDE = """
import sys
import time
from pathlib import Path

from shipyard.core.config import load_config
from shipyard.pipelines import load_output, run_pipeline
from shipyard.pipelines.registry import get_pipeline

config = load_config(Path(sys.argv[2]), environ={})
churn = get_pipeline("churn", config.project_dir)
# Off the clock, as Kedro's are: imports, and creating the project's store (`shipyard init`).
import skops.io, sklearn.ensemble, sklearn.metrics, sklearn.model_selection  # noqa: E401,F401
from shipyard.store.stores import open_stores

open_stores(config).close()


def run(threshold: float) -> dict:
    result = run_pipeline(churn, {"path": sys.argv[1], "threshold": threshold}, config=config)
    return load_output(result.outputs["metrics"], config=config)
"""

TIMED = """

import json
import pandas, sklearn.ensemble, sklearn.model_selection, sklearn.metrics  # noqa: E401,F401

started = time.perf_counter()
first = run(0.5)
cold = time.perf_counter() - started
started = time.perf_counter()
second = run(0.35)
rerun = time.perf_counter() - started
print(json.dumps({"cold_s": cold, "rerun_s": rerun, "first": first, "second": second}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per side")
    args = parser.parse_args()
    if not CHURN_CSV.is_file():
        raise BenchmarkError(f"{CHURN_CSV} is missing: shared/datasets must sit beside the repo.")

    overhead_ms, chain_times = cached_step_overhead()
    plan_s = plan_time()
    same = [
        f"{name}=={importlib.metadata.version(name)}"
        for name in ("pandas", "scikit-learn", "numpy")
    ]
    peers = {
        "zenml": ensure_peer_venv(
            f"zenml-{ZENML_VERSION}", [f"zenml[local]=={ZENML_VERSION}", *same]
        ),
        "kedro": ensure_peer_venv(f"kedro-{KEDRO_VERSION}", [f"kedro=={KEDRO_VERSION}", *same]),
    }
    for name, pinned in (("zenml", ZENML_VERSION), ("kedro", KEDRO_VERSION)):
        found = _output([str(peers[name]), "-c", f"import {name}; print({name}.__version__)"])
        if found != pinned:
            raise BenchmarkError(f"the peer venv holds {name} {found}, not the pinned {pinned}")
    progress(f"peers: zenml {ZENML_VERSION}, kedro {KEDRO_VERSION}")
    timings = small_pipeline(peers, args.rounds)

    def median(side: str, phase: str) -> float:
        return statistics.median(t[phase] for t in timings[side])

    print(f"Python {platform.python_version()}, {platform.machine()}")
    print_table(
        ["chain of cached steps", "run time (s)"],
        [(f"{n} steps", seconds) for n, seconds in chain_times.items()],
        title="Fully cached runs (median of 7), in-process, SQLite + local artifacts",
    )
    rows = []
    ratios: dict[str, float] = {}
    for side in ("zenml", "kedro", "shipyard"):
        cold, rerun = median(side, "cold_s"), median(side, "rerun_s")
        rows.append((side, cold, rerun, cold + rerun))
    ours = rows[-1]
    for side, _, _, loop in rows[:-1]:
        ratios[side] = loop / ours[3]
    print_table(
        ["tool", "cold run (s)", "re-run, threshold changed (s)", "both (s)"],
        rows,
        title=f"Small real pipeline (churn CSV, 5 steps), median of {args.rounds} rounds",
    )
    print_table(
        ["peer", "cold ratio", "re-run ratio", "both runs ratio (peer / shipyard)"],
        [
            (side, cold / ours[1], rerun / ours[2], ratios[side])
            for side, cold, rerun, _ in rows[:-1]
        ],
    )
    results = [
        Result("cached_step_overhead_ms", overhead_ms, "ms", "<=", CACHED_STEP_TARGET_MS),
        Result("plan_1000_steps_s", plan_s, "s", "<=", PLAN_TARGET_S),
        Result("small_pipeline_speedup", ratios["zenml"], "x", ">=", SPEEDUP_TARGET),
        # The 2x holds against either peer; Kedro's figure is held to it too, so a
        # miss against the lighter peer shows as a miss.
        Result("small_pipeline_speedup_vs_kedro", ratios["kedro"], "x", ">=", SPEEDUP_TARGET),
    ]
    print_table(
        ["result", "value", "target", "met"],
        [
            (r.name, r.value, f"{r.op} {r.target:g} {r.unit}", "yes" if r.met else "NO")
            for r in results
        ],
        title="Targets",
    )
    emit_json("pipelines", results)
    return 0


def cached_step_overhead() -> tuple[float, dict[int, float]]:
    """Per-step cost of a cached step: the slope between two fully cached chain lengths."""
    from shipyard.core.config import load_config
    from shipyard.pipelines import pipeline, run_pipeline, step

    @step
    def start() -> int:
        return 0

    @step
    def increment(value: int, index: int = 0) -> int:
        return value + 1

    @pipeline(name="benchmark_chain")
    def chain(length: int = 20) -> None:
        value = start()
        for index in range(length):
            value = increment(value, index=index)

    lengths = (20, 220)
    times: dict[int, list[float]] = {n: [] for n in lengths}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as folder:
        config = load_config(Path(folder), environ={})
        for length in lengths:
            run_pipeline(chain, {"length": length}, config=config)  # fill the cache
        for _ in range(7):
            for length in lengths:
                started = time.perf_counter()
                result = run_pipeline(chain, {"length": length}, config=config)
                times[length].append(time.perf_counter() - started)
                assert {s.status for s in result.run.steps} == {"cached"}
    medians = {n: statistics.median(values) for n, values in times.items()}
    slope_ms = (medians[220] - medians[20]) / (220 - 20) * 1000
    progress(f"cached step overhead: {slope_ms:.2f} ms ({medians})")
    return slope_ms, medians


def plan_time() -> float:
    """Tracing a 1,000-step DAG: 100 layers of 10 steps, each reading the previous layer."""
    from shipyard.pipelines import pipeline, step

    @step
    def source(index: int) -> int:
        return index

    @step
    def merge(values: list[int], layer: int = 0) -> int:
        return sum(values)

    @pipeline(name="benchmark_dag")
    def dag() -> None:
        layer = [source(i) for i in range(10)]
        for depth in range(99):
            layer = [merge(layer, layer=depth) for _ in range(10)]

    samples = []
    for _ in range(5):
        started = time.perf_counter()
        plan = dag.plan()
        samples.append(time.perf_counter() - started)
    assert len(plan.nodes) == 1000
    progress(f"plan of 1,000 steps: {statistics.median(samples):.3f} s")
    return statistics.median(samples)


def small_pipeline(peers: dict[str, Path], rounds: int) -> dict[str, list[dict[str, float]]]:
    """Each side in a fresh process per round, sides rotated, state fresh each round."""
    sides = ["zenml", "kedro", "shipyard"]
    results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as folder:
        scripts = {
            "zenml": ZENML_SIDE + TIMED,
            "kedro": KEDRO_SIDE + TIMED,
            "shipyard": SHIPYARD_SIDE + TIMED,
        }
        for side, text in scripts.items():
            (Path(folder) / f"{side}_side.py").write_text(text)
        for index in range(rounds + 1):  # round 0 warms file caches and venvs, untimed
            shift = index % len(sides)
            for side in sides[shift:] + sides[:shift]:
                state = Path(folder) / f"{side}-{index}"
                state.mkdir()
                script = str(Path(folder) / f"{side}_side.py")
                environment = dict(os.environ)
                if side == "shipyard":
                    (state / "pipelines.py").write_text(textwrap.dedent(SHIPYARD_PIPELINES))
                    command = [sys.executable, script, str(CHURN_CSV), str(state)]
                else:
                    command = [str(peers[side]), script, str(CHURN_CSV)]
                    environment.update(
                        ZENML_CONFIG_PATH=str(state / "zenml"),
                        ZENML_ANALYTICS_OPT_IN="false",
                        ZENML_LOGGING_VERBOSITY="ERROR",
                        ZENML_ENABLE_RICH_TRACEBACK="false",
                    )
                started = time.perf_counter()
                report = json.loads(
                    _output(command, cwd=str(state), env=environment).splitlines()[-1]
                )
                report["process_s"] = time.perf_counter() - started
                if index > 0:
                    results[side].append(report)
            if index > 0:
                progress(f"  round {index}/{rounds}")
        reference = results["kedro"][0]
        for side in sides:  # every side computed the same metrics
            if results[side][0]["first"] != reference["first"]:
                raise BenchmarkError(f"{side} computed other metrics: {results[side][0]}")
            if results[side][0]["second"] != reference["second"]:
                raise BenchmarkError(f"{side} computed other metrics: {results[side][0]}")
    return results


def _output(command: list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env, check=False
    )
    if completed.returncode != 0:
        raise BenchmarkError(
            f"{' '.join(command)} exited {completed.returncode}:\n{completed.stderr[-3000:]}"
        )
    return completed.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
