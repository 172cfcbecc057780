"""Serving: `shipyard serve` against `mlflow models serve`, side by side (issue 8, point 9).

Both serve the same scikit-learn pipeline (see _serving_common.py) from a local store,
one worker process each, on 127.0.0.1; MLflow 3.17.2 in its own venv with
``--env-manager local`` (its fastest documented setting: no conda/virtualenv per model).

Figures (each side measured alone, the other stopped):

- cold start: from spawning the server process to its first 200 answer (3 rounds,
  interleaved, median);
- single-row latency, 2,000 sequential requests on one kept-alive connection (p50/p99);
- throughput: wrk, 8 connections, 10 s, single-row requests (Shipyard with micro-batching
  on and off, so the batching gain is measured, not assumed);
- overhead: the single-row p50 end to end minus the p50 of the bare ``predict_proba``
  call on a prepared one-row DataFrame, the two measured interleaved in one run (each
  request right after one bare call, the bare model loaded in this process with the
  server's one-native-thread setting), so both see the same moments of the machine;
- the feature-lookup case (``p99_single_features_ms``, Shipyard only: MLflow serving has
  no online store): ``churn_online@champion`` is the same fitted pipeline with its 17
  inputs materialized to the online store (SQLite) by ``customer_id``; each request
  carries the key only (2,000 sequential requests over 715 different customers).

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


class BarePredict:
    """The bare library call (``predict_proba`` on a prepared one-row DataFrame) of the
    served version, loaded in this process with the server's one-native-thread setting,
    so that it can be timed interleaved with the service's requests."""

    def __init__(self, project: Path, reference: str) -> None:
        from threadpoolctl import threadpool_limits

        from shipyard.core.config import load_config
        from shipyard.models import ModelRegistry

        with ModelRegistry.open(load_config(project)) as registry:
            self.model = registry.load(reference)
        self.frame = self.model.frame([record(0)])
        threadpool_limits(1)

    def __call__(self) -> float:
        started = time.perf_counter()
        self.model.predict_raw(self.frame)
        return (time.perf_counter() - started) * 1000


def sequential(
    server: Server, bare: BarePredict | None, bodies: list[bytes]
) -> tuple[list[float], list[float]]:
    """SEQUENTIAL requests on one kept-alive connection, each right after one bare call
    (when given): both series see the same moments of the machine's load."""
    for index in range(50):
        post(server.port, server.path, bodies[index % len(bodies)])
        if bare is not None:
            bare()
    latencies: list[float] = []
    bare_ms: list[float] = []
    for index in range(SEQUENTIAL):
        if bare is not None:
            bare_ms.append(bare())
        body = bodies[index % len(bodies)]
        started = time.perf_counter()
        status, answer = post(server.port, server.path, body)
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"{server.name} answered {status}: {answer[:300]!r}")
    return latencies, bare_ms


def main() -> None:
    import json
    import os

    peer = ensure_peer_venv(
        f"mlflow-serve-{MLFLOW_VERSION}",
        [f"mlflow=={MLFLOW_VERSION}", "scikit-learn==1.9.1", "pandas<3"],
    )
    work = Path(tempfile.mkdtemp(prefix="shipyard-serving-bench-"))
    progress("training and saving the MLflow model ...")
    mlflow_model = work / "mlflow-model"
    run_checked(
        [
            str(peer),
            "-c",
            TRAIN
            + "\nimport mlflow.sklearn, skops.io as sio\n"
            # Our own model: trust exactly the types skops reports in it.
            + "trusted = sio.get_untrusted_types(data=sio.dumps(model))\n"
            + f"mlflow.sklearn.save_model(model, {str(mlflow_model)!r}, "
            + "skops_trusted_types=trusted)\n",
        ],
        "save the MLflow model",
        env={**os.environ, **_PEER_ENV},
    )
    progress("training and registering the Shipyard model ...")
    project = shipyard_project(work / "project")
    shipyard_bin = str(Path(sys.executable).with_name("shipyard"))
    mlflow_bin = str(peer.with_name("mlflow"))

    def shipyard(*extra: str, model: str = "churn") -> Server:
        port = free_port()
        return Server(
            "shipyard",
            [
                shipyard_bin,
                "-C",
                str(project),
                "serve",
                f"{model}@champion",
                "--port",
                str(port),
                *extra,
            ],
            port,
            f"/v1/models/{model}/predict",
            "inputs",
        )

    def mlflow() -> Server:
        port = free_port()
        return Server(
            "mlflow",
            [
                mlflow_bin,
                "models",
                "serve",
                "-m",
                str(mlflow_model),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--workers",
                "1",
            ],
            port,
            "/invocations",
            "dataframe_records",
            # mlflow runs `uvicorn` from PATH: its own venv's, as an activated venv would.
            env={
                **os.environ,
                **_PEER_ENV,
                "PATH": f"{peer.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            },
        )

    progress("cold starts ...")
    cold: dict[str, list[float]] = {"shipyard": [], "mlflow": []}
    for round_index in range(COLD_ROUNDS):
        order = [shipyard, mlflow] if round_index % 2 == 0 else [mlflow, shipyard]
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

    progress("loading the bare model in this process (for the interleaved overhead) ...")
    bare = BarePredict(project, "churn@champion")
    figures: dict[str, dict[str, float]] = {}
    scores: dict[str, float] = {}
    for make, label, extra in (
        (shipyard, "shipyard", ()),
        (shipyard, "shipyard-no-batching", ("--no-batching",)),
        (mlflow, "mlflow", ()),
    ):
        server = make(*extra) if extra else make()
        progress(f"{label}: sequential and concurrent requests ...")
        try:
            server.start()
            status, answer = post(server.port, server.path, server.body(record(1)))
            payload = json.loads(answer)
            scores[label] = (
                (payload["score"] if "score" in payload else payload["predictions"][0])
                if label.startswith("shipyard")
                else payload["predictions"][0]
            )
            before = service_seconds(server.port) if label == "shipyard" else None
            latencies, bare_ms = (
                sequential(server, bare, [server.body(record(0))])
                if label != "shipyard-no-batching"
                else ([], [])
            )
            if before is not None:
                split = in_service_split(before, service_seconds(server.port))
            load = wrk(
                server.port,
                server.path,
                server.body(record(0)),
                seconds=WRK_SECONDS,
                connections=CONNECTIONS,
            )
        finally:
            server.stop()
        figures[label] = {"rate": load["rate"], "errors": load["non2xx"] + load["socket_errors"]}
        if latencies:
            figures[label]["p50"] = percentile(latencies, 0.50)
            figures[label]["p99"] = percentile(latencies, 0.99)
            figures[label]["bare_p50"] = percentile(bare_ms, 0.50)
            figures[label]["bare_p99"] = percentile(bare_ms, 0.99)
    figures["shipyard"]["in_service_ms"], figures["shipyard"]["model_call_ms"] = split

    # The feature-lookup case (Shipyard only: MLflow serving has no online store). The
    # request carries the customer id only; the service reads the 17 inputs from SQLite.
    progress("shipyard, features from the online store: sequential requests ...")
    server = shipyard(model="churn_online")
    try:
        server.start()
        _, answer = post(server.port, server.path, server.body({"customer_id": 1}))
        scores["shipyard-online-features"] = json.loads(answer)["score"]
        keyed = [server.body({"customer_id": key}) for key in range(0, 5000, 7)]
        before = service_seconds(server.port)
        latencies, bare_ms = sequential(server, bare, keyed)
        feature_split = in_service_split(before, service_seconds(server.port))
    finally:
        server.stop()
    figures["features"] = {
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "bare_p50": percentile(bare_ms, 0.50),
        "in_service_ms": feature_split[0],
        "model_call_ms": feature_split[1],
    }

    shipyard_cold = statistics.median(cold["shipyard"])
    mlflow_cold = statistics.median(cold["mlflow"])
    ours, theirs = figures["shipyard"], figures["mlflow"]
    feats = figures["features"]
    rows = [
        ["cold start to first answer (s)", shipyard_cold, mlflow_cold],
        ["single-row p50 (ms)", ours["p50"], theirs["p50"]],
        ["single-row p99 (ms)", ours["p99"], theirs["p99"]],
        ["  bare predict_proba p50, interleaved (ms)", ours["bare_p50"], theirs["bare_p50"]],
        ["  bare predict_proba p99, interleaved (ms)", ours["bare_p99"], theirs["bare_p99"]],
        [
            "  p50 minus bare p50 (ms)",
            ours["p50"] - ours["bare_p50"],
            theirs["p50"] - theirs["bare_p50"],
        ],
        ["  in the server: request mean (ms)", ours["in_service_ms"], "-"],
        ["  in the server: model call mean (ms)", ours["model_call_ms"], "-"],
        ["single-row with online features p50 (ms)", feats["p50"], "no online store"],
        ["single-row with online features p99 (ms)", feats["p99"], "no online store"],
        ["  bare predict_proba p50, interleaved (ms)", feats["bare_p50"], "-"],
        ["  in the server: request mean (ms)", feats["in_service_ms"], "-"],
        ["  in the server: model call mean (ms)", feats["model_call_ms"], "-"],
        ["throughput, 8 connections (req/s)", ours["rate"], theirs["rate"]],
        ["  same, micro-batching off (req/s)", figures["shipyard-no-batching"]["rate"], "-"],
        ["errors under load", ours["errors"], theirs["errors"]],
    ]
    print_table(
        ["figure", "shipyard", f"mlflow {MLFLOW_VERSION}"],
        rows,
        title="Serving the same HistGradientBoosting pipeline, one worker, 127.0.0.1",
    )
    print(f"\nscores for record 1: {scores}")
    print(
        "micro-batching throughput gain: "
        f"{ours['rate'] / figures['shipyard-no-batching']['rate']:.2f}x"
    )
    results = [
        Result("p99_single_ms", round(ours["p99"], 3), "ms", "<=", 5.0),
        Result("throughput_speedup", round(ours["rate"] / theirs["rate"], 2), "x", ">=", 5.0),
        Result("p99_single_features_ms", round(feats["p99"], 3), "ms", "<=", 7.0),
        Result("overhead_p50_ms", round(ours["p50"] - ours["bare_p50"], 3), "ms", "<=", 1.0),
        Result("cold_start_speedup", round(mlflow_cold / shipyard_cold, 2), "x", ">=", 3.0),
        Result(
            "batching_throughput_gain",
            round(ours["rate"] / figures["shipyard-no-batching"]["rate"], 2),
            "x",
            ">=",
            1.0,
        ),
    ]
    emit_json("serving_vs_mlflow", results)


if __name__ == "__main__":
    main()
