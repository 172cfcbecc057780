"""Identifiers: content ids for immutable records and random ids for events.

A content id is ``sha256:`` followed by 64 lowercase hex digits; the same content always
gives the same id. A record id (a run, an alert) is a 32-hex random UUID4.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import IO, NewType

from shipyard.core.errors import ReferenceError_

__all__ = [
    "ContentId",
    "content_id_of_bytes",
    "content_id_of_stream",
    "hex_digest",
    "is_content_id",
    "new_id",
    "parse_content_id",
]

ContentId = NewType("ContentId", str)

_PREFIX = "sha256:"
_CONTENT_ID = re.compile(r"sha256:[0-9a-f]{64}")
_CHUNK = 1 << 20


def content_id_of_bytes(data: bytes | bytearray | memoryview) -> ContentId:
    """The content id of a byte string."""
    return ContentId(_PREFIX + hashlib.sha256(data).hexdigest())


def content_id_of_stream(stream: IO[bytes]) -> ContentId:
    """The content id of everything left in a binary stream, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return ContentId(_PREFIX + digest.hexdigest())


def is_content_id(text: object) -> bool:
    """Whether ``text`` is a well-formed content id."""
    return isinstance(text, str) and _CONTENT_ID.fullmatch(text) is not None


def parse_content_id(text: str) -> ContentId:
    """Validate a content id; raise ``ReferenceError_`` naming the bad value otherwise."""
    if not is_content_id(text):
        raise ReferenceError_(
            f"{text!r} is not a content id.",
            hint="A content id is 'sha256:' followed by 64 lowercase hex digits.",
        )
    return ContentId(text)


def hex_digest(content_id: ContentId) -> str:
    """The 64 hex digits of a content id, without its ``sha256:`` prefix."""
    return content_id[len(_PREFIX) :]


def new_id() -> str:
    """A fresh random id (32 lowercase hex digits)."""
    return uuid.uuid4().hex
