"""Serving soak: 60 s at saturation with an alias swap in the middle (issue 8, point 8).

`shipyard serve churn@champion` (one worker, 127.0.0.1) is driven by wrk with 8
connections for 60 seconds; at 30 s the benchmark moves ``churn@champion`` from v1 to v2
in the registry, and the service (polling every 2 s) loads, warms and swaps it under
that load. Every request is logged to the prediction log (SQLite, batched).

- ``soak_errors``: non-2xx answers + socket errors seen by wrk (target 0);
- ``soak_rss_growth_mb``: the server's resident memory at the end minus after a 10 s
  warm-up at the same load (target under 50 MB). It includes the second version's
  model, loaded by the swap.

The table also gives the growth per 10k requests, over the whole soak and from 10 s
after the swap to the end: memory that grows with requests (a leak, or a cache that
fills with them) shows there as a steady slope, apart from warm-up and the swap's model.

Run: ``.venv/bin/python benchmarks/serving_soak.py``; the last line is JSON.
"""

from __future__ import annotations

import http.client
import sys
import tempfile
import threading
import time
from pathlib import Path

from _peers import Result, emit_json, print_table, progress
from _serving_common import Server, free_port, post, record, shipyard_project, wrk

SOAK_SECONDS = 60
WARMUP_SECONDS = 10
CONNECTIONS = 8
SETTLED_SECONDS = SOAK_SECONDS // 2 + 10  # the late window starts 10 s after the swap


def requests_served(port: int) -> float:
    """The service's count of answered requests (``shipyard_requests_total``, summed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("shipyard_requests_total{")
    )


def per_10k(samples: list[tuple[float, float, float]], since: float) -> float:
    """RSS growth in MB per 10,000 requests between the first sample at or after
    ``since`` seconds and the last one."""
    window = [sample for sample in samples if sample[0] >= since]
    if len(window) < 2 or window[-1][2] <= window[0][2]:
        return float("nan")
    first, last = window[0], window[-1]
    return round((last[1] - first[1]) / (last[2] - first[2]) * 10_000, 2)


def main() -> None:
    import json

    work = Path(tempfile.mkdtemp(prefix="shipyard-soak-"))
    progress("setting up the project ...")
    project = shipyard_project(work / "project")
    port = free_port()
    server = Server(
        "shipyard",
        [
            str(Path(sys.executable).with_name("shipyard")),
            "-C",
            str(project),
            "serve",
            "churn@champion",
            "--port",
            str(port),
        ],
        port,
        "/v1/models/churn/predict",
        "inputs",
    )
    cold = server.start()
    progress(f"ready in {cold:.1f} s; warm-up {WARMUP_SECONDS} s at saturation ...")
    body = server.body(record(0))
    wrk(port, server.path, body, seconds=WARMUP_SECONDS, connections=CONNECTIONS)
    rss_start = server.rss_mb()
    samples: list[tuple[float, float, float]] = [(0.0, rss_start, requests_served(port))]
    stop = threading.Event()

    def sample() -> None:  # (seconds into the soak, RSS MB, requests answered so far)
        started = time.monotonic()
        while not stop.wait(1.0):
            try:
                served = requests_served(port)
            except OSError:
                continue
            samples.append((time.monotonic() - started, server.rss_mb(), served))

    def swap() -> None:
        time.sleep(SOAK_SECONDS / 2)
        from shipyard.core.config import load_config
        from shipyard.models import ModelRegistry

        with ModelRegistry.open(load_config(project)) as registry:
            registry.set_alias("churn@v2", "champion", reason="soak swap")
        progress("  alias moved to v2")

    sampler = threading.Thread(target=sample, daemon=True)
    mover = threading.Thread(target=swap, daemon=True)
    sampler.start()
    mover.start()
    progress(f"soak: {SOAK_SECONDS} s at {CONNECTIONS} connections ...")
    try:
        load = wrk(port, server.path, body, seconds=SOAK_SECONDS, connections=CONNECTIONS)
        mover.join()
        status, answer = post(port, server.path, body)
        version = json.loads(answer).get("version")
        rss_end = server.rss_mb()
    finally:
        stop.set()
        server.stop()
    errors = load["non2xx"] + load["socket_errors"]
    print_table(
        ["figure", "value"],
        [
            ["requests", int(load["requests"])],
            ["requests/s", load["rate"]],
            ["non-2xx answers", int(load["non2xx"])],
            ["socket errors", int(load["socket_errors"])],
            ["version answering after the swap", version],
            ["RSS after warm-up (MB)", rss_start],
            ["RSS at the end (MB)", rss_end],
            ["RSS peak during the soak (MB)", max((s[1] for s in samples), default=rss_end)],
            ["RSS growth per 10k requests, whole soak (MB)", per_10k(samples, 0.0)],
            [
                f"RSS growth per 10k requests, from {SETTLED_SECONDS} s to the end (MB)",
                per_10k(samples, SETTLED_SECONDS),
            ],
        ],
        title=f"Soak: {SOAK_SECONDS} s, {CONNECTIONS} connections, alias swap at "
        f"{SOAK_SECONDS // 2} s",
    )
    if version != 2:
        progress(f"WARNING: the service still answers with v{version} after the swap")
    emit_json(
        "serving_soak",
        [
            Result("soak_errors", errors, "requests", "<=", 0),
            Result("soak_rss_growth_mb", round(rss_end - rss_start, 1), "MB", "<=", 50.0),
        ],
    )


if __name__ == "__main__":
    main()
