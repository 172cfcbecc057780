"""The artifact store contract, run over every implementation.

A new backend proves itself by adding a parameter to ``artifact_store`` and passing
every test here. The S3 cases run against a real local S3 server (moto, see conftest).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shipyard.core.errors import IntegrityError, NotFoundError, ReferenceError_
from shipyard.core.ids import ContentId, content_id_of_bytes
from shipyard.store.artifacts import ArtifactStore, BlobInfo
from shipyard.store.artifacts_local import LocalArtifactStore
from shipyard.store.artifacts_s3 import S3ArtifactStore
from shipyard.store.gc import collect_garbage

MiB = 1 << 20

OverwriteBlob = Callable[[ContentId, bytes], None]


@pytest.fixture(params=["local", "s3"])
def artifact_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    store: ArtifactStore
    if request.param == "local":
        store = LocalArtifactStore(tmp_path / "artifacts")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        store = S3ArtifactStore(
            f"s3://{bucket}/team/artifacts",
            endpoint_url=endpoint,
            key="testing",
            secret="testing",
            region="us-east-1",
            multipart_chunk_size=5 * MiB,  # so a 12 MiB file goes up as a multipart upload
        )
    with store:
        yield store


@pytest.fixture
def overwrite_blob(artifact_store: ArtifactStore, request: pytest.FixtureRequest) -> OverwriteBlob:
    """Change a stored blob's bytes behind the store's back (disk rot, a stray write)."""
    if isinstance(artifact_store, LocalArtifactStore):
        store = artifact_store

        def overwrite_file(blob_id: ContentId, data: bytes) -> None:
            path = store.path_of(blob_id)
            path.chmod(0o644)
            path.write_bytes(data)

        return overwrite_file

    import boto3

    assert isinstance(artifact_store, S3ArtifactStore)
    s3_store = artifact_store
    client = boto3.client(
        "s3",
        endpoint_url=request.getfixturevalue("s3_endpoint"),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    bucket = request.getfixturevalue("s3_bucket")

    def overwrite_object(blob_id: ContentId, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=s3_store.key_of(blob_id), Body=data)

    return overwrite_object


def location_of(store: ArtifactStore, blob_id: ContentId) -> str:
    if isinstance(store, LocalArtifactStore):
        return str(store.path_of(blob_id))
    assert isinstance(store, S3ArtifactStore)
    return store.location_of(blob_id)


def stored_ids(store: ArtifactStore) -> set[ContentId]:
    return {blob.id for blob in store.iter_blobs()}


def test_store_satisfies_the_protocol(artifact_store: ArtifactStore) -> None:
    assert isinstance(artifact_store, ArtifactStore)
    artifact_store.check_writable()
    assert stored_ids(artifact_store) == set()


def test_same_bytes_same_id_stored_once(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    data = b"tenure,churn\n1,yes\n" * 1000
    source = tmp_path / "churn.csv"
    source.write_bytes(data)

    first = artifact_store.put_bytes(data)
    again = artifact_store.put_bytes(data)
    from_file = artifact_store.put_file(source)

    assert first == again == from_file == content_id_of_bytes(data)
    assert [blob.id for blob in artifact_store.iter_blobs()] == [first]
    assert artifact_store.get_bytes(first) == data


def test_put_file_round_trips_a_multi_megabyte_file(
    artifact_store: ArtifactStore, tmp_path: Path
) -> None:
    data = os.urandom(12 * MiB + 7)  # not a whole number of chunks or parts
    source = tmp_path / "model.bin"
    source.write_bytes(data)

    blob_id = artifact_store.put_file(source)
    restored = artifact_store.get_file(blob_id, tmp_path / "restored" / "model.bin")

    assert blob_id == content_id_of_bytes(data)
    assert restored == tmp_path / "restored" / "model.bin"
    assert restored.read_bytes() == data
    assert artifact_store.get_bytes(blob_id) == data
    assert artifact_store.info(blob_id).size == len(data)
    artifact_store.verify(blob_id)


def test_empty_blob(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    empty_file = tmp_path / "empty"
    empty_file.write_bytes(b"")

    blob_id = artifact_store.put_bytes(b"")

    assert artifact_store.put_file(empty_file) == blob_id == content_id_of_bytes(b"")
    assert artifact_store.get_bytes(blob_id) == b""
    assert artifact_store.get_file(blob_id, tmp_path / "out").read_bytes() == b""
    assert artifact_store.info(blob_id).size == 0
    artifact_store.verify(blob_id)


def test_corrupted_blob_is_detected_and_named(
    artifact_store: ArtifactStore, overwrite_blob: OverwriteBlob, tmp_path: Path
) -> None:
    blob_id = artifact_store.put_bytes(b"the real model")
    overwrite_blob(blob_id, b"the real modeL")

    for read in (
        lambda: artifact_store.get_bytes(blob_id),
        lambda: artifact_store.get_file(blob_id, tmp_path / "model.bin"),
        lambda: artifact_store.verify(blob_id),
    ):
        with pytest.raises(IntegrityError) as caught:
            read()
        message = str(caught.value)
        assert blob_id in message
        assert location_of(artifact_store, blob_id) in message
        assert content_id_of_bytes(b"the real modeL") in message
        assert "put the original file again" in (caught.value.hint or "")
    assert not (tmp_path / "model.bin").exists()


def test_get_file_never_leaves_corrupted_or_partial_bytes_at_destination(
    artifact_store: ArtifactStore, overwrite_blob: OverwriteBlob, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB)
    blob_id = artifact_store.put_bytes(data)
    overwrite_blob(blob_id, data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    destination = out_dir / "model.bin"
    destination.write_bytes(b"previous version")

    with pytest.raises(IntegrityError):
        artifact_store.get_file(blob_id, destination)

    assert destination.read_bytes() == b"previous version"
    assert sorted(path.name for path in out_dir.iterdir()) == ["model.bin"]


def test_missing_blob(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    missing = content_id_of_bytes(b"never stored")

    for read in (
        lambda: artifact_store.get_bytes(missing),
        lambda: artifact_store.get_file(missing, tmp_path / "out"),
        lambda: artifact_store.info(missing),
        lambda: artifact_store.verify(missing),
    ):
        with pytest.raises(NotFoundError) as caught:
            read()
        assert missing in str(caught.value)
        assert artifact_store.uri in str(caught.value)
    assert not artifact_store.exists(missing)
    assert artifact_store.delete(missing) is False
    assert not (tmp_path / "out").exists()


def test_malformed_id_never_names_a_path(artifact_store: ArtifactStore) -> None:
    with pytest.raises(ReferenceError_):
        artifact_store.get_bytes(ContentId("sha256:../../../etc/passwd"))


def test_iter_blobs_info_and_delete(artifact_store: ArtifactStore) -> None:
    before = time.time()
    payloads = [b"a" * 10, b"b" * 2000, b"c"]
    ids = [artifact_store.put_bytes(data) for data in payloads]

    listed = {blob.id: blob for blob in artifact_store.iter_blobs()}

    assert set(listed) == set(ids)
    for blob_id, data in zip(ids, payloads, strict=True):
        info = artifact_store.info(blob_id)
        assert info == listed[blob_id]
        assert info == BlobInfo(id=blob_id, size=len(data), modified=info.modified)
        # S3 keeps whole seconds; allow for that and a little clock drift.
        assert before - 2 <= info.modified <= time.time() + 2
        assert artifact_store.exists(blob_id)

    assert artifact_store.delete(ids[1]) is True
    assert artifact_store.delete(ids[1]) is False
    assert not artifact_store.exists(ids[1])
    assert stored_ids(artifact_store) == {ids[0], ids[2]}


def test_gc_deletes_only_unreferenced_blobs_older_than_the_grace_period(
    artifact_store: ArtifactStore,
) -> None:
    kept, dropped_small, dropped_large = (
        artifact_store.put_bytes(data) for data in (b"kept", b"old", b"older" * 100)
    )
    hours_later = time.time() + 7200

    recent = collect_garbage(artifact_store, {kept}, grace_seconds=3600)
    dry = collect_garbage(
        artifact_store, {kept}, grace_seconds=3600, dry_run=True, clock=lambda: hours_later
    )

    assert (recent.examined, recent.kept_referenced, recent.kept_recent, recent.deleted) == (
        3,
        1,
        2,
        0,
    )
    assert dry.dry_run
    assert set(dry.deleted_ids) == {dropped_small, dropped_large}
    assert dry.bytes_freed == 3 + 500
    assert stored_ids(artifact_store) == {kept, dropped_small, dropped_large}

    report = collect_garbage(
        artifact_store, lambda: {kept}, grace_seconds=3600, clock=lambda: hours_later
    )

    assert set(report.deleted_ids) == {dropped_small, dropped_large}
    assert (report.examined, report.kept_referenced, report.deleted) == (3, 1, 2)
    assert report.bytes_freed == 3 + 500
    assert stored_ids(artifact_store) == {kept}
    assert artifact_store.get_bytes(kept) == b"kept"


class _ReferenceRecordedDuringListing:
    """A store whose listing lets a writer record a reference before the listing ends."""

    def __init__(self, store: ArtifactStore, on_listed: Callable[[], None]) -> None:
        self._store = store
        self._on_listed = on_listed

    def iter_blobs(self) -> Iterator[BlobInfo]:
        yield from self._store.iter_blobs()
        self._on_listed()

    def info(self, blob_id: ContentId) -> BlobInfo:
        return self._store.info(blob_id)

    def delete(self, blob_id: ContentId) -> bool:
        return self._store.delete(blob_id)


def test_gc_reads_references_after_listing(artifact_store: ArtifactStore) -> None:
    blob_id = artifact_store.put_bytes(b"referenced while GC was listing")
    references: set[ContentId] = set()
    racing = _ReferenceRecordedDuringListing(
        artifact_store, on_listed=lambda: references.add(blob_id)
    )

    report = collect_garbage(
        racing,  # type: ignore[arg-type]
        lambda: set(references),
        grace_seconds=0,
        clock=lambda: time.time() + 60,
    )

    assert report.kept_referenced == 1
    assert artifact_store.exists(blob_id)


def test_putting_stored_bytes_again_renews_their_write_time(
    artifact_store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    if isinstance(artifact_store, S3ArtifactStore):
        monkeypatch.setattr(artifact_store, "refresh_after_seconds", 0.0)
    blob_id = artifact_store.put_bytes(b"re-used by a new run")
    first = artifact_store.info(blob_id).modified
    time.sleep(1.1)  # S3 write times have whole-second resolution

    artifact_store.put_bytes(b"re-used by a new run")

    renewed = artifact_store.info(blob_id).modified
    assert renewed > first
    report = collect_garbage(
        artifact_store, set(), grace_seconds=3600, clock=lambda: first + 3600.5
    )
    assert report.kept_recent == 1
    assert artifact_store.exists(blob_id)


def test_concurrent_puts_lose_nothing(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    shared = b"the same features, logged by every worker" * 1000
    distinct = [f"run {index} metrics ".encode() * (index * 50 + 1) for index in range(24)]
    jobs: list[tuple[str, bytes]] = [("bytes", shared)] * 8 + [("file", shared)] * 8
    jobs += [("bytes" if index % 2 else "file", data) for index, data in enumerate(distinct)]
    counter = iter(range(len(jobs)))
    lock = threading.Lock()

    def put(job: tuple[str, bytes]) -> ContentId:
        kind, data = job
        if kind == "bytes":
            return artifact_store.put_bytes(data)
        with lock:
            path = tmp_path / f"source-{next(counter)}"
        path.write_bytes(data)
        return artifact_store.put_file(path)

    with ThreadPoolExecutor(max_workers=8) as pool:
        returned = list(pool.map(put, jobs))

    assert returned == [content_id_of_bytes(data) for _, data in jobs]
    assert stored_ids(artifact_store) == set(returned)
    assert len(set(returned)) == 25
    for _, data in jobs:
        assert artifact_store.get_bytes(content_id_of_bytes(data)) == data
