"""Fixtures of the feature store tests: the offline engines, one Spark session per run.

Starting Spark takes 20-30 s, so one local session (``local[2]``, loopback only, no UI)
serves the whole test run. Without pyspark or Java the Spark tests skip, saying why;
with ``SHIPYARD_TEST_REQUIRE`` naming ``spark`` (as ``.ci/run`` does) they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import service_missing

OFFLINE_ENGINES = ("duckdb", "duckdb-asof", "spark")


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """The process's shared Spark session (the one the spark engine uses), for the run."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        service_missing("spark", f"pyspark is not installed ({exc}); pip install 'shipyard[spark]'")
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and os.path.isdir(java_home)):
        service_missing("spark", "Java is not on PATH and JAVA_HOME is not set; install Java 17+")

    from shipyard.core.errors import BackendUnavailableError
    from shipyard.features.offline_spark import spark_session as shared_session
    from shipyard.features.offline_spark import stop_spark_session

    try:
        session = shared_session("local[2]")
    except BackendUnavailableError as exc:
        service_missing("spark", exc.message)
    # Test tables have a few rows: one shuffle partition saves a task launch per stage.
    session.conf.set("spark.sql.shuffle.partitions", "1")
    try:
        yield session
    finally:
        stop_spark_session()


@pytest.fixture(scope="session", params=OFFLINE_ENGINES)
def offline_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Each offline engine in turn (the conformance parameter); Spark starts only if asked.

    ``duckdb-asof`` is the DuckDB engine's ASOF JOIN mode, its sorted tables persisted in
    a cache folder as in a project."""
    if request.param == "spark":
        request.getfixturevalue("spark_session")
        from shipyard.features.offline_spark import SparkEngine

        engine: Any = SparkEngine("local[2]")
    elif request.param == "duckdb-asof":
        from shipyard.features.offline_duckdb import DuckDBEngine

        engine = DuckDBEngine(
            threads=2, join="asof", cache_dir=tmp_path_factory.mktemp("asof-cache")
        )
    else:
        from shipyard.features.offline_duckdb import DuckDBEngine

        engine = DuckDBEngine(threads=2)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def duckdb_engine() -> Iterator[Any]:
    """The DuckDB engine alone, as the reference the Spark engine is compared with."""
    from shipyard.features.offline_duckdb import DuckDBEngine

    engine = DuckDBEngine(threads=2)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def asof_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The DuckDB engine in ASOF JOIN mode, its sorted tables cached in a folder."""
    from shipyard.features.offline_duckdb import DuckDBEngine

    engine = DuckDBEngine(threads=2, join="asof", cache_dir=tmp_path_factory.mktemp("asof"))
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def spark_engine(spark_session: Any) -> Iterator[Any]:
    """The Spark engine alone, on the shared session."""
    from shipyard.features.offline_spark import SparkEngine

    engine = SparkEngine("local[2]")
    try:
        yield engine
    finally:
        engine.close()
