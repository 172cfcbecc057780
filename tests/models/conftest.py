"""Fixtures for the registry tests: a churn project built once per session, copied per test.

The template project holds ``churn@v1`` (600 rows of ../shared/datasets/mlc_churn.csv
ingested through a contract with declared rules) and a finished tracking run that read it
and logged a scikit-learn pipeline. Building it costs a few seconds; copying it costs
nothing, so each test gets its own stores.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.config import Config, load_config
from shipyard.models.registry import ModelRegistry

ROWS = 600
CATEGORICAL = ["state", "area_code", "international_plan", "voice_mail_plan"]
NUMERIC = [
    "account_length",
    "number_vmail_messages",
    "total_day_minutes",
    "total_day_calls",
    "total_eve_minutes",
    "total_intl_calls",
    "number_customer_service_calls",
]
FEATURES = CATEGORICAL + NUMERIC


@dataclass(frozen=True)
class ChurnProject:
    """The session's template project and what was made in it."""

    root: Path
    dataset_ref: str
    run_id: str
    frame: Any  # pandas DataFrame: the ingested rows, features and the label


def churn_pipeline(frame: Any) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    encoder = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), CATEGORICAL), (StandardScaler(), NUMERIC)
    )
    pipeline = make_pipeline(encoder, LogisticRegression(max_iter=300))
    return pipeline.fit(frame[FEATURES], frame["churn"])


@pytest.fixture(scope="session")
def churn_template(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> ChurnProject:
    import pandas as pd

    from shipyard.data import Column, Contract
    from shipyard.data.client import DatasetClient
    from shipyard.tracking.client import TrackingClient

    root = tmp_path_factory.mktemp("churn-template") / "project"
    root.mkdir()
    csv = root.parent / "churn.csv"
    pd.read_csv(datasets_dir / "mlc_churn.csv", nrows=ROWS).to_csv(csv, index=False)
    config = load_config(root)
    contract = Contract(
        columns={
            "international_plan": Column("string", nullable=False, allowed=["no", "yes"]),
            "number_customer_service_calls": Column("int64", min=0, max=20),
            "total_day_minutes": Column("float64", min=0),
        }
    )
    with DatasetClient.open(config) as datasets:
        version = datasets.ingest("churn", csv, contract=contract).version
        frame = datasets.to_pandas(version.reference)
    pipeline = churn_pipeline(frame)
    with TrackingClient(config) as tracking:
        run = tracking.create_run("churn", name="logreg")
        tracking.log_input(run.id, "churn", version.content_id, "train")
        tracking.log_model(run.id, pipeline, "model", input_example=frame[FEATURES].head(5))
        tracking.set_terminated(run.id)
    return ChurnProject(root, version.reference, run.id, frame)


@pytest.fixture
def project(tmp_path: Path, churn_template: ChurnProject) -> Config:
    """A private copy of the churn project."""
    root = tmp_path / "project"
    shutil.copytree(churn_template.root, root)
    return load_config(root)


@pytest.fixture
def registry(project: Config) -> Iterator[ModelRegistry]:
    with ModelRegistry.open(project) as opened:
        yield opened


@pytest.fixture(scope="session")
def churn_frame(churn_template: ChurnProject) -> Any:
    return churn_template.frame


@pytest.fixture(scope="session")
def fitted_pipeline(churn_frame: Any) -> Any:
    return churn_pipeline(churn_frame)


@pytest.fixture(scope="session")
def numeric_xy(churn_frame: Any) -> tuple[Any, Any]:
    """Numeric features (a DataFrame) and a 0/1 label."""
    return churn_frame[NUMERIC].astype("float64"), (churn_frame["churn"] == "yes").astype(int)


def postgres_project(tmp_path: Path, uri: str) -> Config:
    """A project whose metadata lives in the PostgreSQL database ``uri``."""
    root = tmp_path / "pg-project"
    root.mkdir(parents=True, exist_ok=True)
    return load_config(root, environ={"SHIPYARD_STORE_METADATA": uri})
