"""Serving: `shipyard serve` against `mlflow models serve`, side by side (issue 8, point 9).

Both serve the same models (see _serving_common.py) from a local store, one worker
process each, on 127.0.0.1; MLflow 3.17.2 in its own venv with ``--env-manager local``
(its fastest documented setting: no conda/virtualenv per model). Two models, each
measured the same way on both sides:

- ``gbm``, the primary figures (the JSON's names without suffix): a
  HistGradientBoostingClassifier on the 17 inputs, the model issue 8 describes;
- ``pipeline``, a second row of every figure (JSON names ending ``_pipeline``, held to
  the same targets): the ordinal encoder (a ColumnTransformer) + the same GBM, whose
  one-row call in scikit-learn is mostly the encoder's input handling.

Figures (each side measured alone, the other stopped):

- cold start: from spawning the server process to its first 200 answer (3 rounds,
  interleaved, median);
- single-row latency, 2,000 sequential requests on one kept-alive connection (p50/p99);
- throughput: wrk, 8 connections, 10 s, single-row requests (Shipyard with micro-batching
  on and off, so the batching gain is measured, not assumed);
- overhead: the single-row p50 end to end minus the p50 of the bare model call, the two
  measured interleaved in one run (each request right after one bare call, the model
  loaded in this process with the server's one-native-thread setting), so both see the
  same moments of the machine. Each side against its own model call: Shipyard's is
  ``LoadedModel.predict_raw`` on the input ``LoadedModel.frame`` builds (for the GBM the
  float matrix, see ``shipyard.models.loaded``; same scores), MLflow's the plain
  ``predict_proba`` on a one-row DataFrame (what its pyfunc calls). Both bare calls are
  printed, so the part of Shipyard's gain that is a cheaper model call is visible;
- the feature-lookup case (``p99_single_features_ms``, Shipyard only: MLflow serving has
  no online store): ``churn_gbm_online@champion`` (``churn_online`` for the pipeline) is
  the same fitted model with its 17 inputs materialized to the online store (SQLite)
  by ``customer_id``; each request carries the key only (2,000 sequential requests over
  715 different customers).

Durability: Shipyard writes every prediction to its prediction log (SQLite, batched by a
background thread, WAL); MLflow logs nothing per request.

Run: ``.venv/bin/python benchmarks/serving_vs_mlflow.py``; the last line is JSON.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _peers import Result, emit_json, ensure_peer_venv, print_table, progress
from _serving_common import (
    TRAIN,
    Server,
    free_port,
    in_service_split,
    percentile,
    post,
    record,
    run_checked,
    service_seconds,
    shipyard_project,
    wrk,
)

MLFLOW_VERSION = "3.17.2"
SEQUENTIAL = 2000
COLD_ROUNDS = 3
WRK_SECONDS = 10
CONNECTIONS = 8
_PEER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


# (served name, online-features name, MLflow model folder, GBM-shaped records)
MODELS = {
    "gbm": ("churn_gbm", "churn_gbm_online", "mlflow-gbm", True),
    "pipeline": ("churn", "churn_online", "mlflow-pipeline", False),
}


class BarePredict:
    """The bare model calls of one served version, loaded in this process with the
    server's one-native-thread setting, timed interleaved with the service's requests:
    Shipyard's (``predict_raw`` on what ``frame`` builds) and the plain library call
    (``predict_proba`` on a one-row DataFrame, as MLflow's pyfunc calls it)."""

    def __init__(self, project: Path, reference: str, numeric_plans: bool) -> None:
        import pandas as pd
        from threadpoolctl import threadpool_limits

        from shipyard.core.config import load_config
        from shipyard.models import ModelRegistry

        with ModelRegistry.open(load_config(project)) as registry:
            self.model = registry.load(reference)
        row = record(0, numeric_plans=numeric_plans)
        self.frame = self.model.frame([row])
        self.dataframe = pd.DataFrame([row])
        threadpool_limits(1)  # after the load: it limits the libraries loaded by then

    def __call__(self) -> tuple[float, float]:
        started = time.perf_counter()
        self.model.predict_raw(self.frame)
        middle = time.perf_counter()
        self.model.model.predict_proba(self.dataframe)
        return (middle - started) * 1000, (time.perf_counter() - middle) * 1000


def sequential(
    server: Server, bare: BarePredict | None, bodies: list[bytes]
) -> tuple[list[float], list[float], list[float]]:
    """SEQUENTIAL requests on one kept-alive connection, each right after the bare calls
    (when given): all series see the same moments of the machine's load."""
    for index in range(50):
        post(server.port, server.path, bodies[index % len(bodies)])
        if bare is not None:
            bare()
    latencies: list[float] = []
    ours: list[float] = []
    plain: list[float] = []
    for index in range(SEQUENTIAL):
        if bare is not None:
            own, library = bare()
            ours.append(own)
            plain.append(library)
        body = bodies[index % len(bodies)]
        started = time.perf_counter()
        status, answer = post(server.port, server.path, body)
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"{server.name} answered {status}: {answer[:300]!r}")
    return latencies, ours, plain


def measure(
    key: str,
    make_shipyard: Any,
    make_mlflow: Any,
    project: Path,
) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, list[float]]]:
    """Every figure of one model: cold starts, sequential, throughput, features case."""
    import json

    served, online, _, numeric = MODELS[key]
    cold: dict[str, list[float]] = {"shipyard": [], "mlflow": []}
    progress(f"[{key}] cold starts ...")
    for round_index in range(COLD_ROUNDS):
        order = (
            [make_shipyard, make_mlflow] if round_index % 2 == 0 else [make_mlflow, make_shipyard]
        )
        for make in order:
            server = make()
            try:
                cold[server.name].append(server.start())
            finally:
                server.stop()
        progress(
            f"  round {round_index + 1}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in cold.items())
        )
    progress(f"[{key}] loading the bare model in this process (for the interleaved overhead) ...")
    bare = BarePredict(project, f"{served}@champion", numeric)
    figures: dict[str, dict[str, float]] = {}
    scores: dict[str, float] = {}
    split = (0.0, 0.0)
    for make, label, extra in (
        (make_shipyard, "shipyard", ()),
        (make_shipyard, "shipyard-no-batching", ("--no-batching",)),
        (make_mlflow, "mlflow", ()),
    ):
        server = make(*extra) if extra else make()
        progress(f"[{key}] {label}: sequential and concurrent requests ...")
        body = server.body(record(0, numeric_plans=numeric))
        try:
            server.start()
            _, answer = post(
                server.port, server.path, server.body(record(1, numeric_plans=numeric))
            )
            payload = json.loads(answer)
            # Shipyard: the positive class's probability; MLflow: [p(no), p(yes)].
            scores[label] = (
                payload["score"] if "score" in payload else payload["predictions"][0][-1]
            )
            before = service_seconds(server.port) if label == "shipyard" else None
            latencies, ours, plain = (
                sequential(server, bare, [body])
                if label != "shipyard-no-batching"
                else ([], [], [])
            )
            if before is not None:
                split = in_service_split(before, service_seconds(server.port))
            load = wrk(server.port, server.path, body, seconds=WRK_SECONDS, connections=CONNECTIONS)
        finally:
            server.stop()
        figures[label] = {"rate": load["rate"], "errors": load["non2xx"] + load["socket_errors"]}
        if latencies:
            figures[label].update(
                p50=percentile(latencies, 0.50),
                p99=percentile(latencies, 0.99),
                bare_p50=percentile(ours, 0.50),
                bare_p99=percentile(ours, 0.99),
                plain_p50=percentile(plain, 0.50),
                plain_p99=percentile(plain, 0.99),
            )
    figures["shipyard"]["in_service_ms"], figures["shipyard"]["model_call_ms"] = split

    # The feature-lookup case (Shipyard only: MLflow serving has no online store). The
    # request carries the customer id only; the service reads the 17 inputs from SQLite.
    progress(f"[{key}] shipyard, features from the online store: sequential requests ...")
    server = make_shipyard(model=online, probe={"customer_id": 1})
    try:
        server.start()
        _, answer = post(server.port, server.path, server.body({"customer_id": 1}))
        scores["shipyard-online-features"] = json.loads(answer)["score"]
        keyed = [server.body({"customer_id": customer}) for customer in range(0, 5000, 7)]
        before = service_seconds(server.port)
        latencies, ours, _ = sequential(server, bare, keyed)
        feature_split = in_service_split(before, service_seconds(server.port))
    finally:
        server.stop()
    figures["features"] = {
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "bare_p50": percentile(ours, 0.50),
        "in_service_ms": feature_split[0],
        "model_call_ms": feature_split[1],
    }
    return figures, scores, cold


def main() -> None:
    import os

    peer = ensure_peer_venv(
        f"mlflow-serve-{MLFLOW_VERSION}",
        [f"mlflow=={MLFLOW_VERSION}", "scikit-learn==1.9.1", "pandas<3"],
    )
    work = Path(tempfile.mkdtemp(prefix="shipyard-serving-bench-"))
    progress("training and saving the MLflow models ...")
    save = "\nimport mlflow.sklearn, skops.io as sio\n"
    for key, (_, _, folder, _) in MODELS.items():
        fitted = "gbm" if key == "gbm" else "model"
        # Our own models: trust exactly the types skops reports in each.
        save += (
            f"mlflow.sklearn.save_model({fitted}, {str(work / folder)!r}, "
            f"skops_trusted_types=sio.get_untrusted_types(data=sio.dumps({fitted})), "
            # Probabilities, as Shipyard answers (pyfunc's default is the label).
            'pyfunc_predict_fn="predict_proba")\n'
        )
    run_checked(
        [str(peer), "-c", TRAIN + save], "save the MLflow models", env={**os.environ, **_PEER_ENV}
    )
    progress("training and registering the Shipyard models ...")
    project = shipyard_project(work / "project")
    shipyard_bin = str(Path(sys.executable).with_name("shipyard"))
    mlflow_bin = str(peer.with_name("mlflow"))

    results: list[Result] = []
    rows: list[list[object]] = []
    all_scores: dict[str, dict[str, float]] = {}
    for key, (served, _, folder, numeric) in MODELS.items():

        def shipyard(
            *extra: str,
            model: str = served,
            probe: dict[str, Any] | None = None,
            numeric: bool = numeric,
        ) -> Server:
            port = free_port()
            command = [shipyard_bin, "-C", str(project), "serve", f"{model}@champion"]
            return Server(
                "shipyard",
                [*command, "--port", str(port), *extra],
                port,
                f"/v1/models/{model}/predict",
                "inputs",
                probe=probe if probe is not None else record(0, numeric_plans=numeric),
            )

        def mlflow(folder: str = folder, numeric: bool = numeric) -> Server:
            port = free_port()
            return Server(
                "mlflow",
                [mlflow_bin, "models", "serve", "-m", str(work / folder), "--env-manager",
                 "local", "-h", "127.0.0.1", "-p", str(port), "--workers", "1"],
                port,
                "/invocations",
                "dataframe_records",
                # mlflow runs `uvicorn` from PATH: its own venv's, as an activated venv would.
                env={
                    **os.environ,
                    **_PEER_ENV,
                    "PATH": f"{peer.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                },
                probe=record(0, numeric_plans=numeric),
            )  # fmt: skip

        figures, scores, cold = measure(key, shipyard, mlflow, project)
        all_scores[key] = scores
        rows.extend(_rows(key, figures, cold))
        results.extend(_results(key, figures, cold))

    print_table(
        ["figure", "shipyard", f"mlflow {MLFLOW_VERSION}"],
        rows,
        title="Serving the same models, one worker each, 127.0.0.1 "
        "(gbm: HistGradientBoostingClassifier; pipeline: ordinal encoder + the same GBM)",
    )
    print(f"\nscores for record 1: {all_scores}")
    same = all(len(set(scores.values())) == 1 for scores in all_scores.values())
    print(f"the same score everywhere, per model: {'yes' if same else 'NO'}")
    emit_json("serving_vs_mlflow", results)


def _rows(
    key: str, figures: dict[str, dict[str, float]], cold: dict[str, list[float]]
) -> list[list[object]]:
    ours, theirs, feats = figures["shipyard"], figures["mlflow"], figures["features"]
    no_batching = figures["shipyard-no-batching"]
    return [
        [f"[{key}] cold start to first answer (s)", statistics.median(cold["shipyard"]),
         statistics.median(cold["mlflow"])],
        [f"[{key}] single-row p50 (ms)", ours["p50"], theirs["p50"]],
        [f"[{key}] single-row p99 (ms)", ours["p99"], theirs["p99"]],
        ["  bare model call p50, interleaved (ms): each side's own", ours["bare_p50"],
         theirs["plain_p50"]],
        ["  bare model call p99, interleaved (ms): each side's own", ours["bare_p99"],
         theirs["plain_p99"]],
        ["  plain predict_proba(one-row DataFrame) p50 (ms)", ours["plain_p50"],
         theirs["plain_p50"]],
        ["  p50 minus own bare p50 (ms)", ours["p50"] - ours["bare_p50"],
         theirs["p50"] - theirs["plain_p50"]],
        ["  in the server: request mean (ms)", ours["in_service_ms"], "-"],
        ["  in the server: model call mean (ms)", ours["model_call_ms"], "-"],
        [f"[{key}] single-row with online features p50 (ms)", feats["p50"], "no online store"],
        [f"[{key}] single-row with online features p99 (ms)", feats["p99"], "no online store"],
        ["  bare model call p50, interleaved (ms)", feats["bare_p50"], "-"],
        ["  in the server: request mean (ms)", feats["in_service_ms"], "-"],
        ["  in the server: model call mean (ms)", feats["model_call_ms"], "-"],
        [f"[{key}] throughput, 8 connections (req/s)", ours["rate"], theirs["rate"]],
        ["  same, micro-batching off (req/s)", no_batching["rate"], "-"],
        ["  errors under load", ours["errors"], theirs["errors"]],
    ]  # fmt: skip


def _results(
    key: str, figures: dict[str, dict[str, float]], cold: dict[str, list[float]]
) -> list[Result]:
    suffix = "" if key == "gbm" else f"_{key}"
    ours, theirs, feats = figures["shipyard"], figures["mlflow"], figures["features"]
    speedup = statistics.median(cold["mlflow"]) / statistics.median(cold["shipyard"])
    return [
        Result(f"p99_single_ms{suffix}", round(ours["p99"], 3), "ms", "<=", 5.0),
        Result(
            f"throughput_speedup{suffix}", round(ours["rate"] / theirs["rate"], 2), "x", ">=", 5.0
        ),
        Result(f"p99_single_features_ms{suffix}", round(feats["p99"], 3), "ms", "<=", 7.0),
        Result(
            f"overhead_p50_ms{suffix}", round(ours["p50"] - ours["bare_p50"], 3), "ms", "<=", 1.0
        ),
        Result(f"cold_start_speedup{suffix}", round(speedup, 2), "x", ">=", 3.0),
        Result(
            f"batching_throughput_gain{suffix}",
            round(ours["rate"] / figures["shipyard-no-batching"]["rate"], 2),
            "x",
            ">=",
            1.0,
        ),
    ]


if __name__ == "__main__":
    main()
