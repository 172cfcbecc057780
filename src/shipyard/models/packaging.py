"""A model version's stored package: the model folder, optional hooks, the registry manifest.

A package is a folder, stored file by file as content-addressed blobs::

    model/                 the model, saved by shipyard.formats (its shipyard-model.json
                           lists and hashes its files)
    preprocess/            optional hooks, each a shipyard.formats folder (pickle flavor:
    postprocess/           code, so they need allow_pickle=True to register and to load)
    registry.json          the package manifest: layout, model type, the signature

The version's id is the content id of the package: a hash of every file's path and
content id, ``registry.json`` (and so the signature) included. The same model files with
the same signature give the same id, whenever and wherever they were registered.

Loading downloads the blobs into a local cache folder named by the id (written into a
staging folder and renamed, so a crash never leaves a half-written copy), then
``shipyard.formats.load_model`` checks every model file against its manifest.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.errors import IntegrityError
from shipyard.core.ids import ContentId, content_id_of_bytes, content_id_of_stream, new_id
from shipyard.models.errors import ModelInputError
from shipyard.store.artifacts import ArtifactStore

__all__ = [
    "HOOKS",
    "MANIFEST",
    "MODEL_FOLDER",
    "Package",
    "download_package",
    "hash_package",
    "read_manifest",
    "save_hook",
    "upload_package",
    "write_manifest",
]

MANIFEST = "registry.json"
MODEL_FOLDER = "model"
HOOKS = ("preprocess", "postprocess")
PACKAGE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Package:
    """A package folder on disk: its files (path -> content id) and its id."""

    folder: Path
    files: Mapping[str, str]
    content_id: ContentId


def save_hook(hook: Callable[..., Any], folder: Path, name: str, *, allow_pickle: bool) -> None:
    """Save a pre- or post-processing callable into ``folder/name`` (pickle flavor)."""
    from shipyard.formats import save_model

    if not callable(hook):
        raise ModelInputError(
            f"{name} must be a callable, not {type(hook).__name__}.",
            hint=f"Pass a function: {name}=my_module.my_{name}.",
        )
    if not allow_pickle:
        raise ModelInputError(
            f"A {name} hook is Python code, stored with pickle; loading it runs that code.",
            hint="Pass allow_pickle=True to register it (loading the version will need "
            "allow_pickle=True too).",
        )
    qualname = getattr(hook, "__qualname__", "")
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise ModelInputError(
            f"The {name} hook {qualname!r} is a lambda or a nested function; pickle stores "
            "functions by their import path, so it could not be loaded back.",
            hint=f"Define {name} as a module-level function (or a picklable callable object).",
        )
    try:
        save_model(hook, folder / name, flavor="pickle", allow_pickle=True)
    except Exception as exc:
        from shipyard.core.errors import ShipyardError

        if isinstance(exc, ShipyardError):
            raise
        raise ModelInputError(
            f"The {name} hook could not be saved: {type(exc).__name__}: {exc}.",
            hint="Use a module-level function or a picklable object.",
        ) from exc


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``registry.json`` (sorted keys, so the same content gives the same bytes)."""
    document = {"format": PACKAGE_FORMAT, **manifest}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    (folder / MANIFEST).write_text(text, encoding="utf-8")


def read_manifest(folder: Path) -> dict[str, Any]:
    """Read ``registry.json`` back."""
    try:
        document = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntegrityError(
            f"The model package in {str(folder)!r} has no readable {MANIFEST}: {exc}.",
            hint="Delete the cached copy (it is downloaded again) or register the model again.",
        ) from exc
    if not isinstance(document, dict) or document.get("format") != PACKAGE_FORMAT:
        raise IntegrityError(
            f"{MANIFEST} in {str(folder)!r} is not a package manifest this Shipyard reads.",
            hint="It was written by another version of Shipyard; upgrade to read it.",
        )
    return document


def hash_package(folder: Path) -> Package:
    """Hash every file of a package folder; the package id hashes the listing."""
    files: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ModelInputError(
                f"The model package holds a symbolic link {path.relative_to(folder)}.",
                hint="Packages hold plain files only.",
            )
        if path.is_file():
            with path.open("rb") as stream:
                files[path.relative_to(folder).as_posix()] = content_id_of_stream(stream)
    listing = "\n".join(f"{name}\t{cid}" for name, cid in sorted(files.items()))
    return Package(folder, files, content_id_of_bytes(listing.encode("utf-8")))


def upload_package(package: Package, artifacts: ArtifactStore) -> dict[str, str]:
    """Store each file as a blob; return ``path -> blob id`` (equal to the content ids)."""
    stored: dict[str, str] = {}
    for name, expected in package.files.items():
        blob = artifacts.put_file(package.folder / name)
        if blob != expected:
            raise IntegrityError(
                f"{name} changed while the model package was being stored "
                f"(hashed {expected}, stored {blob}).",
                hint="Register the model again once nothing else is writing its files.",
            )
        stored[name] = blob
    return stored


def download_package(
    files: Mapping[str, str],
    content_id: str,
    artifacts: ArtifactStore,
    cache: Path,
    *,
    refresh: bool = False,
) -> Path:
    """The package's folder in ``cache``, downloaded (and verified) on first use.

    ``refresh=True`` replaces a cached copy that failed its checks with a fresh download.
    """
    target = cache / content_id.removeprefix("sha256:")
    if not refresh and target.is_dir() and _complete(target, files):
        return target
    listing = "\n".join(f"{name}\t{blob}" for name, blob in sorted(files.items()))
    if content_id_of_bytes(listing.encode("utf-8")) != content_id:
        raise IntegrityError(
            f"The stored files of model package {content_id} do not hash to its id.",
            hint="The registry row was altered; register the model again.",
        )
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".{target.name[:16]}.tmp-{new_id()[:12]}"
    try:
        for name, blob in files.items():
            destination = (staging / name).resolve()
            if not destination.is_relative_to(staging.resolve()) or name.startswith("/"):
                raise IntegrityError(
                    f"The stored package {content_id} lists a hostile path {name!r}.",
                    hint="Do not load it; report how it got into the store.",
                )
            destination.parent.mkdir(parents=True, exist_ok=True)
            artifacts.get_file(ContentId(blob), destination)  # verified against its id
        if refresh and target.exists():
            # Aside first, then swap: a reader never sees a half-removed folder.
            stale = cache / f".{target.name[:16]}.stale-{new_id()[:12]}"
            target.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:
            # Another process put a copy there first: a rename is all or nothing, so it
            # is whole; ours goes.
            if not (target.is_dir() and _complete(target, files)):
                raise
    finally:
        with contextlib.suppress(OSError):
            if staging.exists():
                shutil.rmtree(staging)
    return target


def _complete(folder: Path, files: Mapping[str, str]) -> bool:
    """Whether every file is present with its size; content is checked when loading."""
    return all((folder / name).is_file() for name in files)
