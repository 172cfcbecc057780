"""Reading and writing a version's blobs through the artifact store.

Reads are verified: a blob in a local store is re-hashed once per process, then read in
place (no copy); a blob in a remote store is downloaded (verified) to a scratch folder.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from shipyard.core.ids import ContentId, hex_digest
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.artifacts_local import LocalArtifactStore

__all__ = ["BlobReader", "put_json"]


def put_json(artifacts: ArtifactStore, payload: Any) -> ContentId:
    """Store a JSON document (sorted keys, compact); return its blob id."""
    data = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return artifacts.put_bytes(data)


class BlobReader:
    """Local, verified paths of blobs; downloads remote ones into ``scratch``."""

    def __init__(self, artifacts: ArtifactStore, scratch: Path) -> None:
        self._artifacts = artifacts
        self._scratch = scratch
        self._verified: set[str] = set()
        self._lock = threading.Lock()

    def path(self, blob_id: str) -> Path:
        """A local file holding the blob's (verified) bytes."""
        content_id = ContentId(blob_id)
        with self._lock:
            if isinstance(self._artifacts, LocalArtifactStore):
                if blob_id not in self._verified:
                    self._artifacts.verify(content_id)
                    self._verified.add(blob_id)
                return self._artifacts.path_of(content_id)
            target = self._scratch / hex_digest(content_id)
            if not target.exists():
                self._scratch.mkdir(parents=True, exist_ok=True)
                self._artifacts.get_file(content_id, target)
            return target

    def json(self, blob_id: str) -> Any:
        return json.loads(self._artifacts.get_bytes(ContentId(blob_id)))
