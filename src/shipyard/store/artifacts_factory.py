"""Open the artifact store a URI names: a local folder, ``file://...`` or ``s3://...``.

>>> store = open_artifact_store("artifacts", base_dir=Path("/srv/shipyard"))
>>> store.uri
'/srv/shipyard/artifacts'
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shipyard.core.errors import ConfigError
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.artifacts_local import LocalArtifactStore

__all__ = ["SUPPORTED_LOCATIONS", "open_artifact_store"]

SUPPORTED_LOCATIONS = "a local folder path, a file:// URI or an s3://bucket/prefix URI"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def open_artifact_store(
    uri: str, *, base_dir: Path | None = None, s3_endpoint_url: str | None = None
) -> ArtifactStore:
    """The artifact store at ``uri``; creating it sends no request and writes nothing.

    A relative folder is resolved against ``base_dir`` (the current folder if omitted).
    ``s3_endpoint_url`` points ``s3://`` stores at MinIO, Ceph or a test server. Raises
    ``ConfigError`` for an unsupported scheme, a malformed URI, or ``s3://`` without the
    ``shipyard[s3]`` extra installed.
    """
    text = uri.strip()
    if not text:
        raise ConfigError(
            "The artifact store location is empty.",
            hint=f"Set store.artifacts / SHIPYARD_STORE_ARTIFACTS to {SUPPORTED_LOCATIONS}.",
        )
    scheme_match = _SCHEME.match(text)
    if scheme_match is None:
        return LocalArtifactStore(_absolute(Path(text).expanduser(), base_dir))
    scheme = scheme_match.group(1).lower()
    if scheme == "file":
        return LocalArtifactStore(_absolute(_file_uri_path(text), base_dir))
    if scheme == "s3":
        from shipyard.store.artifacts_s3 import S3ArtifactStore

        return S3ArtifactStore(text, endpoint_url=s3_endpoint_url)
    raise ConfigError(
        f"Artifact store URI {uri!r} uses the unsupported scheme '{scheme}://'.",
        hint=f"Use {SUPPORTED_LOCATIONS}.",
    )


def _absolute(path: Path, base_dir: Path | None) -> Path:
    if path.is_absolute():
        return path
    return (base_dir if base_dir is not None else Path.cwd()).absolute() / path


def _file_uri_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"Artifact store URI {uri!r} names the host {parts.netloc!r}; file:// URIs "
            "can only name this machine.",
            hint="Write file:///absolute/path, or mount the remote folder and use its path.",
        )
    if not parts.path:
        raise ConfigError(
            f"Artifact store URI {uri!r} names no folder.", hint="Write file:///absolute/path."
        )
    return Path(unquote(parts.path))
