"""Fixtures and helpers of the write-side tracking tests (client, fluent, writer, lifecycle).

Test modules bind the fixtures they use by assignment (``client = write_support.client``).
Backend-dependent tests run on SQLite and PostgreSQL: ``metadata_uri`` gives each test a
fresh store; ``shared_uri`` gives a module one store per backend (tests then isolate
themselves with fresh runs and experiment names), which keeps the suite fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shipyard.store.artifacts_local import LocalArtifactStore
from shipyard.store.metadata import MetadataStore, open_metadata_store
from shipyard.store.stores import Stores
from shipyard.tracking.client import TrackingClient

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST_FLUSH = 0.05
"""A short flush interval keeps tests that wait for the background writer quick."""


def _postgres_database(admin_uri: str) -> Iterator[str]:
    import psycopg

    name = f"sy_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_uri.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def metadata_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty metadata store for one test, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metadata.db'}"
    uri: str = request.getfixturevalue("postgres_uri")
    return uri


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_uri(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One metadata store per backend for a whole test module."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'metadata.db'}"
        return
    admin: str = request.getfixturevalue("postgres_admin_uri")
    yield from _postgres_database(admin)


def open_test_stores(uri: str, artifacts: Path) -> Stores:
    return Stores(open_metadata_store(uri), LocalArtifactStore(artifacts))


@pytest.fixture
def stores(metadata_uri: str, tmp_path: Path) -> Iterator[Stores]:
    with open_test_stores(metadata_uri, tmp_path / "artifacts") as opened:
        yield opened


@pytest.fixture
def client(stores: Stores) -> Iterator[TrackingClient]:
    with TrackingClient(stores=stores, flush_interval=FAST_FLUSH) as opened:
        yield opened


@pytest.fixture(scope="module")
def shared_stores(shared_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    with open_test_stores(shared_uri, tmp_path_factory.mktemp("artifacts")) as opened:
        yield opened


@pytest.fixture
def shared_client(shared_stores: Stores) -> Iterator[TrackingClient]:
    with TrackingClient(stores=shared_stores, flush_interval=FAST_FLUSH) as opened:
        yield opened


def unique(prefix: str = "exp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def rows(store: MetadataStore, table: sa.Table, **where: Any) -> list[dict[str, Any]]:
    """The rows of ``table`` matching ``column=value`` filters, as dicts."""
    query = sa.select(table).where(*(table.c[name] == value for name, value in where.items()))
    with store.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def run_python(
    code: str,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with this checkout's ``shipyard`` importable."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_python(
    code: str, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter (stdout and stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), **(env or {})},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
