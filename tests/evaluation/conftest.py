"""Fixtures for the evaluation tests: real churn and attrition data, fitted models, projects.

Models are fitted once per session on small slices of ../shared/datasets (the machine is
shared: keep them quick); a migrated SQLite template is copied per project.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from shipyard.core.config import Config, load_config
from shipyard.store.metadata import open_metadata_store
from tests.conftest import DATASETS

CHURN = DATASETS / "mlc_churn.csv"
ATTRITION = DATASETS / "attrition.csv"


def string_columns(table: pa.Table, label: str) -> list[str]:
    return [
        f.name
        for f in table.schema
        if f.name != label and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
    ]


def make_pipeline(table: pa.Table, label: str, *, regularisation: float = 1.0) -> Any:
    """Impute, one-hot (unknown categories ignored), scale, logistic regression: fitted."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline as chain
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = table.drop_columns([label]).to_pandas()
    categorical = string_columns(table, label)
    numeric = [c for c in features.columns if c not in categorical]
    encode = chain(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    scale = chain(SimpleImputer(), StandardScaler())
    model = chain(
        ColumnTransformer([("c", encode, categorical), ("n", scale, numeric)]),
        LogisticRegression(max_iter=300, C=regularisation),
    )
    model.fit(features, table.column(label).to_pandas())
    return model


@pytest.fixture(scope="session")
def churn_table() -> pa.Table:
    return pcsv.read_csv(CHURN)


@pytest.fixture(scope="session")
def churn_train(churn_table: pa.Table) -> pa.Table:
    return churn_table.slice(0, 2500)


@pytest.fixture(scope="session")
def churn_holdout(churn_table: pa.Table) -> pa.Table:
    return churn_table.slice(4000, 1000)


@pytest.fixture(scope="session")
def churn_model(churn_train: pa.Table) -> Any:
    return make_pipeline(churn_train, "churn")


@pytest.fixture(scope="session")
def attrition_table() -> pa.Table:
    return pcsv.read_csv(ATTRITION)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "metadata.db"
    open_metadata_store(f"sqlite:///{path}").close()
    return path


def make_project(root: Path, template: Path, toml: str = "") -> Config:
    home = root / ".shipyard"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / "metadata.db")
    if toml:
        (root / "shipyard.toml").write_text(toml)
    return load_config(root, environ={})


@pytest.fixture
def config(tmp_path: Path, migrated_sqlite: Path) -> Config:
    return make_project(tmp_path / "project", migrated_sqlite)


# --- A registered project, built once per session and copied per test ----------------

GATES_TOML = """
[project]
name = "evaluation"

[gates.churn]
metrics = { roc_auc = ">= 0.75" }
recall_at_precision = { precision = 0.5, min_recall = 0.3 }
champion = { metric = "roc_auc", max_drop = 0.01 }
latency = { p99_ms = 5000, samples = 20 }
robustness = true

[gates.churn_slow]
latency = { p99_ms = 10, samples = 50 }

[gates.attrition]
fairness = { metric = "recall", by = "Gender", max_gap = 0.25 }
metrics = { roc_auc = ">= 0.7" }
"""


def numeric_columns(table: pa.Table, label: str) -> list[str]:
    return [
        f.name
        for f in table.schema
        if f.name != label and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]


@pytest.fixture(scope="session")
def registered_template(
    tmp_path_factory: pytest.TempPathFactory,
    migrated_sqlite: Path,
    churn_train: pa.Table,
    churn_holdout: pa.Table,
    churn_model: Any,
    attrition_table: pa.Table,
) -> Path:
    """A project with datasets and models registered:

    - ``churn_train@v1`` (a contract declaring 0 <= value <= 100,000 for numbers),
      ``churn_holdout@v1``, ``churn_events@v1`` (the holdout with an ``event_time``);
    - ``churn@v1`` (the pipeline), ``churn@v2`` (a weak one: 150 rows, heavy
      regularisation), ``churn_slow@v1`` (a generic Python model sleeping 50 ms a call);
    - ``attrition_holdout@v1`` and ``attrition@v1``.
    """
    from datetime import UTC, datetime, timedelta

    from shipyard.data.client import DatasetClient
    from shipyard.data.contracts import Column, Contract
    from shipyard.models.registry import ModelRegistry
    from tests.evaluation.planted import SlowModel

    root = tmp_path_factory.mktemp("registered") / "project"
    config = make_project(root, migrated_sqlite, GATES_TOML)
    bounded = Contract(
        columns={name: Column(min=0, max=100_000) for name in numeric_columns(churn_train, "churn")}
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = pa.array(
        [start + timedelta(hours=i) for i in range(churn_holdout.num_rows)],
        pa.timestamp("us", "UTC"),
    )
    attrition_train, attrition_holdout = attrition_table.slice(0, 1000), attrition_table.slice(1000)
    with DatasetClient.open(config) as client:
        client.ingest("churn_train", churn_train, bounded)
        client.ingest("churn_holdout", churn_holdout)
        client.ingest("churn_events", churn_holdout.append_column("event_time", times))
        client.ingest("attrition_train", attrition_train)
        client.ingest("attrition_holdout", attrition_holdout)
    weak = make_pipeline(churn_train.slice(0, 150), "churn", regularisation=0.0005)
    with ModelRegistry.open(config) as registry:
        registry.register(
            "churn",
            churn_model,
            training_data="churn_train@v1",
            description="Flags subscribers likely to cancel next month.",
        )
        registry.register("churn", weak, training_data="churn_train@v1")
        registry.register(
            "churn_slow",
            SlowModel(churn_model, 0.05),
            training_data="churn_train@v1",
            allow_pickle=True,
            input_example=churn_train.drop_columns(["churn"]).slice(0, 5).to_pandas(),
        )
        registry.register(
            "attrition",
            make_pipeline(attrition_train, "Attrition"),
            training_data="attrition_train@v1",
            description="Attrition risk.",
        )
    return root


@pytest.fixture
def project(tmp_path: Path, registered_template: Path) -> Config:
    root = tmp_path / "project"
    shutil.copytree(registered_template, root)
    return load_config(root, environ={})


@pytest.fixture
def project_registry(project: Config) -> Iterator[Any]:
    from shipyard.models.registry import ModelRegistry

    with ModelRegistry.open(project) as opened:
        yield opened
