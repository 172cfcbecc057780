"""What only the folder store does: its layout, its error messages, crash safety."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from shipyard.core.errors import BackendUnavailableError, IntegrityError
from shipyard.core.ids import content_id_of_bytes
from shipyard.store import artifacts_local
from shipyard.store.artifacts_local import LocalArtifactStore
from shipyard.store.gc import collect_garbage

MiB = 1 << 20


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def test_layout_is_sharded_by_hash_and_blobs_are_read_only(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")

    blob_id = store.put_bytes(b"weights")

    digest = blob_id.removeprefix("sha256:")
    path = tmp_path / "artifacts" / "blobs" / digest[:2] / digest[2:4] / digest
    assert store.path_of(blob_id) == path
    assert files_under(tmp_path / "artifacts") == [path]
    assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0


def test_stray_files_are_not_blobs(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    blob_id = store.put_bytes(b"real")
    (tmp_path / "blobs" / "README").write_text("not a blob")
    misplaced = tmp_path / "blobs" / "00" / "00" / blob_id.removeprefix("sha256:")
    misplaced.parent.mkdir(parents=True)
    misplaced.write_bytes(b"real")

    assert [blob.id for blob in store.iter_blobs()] == [blob_id]


@pytest.mark.parametrize("layout", ["parent is a file", "root is a file"])
def test_unusable_folder_is_one_clear_error(tmp_path: Path, layout: str) -> None:
    blocker = tmp_path / "settings.toml"
    blocker.write_text("")
    root = blocker / "artifacts" if layout == "parent is a file" else blocker
    store = LocalArtifactStore(root)
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")

    for attempt in (
        store.check_writable,
        lambda: store.put_bytes(b"x"),
        lambda: store.put_file(source),
    ):
        with pytest.raises(BackendUnavailableError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message
        assert message == (
            f"Artifact folder {root} is not writable (Not a directory: {blocker} is a file). "
            f"Move {blocker} out of the way or set store.artifacts / SHIPYARD_STORE_ARTIFACTS "
            "to a writable folder."
        )
    assert blocker.read_text() == ""


def test_permission_denied_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(directory: Path, prefix: str, mode: int) -> tuple[int, Path]:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(directory))

    monkeypatch.setattr(artifacts_local, "create_temporary_file", refuse)
    store = LocalArtifactStore(tmp_path / "x")

    with pytest.raises(BackendUnavailableError) as caught:
        store.put_bytes(b"weights")

    assert str(caught.value) == (
        f"Artifact folder {tmp_path / 'x'} is not writable (Permission denied). Fix its "
        "permissions or set store.artifacts / SHIPYARD_STORE_ARTIFACTS to a writable folder."
    )
    assert isinstance(caught.value.__cause__, PermissionError)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores modes")
def test_read_only_folder_is_one_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    root.chmod(0o555)
    try:
        with pytest.raises(BackendUnavailableError, match="Permission denied"):
            LocalArtifactStore(root).put_bytes(b"weights")
    finally:
        root.chmod(0o755)


def test_disk_full_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    store = LocalArtifactStore(tmp_path)
    monkeypatch.setattr(os, "fsync", disk_full)

    with pytest.raises(BackendUnavailableError) as caught:
        store.put_bytes(b"weights" * 1000)

    assert "No space left on device" in str(caught.value)
    assert "Free space on that disk" in str(caught.value)
    assert files_under(tmp_path) == []


def test_process_killed_mid_write_leaves_no_blob(tmp_path: Path) -> None:
    """A real crash: the writer is SIGKILLed while streaming a file into the store."""
    root = tmp_path / "artifacts"
    fifo = tmp_path / "source.fifo"
    os.mkfifo(fifo)
    script = (
        "import sys; from pathlib import Path; "
        "from shipyard.store.artifacts_local import LocalArtifactStore; "
        "LocalArtifactStore(Path(sys.argv[1])).put_file(Path(sys.argv[2]))"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, str(root), str(fifo)])
    try:
        pipe = _open_fifo_for_writing(fifo, writer)
        with os.fdopen(pipe, "wb") as feed:
            feed.write(os.urandom(3 * MiB))  # half of what the reader expects
            feed.flush()
            partial = _wait_for_temporary(root / "tmp", 3 * MiB)
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=10)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=10)

    store = LocalArtifactStore(root)
    assert list(store.iter_blobs()) == []
    assert files_under(root / "blobs") == []
    assert files_under(root / "tmp") == [partial]

    kept_young = collect_garbage(store, set(), grace_seconds=3600)
    assert kept_young.temporaries_removed == 0
    two_hours_ago = time.time() - 7200
    os.utime(partial, (two_hours_ago, two_hours_ago))
    report = collect_garbage(store, set(), grace_seconds=3600)
    assert report.temporaries_removed == 1
    assert files_under(root) == []


def _open_fifo_for_writing(fifo: Path, reader: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:  # ENXIO until the reader has opened its end
            if exc.errno != errno.ENXIO or reader.poll() is not None:
                raise
            time.sleep(0.02)
            continue
        os.set_blocking(fd, True)
        return fd
    raise AssertionError("the writer process never opened the source")


def _wait_for_temporary(folder: Path, size: int) -> Path:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for path in folder.glob("put-*.part"):
            if path.stat().st_size >= size:
                return path
        time.sleep(0.02)
    raise AssertionError(f"no temporary of {size} bytes appeared in {folder}")


def test_put_and_get_stream_in_bounded_memory(tmp_path: Path) -> None:
    data = os.urandom(16 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    del data
    store = LocalArtifactStore(tmp_path / "artifacts")

    tracemalloc.start()
    try:
        blob_id = store.put_file(source)
        store.get_file(blob_id, tmp_path / "copy.bin")
        store.verify(blob_id)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 4 * MiB
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()


def test_putting_an_old_blob_again_protects_it_from_gc(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    blob_id = store.put_bytes(b"dataset v1")
    two_hours_ago = time.time() - 7200
    os.utime(store.path_of(blob_id), (two_hours_ago, two_hours_ago))

    assert store.put_bytes(b"dataset v1") == blob_id  # a new run re-uses the dataset

    report = collect_garbage(store, set(), grace_seconds=3600)
    assert (report.kept_recent, report.deleted) == (1, 0)
    assert store.get_bytes(blob_id) == b"dataset v1"


def test_clean_temporary_keeps_puts_in_progress(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    store.check_writable()
    stale = tmp_path / "tmp" / "put-stale.part"
    fresh = tmp_path / "tmp" / "put-fresh.part"
    stale.write_bytes(b"left by a crash")
    fresh.write_bytes(b"being written")
    long_ago = time.time() - 7200
    os.utime(stale, (long_ago, long_ago))

    assert store.clean_temporary(older_than_seconds=3600) == 1
    assert files_under(tmp_path / "tmp") == [fresh]
    assert store.clean_temporary(older_than_seconds=3600) == 0


def test_store_in_a_missing_folder_reads_as_empty(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "not yet created")

    assert list(store.iter_blobs()) == []
    assert not store.exists(content_id_of_bytes(b"x"))
    assert store.clean_temporary(0) == 0
    assert not (tmp_path / "not yet created").exists()


@pytest.mark.parametrize("how", ["bytes", "file", "link"])
def test_putting_good_bytes_again_repairs_a_truncated_blob(tmp_path: Path, how: str) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    data = b"the model's weights " * 1000
    blob = store.put_bytes(data)
    damaged = store.path_of(blob)
    damaged.chmod(0o644)
    damaged.write_bytes(data[:100])  # a crash or a full disk left it short
    with pytest.raises(IntegrityError):
        store.get_bytes(blob)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    if how == "bytes":
        again = store.put_bytes(data)
    else:
        again = store.put_file(source, link=how == "link")
    assert again == blob
    assert store.get_bytes(blob) == data
