"""The identity of a saved model: a content id that is the same for the same model.

``ModelInfo.content_id`` hashes the files' bytes, which is right for a model that was
saved once and copied around, but two saves of the same fitted model differ: a skops
file is a zip whose member names are memory addresses of the saved objects and whose
entries carry the time of the save. A pipeline needs "same model, same id" so that a
re-run of a deterministic training step, on any executor, reproduces its output id.

The identity hashes the flavor, the file format, the model class and, for each model
file, a canonical digest: for a skops zip, its ``schema.json`` with every member file
replaced by the hash of its bytes and every object id renumbered in the order of first
appearance (which keeps the sharing structure: two references to one array stay one
id); for every other format, the bytes' content id (they are deterministic).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

from shipyard.core.ids import ContentId
from shipyard.pipelines.canonical import digest

__all__ = ["model_identity", "skops_digest"]

_SCHEMA = "schema.json"
_MAX_SCHEMA_BYTES = 256 << 20
_NOT_MODEL_FILES = frozenset({"shipyard-model.json", "input_example.json"})


def model_identity(info: Any, folder: Path) -> ContentId:
    """The identity of the model saved in ``folder`` with manifest ``info`` (a ``ModelInfo``)."""
    files: dict[str, str] = {}
    for entry in info.files:
        if entry.name in _NOT_MODEL_FILES:
            continue
        path = folder / entry.name
        if info.model_format == "skops" and zipfile.is_zipfile(path):
            files[entry.name] = skops_digest(path)
        else:
            files[entry.name] = str(entry.content_id)
    return digest(
        {
            "kind": "model",
            "flavor": info.flavor,
            "model_format": info.model_format,
            "model_class": info.model_class,
            "files": files,
        }
    )


def skops_digest(path: Path) -> str:
    """A digest of a skops file that ignores member names, object ids and timestamps."""
    with zipfile.ZipFile(path) as archive:
        members = {
            info.filename: hashlib.sha256(archive.read(info)).hexdigest()
            for info in archive.infolist()
            if info.filename != _SCHEMA
        }
        schema_info = archive.getinfo(_SCHEMA)
        if schema_info.file_size > _MAX_SCHEMA_BYTES:
            raise ValueError(f"{path}: schema.json is {schema_info.file_size} bytes")
        schema = json.loads(archive.read(schema_info))
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
    referenced = canonical(schema)
    return str(digest({"schema": referenced, "members": sorted(members.values())}))
