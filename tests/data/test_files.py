"""File versions: any folder versioned by its bytes, status in one look, no git needed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shipyard.core.config import Config
from shipyard.core.errors import NotFoundError
from shipyard.core.ids import ContentId
from shipyard.data.client import DatasetClient
from shipyard.data.errors import SourceError
from shipyard.data.file_changes import SMALL_FILE, quick_status
from shipyard.data.files import read_manifest
from shipyard.store.artifacts_local import LocalArtifactStore
from shipyard.store.gc import collect_garbage


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "readme.txt": b"hello\n",
        "images/a.png": os.urandom(2048),
        "images/b.png": os.urandom(2048),
        "images/copy_of_a.png": b"",
        "weights/model.bin": os.urandom(SMALL_FILE + 12345),
        ".git/ignored": b"not versioned",
    }
    files["images/copy_of_a.png"] = files["images/a.png"]
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        # Written "long ago": the stat cache keeps only files not modified in the last moments.
        os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    del files[".git/ignored"]
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_version_a_folder_check_status_and_export(
    client: DatasetClient, config: Config, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    files = make_tree(data)
    result = client.version_files("assets", data, link="copy")
    version = result.version
    assert (version.kind, version.num_rows, version.num_bytes) == (
        "files",
        4 + 1,
        sum(len(b) for b in files.values()),
    )
    status = client.status("assets")
    assert status.clean and status.unchanged == 5 and status.hashed == 0  # the stat cache
    [quick] = quick_status(config, "assets") or []
    assert quick == status  # the fast path (standard library only) says the same

    (data / "readme.txt").write_bytes(b"HELLO\n")  # same size, new bytes
    (data / "images" / "b.png").unlink()
    (data / "images" / "c.png").write_bytes(b"new")
    (data / "weights" / "model.bin").write_bytes(b"smaller now")
    changed = client.status("assets")
    assert (changed.added, changed.removed, changed.modified) == (
        ("images/c.png",),
        ("images/b.png",),
        ("readme.txt", "weights/model.bin"),
    )
    assert changed.hashed == 1  # model.bin's size changed: no need to read it
    v2 = client.version_files("assets", data).version
    assert v2.number == 2 and client.status("assets").clean
    again = client.version_files("assets", data)
    assert not again.created and again.version.number == 2

    diff = client.diff("assets@v1", "assets@v2")
    assert (diff.files_added, diff.files_removed, diff.files_modified) == (
        ("images/c.png",),
        ("images/b.png",),
        ("readme.txt", "weights/model.bin"),
    )
    restored = client.export("assets@v1", tmp_path / "restored")
    assert read_tree(restored) == files
    with pytest.raises(Exception, match="exists and is not an empty folder"):
        client.export("assets@v1", tmp_path / "restored")


def test_unchanged_small_files_are_not_stored_again(client: DatasetClient, tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_tree(data)
    v1 = client.version_files("assets", data).version
    (data / "new.txt").write_bytes(b"one more")
    v2 = client.version_files("assets", data).version
    manifest_1 = {e.path: e for e in read_manifest(client, v1)}
    manifest_2 = {e.path: e for e in read_manifest(client, v2)}
    assert manifest_2["images/a.png"].blob == manifest_1["images/a.png"].blob  # same pack
    assert manifest_2["new.txt"].blob != manifest_1["images/a.png"].blob  # a new, small pack
    report = collect_garbage(
        client.stores.artifacts, client.stores.metadata.referenced_blob_ids, grace_seconds=0
    )
    assert report.deleted == 0
    client.export("assets@v1", tmp_path / "v1")


def test_large_files_are_hard_linked_read_only_or_copied(
    client: DatasetClient, tmp_path: Path
) -> None:
    store = client.stores.artifacts
    assert isinstance(store, LocalArtifactStore)
    linked = tmp_path / "linked.bin"
    linked.write_bytes(os.urandom(SMALL_FILE * 3))
    result = client.version_files("weights", linked)
    [entry] = read_manifest(client, result.version)
    blob = store.path_of(ContentId(entry.blob))
    assert blob.stat().st_ino == linked.stat().st_ino  # no copy: the file is the blob
    assert not linked.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert result.notes and "read-only" in result.notes[0]
    store.verify(ContentId(entry.blob))

    copied = tmp_path / "copied.bin"
    copied.write_bytes(os.urandom(SMALL_FILE * 3))
    version = client.version_files("weights_copy", copied, link="copy").version
    [entry] = read_manifest(client, version)
    assert store.path_of(ContentId(entry.blob)).stat().st_ino != copied.stat().st_ino
    assert copied.stat().st_mode & stat.S_IWUSR


def test_a_quick_edit_after_versioning_is_never_missed(
    client: DatasetClient, tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"first")
    client.version_files("notes", path)
    before = path.stat()
    path.write_bytes(b"FIRST")  # same size; then the old mtime is put back
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    status = client.status("notes")
    assert status.modified == ("notes.txt",)


def test_bad_paths_and_names(client: DatasetClient, tmp_path: Path, credit_csv: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        client.version_files("x", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no files"):
        client.version_files("x", tmp_path / "empty")
    with pytest.raises(NotFoundError):
        client.status("x")
    client.ingest("table", credit_csv)
    with pytest.raises(SourceError, match="is a table"):
        client.status("table")
    folder = tmp_path / "gone"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"a")
    client.version_files("gone", folder)
    (folder / "a.txt").unlink()
    folder.rmdir()
    assert client.status("gone").removed == ("a.txt",)
