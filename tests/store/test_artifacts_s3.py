"""What only the S3 store does: its failures at the boundary, uploads, stale multiparts."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.errors import (
    BackendError,
    BackendUnavailableError,
    IntegrityError,
    NotFoundError,
)
from shipyard.core.ids import content_id_of_bytes
from shipyard.store.artifacts_s3 import S3ArtifactStore
from shipyard.store.gc import collect_garbage

CREDENTIALS: dict[str, Any] = {"key": "testing", "secret": "testing", "region": "us-east-1"}


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3_store(s3_endpoint: str, s3_bucket: str) -> S3ArtifactStore:
    return S3ArtifactStore(f"s3://{s3_bucket}/ml", endpoint_url=s3_endpoint, **CREDENTIALS)


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def test_unreachable_endpoint_fails_fast_with_one_clear_line() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    store = S3ArtifactStore(
        "s3://ml-artifacts/churn",
        endpoint_url=endpoint,
        connect_timeout=2,
        retries=1,
        **CREDENTIALS,
    )
    started = time.monotonic()

    for attempt in (
        lambda: store.put_bytes(b"weights"),
        lambda: store.exists(content_id_of_bytes(b"weights")),
        lambda: list(store.iter_blobs()),
        store.check_writable,
    ):
        with pytest.raises(BackendUnavailableError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(
            f"Cannot reach S3 at {endpoint} for the artifact store s3://ml-artifacts/churn"
        )
        assert "Check that the service is running" in message

    assert time.monotonic() - started < 20


def test_missing_bucket_is_named_not_reported_as_missing_blob(s3_endpoint: str) -> None:
    store = S3ArtifactStore("s3://no-such-bucket/ml", endpoint_url=s3_endpoint, **CREDENTIALS)

    for attempt in (
        lambda: store.get_bytes(content_id_of_bytes(b"x")),
        lambda: store.put_bytes(b"x"),
        lambda: list(store.iter_blobs()),
        store.check_writable,
    ):
        with pytest.raises(BackendUnavailableError) as caught:
            attempt()
        message = str(caught.value)
        assert "S3 bucket 'no-such-bucket' of the artifact store s3://no-such-bucket/ml" in message
        assert f"does not exist at {s3_endpoint}" in message
        assert "aws s3 mb s3://no-such-bucket" in message


def test_blobs_live_under_the_prefix(
    s3_store: S3ArtifactStore, s3_bucket: str, s3_client: Any
) -> None:
    blob_id = s3_store.put_bytes(b"weights")
    digest = blob_id.removeprefix("sha256:")

    assert s3_store.uri == f"s3://{s3_bucket}/ml"
    assert s3_store.key_of(blob_id) == f"ml/blobs/{digest[:2]}/{digest[2:4]}/{digest}"
    assert s3_store.location_of(blob_id) == f"s3://{s3_bucket}/{s3_store.key_of(blob_id)}"
    s3_store.check_writable()
    listing = s3_client.list_objects_v2(Bucket=s3_bucket)
    # the write probe cleaned up after itself
    assert [item["Key"] for item in listing["Contents"]] == [s3_store.key_of(blob_id)]


def test_file_changed_during_upload_is_not_stored(
    s3_store: S3ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "features.parquet"
    source.write_bytes(b"version one")
    upload = s3_store._fs.put_file

    def upload_while_someone_writes(*args: Any, **kwargs: Any) -> None:
        upload(*args, **kwargs)
        source.write_bytes(b"version two, written during the upload")

    monkeypatch.setattr(s3_store._fs, "put_file", upload_while_someone_writes)

    with pytest.raises(IntegrityError, match="changed while it was being stored"):
        s3_store.put_file(source)

    assert list(s3_store.iter_blobs()) == []


def test_gc_aborts_stale_multipart_uploads(
    s3_store: S3ArtifactStore, s3_bucket: str, s3_client: Any
) -> None:
    key = s3_store.key_of(content_id_of_bytes(b"a crashed upload"))
    s3_client.create_multipart_upload(Bucket=s3_bucket, Key=key)
    assert len(s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])) == 1

    dry = collect_garbage(s3_store, set(), dry_run=True)
    assert dry.temporaries_removed == 0
    # moto dates every upload in 2010, so it is stale for any grace period.
    report = collect_garbage(s3_store, set(), grace_seconds=3600)

    assert report.temporaries_removed == 1
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_missing_source_file_is_not_found(s3_store: S3ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        s3_store.put_file(tmp_path / "nowhere.csv")


def test_closed_store_says_so(s3_store: S3ArtifactStore) -> None:
    with s3_store:
        blob_id = s3_store.put_bytes(b"weights")

    with pytest.raises(BackendError, match="is closed"):
        s3_store.get_bytes(blob_id)
