"""What every artifact store shares: the blob layout, verified reads, and their errors.

Every implementation files a blob under ``blobs/ab/cd/<64 hex>`` (``blob_key``) below its
root or prefix, hashes what it reads (``verify_chunks``, ``write_verified_file``), and
words "missing" and "corrupted" the same way, so a user meets one set of messages.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import IO

from shipyard.core.errors import IntegrityError, NotFoundError
from shipyard.core.ids import ContentId, hex_digest, parse_content_id

__all__ = [
    "CHUNK_SIZE",
    "blob_id_from_key",
    "blob_key",
    "blob_not_found",
    "create_temporary_file",
    "open_source_file",
    "verify_chunks",
    "write_verified_file",
]

CHUNK_SIZE = 1 << 20
"""Bytes read or written at a time: a streamed blob is never held in memory whole."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILE_MODE = 0o666  # a downloaded file is the caller's, subject to their umask


def blob_key(blob_id: ContentId) -> str:
    """Where a blob lives below ``blobs/``: ``ab/cd/<64 hex>``.

    The id is validated first, so a malformed id can never name a path outside a store.

    >>> blob_key(ContentId("sha256:" + "ab" * 32))[:6]
    'ab/ab/'
    """
    digest = hex_digest(parse_content_id(blob_id))
    return f"{digest[:2]}/{digest[2:4]}/{digest}"


def blob_id_from_key(key: str) -> ContentId | None:
    """The blob id a ``.../ab/cd/<hex>`` key or path names, or ``None`` for a stray entry."""
    parts = key.replace(os.sep, "/").split("/")
    if len(parts) < 3:
        return None
    first, second, digest = parts[-3:]
    if not _HEX64.fullmatch(digest) or first != digest[:2] or second != digest[2:4]:
        return None
    return ContentId("sha256:" + digest)


def blob_not_found(blob_id: ContentId, store_uri: str) -> NotFoundError:
    """The ``NotFoundError`` every store raises for a blob it does not hold."""
    return NotFoundError(
        f"Blob {blob_id} is not in the artifact store {store_uri}.",
        hint="Check the id; if the blob was garbage-collected, put the original again.",
    )


def open_source_file(path: Path) -> IO[bytes]:
    """Open a file to be stored; ``NotFoundError`` if it does not exist."""
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"File {path} does not exist, so it cannot be stored.", hint="Check the path."
        ) from exc


def verify_chunks(chunks: Iterable[bytes], blob_id: ContentId, location: str, hint: str) -> None:
    """Hash ``chunks``; raise ``IntegrityError`` naming the blob and ``location`` unless
    they hash to ``blob_id``. ``hint`` says how to repair that store."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    actual = "sha256:" + digest.hexdigest()
    if actual != blob_id:
        raise IntegrityError(
            f"Blob {blob_id} at {location} is corrupted: its bytes now hash to {actual}.",
            hint=hint,
        )


def write_verified_file(
    chunks: Iterable[bytes], blob_id: ContentId, destination: Path, location: str, hint: str
) -> Path:
    """Stream ``chunks`` to ``destination`` atomically, verified as in ``verify_chunks``.

    The bytes go to a temporary file beside ``destination`` that replaces it only once the
    hash matches, so corrupted or partial bytes never land there. Errors writing
    ``destination`` itself (the caller's path) are the caller's ``OSError``.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = create_temporary_file(destination.parent, f".{destination.name}.", _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:

            def written() -> Iterable[bytes]:
                for chunk in chunks:
                    out.write(chunk)
                    yield chunk

            verify_chunks(written(), blob_id, location, hint)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, destination)
    finally:
        with suppress(FileNotFoundError):
            temp.unlink()
    return destination


def create_temporary_file(directory: Path, prefix: str, mode: int) -> tuple[int, Path]:
    """Create a new, uniquely named file opened for writing; ``mode`` is masked by the
    umask (unlike ``tempfile``, which always gives 0600)."""
    path = directory / f"{prefix}{secrets.token_hex(12)}.part"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.open(path, flags, mode), path
