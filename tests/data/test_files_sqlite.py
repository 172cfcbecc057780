"""File versions recorded without SQLAlchemy (``files_sqlite``): the same rows as
``catalog`` writes, or no version at all, and never on a database it does not know."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shipyard.core.config import Config
from shipyard.core.errors import AlreadyExistsError, BackendError
from shipyard.data import files as files_module
from shipyard.data.client import DatasetClient
from shipyard.data.errors import SourceError
from shipyard.data.file_changes import SMALL_FILE, quick_status, stat_cache
from shipyard.data.files import record_files
from shipyard.data.files_sqlite import SCHEMA_TIPS, EmbeddedFileCatalog, open_embedded_catalog
from shipyard.store.gc import collect_garbage
from shipyard.store.schema import datasets as datasets_schema
from shipyard.store.schema import foundation as foundation_schema
from tests.data.conftest import make_project

LONG_AGO = (1_600_000_000_000_000_000, 1_600_000_000_000_000_000)


def make_folder(root: Path, count: int = 30) -> Path:
    root.mkdir(parents=True)
    for index in range(count):
        (root / f"f{index:03d}.bin").write_bytes(os.urandom(100 + index))
    (root / "big.bin").write_bytes(os.urandom(SMALL_FILE + 1))
    for path in root.iterdir():  # written long ago: the stat cache skips files just written
        os.utime(path, ns=LONG_AGO)
    return root


def embedded(config: Config) -> EmbeddedFileCatalog:
    opened = open_embedded_catalog(config)
    assert opened is not None
    return opened


def test_schema_tips_are_the_tables_it_writes() -> None:
    assert SCHEMA_TIPS == (datasets_schema.REVISION, foundation_schema.REVISION)


def test_a_version_it_records_reads_back_through_the_catalog(
    config: Config, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path / "data")
    with embedded(config) as target:
        first = record_files(
            target, stat_cache(config), "assets", folder, tags={"team": "ml"}, link="copy"
        )
        (folder / "f000.bin").write_bytes(b"changed")
        os.utime(folder / "f000.bin", ns=(LONG_AGO[0] + 1, LONG_AGO[1] + 1))
        second = record_files(target, stat_cache(config), "assets", folder, link="copy")
        again = record_files(target, stat_cache(config), "assets", folder, link="copy")
    assert first.created and second.created and not again.created
    assert (first.version.reference, second.version.reference) == ("assets@v1", "assets@v2")
    assert again.version == second.version
    with DatasetClient.open(config) as client:
        for result in (first, second):
            stored = client.get_version(result.version.reference)
            assert stored == result.version  # every field, the timestamp included
        assert first.version.tags == {"team": "ml"}
        # The blobs are referenced (GC keeps them), the content is all there.
        report = collect_garbage(
            client.stores.artifacts, client.stores.metadata.referenced_blob_ids, grace_seconds=0
        )
        assert report.deleted == 0
        exported = client.export("assets@v2", tmp_path / "out")
        assert sorted(p.name for p in Path(exported).iterdir()) == sorted(
            p.name for p in folder.iterdir()
        )
        assert (Path(exported) / "f000.bin").read_bytes() == b"changed"
        assert client.status("assets").clean
    [quick] = quick_status(config, "assets") or []
    assert quick.clean and quick.hashed == 0
    events = sqlite3.connect(config.home / "metadata.db").execute(
        "SELECT action, detail FROM audit_events ORDER BY id"
    )
    assert [row[0] for row in events] == ["dataset.version.create"] * 2


def test_only_databases_it_knows_are_written(
    config: Config, tmp_path: Path, migrated_sqlite: Path
) -> None:
    # PostgreSQL, a database not created yet, another Shipyard's datasets tables: no.
    postgres = dataclasses.replace(
        config,
        store=dataclasses.replace(config.store, metadata="postgresql://u@127.0.0.1/x"),
    )
    assert open_embedded_catalog(postgres) is None
    fresh = make_project(tmp_path / "fresh", migrated_sqlite)
    (fresh.home / "metadata.db").unlink()
    assert open_embedded_catalog(fresh) is None
    newer = make_project(tmp_path / "newer", migrated_sqlite)
    with sqlite3.connect(newer.home / "metadata.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'd0002' WHERE version_num = 'd0001'")
    conn.close()
    assert open_embedded_catalog(newer) is None
    assert open_embedded_catalog(config) is not None


def test_a_migration_meanwhile_stops_the_write(config: Config, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", count=3)
    with embedded(config) as target:
        with sqlite3.connect(config.home / "metadata.db") as conn:
            conn.execute(
                "UPDATE alembic_version SET version_num = 'd0002' WHERE version_num = 'd0001'"
            )
        conn.close()
        with pytest.raises(BackendError, match="was migrated while"):
            record_files(target, stat_cache(config), "assets", folder)
        assert target.latest("assets") is None


def test_a_table_dataset_name_is_refused_and_nothing_recorded(
    config: Config, tmp_path: Path, credit_csv: Path
) -> None:
    with DatasetClient.open(config) as client:
        client.ingest("credit", credit_csv)
    folder = make_folder(tmp_path / "data", count=3)
    with embedded(config) as target, pytest.raises(AlreadyExistsError, match="holds table"):
        record_files(target, stat_cache(config), "credit", folder)
    with DatasetClient.open(config) as client:
        assert [v.number for v in client.list_versions("credit")] == [1]


def test_a_failed_add_leaves_no_version_and_no_temporary(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_folder(tmp_path / "data")
    real_read = files_module.read_small
    calls = 0

    def read_then_fail(item: files_module.Found) -> tuple[str, bytes]:
        nonlocal calls
        calls += 1
        if calls > 10:
            raise SourceError(f"{item.path} changed while it was versioned; nothing was saved.")
        return real_read(item)

    monkeypatch.setattr(files_module, "read_small", read_then_fail)
    with embedded(config) as target:
        with pytest.raises(SourceError, match="changed while"):
            record_files(target, stat_cache(config), "assets", folder)
        assert target.latest("assets") is None
        temporary = target.artifacts.root / "tmp"
        assert (list(temporary.iterdir()) if temporary.exists() else []) == []


def test_concurrent_adds_get_distinct_numbers(config: Config, tmp_path: Path) -> None:
    folders = [make_folder(tmp_path / f"data{i}", count=5) for i in range(4)]
    errors: list[BaseException] = []

    def add(folder: Path) -> None:
        try:
            with embedded(config) as target:
                record_files(target, stat_cache(config), "shared", folder)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(folder,)) for folder in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with DatasetClient.open(config) as client:
        versions = client.list_versions("shared")
    assert sorted(v.number for v in versions) == [1, 2, 3, 4]
    assert len({v.content_id for v in versions}) == 4


def test_the_command_records_a_file_version_without_sqlalchemy(
    config: Config, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path / "data", count=5)
    script = (
        "import sys\n"
        "from shipyard.cli.main import main\n"
        f"code = main(['-C', {str(config.project_dir)!r}, 'datasets', 'ingest', 'assets', "
        f"{str(folder)!r}, '--files'])\n"
        "assert 'sqlalchemy' not in sys.modules, 'SQLAlchemy was imported'\n"
        "sys.exit(code)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "Created assets@v1: 6 files" in completed.stdout
