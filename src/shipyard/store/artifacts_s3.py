"""The artifact store in an S3 bucket (AWS, MinIO, Ceph...): ``prefix/blobs/ab/cd/<hex>``.

An S3 PUT is atomic per object (a multipart upload becomes visible only when completed),
so a reader sees the whole blob or none. Reads re-hash the bytes. s3fs, botocore and
socket errors are wrapped at this boundary (worded by ``artifacts_s3_errors``): an
unreachable endpoint, a missing bucket or a refused request becomes
``BackendUnavailableError`` naming the store, the endpoint and the fix.

``s3fs`` (the ``shipyard[s3]`` extra) is imported when a store is created, not before, so
``import shipyard`` stays fast.

Example::

    with S3ArtifactStore("s3://ml-artifacts/churn", endpoint_url="http://minio:9000") as store:
        blob_id = store.put_file(Path("model.pkl"))
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shipyard.core.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    ShipyardError,
)
from shipyard.core.ids import ContentId, content_id_of_bytes, content_id_of_stream
from shipyard.store.artifacts import BlobInfo
from shipyard.store.artifacts_blobs import (
    CHUNK_SIZE,
    blob_id_from_key,
    blob_key,
    blob_not_found,
    open_source_file,
    verify_chunks,
    write_verified_file,
)
from shipyard.store.artifacts_s3_errors import bucket_missing, translate_s3_error

__all__ = ["S3ArtifactStore", "parse_s3_uri"]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MIN_PART_SIZE = 5 * 2**20  # S3's smallest multipart part
_MAX_COPY_SIZE = 5 * 2**30  # S3's largest single-request copy
_READ_BLOCK_SIZE = 8 * 2**20


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into ``(bucket, prefix)``; ``ConfigError`` if malformed.

    >>> parse_s3_uri("s3://ml-artifacts/teams/churn/")
    ('ml-artifacts', 'teams/churn')
    """
    if not uri.startswith("s3://"):
        raise ConfigError(
            f"{uri!r} is not an S3 URI.", hint="Write it as s3://bucket or s3://bucket/prefix."
        )
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError(
            f"S3 URI {uri!r} names no bucket.", hint="Write it as s3://bucket/prefix."
        )
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(
            f"S3 URI {uri!r} has an invalid bucket name {bucket!r}.",
            hint="A bucket name is 3-63 lowercase letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit.",
        )
    return bucket, prefix.strip("/")


class S3ArtifactStore:
    """Content-addressed blobs under ``s3://bucket/prefix``. Creating it sends no request.

    ``retries`` is how many times a failed request is retried (with backoff) before the
    store gives up; ``connect_timeout`` / ``read_timeout`` are in seconds. Credentials come
    from ``key`` / ``secret`` or the usual AWS sources (environment, profile, role).

    Putting bytes that are already stored refreshes the object's write time (a server-side
    copy) when it is older than ``refresh_after_seconds``, so GC's grace period covers the
    caller until it records its reference.
    """

    refresh_after_seconds: float = 60.0

    def __init__(
        self,
        uri: str,
        *,
        endpoint_url: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        region: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retries: int = 2,
        multipart_chunk_size: int = 16 * 2**20,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self._bucket, self._prefix = parse_s3_uri(uri)
        if multipart_chunk_size < _MIN_PART_SIZE:
            raise ConfigError(
                f"multipart_chunk_size {multipart_chunk_size} is below S3's minimum part "
                f"size of {_MIN_PART_SIZE} bytes.",
                hint="Use at least 5 MiB.",
            )
        try:
            import s3fs
        except ImportError as exc:
            raise ConfigError(
                f"The artifact store {uri} needs s3fs, which is not installed.",
                hint="Install the S3 extra: pip install 'shipyard[s3]'.",
            ) from exc
        client = dict(client_kwargs or {})
        if region:
            client.setdefault("region_name", region)
        self._endpoint = endpoint_url
        self._chunk_size = multipart_chunk_size
        self._bucket_seen = False
        self._fs: Any = s3fs.S3FileSystem(
            endpoint_url=endpoint_url,
            key=key,
            secret=secret,
            client_kwargs=client,
            config_kwargs={
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
                "retries": {"total_max_attempts": retries + 1, "mode": "standard"},
            },
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        # botocore retries requests; s3fs's own loop adds at most one retry of a body
        # read cut short, which botocore cannot see.
        self._fs.retries = 1 + min(retries, 1)

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.uri!r}, endpoint_url={self._endpoint!r})"

    @property
    def uri(self) -> str:
        """``s3://bucket/prefix`` (or ``s3://bucket``)."""
        return f"s3://{self._bucket}/{self._prefix}" if self._prefix else f"s3://{self._bucket}"

    def key_of(self, blob_id: ContentId) -> str:
        """The object key a blob is (or would be) stored under."""
        return self._key("blobs/" + blob_key(blob_id))

    def location_of(self, blob_id: ContentId) -> str:
        """The blob's full ``s3://`` address."""
        return f"s3://{self._bucket}/{self.key_of(blob_id)}"

    # --- writing ------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> ContentId:
        """Store ``data`` with one PUT; return its content id. Idempotent."""
        blob_id = content_id_of_bytes(data)
        if not self._refresh(blob_id):
            with self._boundary("uploading a blob"):
                self._fs.pipe_file(
                    self._path(blob_id),
                    data,
                    chunksize=self._chunk_size,
                    ContentType="application/octet-stream",
                )
        return blob_id

    def put_file(self, path: Path) -> ContentId:
        """Store a file's bytes; return its content id.

        The file is hashed in a first streamed pass (the key depends on the hash), then
        uploaded; above ``2 * multipart_chunk_size`` bytes as a multipart upload, which S3
        makes visible only once complete. If the file changes in between, the upload is
        removed and ``IntegrityError`` says so.
        """
        path = Path(path)
        with open_source_file(path) as source:
            before = _fingerprint(path)
            blob_id = content_id_of_stream(source)
        if self._refresh(blob_id):
            return blob_id
        with self._boundary(f"uploading {path}"):
            self._fs.put_file(
                str(path),
                self._path(blob_id),
                chunksize=self._chunk_size,
                max_concurrency=4,
                ContentType="application/octet-stream",
            )
        if _fingerprint(path) != before:
            self.delete(blob_id)
            raise IntegrityError(
                f"File {path} changed while it was being stored as {blob_id}; nothing was stored.",
                hint="Put it again once nothing is writing to it.",
            )
        return blob_id

    def _refresh(self, blob_id: ContentId) -> bool:
        """If the blob is stored, renew its write time when stale and return True."""
        head = self._head(blob_id)
        if head is None:
            return False
        age = time.time() - head["LastModified"].timestamp()
        if age < self.refresh_after_seconds or int(head["ContentLength"]) > _MAX_COPY_SIZE:
            return True
        key = self.key_of(blob_id)
        try:
            with self._boundary("refreshing a blob", blob_id=blob_id):
                self._fs.call_s3(
                    "copy_object",
                    Bucket=self._bucket,
                    Key=key,
                    CopySource={"Bucket": self._bucket, "Key": key},
                    MetadataDirective="REPLACE",
                    Metadata=dict(head.get("Metadata") or {}),
                    ContentType="application/octet-stream",
                )
        except NotFoundError:  # deleted since the HEAD: write it again
            return False
        return True

    # --- reading ------------------------------------------------------------------------

    def get_bytes(self, blob_id: ContentId) -> bytes:
        """Return a blob's bytes, verified. ``NotFoundError`` / ``IntegrityError``."""
        with self._boundary("reading a blob", blob_id=blob_id):
            data = bytes(self._fs.cat_file(self._path(blob_id)))
        verify_chunks([data], blob_id, self.location_of(blob_id), self._repair_hint(blob_id))
        return data

    def get_file(self, blob_id: ContentId, destination: Path) -> Path:
        """Download a blob to ``destination`` atomically, verified; return the path."""
        with self._open_blob(blob_id) as source:
            return write_verified_file(
                self._chunks(source, blob_id),
                blob_id,
                destination,
                self.location_of(blob_id),
                self._repair_hint(blob_id),
            )

    def verify(self, blob_id: ContentId) -> None:
        """Re-hash a stored blob; raise ``IntegrityError`` if it changed."""
        with self._open_blob(blob_id) as source:
            verify_chunks(
                self._chunks(source, blob_id),
                blob_id,
                self.location_of(blob_id),
                self._repair_hint(blob_id),
            )

    def exists(self, blob_id: ContentId) -> bool:
        """Whether the blob is stored (one HEAD request; does not verify its bytes)."""
        return self._head(blob_id) is not None

    def info(self, blob_id: ContentId) -> BlobInfo:
        """Size and write time of a blob. ``NotFoundError`` if absent."""
        head = self._head(blob_id)
        if head is None:
            raise blob_not_found(blob_id, self.uri)
        return BlobInfo(
            id=blob_id,
            size=int(head["ContentLength"]),
            modified=head["LastModified"].timestamp(),
        )

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob (paged listing), with sizes and write times."""
        for item in self._list("list_objects_v2", self._key("blobs/"), "Contents"):
            blob_id = blob_id_from_key(str(item["Key"]))
            if blob_id is not None:
                yield BlobInfo(
                    id=blob_id,
                    size=int(item["Size"]),
                    modified=item["LastModified"].timestamp(),
                )

    # --- removing -----------------------------------------------------------------------

    def delete(self, blob_id: ContentId) -> bool:
        """Remove a blob; return whether it was there."""
        if self._head(blob_id) is None:
            return False
        with self._boundary("deleting a blob"):
            self._fs.call_s3("delete_object", Bucket=self._bucket, Key=self.key_of(blob_id))
        return True

    def clean_temporary(self, older_than_seconds: float) -> int:
        """Abort multipart uploads of blobs left by interrupted puts; return how many.

        Only uploads started more than ``older_than_seconds`` ago go: a younger one may be
        a put in progress. (S3 bills the parts of an abandoned upload until it is aborted.)
        """
        cutoff = time.time() - older_than_seconds
        aborted = 0
        for upload in self._list("list_multipart_uploads", self._key("blobs/"), "Uploads"):
            if upload["Initiated"].timestamp() >= cutoff:
                continue
            with self._boundary("aborting a stale upload"):
                try:
                    self._fs.call_s3(
                        "abort_multipart_upload",
                        Bucket=self._bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )
                except FileNotFoundError:  # completed or aborted by its writer meanwhile
                    continue
            aborted += 1
        return aborted

    # --- lifecycle ----------------------------------------------------------------------

    def check_writable(self) -> None:
        """Write and delete a probe object under ``prefix/tmp/``; ``BackendUnavailableError``
        naming the store, the endpoint and the fix if that fails."""
        key = self._key(f"tmp/write-check-{secrets.token_hex(8)}")
        with self._boundary("writing a probe object"):
            self._fs.call_s3("put_object", Bucket=self._bucket, Key=key, Body=b"")
            self._fs.call_s3("delete_object", Bucket=self._bucket, Key=key)

    def close(self) -> None:
        """Drop the connection pool; s3fs closes its session when it is collected."""
        self._fs = None

    def __enter__(self) -> S3ArtifactStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------

    def _key(self, relative: str) -> str:
        return f"{self._prefix}/{relative}" if self._prefix else relative

    def _path(self, blob_id: ContentId) -> str:
        return f"{self._bucket}/{self.key_of(blob_id)}"

    def _head(self, blob_id: ContentId) -> dict[str, Any] | None:
        try:
            with self._boundary("looking up a blob", blob_id=blob_id):
                head: dict[str, Any] = self._fs.call_s3(
                    "head_object", Bucket=self._bucket, Key=self.key_of(blob_id)
                )
        except NotFoundError:
            return None
        return head

    def _list(self, operation: str, prefix: str, field: str) -> Iterator[dict[str, Any]]:
        """Every item of a paged S3 listing (objects or multipart uploads) under prefix."""
        markers: dict[str, str] = {}
        while True:
            with self._boundary("listing blobs"):
                page = self._fs.call_s3(operation, Bucket=self._bucket, Prefix=prefix, **markers)
            yield from page.get(field, [])
            if not page.get("IsTruncated"):
                return
            if operation == "list_objects_v2":
                markers = {"ContinuationToken": page["NextContinuationToken"]}
            else:
                markers = {
                    "KeyMarker": page["NextKeyMarker"],
                    "UploadIdMarker": page["NextUploadIdMarker"],
                }

    @contextmanager
    def _open_blob(self, blob_id: ContentId) -> Iterator[Any]:
        with self._boundary("opening a blob", blob_id=blob_id):
            source = self._fs.open(
                self._path(blob_id), "rb", block_size=_READ_BLOCK_SIZE, cache_type="readahead"
            )
        try:
            yield source
        finally:
            source.close()

    def _chunks(self, source: Any, blob_id: ContentId) -> Iterator[bytes]:
        while True:
            with self._boundary("reading a blob", blob_id=blob_id):
                chunk = bytes(source.read(CHUNK_SIZE))
            if not chunk:
                return
            yield chunk

    @contextmanager
    def _boundary(self, action: str, *, blob_id: ContentId | None = None) -> Iterator[None]:
        """Turn s3fs / botocore / socket errors into Shipyard errors naming the store.

        With ``blob_id``, "not found" means the blob is absent (once the bucket is known
        to exist); without, it can only mean the bucket is missing.
        """
        if self._fs is None:
            raise BackendError(
                f"The artifact store {self.uri} is closed.",
                hint="Open it again with open_artifact_store().",
            )
        try:
            yield
        except ShipyardError:
            raise
        except FileNotFoundError as exc:
            if blob_id is not None and self._bucket_exists():
                raise blob_not_found(blob_id, self.uri) from exc
            raise bucket_missing(self.uri, self._bucket, self._endpoint) from exc
        except Exception as exc:
            translated = translate_s3_error(
                exc, store_uri=self.uri, endpoint=self._endpoint, action=action
            )
            if translated is None:
                raise
            raise translated from exc

    def _bucket_exists(self) -> bool:
        if self._bucket_seen:
            return True
        try:
            with self._boundary("checking the bucket"):
                self._fs.call_s3("head_bucket", Bucket=self._bucket)
        except BackendUnavailableError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):  # only a missing bucket
                return False
            raise
        self._bucket_seen = True
        return True

    def _repair_hint(self, blob_id: ContentId) -> str:
        return (
            f"Delete {self.location_of(blob_id)} and put the original file again, or "
            "restore the object from a backup or an earlier object version."
        )


def _fingerprint(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns
