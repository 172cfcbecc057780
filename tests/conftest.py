"""Shared fixtures: real services for the scale backends, real data from ../shared/datasets.

Scale backends are tested for real. On a developer's machine without a service, its tests
skip with a message saying how to provide it; when ``SHIPYARD_TEST_REQUIRE`` names the
service (``.ci/run`` sets ``postgres,s3,redis``), a missing service fails the test instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASETS = REPO_ROOT.parent / "shared" / "datasets"

POSTGRES_ADMIN_URI = os.environ.get(
    "SHIPYARD_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URI = os.environ.get("SHIPYARD_TEST_REDIS_URI", "redis://127.0.0.1:6379/0")


def required_services() -> set[str]:
    raw = os.environ.get("SHIPYARD_TEST_REQUIRE", "")
    return {part.strip().lower() for part in raw.split(",") if part.strip()}


def service_missing(service: str, reason: str) -> None:
    """Fail if the service is required here, else skip with a message saying how to run it."""
    if service in required_services():
        pytest.fail(f"{service} is required (SHIPYARD_TEST_REQUIRE) but unavailable: {reason}")
    pytest.skip(
        f"{service} unavailable ({reason}); start it, or set SHIPYARD_TEST_REQUIRE={service} "
        "to make this a failure"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- PostgreSQL ------------------------------------------------------------------------


def _psycopg_connect(uri: str) -> Any:
    import psycopg

    return psycopg.connect(uri, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def postgres_admin_uri() -> str:
    try:
        conn = _psycopg_connect(POSTGRES_ADMIN_URI)
    except ImportError as exc:
        service_missing("postgres", f"psycopg is not installed ({exc})")
    except Exception as exc:
        service_missing("postgres", f"cannot connect to {POSTGRES_ADMIN_URI}: {exc}")
    conn.close()
    return POSTGRES_ADMIN_URI


@pytest.fixture
def postgres_uri(postgres_admin_uri: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"sy_test_{uuid.uuid4().hex[:12]}"
    with _psycopg_connect(postgres_admin_uri) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_admin_uri.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with _psycopg_connect(postgres_admin_uri) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- S3 (moto's server mode, started by the tests) -------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3 server (moto) on a free loopback port, for the whole test session."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        service_missing("s3", f"moto[server] is not installed ({exc})")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        server.start()
    except Exception as exc:
        service_missing("s3", f"moto server did not start: {exc}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the local S3 server; returns its name."""
    import boto3

    name = f"sy-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name


# --- Redis -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_uri() -> str:
    try:
        import redis
    except ImportError as exc:
        service_missing("redis", f"redis is not installed ({exc})")
    try:
        client = redis.Redis.from_url(REDIS_URI, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        service_missing("redis", f"cannot connect to {REDIS_URI}: {exc}")
    return REDIS_URI


# --- Real data -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"the shared datasets folder {DATASETS} is not beside this checkout")
    return DATASETS
