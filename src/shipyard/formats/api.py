"""``save_model`` and ``load_model``: a model folder written atomically, read back verified.

A saved model is a folder: the flavor's files, an optional ``input_example.json`` and
``shipyard-model.json`` (the manifest, see ``shipyard.formats.manifest``). ``save_model``
writes everything into a hidden sibling folder and renames it into place, so a reader (or
a crash) never sees a half-written model. ``load_model`` checks every file against its
content id before the flavor's library reads a byte of it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.core.errors import AlreadyExistsError, IntegrityError, ShipyardError
from shipyard.core.ids import content_id_of_stream, new_id
from shipyard.formats.base import (
    MANIFEST_FILE,
    Flavor,
    FlavorOutput,
    ModelFile,
    ModelFormatError,
    ModelInfo,
    UnsafeModelError,
    class_path,
    detect_flavor,
    get_flavor,
    installed_version,
    json_classes,
    require_modules,
)
from shipyard.formats.examples import EXAMPLE_FILE, read_example, write_example
from shipyard.formats.manifest import manifest_bytes, read_model_info

__all__ = ["load_model", "read_input_example", "save_model", "verify_model_files"]

logger = logging.getLogger("shipyard.formats")


def save_model(
    model: Any,
    directory: Path | str,
    *,
    flavor: str | None = None,
    allow_pickle: bool = False,
    input_example: Any = None,
    metadata: dict[str, Any] | None = None,
    durable: bool = True,
) -> ModelInfo:
    """Save ``model`` into the new folder ``directory`` in a safe format; return its manifest.

    The flavor is picked from the model's type unless named: LightGBM and XGBoost models
    use their own formats, ONNX models (``onnx.ModelProto`` or bytes) stay ONNX,
    scikit-learn estimators and pipelines go through skops. Anything else needs
    ``allow_pickle=True`` (and then needs it again to load). ``input_example`` (a pandas
    DataFrame, a numpy array or JSON data; the first 100 rows are kept) and ``metadata``
    (JSON) are stored beside the model.

    The folder appears whole or not at all (it is written aside and renamed into place);
    with ``durable`` (the default) its files and the rename are also fsynced, so it
    survives a crash. ``durable=False`` skips the fsyncs, for a scratch folder whose files
    the caller copies into storage that makes them durable itself (as pipelines do into
    the artifact store).

    >>> info = save_model(pipeline, Path("models/churn"), input_example=X.head())  # doctest: +SKIP
    >>> info.flavor, info.model_format  # doctest: +SKIP
    ('sklearn', 'skops')
    """
    target = Path(directory)
    chosen = _choose_flavor(model, flavor, allow_pickle=allow_pickle)
    user_metadata = _check_metadata(metadata)
    _check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{new_id()[:12]}"
    staging.mkdir()
    try:
        output = _save_with(chosen, model, staging)
        example_file = None
        if input_example is not None:
            write_example(input_example, staging / EXAMPLE_FILE)
            example_file = EXAMPLE_FILE
        info = ModelInfo(
            flavor=chosen.name,
            model_format=output.model_format,
            model_class=class_path(type(model)),
            files=_hash_files(staging),
            requires=output.requires,
            library_versions=_library_versions(output.requires),
            python_version=platform.python_version(),
            created_at=datetime.now(UTC),
            classes=output.classes
            if output.classes is not None
            else json_classes(getattr(model, "classes_", None)),
            input_example_file=example_file,
            flavor_options=output.options,
            metadata=user_metadata,
        )
        manifest = staging / MANIFEST_FILE
        if durable:
            _write_synced(manifest, manifest_bytes(info))
            _fsync_files(staging)
        else:
            manifest.write_bytes(manifest_bytes(info))
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if durable:
        _fsync_directory(target.parent)
    return info


def load_model(
    directory: Path | str,
    *,
    allow_pickle: bool = False,
    trusted_types: Sequence[str] = (),
) -> Any:
    """Load a model saved by ``save_model``, after checking every file's content id.

    A pickle-based model needs ``allow_pickle=True`` (the load is logged as a warning);
    a skops file holding types outside Shipyard's allow-list needs them listed in
    ``trusted_types``. A library whose major version differs from the one the model was
    saved with is reported as a warning.

    >>> model = load_model(Path("models/churn"))  # doctest: +SKIP
    >>> model.predict(X.head())  # doctest: +SKIP
    """
    folder = Path(directory)
    info = read_model_info(folder)
    chosen = get_flavor(info.flavor)
    verify_model_files(folder, info)
    if chosen.uses_pickle and not allow_pickle:
        raise UnsafeModelError(
            f"The model in {str(folder)!r} is stored with pickle (flavor {info.flavor!r}); "
            "unpickling runs whatever code the file names.",
            hint="If you trust where this model came from, pass allow_pickle=True.",
        )
    require_modules(info.requires, what=f"The {info.flavor!r} model in {str(folder)!r}")
    _warn_on_version_drift(folder, info)
    try:
        return chosen.load(folder, info, trusted_types=tuple(trusted_types))
    except ShipyardError:
        raise
    except Exception as exc:
        raise ModelFormatError(
            f"The {info.flavor!r} flavor could not load the model in {str(folder)!r}: "
            f"{type(exc).__name__}: {exc}",
            hint="The files match their manifest, so they were saved this way; check the "
            "library versions in the manifest against the installed ones.",
        ) from exc


def read_input_example(directory: Path | str) -> Any:
    """The input example saved with a model (a DataFrame, an array or JSON data), or None.

    >>> read_input_example(Path("models/churn")).columns[:2].tolist()  # doctest: +SKIP
    ['state', 'account_length']
    """
    folder = Path(directory)
    info = read_model_info(folder)
    if info.input_example_file is None:
        return None
    entry = info.file(info.input_example_file)
    _verify_file(folder, entry)
    return read_example(folder / entry.name)


def verify_model_files(directory: Path | str, info: ModelInfo) -> None:
    """Check every file the manifest lists; ``IntegrityError`` naming the first bad one."""
    folder = Path(directory)
    for entry in info.files:
        _verify_file(folder, entry)


def _verify_file(folder: Path, entry: ModelFile) -> None:
    path = folder / entry.name
    if path.is_symlink() or not path.is_file():
        raise IntegrityError(
            f"{entry.name!r} is listed in the manifest of {str(folder)!r} but is missing "
            "(or is not a regular file).",
            hint="The model folder is incomplete; copy it again or save the model again.",
        )
    with path.open("rb") as stream:
        actual = content_id_of_stream(stream)
    if actual != entry.content_id:
        raise IntegrityError(
            f"{entry.name!r} in {str(folder)!r} does not match its manifest: expected "
            f"{entry.content_id}, found {actual}. The file was changed after it was saved.",
            hint="Do not load it; restore the model folder from its source or save it again.",
        )


def _choose_flavor(model: Any, name: str | None, *, allow_pickle: bool) -> Flavor:
    if name is None:
        return detect_flavor(model, allow_pickle=allow_pickle)
    chosen = get_flavor(name)
    if chosen.uses_pickle and not allow_pickle:
        raise UnsafeModelError(
            f"Flavor {name!r} stores the model with pickle, which runs code when loaded.",
            hint="Pass allow_pickle=True to save it anyway (loading will need it too).",
        )
    if not chosen.matches(model):
        raise ModelFormatError(
            f"Flavor {name!r} cannot save a {class_path(type(model))} object.",
            hint="Leave flavor=None to pick the flavor from the model's type.",
        )
    return chosen


def _save_with(chosen: Flavor, model: Any, staging: Path) -> FlavorOutput:
    try:
        return chosen.save(model, staging)
    except ShipyardError:
        raise
    except Exception as exc:
        raise ModelFormatError(
            f"The {chosen.name!r} flavor could not save a {class_path(type(model))} object: "
            f"{type(exc).__name__}: {exc}",
            hint="Check that the model is fitted; to store it with pickle instead, pass "
            "flavor='pickle', allow_pickle=True.",
        ) from exc


def _check_target(target: Path) -> None:
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise AlreadyExistsError(
            f"{str(target)!r} already exists and is not an empty folder; a saved model is "
            "never overwritten.",
            hint="Save into a new folder, or delete the old one first.",
        )


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise ModelFormatError(
            "metadata must be a dict with string keys.",
            hint="Pass JSON-style data, e.g. {'owner': 'churn-team'}.",
        )
    for key, value in metadata.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ModelFormatError(
                f"metadata[{key!r}] cannot be stored as JSON: {exc}.",
                hint="Use strings, numbers, booleans, lists and dicts (no NaN).",
            ) from exc
    return dict(metadata)


def _hash_files(folder: Path) -> tuple[ModelFile, ...]:
    files = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.is_symlink():
            raise ModelFormatError(
                f"A flavor wrote {path.name!r}, which is not a plain file.",
                hint="Flavors write plain files only; this is a bug in the flavor.",
            )
        with path.open("rb") as stream:
            content_id = content_id_of_stream(stream)
        files.append(ModelFile(path.name, content_id, path.stat().st_size))
    return tuple(files)


def _library_versions(requires: Sequence[str]) -> dict[str, str]:
    versions = {}
    for module in sorted({*requires, "numpy"}):
        version = installed_version(module)
        if version is not None:
            versions[module] = version
    return versions


def _warn_on_version_drift(folder: Path, info: ModelInfo) -> None:
    for module, saved in sorted(info.library_versions.items()):
        if module not in info.requires:
            continue
        current = installed_version(module)
        if current is not None and _major(current) != _major(saved):
            logger.warning(
                "Model %s was saved with %s %s; %s is installed. A major version change "
                "can change the model's format or predictions; check them.",
                folder,
                module,
                saved,
                current,
            )


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_files(staging: Path) -> None:
    """fsync every file the flavor wrote, then the folder (the manifest is synced already)."""
    for path in staging.iterdir():
        if path.name != MANIFEST_FILE:
            with path.open("rb") as stream:
                os.fsync(stream.fileno())
    _fsync_directory(staging)


def _move_into_place(staging: Path, target: Path) -> None:
    if target.exists():  # an empty folder, checked earlier; rename will not replace it
        target.rmdir()
    try:
        staging.rename(target)
    except OSError as exc:
        raise AlreadyExistsError(
            f"Could not move the saved model into {str(target)!r}: {exc}.",
            hint="Another process may have written a model there at the same time.",
        ) from exc
