"""The demo's service: the real ASGI app under uvicorn on a free loopback port, in a
background thread, and a small keep-alive HTTP client that sends it traffic."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import BackendError

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.serving.app import ModelService

__all__ = ["Traffic", "free_port", "running_service", "send", "send_concurrently"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_service(
    config: Config, references: Sequence[str], *, timeout: float = 120.0
) -> Iterator[tuple[ModelService, int]]:
    """Serve ``references`` until the block ends; yields (the app, its port)."""
    import uvicorn

    from shipyard.serving.server import create_service
    from shipyard.serving.settings import ServingSettings

    port = free_port()
    settings = ServingSettings(port=port, poll_seconds=0.3)
    service = create_service(list(references), config, settings=settings)
    server = uvicorn.Server(
        uvicorn.Config(
            service,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name="shipyard-demo-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                ready = conn.getresponse().status == 200
                conn.close()
                if ready:
                    break
            except OSError:
                pass
            if not thread.is_alive() or time.monotonic() > deadline:
                raise BackendError(
                    f"The demo's service on 127.0.0.1:{port} did not get ready: "
                    f"{service.load_error or 'no answer on /readyz'}.",
                    hint="Rerun with SHIPYARD_DEBUG=1; is uvicorn installed (pip install "
                    "'shipyard[demo]')?",
                )
            time.sleep(0.05)
        yield service, port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Traffic:
    """What one burst of requests got back."""

    sent: int = 0
    ok: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    versions: dict[int, int] = field(default_factory=dict)
    positives: int = 0
    answered: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(request id the service gave the record, the record) of every answered record."""
    first_error: str | None = None

    @property
    def records(self) -> int:
        return len(self.answered)

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


Request = tuple[str, "dict[str, Any] | list[dict[str, Any]]"]


def send(
    port: int,
    model: str,
    requests: Sequence[Request],
    *,
    progress: Callable[[int], None] | None = None,
) -> Traffic:
    """POST each (request id, record or list of records) to ``/v1/models/MODEL/predict``
    over one keep-alive connection, as a client application would."""
    traffic = Traffic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    path = f"/v1/models/{model}/predict"
    try:
        for request_id, record in requests:
            body = json.dumps({"inputs": record}, default=str).encode()
            started = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    path,
                    body=body,
                    headers={"content-type": "application/json", "x-request-id": request_id},
                )
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                raise BackendError(
                    f"The demo's request {request_id} to 127.0.0.1:{port} failed: {exc}."
                ) from exc
            traffic.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            traffic.sent += 1
            if response.status == 200:
                answer = json.loads(payload)
                traffic.ok += 1
                many = isinstance(record, list)
                outputs = answer["predictions"] if many else [answer]
                sent = record if isinstance(record, list) else [record]
                for output, item in zip(outputs, sent, strict=True):
                    traffic.answered.append((str(output["request_id"]), item))
                    version = int(output.get("version", 0))
                    traffic.versions[version] = traffic.versions.get(version, 0) + 1
                    if output.get("label") in (1, "1", True):
                        traffic.positives += 1
            else:
                traffic.errors[response.status] = traffic.errors.get(response.status, 0) + 1
                if traffic.first_error is None:
                    traffic.first_error = payload.decode(errors="replace")[:300]
            if progress is not None:
                progress(1)
    finally:
        conn.close()
    return traffic


def send_concurrently(
    port: int,
    model: str,
    requests: Sequence[Request],
    *,
    clients: int = 4,
    progress: Callable[[int], None] | None = None,
) -> Traffic:
    """Several clients at once, each on its own connection (the service micro-batches
    concurrent requests); the results merged."""
    lock = threading.Lock()

    def advance(done: int) -> None:
        if progress is not None:
            with lock:
                progress(done)

    shares = [list(requests[index::clients]) for index in range(clients)]
    results: list[Traffic | BaseException] = [Traffic() for _ in shares]

    def work(index: int) -> None:
        try:
            results[index] = send(port, model, shares[index], progress=advance)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = Traffic()
    for result in results:
        if isinstance(result, BaseException):
            raise result
        merged.sent += result.sent
        merged.ok += result.ok
        merged.positives += result.positives
        merged.latencies_ms += result.latencies_ms
        merged.answered += result.answered
        merged.first_error = merged.first_error or result.first_error
        for status, count in result.errors.items():
            merged.errors[status] = merged.errors.get(status, 0) + count
        for version, count in result.versions.items():
            merged.versions[version] = merged.versions.get(version, 0) + count
    return merged
