from __future__ import annotations

import io

import pytest

from shipyard.core.errors import ReferenceError_
from shipyard.core.ids import (
    content_id_of_bytes,
    content_id_of_stream,
    hex_digest,
    is_content_id,
    new_id,
    parse_content_id,
)


def test_same_bytes_same_id_and_stream_agrees() -> None:
    data = b"tenure,churn\n1,yes\n" * 100_000
    assert content_id_of_bytes(data) == content_id_of_bytes(bytes(data))
    assert content_id_of_stream(io.BytesIO(data)) == content_id_of_bytes(data)
    assert content_id_of_bytes(data) != content_id_of_bytes(data + b"x")
    # The well-known digest of the empty string: ids are plain sha256, portable.
    assert hex_digest(content_id_of_bytes(b"")).startswith("e3b0c44298fc1c14")


def test_content_id_validation() -> None:
    good = content_id_of_bytes(b"x")
    assert is_content_id(good) and parse_content_id(good) == good
    for bad in ["", "sha256:", "sha256:" + "A" * 64, "md5:" + "a" * 64, good + "0", 7]:
        assert not is_content_id(bad)
    with pytest.raises(ReferenceError_, match="is not a content id"):
        parse_content_id("sha256:nothex")


def test_new_ids_are_unique() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 32 for i in ids)
