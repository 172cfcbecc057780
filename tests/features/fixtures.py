"""Fixtures of the feature store core tests: projects, stores, a small event history.

Imported by the test modules (``from tests.features.fixtures import ...``); the migrated
metadata store is built once per session and copied for each test.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import shipyard.features as sf
from shipyard.core.config import Config, load_config
from shipyard.store.metadata import open_metadata_store

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def at(hours: float) -> datetime:
    """``T0`` plus some hours."""
    return T0 + timedelta(hours=hours)


@pytest.fixture(scope="session")
def features_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("features-template") / "metadata.db"
    open_metadata_store(f"sqlite:///{path}").close()
    return path


def make_project(root: Path, template: Path, environ: dict[str, str] | None = None) -> Config:
    home = root / ".shipyard"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / "metadata.db")
    return load_config(root, environ=environ or {})


@pytest.fixture
def project(tmp_path: Path, features_template: Path) -> Config:
    return make_project(tmp_path / "project", features_template)


@pytest.fixture
def store(project: Config) -> Iterator[sf.FeatureStore]:
    with sf.FeatureStore.open(project) as opened:
        yield opened


def events_table() -> pa.Table:
    """Customer events: customer 1 at hours 1 and 5, customer 2 at hours 2 and 3."""
    return pa.table(
        {
            "customer_id": pa.array([1, 1, 2, 2], pa.int64()),
            "event_ts": pa.array([at(1), at(5), at(2), at(3)], TS),
            "f0": [1.0, 2.0, 3.0, 4.0],
            "f1": pa.array([10, 20, 30, 40], pa.int64()),
        }
    )


CUSTOMER = sf.Entity("customer", join_keys=["customer_id"])


def stats_view(**overrides: Any) -> sf.FeatureView:
    """The ``customer_stats`` view over dataset ``events`` (2 h TTL)."""
    arguments: dict[str, Any] = {
        "entities": [CUSTOMER],
        "source": "events",
        "timestamp": "event_ts",
        "ttl": timedelta(hours=2),
        "features": [sf.Feature("f0", "float64"), sf.Feature("f1", "int64")],
    }
    arguments.update(overrides)
    return sf.FeatureView("customer_stats", **arguments)


@sf.on_demand(
    inputs=["customer_stats:f0", "request:amount"], outputs=[sf.Feature("ratio", "float64")]
)
def ratio(frame: pa.Table) -> dict[str, Any]:
    """amount / f0: the on-demand feature shared by training and serving."""
    import pyarrow.compute as pc

    return {"ratio": pc.divide(frame["amount"], frame["f0"])}


@pytest.fixture
def applied(store: sf.FeatureStore) -> sf.FeatureStore:
    """A store with ``events`` ingested and customer/stats/ratio/churn@v1 applied."""
    store.datasets.ingest("events", events_table())
    view = stats_view()
    service = sf.FeatureService("churn", [view[["f1"]], ratio])
    store.apply([CUSTOMER, view, ratio, service])
    return store


@pytest.fixture
def redis_prefix_uri(redis_uri: str) -> Iterator[str]:
    """The test Redis with a unique key prefix; its keys are deleted afterwards."""
    import redis

    prefix = f"shipyard-test-{uuid.uuid4().hex[:12]}:"
    yield f"{redis_uri}?prefix={prefix}"
    client = redis.Redis.from_url(redis_uri)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
