"""Entity keys in, online features filled in-process, on-demand features run, all logged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import select

import shipyard.features as sf
from shipyard.core.config import load_config
from shipyard.models import ModelRegistry
from shipyard.store.schema.monitoring import prediction_log
from shipyard.store.stores import open_stores
from tests.serving.helpers import ChurnProject, Client, running_service

CUSTOMER = sf.Entity("customer", join_keys=["customer_id"])


@sf.on_demand(
    inputs=["usage:total_day_minutes", "request:bonus_minutes"],
    outputs=[sf.Feature("day_plus_bonus", "float64")],
)
def day_plus_bonus(frame: pa.Table) -> dict[str, Any]:
    import pyarrow.compute as pc

    return {"day_plus_bonus": pc.add(frame["total_day_minutes"], frame["bonus_minutes"])}


def test_a_request_with_entity_keys_is_scored_with_online_features(
    tmp_path: Path, datasets_dir: Path
) -> None:
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = pd.read_csv(datasets_dir / "mlc_churn.csv").head(300)
    config = load_config(tmp_path)
    stamp = datetime.now(UTC) - timedelta(hours=1)
    events = pa.table(
        {
            "customer_id": pa.array(range(300), pa.int64()),
            "event_ts": pa.array([stamp] * 300, pa.timestamp("us", tz="UTC")),
            "total_day_minutes": frame["total_day_minutes"].astype(float).tolist(),
            "total_eve_minutes": frame["total_eve_minutes"].astype(float).tolist(),
        }
    )
    view = sf.FeatureView(
        "usage",
        entities=[CUSTOMER],
        source="usage_events",
        timestamp="event_ts",
        features=[
            sf.Feature("total_day_minutes", "float64"),
            sf.Feature("total_eve_minutes", "float64"),
        ],
    )
    service = sf.FeatureService("churn_features", [view, day_plus_bonus])
    with sf.FeatureStore.open(config) as store:
        store.datasets.ingest("usage_events", events)
        store.apply([CUSTOMER, view, day_plus_bonus, service])
        store.materialize()
    training = pd.DataFrame(
        {
            "account_length": frame["account_length"],
            "total_day_minutes": frame["total_day_minutes"].astype(float),
            "total_eve_minutes": frame["total_eve_minutes"].astype(float),
            "day_plus_bonus": frame["total_day_minutes"].astype(float),
        }
    )
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(
        training, frame["churn"]
    )
    with ModelRegistry.open(config) as registry:
        registry.register(
            "churn",
            model=model,
            feature_service="churn_features@v1",
            input_example=training.head(3),
        )
        registry.set_alias("churn@v1", "champion", reason="features test")
        loaded = registry.load("churn@v1")
    project = ChurnProject(tmp_path, config, frame)
    with running_service(project) as (app, port):
        client = Client(port)
        status, body = client.predict(
            {"customer_id": 7, "account_length": 100, "bonus_minutes": 5.0},
            {"X-Request-ID": "feat-1"},
        )
        assert status == 200, body
        day = float(frame["total_day_minutes"][7])
        expected = loaded.predict(
            [
                {
                    "account_length": 100,
                    "total_day_minutes": day,
                    "total_eve_minutes": float(frame["total_eve_minutes"][7]),
                    "day_plus_bonus": day + 5.0,
                }
            ]
        )
        assert body["score"] == pytest.approx(float(expected.scores[0]))
        # A value sent with the request wins over the stored one.
        status, sent = client.predict(
            {
                "customer_id": 7,
                "account_length": 100,
                "bonus_minutes": 5.0,
                "total_eve_minutes": 0.0,
            }
        )
        assert status == 200
        # An unknown key type is the client's mistake: 422, not 500.
        status, bad = client.predict(
            {"customer_id": "seven", "account_length": 1, "bonus_minutes": 0.0}
        )
        assert (status, bad["detail"][0]["field"]) == (422, "customer_id")
        client.close()
        app.writer.flush()
    with open_stores(config) as stores, stores.metadata.connect() as conn:
        row = (
            conn.execute(select(prediction_log).where(prediction_log.c.request_id == "feat-1"))
            .mappings()
            .one()
        )
    assert row["entity_keys"] == {"customer_id": 7}
    logged = row["features"]["total_day_minutes"]
    assert logged["value"] == day and logged["status"] == "present"
    assert logged["view"] == "usage@v1"
    assert datetime.fromisoformat(logged["event_ts"]) == stamp.replace(
        microsecond=stamp.microsecond
    )
    assert row["features"]["day_plus_bonus"]["value"] == pytest.approx(day + 5.0)
    assert row["inputs"] == {"customer_id": 7, "account_length": 100, "bonus_minutes": 5.0}
