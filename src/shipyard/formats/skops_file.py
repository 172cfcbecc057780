"""A skops file read once: the types it needs trusted, its canonical digest, the object.

A skops file is a zip of ``schema.json`` (the object tree) and one member per numpy array.
Two facts come from its schema, and the schema of a large model is megabytes of JSON, so
``read_skops`` parses it once for both:

- the types skops does not trust by itself (``skops.io.get_untrusted_types`` reports the
  same list; the save checks them against Shipyard's allow-list);
- the *canonical digest*: the schema with every member file replaced by the hash of its
  bytes and every object id renumbered in the order of first appearance (which keeps
  the sharing structure: two references to one array stay one id), plus the hashes of
  all members. Two saves of one fitted model give different bytes (member names are
  memory addresses, entries carry the time of the save) but the same canonical digest,
  which is what a pipeline needs for "same model, same output id".

Loading checks the untrusted types and builds the object from one parse as well
(``load_skops``).

Example::

    contents = read_skops(skops.io.dumps(model))
    contents.untrusted_types   # ('sklearn.tree._tree.Tree', ...) or () for a plain forest
    contents.canonical_digest  # 'sha256:...', the same for every save of this model
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.ids import content_id_of_bytes
from shipyard.formats.base import ModelFormatError

__all__ = ["SkopsContents", "load_skops", "read_skops", "skops_file_digest"]

_SCHEMA = "schema.json"
_MAX_SCHEMA_BYTES = 256 << 20


@dataclass(frozen=True, slots=True)
class SkopsContents:
    """What one parse of a skops file's schema tells."""

    untrusted_types: tuple[str, ...]
    """Sorted names of the types skops would refuse without ``trusted=``."""
    canonical_digest: str
    """``sha256:...`` of the schema with member names and object ids made canonical."""


def read_skops(data: bytes) -> SkopsContents:
    """Parse the skops file ``data`` once; its untrusted types and its canonical digest."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = _member_hashes(archive)
        try:
            # The two steps of skops.io.get_untrusted_types, on a schema parsed once.
            from skops.io._audit import get_tree
            from skops.io._utils import read_schema
        except ImportError:  # another skops layout: parse twice, same answers
            import skops.io

            digest = _canonical_digest(_schema(archive), members)
            found = skops.io.get_untrusted_types(data=data)
        else:
            schema, context = read_schema(archive)
            # The digest first: skops builds its tree from the schema and owns it after.
            digest = _canonical_digest(schema, members)
            found = get_tree(schema, load_context=context, trusted=None).get_unsafe_set()
    return SkopsContents(tuple(sorted(found)), digest)


def load_skops(data: bytes, check: Callable[[list[str]], None]) -> Any:
    """Load the skops file ``data`` once its untrusted types have passed ``check``.

    ``check`` gets the sorted names of the types skops does not trust by itself and raises
    to refuse them; the object is built only if it returns, trusting exactly those names.
    This is ``skops.io.get_untrusted_types`` then ``skops.io.loads(data, trusted=...)``
    with the schema parsed and skops' tree built once: the types checked are those of
    the very tree that is constructed, and skops audits that tree again before building.
    """
    try:
        from skops.io._audit import audit_tree, get_tree
        from skops.io._utils import read_schema
    except ImportError:  # another skops layout: its public functions, parsing twice
        import skops.io

        found = skops.io.get_untrusted_types(data=data)
        check(found)
        return skops.io.loads(data, trusted=found)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema, context = read_schema(archive)
        # trusted=None: the tree trusts only skops' defaults, so nothing escapes ``check``.
        tree = get_tree(schema, load_context=context, trusted=None)
        found = sorted(tree.get_unsafe_set())
        check(found)
        audit_tree(tree, trusted=found)
        return tree.construct()


def skops_file_digest(path: Path) -> str:
    """The canonical digest of the skops file at ``path`` (see the module docstring)."""
    with zipfile.ZipFile(path) as archive:
        return _canonical_digest(_schema(archive), _member_hashes(archive))


def _member_hashes(archive: zipfile.ZipFile) -> dict[str, str]:
    return {
        info.filename: hashlib.sha256(archive.read(info)).hexdigest()
        for info in archive.infolist()
        if info.filename != _SCHEMA
    }


def _schema(archive: zipfile.ZipFile) -> Any:
    try:
        info = archive.getinfo(_SCHEMA)
    except KeyError:
        raise ModelFormatError(
            f"The skops file {archive.filename or '(in memory)'} has no {_SCHEMA}.",
            hint="It was not written by skops; save the model again.",
        ) from None
    if info.file_size > _MAX_SCHEMA_BYTES:
        raise ModelFormatError(
            f"The {_SCHEMA} of skops file {archive.filename or '(in memory)'} is "
            f"{info.file_size} bytes; at most {_MAX_SCHEMA_BYTES} are read.",
            hint="The file is damaged or is not a model saved by Shipyard.",
        )
    return json.loads(archive.read(info))


def _canonical_digest(schema: Any, members: dict[str, str]) -> str:
    object_ids: dict[int, int] = {}

    def canonical(node: Any) -> Any:
        if isinstance(node, dict):
            result: dict[str, Any] = {}
            for key in sorted(node):
                value = node[key]
                if key == "__id__" and isinstance(value, int):
                    result[key] = object_ids.setdefault(value, len(object_ids))
                elif key == "file" and isinstance(value, str) and value in members:
                    result[key] = members[value]
                else:
                    result[key] = canonical(value)
            return result
        if isinstance(node, list):
            return [canonical(item) for item in node]
        return node

    # Members the schema does not name still count, by content (sorted: names are ids).
    document = {"schema": canonical(schema), "members": sorted(members.values())}
    # The bytes of shipyard.pipelines.canonical.canonical_json, so ids stay as they were.
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return str(content_id_of_bytes(text.encode("utf-8")))
