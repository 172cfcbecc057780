"""The prediction log writer: batches off the caller's thread, masking, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shipyard.core.config import load_config
from shipyard.core.errors import ConfigError
from shipyard.monitoring.prediction_log import (
    LogSettings,
    PredictionLogWriter,
    PredictionRecord,
    purge_expired,
)
from shipyard.store.metadata import open_metadata_store
from shipyard.store.schema.monitoring import prediction_log


def _record(request_id: str, **changes: object) -> PredictionRecord:
    values: dict[str, object] = {
        "request_id": request_id,
        "arm": "champion",
        "model": "churn",
        "version": 1,
        "version_id": "sha256:ab",
        "alias": "champion",
        "inputs": {"email": "a@b.c", "phone": "123", "tenure": 3},
        "score": 0.4,
        "latency_ms": 1.2,
        "entity_keys": {"email": "a@b.c"},
        "features": {
            "phone": {"value": "123", "view": "v@v1", "event_ts": None, "status": "present"}
        },
        "flags": [{"field": "email", "value": "a@b.c", "reason": "unseen"}],
    }
    values.update(changes)
    return PredictionRecord(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def metadata(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'm.db'}"
    else:
        uri = request.getfixturevalue("postgres_uri")
    store = open_metadata_store(uri)
    yield store
    store.close()


def test_records_are_written_in_batches_masked_and_deduplicated(metadata) -> None:  # type: ignore[no-untyped-def]
    settings = LogSettings(mask=frozenset({"email"}), drop=frozenset({"phone"}))
    writer = PredictionLogWriter(metadata, settings=settings, flush_interval=0.05, batch_size=50)
    for index in range(120):
        writer.log(_record(f"r{index}"))
    writer.log(_record("r0", score=0.9))  # a client retrying with the same id
    writer.close()
    assert (writer.written, writer.duplicates, writer.dropped) == (120, 1, 0)
    with metadata.connect() as conn:
        row = (
            conn.execute(select(prediction_log).where(prediction_log.c.request_id == "r0"))
            .mappings()
            .one()
        )
    assert row["inputs"] == {"email": "***", "tenure": 3}
    assert row["entity_keys"] == {"email": "***"}
    assert row["features"] == {}
    assert row["flags"] == [{"field": "email", "value": "***", "reason": "unseen"}]
    assert row["score"] == 0.4  # the first record kept


def test_a_full_queue_drops_and_counts_instead_of_blocking(metadata) -> None:  # type: ignore[no-untyped-def]
    writer = PredictionLogWriter(metadata, flush_interval=60, batch_size=10, max_pending=10)
    writer._stop = True  # no background flush: fill the queue  # noqa: SLF001
    writer._wake.set()  # noqa: SLF001
    writer._thread.join()  # noqa: SLF001
    for index in range(15):
        writer.log(_record(f"q{index}"))
    assert writer.dropped == 5
    writer.flush()
    assert writer.written == 10


def test_retention_deletes_old_records(metadata) -> None:  # type: ignore[no-untyped-def]
    writer = PredictionLogWriter(metadata)
    old = datetime.now(UTC) - timedelta(days=40)
    writer.log(_record("old", logged_at=old))
    writer.log(_record("new"))
    writer.close()
    assert purge_expired(metadata, 30) == 1
    with metadata.connect() as conn:
        left = conn.execute(select(prediction_log.c.request_id)).scalars().all()
        assert left == ["new"]
        assert conn.execute(select(func.count()).select_from(prediction_log)).scalar() == 1


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SHIPYARD_MONITORING_LOG_RETENTION_DAYS", "0", "log_retention_days"),
        ("SHIPYARD_MONITORING_LOG_RETENTION_DAYS", "ninety", "log_retention_days"),
        ("SHIPYARD_MONITORING_LOG_MASK", "email,,phone", "log_mask"),
    ],
)
def test_bad_settings_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str, message: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        LogSettings.from_config(load_config(tmp_path))


def test_a_column_cannot_be_masked_and_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_MONITORING_LOG_MASK", "email")
    monkeypatch.setenv("SHIPYARD_MONITORING_LOG_DROP", "email")
    with pytest.raises(ConfigError, match="both masked"):
        LogSettings.from_config(load_config(tmp_path))


def _sqlite_memory_used() -> int | None:
    """Bytes SQLite has allocated in this process (all connections), if readable."""
    import _sqlite3
    import ctypes

    try:
        library = ctypes.CDLL(_sqlite3.__file__)
        used = library.sqlite3_memory_used
    except (AttributeError, OSError):
        return None
    used.restype = ctypes.c_int64
    return int(used())


def test_sqlite_batches_of_any_size_reuse_one_insert_statement(tmp_path: Path) -> None:
    # A statement per batch size filled the driver's statement cache (about 0.4 MB per
    # statement): the service's memory grew with every new batch size it wrote.
    from sqlalchemy import event

    store = open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}")
    inserts: set[str] = set()

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.add(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    writer = PredictionLogWriter(store, flush_interval=60, batch_size=1000)
    start = 0
    for size in (3, 7, 11, 2):
        writer.log_many(_record(f"r{index}") for index in range(start, start + size))
        writer.log(_record(f"r{start}"))  # a retry within the batch
        writer.flush()
        start += size
    writer.close()
    store.close()
    assert (writer.written, writer.duplicates) == (23, 4)
    assert len(inserts) == 1


def test_sqlite_writes_do_not_keep_the_log_in_memory(tmp_path: Path) -> None:
    # Each written page stayed in the pooled connection's 64 MiB page cache: +0.8 KB
    # of memory per logged record until the caches were full.
    store = open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}")
    # Batches of 500 below batch_size: this thread writes them all (one connection).
    writer = PredictionLogWriter(store, flush_interval=60, batch_size=600)
    writer.log(_record("warm"))
    writer.flush()
    before = _sqlite_memory_used()
    if before is None:
        pytest.skip("this Python's sqlite3 does not export sqlite3_memory_used")
    wide = {"email": "a@b.c", "note": "x" * 2000}
    for batch in range(10):
        writer.log_many(_record(f"r{batch}-{i}", inputs=wide) for i in range(500))
        writer.flush()
    grown = (_sqlite_memory_used() or 0) - before
    writer.close()
    store.close()
    # 5,000 records of 2 KB: ~12 MB of pages; one batch's pages (~1.5 MB) may stay.
    assert grown < 4 * 2**20, f"SQLite kept {grown / 2**20:.1f} MB after 5,000 records"
