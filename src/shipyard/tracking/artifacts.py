"""A run's artifact tree: files and folders stored as blobs, listed, downloaded.

Each file is streamed into the artifact store (never read into memory whole) as a
content-addressed blob, then recorded in one transaction: a ``run_artifacts`` row
(``path``, ``blob_id``, ``size``, ``kind``) and a blob reference
``BlobRef(blob_id, "run", run_id, "artifact:<path>")`` so garbage collection keeps it.
Logging to a path that holds a file replaces it (its old reference goes; the old blob
is collected unless another record uses it). A folder is all-or-nothing in the metadata:
its files are listed and checked first, uploaded, then recorded together.

Where things land: ``artifact_path`` is a folder inside the run's tree, and the file or
folder keeps its name in it::

    log_artifact(run, "roc.png")                -> roc.png
    log_artifact(run, "roc.png", "plots")       -> plots/roc.png
    log_artifact(run, "reports/")               -> reports/<each file, same sub-folders>
    log_artifact(run, "reports/", "eval")       -> eval/reports/...
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select
from sqlalchemy.engine import Connection

from shipyard.core.errors import NotFoundError
from shipyard.core.ids import ContentId
from shipyard.store.metadata import BlobRef, MetadataStore
from shipyard.store.schema import blob_refs
from shipyard.store.schema.tracking import run_artifacts
from shipyard.store.stores import Stores
from shipyard.tracking.batches import dialect_insert
from shipyard.tracking.records import ArtifactEntry
from shipyard.tracking.validation import TrackingInputError, artifact_path

if TYPE_CHECKING:
    from shipyard.formats import ModelInfo

__all__ = [
    "artifact_role",
    "download",
    "folder_prefix",
    "list_entries",
    "local_files",
    "record_entries",
    "saved_model",
    "upload_files",
    "upload_text",
]

_ROLE_LIMIT = 128
_CHUNK = 500


def artifact_role(path: str) -> str:
    """The blob-reference role of the artifact at ``path`` (hashed when too long)."""
    role = f"artifact:{path}"
    if len(role) <= _ROLE_LIMIT:
        return role
    digest = hashlib.sha256(path.encode("utf-8")).hexdigest()[:32]
    return f"artifact:{path[:80]}...#{digest}"


def local_files(local_path: Path | str, destination: str | None) -> list[tuple[Path, str]]:
    """The files to upload and their artifact paths; raises before anything is uploaded.

    A folder is walked without following symbolic links to folders; a special file
    (FIFO, socket, device) in it is refused, naming it.
    """
    source = Path(local_path).expanduser()
    prefix = artifact_path(destination, "artifact_path") if destination else ""
    try:
        mode = source.stat().st_mode
    except FileNotFoundError:
        raise NotFoundError(
            f"Cannot log artifact {source}: no such file or folder.",
            hint="Check the path (relative paths start at the working directory).",
        ) from None
    except OSError as exc:
        raise TrackingInputError(
            f"Cannot log artifact {source}: {exc.strerror or exc}.",
            hint="Check the path and its permissions.",
        ) from exc
    if stat.S_ISREG(mode):
        name = source.name
        return [(source, f"{prefix}/{name}" if prefix else artifact_path(name))]
    if not stat.S_ISDIR(mode):
        raise TrackingInputError(
            f"Cannot log artifact {source}: it is not a regular file or a folder.",
            hint="Log files and folders only (not FIFOs, sockets or devices).",
        )
    base = f"{prefix}/{source.resolve().name}" if prefix else source.resolve().name
    files: list[tuple[Path, str]] = []
    for folder, subfolders, names in os.walk(source, onerror=_raise_walk_error):
        subfolders.sort()
        for name in sorted(names):
            path = Path(folder) / name
            try:
                file_mode = path.stat().st_mode
            except OSError as exc:
                raise TrackingInputError(
                    f"Cannot log artifact {path}: {exc.strerror or exc}.",
                    hint="Fix or remove the file (a broken symbolic link?), then log again.",
                ) from exc
            if not stat.S_ISREG(file_mode):
                raise TrackingInputError(
                    f"Cannot log folder {source}: {path} is not a regular file.",
                    hint="Remove special files (FIFOs, sockets) from the folder first.",
                )
            relative = path.relative_to(source).as_posix()
            files.append((path, artifact_path(f"{base}/{relative}")))
    return files


def upload_files(
    stores: Stores, files: Sequence[tuple[Path, str]], kind: str
) -> list[ArtifactEntry]:
    """Stream each file into the artifact store; return the entries to record."""
    entries: list[ArtifactEntry] = []
    for local, path in files:
        try:
            blob_id = stores.artifacts.put_file(local)
            size = local.stat().st_size
        except FileNotFoundError:
            raise NotFoundError(
                f"Artifact file {local} disappeared while it was being logged.",
                hint="Log it again once nothing else is removing it.",
            ) from None
        entries.append(ArtifactEntry(path=path, blob_id=blob_id, size=size, kind=kind))
    return entries


def record_entries(
    conn: Connection, metadata: MetadataStore, run_id: str, entries: Sequence[ArtifactEntry]
) -> None:
    """Write (or replace) the rows and blob references of ``entries`` in one transaction."""
    if not entries:
        return
    statement = dialect_insert(metadata.dialect, run_artifacts)
    upsert = statement.on_conflict_do_update(
        index_elements=[run_artifacts.c.run_id, run_artifacts.c.path],
        set_={
            "blob_id": statement.excluded.blob_id,
            "size": statement.excluded.size,
            "kind": statement.excluded.kind,
        },
    )
    unique = list({entry.path: entry for entry in entries}.values())
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        roles = [artifact_role(entry.path) for entry in chunk]
        conn.execute(
            delete(blob_refs).where(
                blob_refs.c.owner_kind == "run",
                blob_refs.c.owner_id == run_id,
                blob_refs.c.role.in_(roles),
            )
        )
        conn.execute(
            upsert,
            [
                {
                    "run_id": run_id,
                    "path": entry.path,
                    "blob_id": entry.blob_id,
                    "size": entry.size,
                    "kind": entry.kind,
                }
                for entry in chunk
            ],
        )
        metadata.add_blob_refs(
            conn,
            [
                BlobRef(entry.blob_id, "run", run_id, role)
                for entry, role in zip(chunk, roles, strict=True)
            ],
        )


def list_entries(conn: Connection, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
    """The artifacts of a run under ``prefix`` (a file path or a folder), sorted by path."""
    query = select(run_artifacts).where(run_artifacts.c.run_id == run_id)
    if prefix:
        query = query.where(
            or_(
                run_artifacts.c.path == prefix,
                run_artifacts.c.path.startswith(f"{prefix}/", autoescape=True),
            )
        )
    return [
        ArtifactEntry(path=row.path, blob_id=row.blob_id, size=row.size, kind=row.kind)
        for row in conn.execute(query.order_by(run_artifacts.c.path))
    ]


def download(stores: Stores, entries: Sequence[ArtifactEntry], destination: Path) -> None:
    """Write each entry to ``destination/<path>`` (verified, atomic per file)."""
    root = destination.resolve()
    for entry in entries:
        target = (root / entry.path).resolve()
        if not target.is_relative_to(root):  # paths are checked on write; never trust them
            raise TrackingInputError(
                f"Artifact path {entry.path!r} escapes the destination folder {root}.",
                hint="The store holds a hostile path; report it.",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        stores.artifacts.get_file(ContentId(entry.blob_id), target)


def upload_text(stores: Stores, text: str, path: str) -> ArtifactEntry:
    """Put ``text`` (UTF-8) into the artifact store; return the entry for ``path``."""
    if not isinstance(text, str):
        raise TrackingInputError(
            f"log_text takes text, not {type(text).__name__}.",
            hint="Use log_artifact for files, or decode the bytes first.",
        )
    checked = artifact_path(path)
    data = text.encode("utf-8")
    return ArtifactEntry(checked, stores.artifacts.put_bytes(data), len(data), "file")


@contextmanager
def saved_model(
    model: Any, name: str, options: dict[str, Any]
) -> Iterator[tuple[ModelInfo, list[tuple[Path, str]]]]:
    """Save ``model`` with ``shipyard.formats.save_model`` into a scratch folder.

    Yields its ``ModelInfo`` and the files to log under ``name/``; the folder is removed
    afterwards.
    """
    from shipyard.formats import save_model

    prefix = artifact_path(name, "model name")
    with tempfile.TemporaryDirectory(prefix="shipyard-model-") as scratch:
        folder = Path(scratch) / "model"
        info = save_model(model, folder, **options)
        files = [
            (local, f"{prefix}/{path.partition('/')[2]}")
            for local, path in local_files(folder, None)
        ]
        yield info, files


def folder_prefix(path: str) -> str:
    """An artifact path argument as a prefix; ``''``, ``'.'`` and ``'/'`` mean everything."""
    if path in ("", ".", "/"):
        return ""
    return artifact_path(path)


def _raise_walk_error(error: OSError) -> None:
    raise TrackingInputError(
        f"Cannot read folder {error.filename}: {error.strerror or error}.",
        hint="Check the folder's permissions.",
    ) from error
