"""Fixtures for the datasets tests: projects on the embedded stores (and on PostgreSQL).

A fresh SQLite metadata store is migrated once per session and copied for each test
(running every branch's migrations costs seconds; a file copy costs nothing).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.core.config import Config, load_config
from shipyard.data.client import DatasetClient
from shipyard.store.metadata import open_metadata_store
from tests.conftest import DATASETS

CREDIT = DATASETS / "credit_data.csv"
CHURN = DATASETS / "mlc_churn.csv"
ATTRITION = DATASETS / "attrition.csv"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "metadata.db"
    open_metadata_store(f"sqlite:///{path}").close()
    return path


def make_project(root: Path, template: Path, metadata_uri: str | None = None) -> Config:
    home = root / ".shipyard"
    home.mkdir(parents=True, exist_ok=True)
    environ = {}
    if metadata_uri is None:
        shutil.copyfile(template, home / "metadata.db")
    else:
        environ["SHIPYARD_STORE_METADATA"] = metadata_uri
    return load_config(root, environ=environ)


@pytest.fixture
def config(tmp_path: Path, migrated_sqlite: Path) -> Config:
    """A project on the embedded default stores (SQLite, local artifact folder)."""
    return make_project(tmp_path / "project", migrated_sqlite)


@pytest.fixture
def client(config: Config) -> Iterator[DatasetClient]:
    with DatasetClient.open(config) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgres"])
def backend_client(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path
) -> Iterator[DatasetClient]:
    """A client on each metadata backend (the artifact store is a local folder)."""
    uri = None if request.param == "sqlite" else request.getfixturevalue("postgres_uri")
    config = make_project(tmp_path / "project", migrated_sqlite, uri)
    with DatasetClient.open(config) as opened:
        yield opened


@pytest.fixture(scope="session")
def credit_csv(datasets_dir: Path) -> Path:
    return datasets_dir / "credit_data.csv"
