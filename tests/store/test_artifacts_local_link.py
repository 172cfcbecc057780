"""The folder store's link mode: ``put_file(path, link=True)`` stores a file by hard link."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from shipyard.core.errors import IntegrityError, NotFoundError
from shipyard.core.ids import ContentId, content_id_of_bytes
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.artifacts_local import LocalArtifactStore


def leftovers(store: LocalArtifactStore) -> list[str]:
    tmp = store.root / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def test_a_linked_file_is_the_blob_read_only_and_verified(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    assert isinstance(store, ArtifactStore)  # the Protocol still holds
    source = tmp_path / "weights.bin"
    data = os.urandom(3 << 20)
    source.write_bytes(data)

    blob_id = store.put_file(source, link=True)

    assert blob_id == content_id_of_bytes(data)
    assert store.path_of(blob_id).samefile(source)  # no copy
    assert stat.S_IMODE(source.stat().st_mode) & 0o222 == 0  # it is the blob now
    assert store.get_bytes(blob_id) == data
    assert leftovers(store) == []


def test_a_file_hashed_by_the_caller_is_linked_only_if_unchanged(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    source = tmp_path / "data.bin"
    source.write_bytes(b"a" * 5000)
    hashed = os.stat(source)
    blob_id = content_id_of_bytes(b"a" * 5000)
    source.write_bytes(b"b" * 5001)  # changed after the caller hashed it

    with pytest.raises(IntegrityError, match=r"data\.bin changed after it was hashed"):
        store.put_file(source, link=True, hashed_as=(blob_id, hashed))

    assert not store.exists(blob_id)
    assert leftovers(store) == []
    assert source.stat().st_mode & stat.S_IWUSR  # untouched: still the user's to edit
    now = os.stat(source)
    good = content_id_of_bytes(b"b" * 5001)
    assert store.put_file(source, link=True, hashed_as=(good, now)) == good
    assert store.path_of(good).samefile(source)


def test_bytes_already_stored_leave_the_file_alone(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    blob_id = store.put_bytes(b"same bytes")
    source = tmp_path / "copy.bin"
    source.write_bytes(b"same bytes")

    assert store.put_file(source, link=True) == blob_id
    assert not store.path_of(blob_id).samefile(source)
    assert source.stat().st_mode & stat.S_IWUSR


def test_a_file_that_cannot_be_linked_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    source = tmp_path / "elsewhere.bin"
    source.write_bytes(b"on another filesystem")

    def cross_device(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    blob_id = store.put_file(source, link=True)

    assert store.get_bytes(blob_id) == b"on another filesystem"
    assert not store.path_of(blob_id).samefile(source)
    assert source.stat().st_mode & stat.S_IWUSR
    assert leftovers(store) == []


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    missing = tmp_path / "nope.bin"
    with pytest.raises(NotFoundError, match=r"nope\.bin does not exist"):
        store.put_file(missing, link=True)
    with pytest.raises(NotFoundError, match=r"nope\.bin does not exist"):
        store.put_file(
            missing, link=True, hashed_as=(ContentId("sha256:" + "0" * 64), os.stat(tmp_path))
        )
    assert leftovers(store) == []
