"""``shipyard-model.json``: writing it, and reading it back with every field checked.

The manifest is read before anything else in a model folder, so it is treated as hostile:
it is size-capped, every field is type-checked and named in the error, file names must be
plain names inside the folder, and the modules it says are required must be ones Shipyard
knows (the loader never imports a module named by a manifest).

Example manifest::

    {
      "format": "shipyard-model",
      "format_version": 1,
      "flavor": "sklearn",
      "model_format": "skops",
      "model_class": "sklearn.pipeline.Pipeline",
      "files": [{"name": "model.skops", "content_id": "sha256:...", "size": 20480}],
      "requires": ["skops", "sklearn"],
      "library_versions": {"numpy": "2.4.6", "sklearn": "1.9.1", "skops": "0.16.0"},
      "python_version": "3.11.7",
      "created_at": "2026-05-09T07:35:25.123456+00:00",
      "classes": ["no", "yes"],
      "input_example_file": "input_example.json",
      "flavor_options": {},
      "metadata": {}
    }
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.core.errors import NotFoundError
from shipyard.core.ids import ContentId, is_content_id
from shipyard.formats.base import (
    EXTRA_OF_MODULE,
    MANIFEST_FILE,
    MANIFEST_FORMAT_VERSION,
    ModelFile,
    ModelFormatError,
    ModelInfo,
    is_valid_file_name,
)

__all__ = ["manifest_bytes", "parse_manifest", "read_model_info"]

_FORMAT = "shipyard-model"
_MAX_MANIFEST_BYTES = 1 << 20


def manifest_bytes(info: ModelInfo) -> bytes:
    """The manifest of ``info`` as strict, sorted, indented JSON."""
    document = {
        "format": _FORMAT,
        "format_version": info.format_version,
        "flavor": info.flavor,
        "model_format": info.model_format,
        "model_class": info.model_class,
        "files": [{"name": f.name, "content_id": f.content_id, "size": f.size} for f in info.files],
        "requires": list(info.requires),
        "library_versions": info.library_versions,
        "python_version": info.python_version,
        "created_at": info.created_at.isoformat(),
        "classes": None if info.classes is None else list(info.classes),
        "input_example_file": info.input_example_file,
        "flavor_options": info.flavor_options,
        "metadata": info.metadata,
    }
    return (json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def read_model_info(directory: Path | str) -> ModelInfo:
    """Read and check a saved model's manifest, without loading the model.

    >>> info = read_model_info("models/churn")  # doctest: +SKIP
    >>> info.flavor, [f.name for f in info.files]  # doctest: +SKIP
    ('sklearn', ['model.skops'])
    """
    folder = Path(directory)
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise NotFoundError(
            f"Model folder {str(folder)!r} does not exist.",
            hint="Check the path; a saved model is a folder written by save_model.",
        )
    if not path.is_file():
        raise NotFoundError(
            f"{str(folder)!r} is not a saved model: it has no {MANIFEST_FILE}.",
            hint="Point at a folder written by shipyard.formats.save_model.",
        )
    size = path.stat().st_size
    if size > _MAX_MANIFEST_BYTES:
        raise ModelFormatError(
            f"{str(path)!r} is {size} bytes; a model manifest is at most "
            f"{_MAX_MANIFEST_BYTES} bytes.",
            hint="The file is not a Shipyard manifest, or it was tampered with.",
        )
    return parse_manifest(path.read_bytes(), source=path)


def parse_manifest(data: bytes, *, source: Path) -> ModelInfo:
    """Parse manifest bytes; ``ModelFormatError`` naming ``source`` and the bad field."""
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ModelFormatError(
            f"{str(source)!r} is not valid JSON: {exc}.",
            hint="The manifest is damaged; save the model again.",
        ) from exc
    fields = _Fields(document, source)
    if fields.string("format") != _FORMAT:
        fields.fail("format", f"must be {_FORMAT!r}")
    version = fields.integer("format_version")
    if version > MANIFEST_FORMAT_VERSION or version < 1:
        raise ModelFormatError(
            f"{str(source)!r} has manifest format_version {version}; this Shipyard reads "
            f"versions 1 to {MANIFEST_FORMAT_VERSION}.",
            hint="Upgrade Shipyard to load models saved by a newer version.",
        )
    files = tuple(_file_entry(fields, index, item) for index, item in fields.items("files"))
    names = [f.name for f in files]
    if not files:
        fields.fail("files", "lists no file")
    if len(set(names)) != len(names):
        fields.fail("files", "lists a file twice")
    requires = tuple(fields.string_list("requires"))
    for module in requires:
        if module not in EXTRA_OF_MODULE:
            fields.fail("requires", f"names {module!r}, which is not a library Shipyard knows")
    example = fields.optional_string("input_example_file")
    if example is not None and example not in names:
        fields.fail("input_example_file", f"names {example!r}, which is not in 'files'")
    classes = fields.optional_list("classes")
    try:
        created_at = datetime.fromisoformat(fields.string("created_at"))
    except ValueError:
        fields.fail("created_at", "is not an ISO 8601 timestamp")
    return ModelInfo(
        flavor=fields.string("flavor"),
        model_format=fields.string("model_format"),
        model_class=fields.string("model_class"),
        files=files,
        requires=requires,
        library_versions=fields.string_map("library_versions"),
        python_version=fields.string("python_version"),
        created_at=created_at,
        format_version=version,
        classes=None if classes is None else tuple(classes),
        input_example_file=example,
        flavor_options=fields.mapping("flavor_options"),
        metadata=fields.mapping("metadata"),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a manifest")


def _file_entry(fields: _Fields, index: int, item: Any) -> ModelFile:
    where = f"files[{index}]"
    if not isinstance(item, dict):
        fields.fail(where, "must be an object with name, content_id and size")
    name, content_id, size = item.get("name"), item.get("content_id"), item.get("size")
    if not is_valid_file_name(name):
        fields.fail(f"{where}.name", f"{name!r} is not a plain file name inside the folder")
    if not is_content_id(content_id):
        fields.fail(f"{where}.content_id", f"{content_id!r} is not a sha256 content id")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        fields.fail(f"{where}.size", f"{size!r} is not a byte count")
    return ModelFile(name=str(name), content_id=ContentId(str(content_id)), size=size)


class _Fields:
    """Typed access to a manifest's top-level fields, failing with the field's name."""

    def __init__(self, document: Any, source: Path) -> None:
        self._source = source
        if not isinstance(document, dict):
            self.fail("(top level)", "must be a JSON object")
        self._doc: dict[str, Any] = document

    def fail(self, name: str, problem: str) -> Any:
        raise ModelFormatError(
            f"{str(self._source)!r}: field {name!r} {problem}.",
            hint="The manifest is damaged or was not written by Shipyard; save the model again.",
        )

    def _get(self, name: str) -> Any:
        if name not in self._doc:
            self.fail(name, "is missing")
        return self._doc[name]

    def string(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str) or not value:
            self.fail(name, f"must be a non-empty string, not {value!r}")
        return str(value)

    def optional_string(self, name: str) -> str | None:
        value = self._doc.get(name)
        return None if value is None else self.string(name)

    def integer(self, name: str) -> int:
        value = self._get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(name, f"must be an integer, not {value!r}")
        return int(value)

    def items(self, name: str) -> list[tuple[int, Any]]:
        value = self._get(name)
        if not isinstance(value, list):
            self.fail(name, "must be a list")
        return list(enumerate(value))

    def string_list(self, name: str) -> list[str]:
        values = [v for _, v in self.items(name)]
        if not all(isinstance(v, str) for v in values):
            self.fail(name, "must be a list of strings")
        return [str(v) for v in values]

    def optional_list(self, name: str) -> list[Any] | None:
        value = self._doc.get(name)
        if value is None:
            return None
        if not isinstance(value, list):
            self.fail(name, "must be a list or null")
        return list(value)

    def mapping(self, name: str) -> dict[str, Any]:
        value = self._doc.get(name, {})
        if not isinstance(value, dict):
            self.fail(name, "must be a JSON object")
        return dict(value)

    def string_map(self, name: str) -> dict[str, str]:
        value = self.mapping(name)
        if not all(isinstance(v, str) for v in value.values()):
            self.fail(name, "must map names to version strings")
        return {str(k): str(v) for k, v in value.items()}
