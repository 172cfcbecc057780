"""A small churn project for serving tests: real data, real registry, real service.

The project ingests 600 rows of ../shared/datasets/mlc_churn.csv through a contract
(rules serving enforces), trains two small histogram GBMs on them, registers both and
points ``churn@champion`` at v1. ``running_service`` starts the real ASGI app under
uvicorn on a free loopback port, in a thread, and waits for /readyz.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.config import Config, load_config

ROWS = 600
FEATURES = [
    "account_length",
    "international_plan",
    "voice_mail_plan",
    "number_vmail_messages",
    "total_day_minutes",
    "total_day_calls",
    "total_eve_minutes",
    "total_night_minutes",
    "total_intl_minutes",
    "number_customer_service_calls",
]


@dataclass
class ChurnProject:
    folder: Path
    config: Config
    frame: Any  # pandas DataFrame of the 600 rows (features + churn)

    def record(self, index: int = 0) -> dict[str, Any]:
        row = self.frame.iloc[index]
        return {name: _plain(row[name]) for name in FEATURES}


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def build_project(folder: Path, datasets_dir: Path) -> ChurnProject:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    import shipyard.data as sd
    from shipyard.data.client import DatasetClient
    from shipyard.models import ModelRegistry

    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(datasets_dir / "mlc_churn.csv").head(ROWS)[[*FEATURES, "churn"]]
    csv = folder / "churn.csv"
    frame.to_csv(csv, index=False)
    config = load_config(folder)
    contract = sd.Contract(
        columns={
            "account_length": sd.Column("int64", nullable=False, min=0),
            "number_customer_service_calls": sd.Column("int64", min=0, max=50),
            "international_plan": sd.Column("string", allowed=["yes", "no"]),
        }
    )
    with DatasetClient.open(config) as client:
        client.ingest("churn", str(csv), contract=contract)
    features, target = frame[FEATURES], frame["churn"]
    models = []
    for depth in (3, 4):
        encode = ColumnTransformer(
            [("plans", OrdinalEncoder(), ["international_plan", "voice_mail_plan"])],
            remainder="passthrough",
        )
        gbm = HistGradientBoostingClassifier(max_iter=15, max_depth=depth, random_state=0)
        models.append(Pipeline([("encode", encode), ("gbm", gbm)]).fit(features, target))
    with ModelRegistry.open(config) as registry:
        for model in models:
            registry.register("churn", model=model, training_data="churn@v1")
        registry.set_alias("churn@v1", "champion", reason="tests")
    return ChurnProject(folder, config, frame)


class Client:
    """A keep-alive HTTP/1.1 client on the loopback (one connection)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {"content-type": "application/json", **(headers or {})}
        try:
            self.conn.request(method, path, body=data, headers=sent)
            response = self.conn.getresponse()
        except (ConnectionError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            raise
        payload = response.read()
        kind = response.getheader("content-type", "")
        parsed = json.loads(payload) if "json" in kind and payload else payload.decode()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed

    def predict(self, inputs: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        status, _, body = self.request(
            "POST", "/v1/models/churn/predict", {"inputs": inputs}, headers
        )
        return status, body

    def close(self) -> None:
        self.conn.close()


@contextmanager
def running_service(
    project: ChurnProject, *, config: Config | None = None, **settings: Any
) -> Iterator[tuple[Any, int]]:
    """The real service (uvicorn, lifespan on) for ``churn@champion`` on a free port."""
    import uvicorn

    from shipyard.serving.server import create_service
    from shipyard.serving.settings import ServingSettings
    from tests.conftest import free_port

    config = config or project.config
    port = free_port()
    chosen = ServingSettings(port=port, poll_seconds=0.2, **settings)
    service = create_service(["churn@champion"], config, settings=chosen)
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
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except OSError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"service did not get ready: {service.load_error}")
            time.sleep(0.05)
        yield service, port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
