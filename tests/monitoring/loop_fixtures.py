"""A churn project for the monitoring check and the closed loop, on real data.

Rows of ../shared/datasets/mlc_churn.csv: 0-1499 train the champion (dataset
``churn_train@v1``); the rest are served. ``shifted`` plants drift in real columns the way
a new batch of unhappy customers would: more customer-service calls, higher day charges.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from shipyard.core.config import Config, load_config
from shipyard.models.registry import ModelRegistry
from shipyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord
from shipyard.store.metadata import open_metadata_store

LABEL = "churn"
CATEGORICAL = ["state", "area_code", "international_plan", "voice_mail_plan"]


FIT = """
CATEGORICAL = ["state", "area_code", "international_plan", "voice_mail_plan"]


def fit(frame):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in frame.columns if c not in CATEGORICAL and c != "churn"]
    model = make_pipeline(
        ColumnTransformer(
            [
                ("c", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                ("n", StandardScaler(), numeric),
            ]
        ),
        LogisticRegression(max_iter=300),
    )
    return model.fit(frame.drop(columns=["churn"]), frame["churn"])
"""

PIPELINE = (
    FIT
    + """

from shipyard.pipelines import dataset, pipeline, step


@step(libraries=["scikit-learn"])
def train(table):
    return fit(table.to_pandas())


@pipeline
def train_churn() -> dict:
    return {"model": train(dataset("churn_train"))}
"""
)

_namespace: dict[str, Any] = {}
exec(FIT, _namespace)  # noqa: S102 - the same source the project's pipelines.py holds
fit = _namespace["fit"]


def read_churn(datasets_dir: Path) -> pa.Table:
    return pcsv.read_csv(datasets_dir / "mlc_churn.csv")


def shifted(table: pa.Table) -> pa.Table:
    """More customer-service calls (+3) and 40% higher day charges and minutes."""
    calls = pc.add(table.column("number_customer_service_calls"), 3)
    charge = pc.multiply(table.column("total_day_charge"), 1.4)
    minutes = pc.multiply(table.column("total_day_minutes"), 1.4)
    out = table
    for name, values in (
        ("number_customer_service_calls", calls),
        ("total_day_charge", charge),
        ("total_day_minutes", minutes),
    ):
        out = out.set_column(out.schema.get_field_index(name), name, values)
    return out


def make_project(root: Path, churn: pa.Table, *, pipelines: bool = False) -> Config:
    """A project with ``churn_train@v1`` (rows 0-1499) and ``churn@v1`` as champion."""
    (root / ".shipyard").mkdir(parents=True)
    open_metadata_store(f"sqlite:///{root / '.shipyard' / 'metadata.db'}").close()
    (root / "shipyard.toml").write_text('[project]\nname = "loop"\n')
    if pipelines:
        (root / "pipelines.py").write_text(PIPELINE)
    config = load_config(root, environ={})
    train = churn.slice(0, 1500)
    ingest(config, "churn_train", train, root / "train.csv")
    with ModelRegistry.open(config) as registry:
        registry.register(
            "churn", fit(train.to_pandas()), training_data="churn_train@v1", actor="test"
        )
        registry.set_alias("churn@v1", "champion", reason="first model", actor="test")
    return config


def ingest(config: Config, name: str, table: pa.Table, path: Path) -> str:
    from shipyard.data.client import DatasetClient

    pcsv.write_csv(table, path)
    with DatasetClient.open(config) as client:
        return str(client.ingest(name, str(path)).version.reference)


def serve(
    config: Config,
    rows: pa.Table,
    *,
    prefix: str,
    start: datetime | None = None,
    arm: str = "champion",
    reference: str = "churn@champion",
    latency_ms: float = 2.0,
    broken: bool = False,
) -> list[str]:
    """Score ``rows`` with the served version and log them through the PredictionLogWriter
    (``broken``: every fifth call failed, logged as serving logs a model that raised)."""
    begin = start or datetime.now(UTC) - timedelta(minutes=30)
    features = rows.drop_columns([LABEL]) if LABEL in rows.column_names else rows
    with ModelRegistry.open(config) as registry:
        version = registry.get(reference)
        scores = registry.load(version.reference).predict(features).scores
        writer = PredictionLogWriter(registry.stores.metadata, flush_interval=0.05)
        ids = []
        for index, row in enumerate(features.to_pylist()):
            failed = broken and index % 5 == 0  # every fifth call raised in the model
            request_id = f"{prefix}-{index}"
            ids.append(request_id)
            writer.log(
                PredictionRecord(
                    request_id=request_id,
                    arm=arm,
                    model="churn",
                    version=version.number,
                    version_id=version.id,
                    alias="champion",
                    inputs=row,
                    score=None if failed else float(scores[index]),
                    latency_ms=latency_ms,
                    threshold=0.5,
                    logged_at=begin + timedelta(milliseconds=index),
                    error="RuntimeError" if failed else None,
                )
            )
        writer.close()
        assert writer.written == len(ids), writer.last_error
    return ids
