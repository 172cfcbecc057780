"""Shared pieces of the serving benchmarks: the model, the servers, the load generators.

Two models, each the same on both sides by construction (fitted on
../shared/datasets/mlc_churn.csv by the same code, fixed random_state, the same
scikit-learn version pinned in the peer venv; the benchmark checks that both servers
return the same scores):

- ``gbm``: a HistGradientBoostingClassifier (100 iterations) on the 17 inputs, the two
  yes/no plans given as 0/1 integers: the model issue 8 describes ("the GBM's own
  predict");
- ``model`` (the pipeline): ordinal-encoded plans (a ColumnTransformer) + the same GBM,
  the plans given as "yes"/"no" strings; in scikit-learn most of its one-row call is
  the ColumnTransformer's input handling, not the trees.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _peers import BenchmarkError, progress

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "mlc_churn.csv"
FEATURES = [
    "account_length",
    "international_plan",
    "voice_mail_plan",
    "number_vmail_messages",
    "total_day_minutes",
    "total_day_calls",
    "total_day_charge",
    "total_eve_minutes",
    "total_eve_calls",
    "total_eve_charge",
    "total_night_minutes",
    "total_night_calls",
    "total_night_charge",
    "total_intl_minutes",
    "total_intl_calls",
    "total_intl_charge",
    "number_customer_service_calls",
]

# Runs in either venv: fits the pipeline. ``python -c TRAIN OUT_KIND PATH``.
TRAIN = r"""
import sys, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
FEATURES = __FEATURES__
frame = pd.read_csv(__DATA__)
X, y = frame[FEATURES], frame["churn"]
encode = ColumnTransformer([("plans", OrdinalEncoder(), ["international_plan", "voice_mail_plan"])],
                           remainder="passthrough")
model = Pipeline([("encode", encode),
                  ("gbm", HistGradientBoostingClassifier(max_iter=100, random_state=0))]).fit(X, y)
PLANS = ["international_plan", "voice_mail_plan"]
Xn = X.assign(**{name: (X[name] == "yes").astype("int64") for name in PLANS})
gbm = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(Xn, y)
""".replace("__FEATURES__", repr(FEATURES)).replace("__DATA__", repr(str(DATA)))


PLANS = ("international_plan", "voice_mail_plan")


def record(index: int = 0, *, numeric_plans: bool = False) -> dict[str, Any]:
    """Row ``index`` of mlc_churn.csv as a request record: the pipeline's inputs, or the
    GBM's (``numeric_plans``: the yes/no plans as 1/0)."""
    import csv

    with DATA.open() as handle:
        for position, row in enumerate(csv.DictReader(handle)):
            if position == index:
                out = {name: _value(row[name]) for name in FEATURES}
                if numeric_plans:
                    out.update({name: int(out[name] == "yes") for name in PLANS})
                return out
    raise BenchmarkError(f"{DATA} has fewer than {index + 1} rows")


def _value(text: str) -> Any:
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return text


def shipyard_project(folder: Path) -> Path:
    """A project with churn@v1 (champion, the pipeline) and churn@v2, churn_gbm@v1
    (champion, the GBM), trained like the peer's models, and, reading their inputs from
    the online feature store (SQLite) by ``customer_id`` (the row number in
    mlc_churn.csv): churn_online@v1 (the pipeline) and churn_gbm_online@v1 (the GBM)."""
    script = (
        TRAIN
        + r"""
from shipyard.core.config import load_config
from shipyard.models import ModelRegistry
import shipyard.data as sd
from shipyard.data.client import DatasetClient
from pathlib import Path
config = load_config(Path(sys.argv[1]))
with DatasetClient.open(config) as client:
    client.ingest("churn", __DATA__, contract=sd.Contract(columns={
        "account_length": sd.Column("int64", nullable=False, min=0),
        "international_plan": sd.Column("string", allowed=["yes", "no"])}))
    # The GBM's training data: the same rows, the plans as 0/1 (its signature's types).
    numeric_csv = Path(sys.argv[1]) / "churn_numeric.csv"
    Xn.assign(churn=y).to_csv(numeric_csv, index=False)
    client.ingest("churn_numeric", str(numeric_csv))
second = Pipeline([("encode", encode), ("gbm", HistGradientBoostingClassifier(
    max_iter=100, max_depth=5, random_state=0))]).fit(X, y)
with ModelRegistry.open(config) as registry:
    registry.register("churn", model=model, training_data="churn@v1")
    registry.register("churn", model=second, training_data="churn@v1")
    registry.set_alias("churn@v1", "champion", reason="benchmark")
    registry.register("churn_gbm", model=gbm, training_data="churn_numeric@v1")
    registry.set_alias("churn_gbm@v1", "champion", reason="benchmark")

# The feature-lookup case: the same fitted pipeline, its 17 inputs read from the online
# store (SQLite) by customer id; a request then carries {"customer_id": N} only.
import datetime as dt
import pyarrow as pa
import shipyard.features as sf
stamp = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
customer = sf.Entity("customer", join_keys=["customer_id"])
kinds = {"international_plan": "string", "voice_mail_plan": "string"}
objects = [customer]
for view_name, frame, typed in (("churn_usage", X, kinds), ("churn_usage_numeric", Xn, {})):
    events = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    events = events.append_column("customer_id", pa.array(range(len(frame)), pa.int64()))
    events = events.append_column(
        "event_ts", pa.array([stamp] * len(frame), pa.timestamp("us", tz="UTC")))
    view = sf.FeatureView(view_name, entities=[customer], source=view_name + "_events",
        timestamp="event_ts",
        features=[sf.Feature(name, typed.get(name, str(frame[name].dtype)))
                  for name in FEATURES])
    objects += [view, sf.FeatureService(view_name.replace("usage", "features"), [view])]
    with sf.FeatureStore.open(config) as store:
        store.datasets.ingest(view_name + "_events", events)
with sf.FeatureStore.open(config) as store:
    store.apply(objects)
    store.materialize()
with ModelRegistry.open(config) as registry:
    registry.register("churn_online", model=model, training_data="churn@v1",
                      feature_service="churn_features@v1")
    registry.set_alias("churn_online@v1", "champion", reason="benchmark")
    registry.register("churn_gbm_online", model=gbm, training_data="churn_numeric@v1",
                      feature_service="churn_features_numeric@v1")
    registry.set_alias("churn_gbm_online@v1", "champion", reason="benchmark")
""".replace("__DATA__", repr(str(DATA)))
    )
    folder.mkdir(parents=True, exist_ok=True)
    run_checked([sys.executable, "-c", script, str(folder)], "set up the Shipyard project")
    return folder


def run_checked(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, env=env, timeout=1200
    )
    if completed.returncode != 0:
        raise BenchmarkError(f"{what} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout


class Server:
    """A server process, its port, its request path and body shape."""

    def __init__(
        self,
        name: str,
        command: list[str],
        port: int,
        path: str,
        wrap: str,
        env: dict[str, str] | None = None,
        probe: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.path = path
        self.wrap = wrap  # "inputs" (Shipyard) or "dataframe_records" (MLflow)
        self.env = env
        self.probe = probe if probe is not None else record(0)  # the first request's record
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)

    def body(self, records: list[dict[str, Any]] | dict[str, Any]) -> bytes:
        if self.wrap == "inputs":
            return json.dumps({"inputs": records}).encode()
        rows = records if isinstance(records, list) else [records]
        return json.dumps({"dataframe_records": rows}).encode()

    def start(self, timeout: float = 180.0) -> float:
        """Start it; return seconds from spawn to its first successful prediction."""
        started = time.perf_counter()
        self.process = subprocess.Popen(  # noqa: S603
            self.command,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        body = self.body(self.probe)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise BenchmarkError(
                    f"{self.name} exited ({self.process.returncode}); log: {self.log.name}"
                )
            try:
                status, _ = post(self.port, self.path, body)
                if status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise BenchmarkError(f"{self.name} gave no answer in {timeout:.0f} s; log: {self.log.name}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def rss_mb(self) -> float:
        """Resident memory of the server and its children (uvicorn workers), in MB."""
        if self.process is None:
            return 0.0
        total = 0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024


def _children(pid: int) -> list[int]:
    found = []
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return found
    for child in text.split():
        found.append(int(child))
        found.extend(_children(int(child)))
    return found


_connections: dict[tuple[int, str], http.client.HTTPConnection] = {}


def post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    """One POST on a kept-alive connection per port (reopened once if the server closed
    it while idle: uvicorn drops idle keep-alive connections after 5 s)."""
    key = (port, path)
    for attempt in (1, 2):
        conn = _connections.get(key)
        if conn is None:
            conn = _connections[key] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            _connections.pop(key, None)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def service_seconds(port: int) -> dict[str, float]:
    """Sums and counts of the service's own timers from its /metrics: request (received
    to response sent, in the server) and model call (``LoadedModel.predict``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = {"request_sum": 0.0, "request_count": 0.0, "predict_sum": 0.0, "predict_count": 0.0}
    for line in text.splitlines():
        for metric, key in (
            ("shipyard_request_duration_seconds", "request"),
            ("shipyard_predict_duration_seconds", "predict"),
        ):
            for part in ("sum", "count"):
                if line.startswith(f"{metric}_{part}"):
                    out[f"{key}_{part}"] += float(line.rsplit(" ", 1)[1])
    return out


def in_service_split(before: dict[str, float], after: dict[str, float]) -> tuple[float, float]:
    """Mean ms per request between two /metrics readings: (in the service, model call)."""
    requests = after["request_count"] - before["request_count"]
    calls = after["predict_count"] - before["predict_count"]
    request_ms = (after["request_sum"] - before["request_sum"]) / max(requests, 1) * 1000
    predict_ms = (after["predict_sum"] - before["predict_sum"]) / max(calls, 1) * 1000
    return request_ms, predict_ms


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ensure_wrk() -> str:
    """The path of the ``wrk`` load generator, installed from Debian's packages if missing
    (the benchmark's only system dependency; both sides are measured with it)."""
    import shutil

    found = shutil.which("wrk")
    if found:
        return found
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if os.geteuid() != 0:
        install = ["sudo", "-n", *install]
    progress("wrk is not installed; installing it: " + " ".join(install))
    done = subprocess.run(install, capture_output=True, text=True, check=False)
    found = shutil.which("wrk")
    if done.returncode != 0 or not found:
        raise BenchmarkError(
            "The throughput figure needs the wrk load generator, and installing it failed "
            f"({' '.join(install)}: {done.stderr.strip()[-300:]}). Install it "
            "(`apt-get install wrk`, `brew install wrk`) and run the benchmark again."
        )
    return found


def wrk(port: int, path: str, body: bytes, *, seconds: int, connections: int) -> dict[str, float]:
    """wrk on the loopback: requests/s, non-2xx answers and socket errors."""
    executable = ensure_wrk()
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    script.close()
    output = run_checked(
        [
            executable,
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}{path}",
        ],
        "wrk",
    )
    os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = sum(int(x) for x in sockets.groups()) if sockets else 0
    progress(f"    wrk: {rate:.0f} req/s, {total} requests")
    return {
        "rate": rate,
        "requests": float(total),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": float(socket_errors),
    }


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
