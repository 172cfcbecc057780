"""`shipyard store migrate`: embedded default -> PostgreSQL + S3 -> back, verified."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.cli.main import main
from shipyard.core.config import load_config
from shipyard.store.artifacts_factory import open_artifact_store
from shipyard.store.metadata import BlobRef, open_metadata_store
from shipyard.store.schema import metadata as schema
from shipyard.store.stores import open_stores
from shipyard.store.transfer import TransferTargetNotEmptyError, copy_metadata


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("SHIPYARD_") and key != "SHIPYARD_TEST_REQUIRE":
            monkeypatch.delenv(key)
    yield


def populate(project: Path, datasets_dir: Path) -> dict[str, object]:
    """A project with real files as blobs, references and audit events."""
    config = load_config(project)
    with open_stores(config) as stores:
        ids = [stores.artifacts.put_file(path) for path in sorted(datasets_dir.glob("*.csv"))]
        ids.append(stores.artifacts.put_bytes(b""))
        with stores.metadata.transaction() as conn:
            stores.metadata.add_blob_refs(
                conn, [BlobRef(i, "dataset", f"d{n}", "table") for n, i in enumerate(ids)]
            )
            for n in range(25):
                stores.metadata.record_event(conn, "tester", "made", "thing", str(n), {"n": n})
        return {"ids": sorted(ids), "store_id": stores.metadata.store_id}


def table_counts(uri: str) -> dict[str, int]:
    with open_metadata_store(uri) as store, store.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in schema.sorted_tables
        }


def test_round_trip_sqlite_local_to_postgres_s3_and_back(
    tmp_path: Path,
    postgres_uri: str,
    s3_endpoint: str,
    s3_bucket: str,
    datasets_dir: Path,
    clean_env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "churn"
    assert main(["init", str(project)]) == 0
    before = populate(project, datasets_dir)
    source = load_config(project)
    s3_uri = f"s3://{s3_bucket}/churn"

    code = main(
        [
            "-C",
            str(project),
            "store",
            "migrate",
            "--to",
            postgres_uri,
            "--to",
            s3_uri,
            "--s3-endpoint-url",
            s3_endpoint,
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "counts verified" in out.out and "verified by hash" in out.out
    assert table_counts(postgres_uri) == table_counts(source.store.metadata)

    with open_artifact_store(s3_uri, s3_endpoint_url=s3_endpoint) as s3:
        assert sorted(b.id for b in s3.iter_blobs()) == before["ids"]
    # The project, pointed at the new stores, sees the same store and references.
    monkeypatch.setenv("SHIPYARD_STORE_METADATA", postgres_uri)
    monkeypatch.setenv("SHIPYARD_STORE_ARTIFACTS", s3_uri)
    monkeypatch.setenv("SHIPYARD_S3_ENDPOINT_URL", s3_endpoint)
    moved = load_config(project)
    with open_stores(moved) as stores:
        assert stores.metadata.store_id == before["store_id"]
        assert sorted(stores.metadata.referenced_blob_ids()) == before["ids"]
        with stores.metadata.transaction() as conn:  # ids keep counting after the copy
            stores.metadata.record_event(conn, "tester", "after", "thing", "x", {})
    assert main(["-C", str(project), "store", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dialect"] == "postgresql" and info["blobs"] == len(before["ids"])

    # ...and back to a fresh embedded store.
    back_db = f"sqlite:///{tmp_path / 'back' / 'metadata.db'}"
    back_blobs = str(tmp_path / "back" / "artifacts")
    assert main(["-C", str(project), "store", "migrate", "--to", back_db, "--to", back_blobs]) == 0
    assert table_counts(back_db) == table_counts(postgres_uri)
    with open_artifact_store(back_blobs) as local:
        assert sorted(b.id for b in local.iter_blobs()) == before["ids"]


def test_refuses_a_target_that_already_holds_records(
    tmp_path: Path, datasets_dir: Path, clean_env: None
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for project in (one, two):
        assert main(["init", str(project)]) == 0
        populate(project, datasets_dir)
    with (
        open_metadata_store(load_config(one).store.metadata) as source,
        open_metadata_store(load_config(two).store.metadata) as target,
    ):
        before = table_counts(target.uri)
        with pytest.raises(TransferTargetNotEmptyError, match="already holds records"):
            copy_metadata(source, target)
        assert table_counts(target.uri) == before


def test_a_corrupted_source_blob_stops_the_migration(
    tmp_path: Path, datasets_dir: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "p"
    assert main(["init", str(project)]) == 0
    populate(project, datasets_dir)
    blob_files = [p for p in (project / ".shipyard" / "artifacts").rglob("*") if p.is_file()]
    victim = max(blob_files, key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    code = main(["-C", str(project), "store", "migrate", "--to", str(tmp_path / "elsewhere")])
    err = capsys.readouterr().err
    assert code == 1
    assert "error[SY500]" in err and victim.name in err
