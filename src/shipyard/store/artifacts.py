"""The artifact store interface: content-addressed, immutable blobs.

Every implementation (``artifacts_local.LocalArtifactStore``, ``artifacts_s3.S3ArtifactStore``)
keeps these promises, proven by ``tests/store/test_artifacts_conformance.py``:

- the id of a blob is the content id of its bytes (``sha256:<hex>``): same bytes, same id,
  and putting the same bytes twice stores them once;
- a write is atomic: a reader sees the whole blob or no blob, never a partial one;
- every read verifies the hash and raises ``IntegrityError`` naming the blob and where it
  lives if the stored bytes changed;
- ``delete`` and ``iter_blobs`` exist for garbage collection (see ``store.gc``); putting
  bytes that are already stored renews their write time, so GC's grace period covers a
  caller that is about to record its reference to them.

``artifacts_blobs`` holds the layout (``blobs/ab/cd/<hex>``) and the verified-read helpers
the implementations share; ``artifacts_factory.open_artifact_store`` picks one from a URI.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from shipyard.core.ids import ContentId

__all__ = ["ArtifactStore", "BlobInfo"]


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What the store knows of one blob without reading it."""

    id: ContentId
    size: int
    modified: float
    """Seconds since the epoch when the blob was written (used by GC's grace period)."""


@runtime_checkable
class ArtifactStore(Protocol):
    """Content-addressed blob storage. Use as a context manager or call ``close()``."""

    @property
    def uri(self) -> str:
        """Where the store lives: a folder path or ``s3://bucket/prefix``."""
        ...

    def put_bytes(self, data: bytes) -> ContentId:
        """Store ``data``; return its content id. Idempotent (see the module docstring)."""
        ...

    def put_file(self, path: Path) -> ContentId:
        """Store a file's bytes (streamed, not read into memory whole); return its id."""
        ...

    def get_bytes(self, blob_id: ContentId) -> bytes:
        """Return a blob's bytes, verified. ``NotFoundError`` / ``IntegrityError``."""
        ...

    def get_file(self, blob_id: ContentId, destination: Path) -> Path:
        """Write a blob to ``destination`` atomically, verified; return the path."""
        ...

    def exists(self, blob_id: ContentId) -> bool:
        """Whether the blob is stored (does not verify its bytes)."""
        ...

    def info(self, blob_id: ContentId) -> BlobInfo:
        """Size and write time of a blob. ``NotFoundError`` if absent."""
        ...

    def verify(self, blob_id: ContentId) -> None:
        """Re-hash a stored blob; raise ``IntegrityError`` if it changed."""
        ...

    def delete(self, blob_id: ContentId) -> bool:
        """Remove a blob; return whether it was there."""
        ...

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob, in no particular order."""
        ...

    def check_writable(self) -> None:
        """Raise ``BackendUnavailableError`` with a fix if the store cannot be written."""
        ...

    def close(self) -> None:
        """Release connections and file handles."""
        ...

    def __enter__(self) -> ArtifactStore: ...

    def __exit__(self, *exc_info: object) -> None: ...
