"""The identity of a saved model: a content id that is the same for the same model.

``ModelInfo.content_id`` hashes the files' bytes, which is right for a model that was
saved once and copied around, but two saves of the same fitted model differ: a skops
file is a zip whose member names are memory addresses of the saved objects and whose
entries carry the time of the save. A pipeline needs "same model, same id" so that a
re-run of a deterministic training step, on any executor, reproduces its output id.

The identity hashes the flavor, the file format, the model class and, for each model
file, a canonical digest: for a skops zip, the one ``shipyard.formats.skops_file``
defines (recorded in the manifest by the save, so the schema is not parsed again here;
computed from the file for a manifest without it); for every other format, the bytes'
content id (they are deterministic).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from shipyard.core.ids import ContentId
from shipyard.formats.sklearn import CANONICAL_DIGEST_OPTION, MODEL_FILE
from shipyard.formats.skops_file import skops_file_digest
from shipyard.pipelines.canonical import digest

__all__ = ["model_identity"]

_NOT_MODEL_FILES = frozenset({"shipyard-model.json", "input_example.json"})


def model_identity(info: Any, folder: Path) -> ContentId:
    """The identity of the model saved in ``folder`` with manifest ``info`` (a ``ModelInfo``).

    ``info`` must come from the save that wrote ``folder`` (the recorded digest is taken
    as given, not checked against the file).
    """
    files: dict[str, str] = {}
    recorded = info.flavor_options.get(CANONICAL_DIGEST_OPTION)
    for entry in info.files:
        if entry.name in _NOT_MODEL_FILES:
            continue
        path = folder / entry.name
        if info.model_format != "skops":
            files[entry.name] = str(entry.content_id)
        elif entry.name == MODEL_FILE and isinstance(recorded, str):
            files[entry.name] = recorded
        elif zipfile.is_zipfile(path):
            files[entry.name] = skops_file_digest(path)
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
