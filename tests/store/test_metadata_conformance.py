"""The metadata store's promises, proven for real on every backend it supports.

A new backend proves itself by joining the ``metadata_uri`` parameters and passing.
"""

from __future__ import annotations

import multiprocessing
import re
import socket
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shipyard._version import __version__
from shipyard.core.errors import (
    BackendUnavailableError,
    ConfigError,
    NotFoundError,
    ReferenceError_,
    SchemaVersionError,
)
from shipyard.core.ids import content_id_of_bytes
from shipyard.store import migrations
from shipyard.store.metadata import BlobRef, MetadataStore, normalise_uri, open_metadata_store
from shipyard.store.schema import SCHEMA_REVISION, audit_events, blob_refs, metadata, store_info

BLOB_A = content_id_of_bytes(b"a")
BLOB_B = content_id_of_bytes(b"b")


@pytest.fixture(params=["sqlite", "postgres"])
def metadata_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store that does not exist yet: a file path in a fresh folder, or an empty database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not-yet' / 'metadata.db'}"
    uri: str = request.getfixturevalue("postgres_uri")
    return uri


@pytest.fixture
def store(metadata_uri: str) -> Iterator[MetadataStore]:
    with open_metadata_store(metadata_uri) as opened:
        yield opened


def table_rows(store: MetadataStore, table: sa.Table) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(table))]


# --- Opening and migrating ----------------------------------------------------------------


def test_opening_a_new_store_migrates_to_head_and_records_its_identity(
    store: MetadataStore,
) -> None:
    assert store.schema_revision() == store.head_revision() == SCHEMA_REVISION
    info = {row["key"]: row["value"] for row in table_rows(store, store_info)}
    assert re.fullmatch(r"[0-9a-f]{32}", info["store_id"])
    assert info["store_id"] == store.store_id
    assert info["created_by_version"] == __version__
    created = datetime.fromisoformat(info["created_at"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60


def test_schema_module_matches_what_the_migrations_create(store: MetadataStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with store.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_reopening_keeps_identity_and_does_not_migrate_again(
    metadata_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_metadata_store(metadata_uri) as first:
        store_id = first.store_id

    def no_upgrade(conn: sa.Connection) -> None:
        raise AssertionError("an up-to-date store was migrated again")

    monkeypatch.setattr(migrations, "upgrade", no_upgrade)
    with open_metadata_store(metadata_uri) as again:
        assert again.store_id == store_id
        assert again.schema_revision() == SCHEMA_REVISION
        assert len(table_rows(again, store_info)) == 3


def test_opening_an_up_to_date_store_does_not_load_alembic(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'metadata.db'}"
    open_metadata_store(uri).close()
    code = (
        "import sys\n"
        "from shipyard.store.metadata import open_metadata_store\n"
        "open_metadata_store(sys.argv[1]).close()\n"
        "print(sorted(name for name in sys.modules if name.startswith('alembic')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, uri], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"  # start-up stays fast: Alembic costs ~0.2 s


def test_without_migrate_an_empty_database_is_left_empty(metadata_uri: str) -> None:
    with open_metadata_store(metadata_uri, migrate=False) as store:
        assert store.schema_revision() is None
        with pytest.raises(NotFoundError, match="not initialised"):
            _ = store.store_id
        with store.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []


def test_a_store_written_by_a_newer_shipyard_is_refused_and_left_untouched(
    metadata_uri: str,
) -> None:
    with open_metadata_store(metadata_uri) as store, store.transaction() as conn:
        conn.execute(
            sa.text(
                "UPDATE alembic_version SET version_num = '9999_from_the_future' "
                "WHERE version_num = '0001'"
            )
        )
        before = {table: table_rows(store, table) for table in metadata.sorted_tables}
        display_uri = store.display_uri

    with pytest.raises(SchemaVersionError) as raised:
        open_metadata_store(metadata_uri)
    message = str(raised.value)
    assert display_uri in message
    assert (
        f"has schema revision 9999_from_the_future, which this Shipyard (version {__version__})"
        in message
    )
    assert "newer Shipyard" in message
    assert "pip install -U shipyard" in message

    with open_metadata_store(metadata_uri, migrate=False) as store:
        assert "9999_from_the_future" in (store.schema_revision() or "").split(",")
        assert {table: table_rows(store, table) for table in metadata.sorted_tables} == before


def test_schema_revision_constant_is_the_newest_migration() -> None:
    assert migrations.head_revision() == SCHEMA_REVISION


# --- Transactions ---------------------------------------------------------------------------


def test_a_transaction_that_raises_leaves_nothing_behind(store: MetadataStore) -> None:
    with pytest.raises(RuntimeError, match="half way"), store.transaction() as conn:
        store.add_blob_refs(conn, [BlobRef(BLOB_A, "run", "r1", "model")])
        store.record_event(conn, "ana", "run.create", "run", "r1")
        raise RuntimeError("failed half way")
    assert store.referenced_blob_ids() == set()
    assert table_rows(store, audit_events) == []


def test_reads_see_committed_writes_only(store: MetadataStore) -> None:
    with store.transaction() as conn:
        store.add_blob_refs(conn, [BlobRef(BLOB_A, "run", "r1", "model")])
        assert store.referenced_blob_ids() == set()  # another connection: not committed yet
    assert store.referenced_blob_ids() == {BLOB_A}


# --- Blob references ------------------------------------------------------------------------


def test_blob_references_are_idempotent_and_removed_per_owner(store: MetadataStore) -> None:
    model = BlobRef(BLOB_A, "run", "r1", "model")
    with store.transaction() as conn:
        store.add_blob_refs(conn, [model, model, BlobRef(BLOB_B, "run", "r1", "data")])
        store.add_blob_refs(conn, [BlobRef(BLOB_A, "dataset", "d1", "table")])
        store.add_blob_refs(conn, [])
    with store.transaction() as conn:
        store.add_blob_refs(conn, [model])  # already there: not an error
    assert store.referenced_blob_ids() == {BLOB_A, BLOB_B}
    assert len(table_rows(store, blob_refs)) == 3
    assert all(row["created_at"].tzinfo is not None for row in table_rows(store, blob_refs))

    with store.transaction() as conn:
        assert store.remove_blob_refs(conn, "run", "r1") == 2
        assert store.remove_blob_refs(conn, "run", "r1") == 0
    assert store.referenced_blob_ids() == {BLOB_A}  # the dataset still holds it
    with store.transaction() as conn:
        store.remove_blob_refs(conn, "dataset", "d1")
    assert store.referenced_blob_ids() == set()


def test_a_blob_reference_must_name_a_content_id() -> None:
    with pytest.raises(ReferenceError_, match="not a content id"):
        BlobRef("abc", "run", "r1", "model")
    with pytest.raises(ValueError, match="owner_kind"):
        BlobRef(BLOB_A, "x" * 33, "r1", "model")


# --- Audit events ---------------------------------------------------------------------------


def test_audit_events_round_trip_with_json_detail(store: MetadataStore) -> None:
    detail = {"from": "v3", "to": "v4", "gates": [{"name": "auc", "passed": True}], "n": 1.5}
    with store.transaction() as conn:
        first = store.record_event(conn, "ana", "alias.move", "model", "churn@prod", detail)
        second = store.record_event(conn, "bob", "model.delete", "model", "churn@v1")
    assert second > first

    rows = sorted(table_rows(store, audit_events), key=lambda row: row["id"])
    assert [row["id"] for row in rows] == [first, second]
    assert rows[0]["detail"] == detail
    assert rows[1]["detail"] == {}
    assert (rows[0]["actor"], rows[0]["action"], rows[0]["object_id"]) == (
        "ana",
        "alias.move",
        "churn@prod",
    )
    assert rows[0]["at"].tzinfo is not None
    assert abs((datetime.now(UTC) - rows[0]["at"]).total_seconds()) < 60


# --- Backend settings -----------------------------------------------------------------------


def test_sqlite_is_set_up_for_concurrent_writers(tmp_path: Path) -> None:
    with open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}") as store, store.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        }
    assert pragma == {
        "journal_mode": "wal",
        "busy_timeout": 30000,
        "synchronous": 1,
        "foreign_keys": 1,
    }


def test_a_relative_sqlite_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_metadata_store("sqlite:///nested/metadata.db") as store:
        assert store.uri == f"sqlite:///{tmp_path / 'nested' / 'metadata.db'}"
    assert (tmp_path / "nested" / "metadata.db").is_file()


@pytest.mark.parametrize(
    "uri", ["postgresql://me:pw@db/x", "postgres://me:pw@db/x", "postgresql+psycopg://me:pw@db/x"]
)
def test_every_postgres_spelling_uses_psycopg_3(uri: str) -> None:
    url = normalise_uri(uri)
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.password, url.host, url.database) == ("me", "pw", "db", "x")


# --- Bad input: one clear Shipyard error naming the store, never a password ---------------


def test_an_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        open_metadata_store("mysql://me:hunter2@db.example/x")
    message = str(raised.value)
    assert "'mysql'" in message and "mysql://me:***@db.example/x" in message
    assert "sqlite:///" in message and "postgresql://" in message
    assert "hunter2" not in message


def test_a_closed_postgres_port_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends
    with pytest.raises(BackendUnavailableError) as raised:
        open_metadata_store(f"postgresql://postgres:hunter2@127.0.0.1:{port}/test")
    error = raised.value
    assert error.message == (
        f"Metadata store postgresql+psycopg://postgres:***@127.0.0.1:{port}/test is "
        "unavailable: Connection refused."
    )
    assert error.hint is not None and "server is running" in error.hint
    assert "hunter2" not in str(error)


def test_a_missing_postgres_database_is_unavailable(postgres_admin_uri: str) -> None:
    name = f"sy_missing_{uuid.uuid4().hex[:12]}"
    uri = make_url(postgres_admin_uri).set(password="hunter2", database=name)
    with pytest.raises(BackendUnavailableError) as raised:
        open_metadata_store(uri.render_as_string(hide_password=False))
    error = raised.value
    assert f'/{name} is unavailable: database "{name}" does not exist.' in error.message
    assert ":***@" in error.message and "\n" not in error.message
    assert error.hint is not None and f"createdb {name}" in error.hint
    assert "hunter2" not in str(error)


def test_a_sqlite_path_under_a_regular_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    uri = f"sqlite:///{tmp_path / 'notes.txt' / 'deeper' / 'metadata.db'}"
    with pytest.raises(BackendUnavailableError) as raised:
        open_metadata_store(uri)
    assert raised.value.message == (
        f"Metadata store {uri} is unavailable: {tmp_path / 'notes.txt'} is a file, not a folder."
    )


def test_a_sqlite_path_that_is_a_folder_is_unavailable(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}"
    with pytest.raises(BackendUnavailableError) as raised:
        open_metadata_store(uri)
    assert raised.value.message == (
        f"Metadata store {uri} is unavailable: {tmp_path} is a folder, not a database file."
    )


# --- Concurrency ----------------------------------------------------------------------------

WORKERS = 8
WRITES_PER_WORKER = 200


def write_concurrently(uri: str, worker: int, start: Any, results: Any) -> None:
    """One process: open the store (racing the others to create it), then write."""
    try:
        start.wait(timeout=120)
        with open_metadata_store(uri) as store:
            for n in range(WRITES_PER_WORKER):
                blob = content_id_of_bytes(f"{worker}/{n}".encode())
                with store.transaction() as conn:
                    store.add_blob_refs(conn, [BlobRef(blob, "test", f"w{worker}", f"n{n}")])
                    store.record_event(conn, f"w{worker}", "write", "blob", blob, {"n": n})
        results.put((worker, None))
    except BaseException:
        results.put((worker, traceback.format_exc()))


@pytest.mark.slow
def test_eight_processes_write_concurrently_lose_nothing(metadata_uri: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WORKERS)
    results = context.Queue()
    processes = [
        context.Process(target=write_concurrently, args=(metadata_uri, worker, start, results))
        for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    outcomes = dict(results.get(timeout=180) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    failures = [f"worker {worker}:\n{error}" for worker, error in outcomes.items() if error]
    assert not failures, "\n".join(failures)

    total = WORKERS * WRITES_PER_WORKER
    with open_metadata_store(metadata_uri) as store:
        assert len(store.referenced_blob_ids()) == total
        events = table_rows(store, audit_events)
        assert len(events) == total
        assert len({(row["actor"], row["detail"]["n"]) for row in events}) == total
        assert len(table_rows(store, store_info)) == 3  # created once, by one of the racers
        assert store.schema_revision() == SCHEMA_REVISION
