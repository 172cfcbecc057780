"""File versions, as DVC does them without git: any file or folder, versioned by its bytes.

A file version is a manifest: every file's relative path, size and content id (the
SHA-256 of its bytes), and where its bytes are stored. The version's content id hashes
the sorted (path, size, id) list, so the same files give the same id however they are
stored. Storage is built for speed at both ends of the scale:

- small files (under ``SMALL_FILE``) are packed together into pack blobs, so 10,000
  files cost a few writes, not 10,000 (an unchanged file keeps pointing into the pack of
  an earlier version: no copy); a pack is written once, in the store's own temporary
  folder, and linked into place;
- a large file is its own blob, stored by the local artifact store's link mode
  (``put_file(path, link=True)``: a hard link, no copy) when ``link="auto"`` or
  ``"hardlink"`` and the store is on the same filesystem (the file becomes read-only,
  like every blob, since it now *is* the blob; edit a copy, or pass ``link="copy"``),
  else streamed by the store's ``put_file``;
- hashes are computed in threads, and remembered in a stat cache (``statcache``), so
  ``status`` on an unchanged folder hashes nothing;
- the version is recorded through a ``FileCatalog``: ``catalog`` (any metadata store),
  or, from the command line on the embedded store, ``files_sqlite`` (no SQLAlchemy to
  import for one row).

>>> client.version_files("images", "data/images/").version.reference
'images@v1'
>>> client.status("images").clean
True
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol

from shipyard.core.errors import NotFoundError
from shipyard.core.ids import ContentId, content_id_of_bytes
from shipyard.data.blobs import put_json
from shipyard.data.errors import SourceError
from shipyard.data.file_changes import (
    SMALL_FILE,
    THREADS,
    FileStatus,
    Found,
    Prehashed,
    ReadAhead,
    changed_error,
    compare,
    hash_large,
    read_small,
    same_stat,
    walk,
)
from shipyard.data.records import DatasetVersion, IngestResult
from shipyard.data.report import ContractReport
from shipyard.data.statcache import StatCache
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.artifacts_local import LocalArtifactStore

if TYPE_CHECKING:
    from shipyard.data.client import DatasetClient
    from shipyard.data.ingestion import StageProgress

__all__ = [
    "FILES_FORMAT",
    "FileCatalog",
    "FileEntry",
    "FileStatus",
    "file_status",
    "read_manifest",
    "record_files",
    "version_files",
]

FILES_FORMAT = "shipyard.files.v1"
PACK_BYTES = 64 << 20
"""A pack blob holds at most about this many bytes."""
_BUFFER = 8 << 20
_BATCH_BYTES = 32 << 20
_BATCH_FILES = 4096


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a file version: where it sits, what it holds, where its bytes are."""

    path: str
    size: int
    content_id: str
    blob: str
    offset: int = 0


def manifest_id(entries: Sequence[FileEntry]) -> str:
    """The content id of a file version: its sorted (path, size, id) list."""
    document = {"format": FILES_FORMAT, "files": [[e.path, e.size, e.content_id] for e in entries]}
    return content_id_of_bytes(json.dumps(document, separators=(",", ":")).encode())


def read_manifest(client: DatasetClient, version: DatasetVersion) -> list[FileEntry]:
    """The files of a file version, sorted by path."""
    return _manifest(client.stores.artifacts, version)


class _Packer:
    """Small files' bytes into pack blobs; entries wait for their pack's id.

    A pack is written once: into a local store's own temporary folder, hashed as it is
    written, then linked into place as its blob (no second copy). For another store it
    goes to a temporary file that the store's ``put_file`` uploads.
    """

    def __init__(self, artifacts: ArtifactStore) -> None:
        self._artifacts = artifacts
        self._local = artifacts if isinstance(artifacts, LocalArtifactStore) else None
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._digest = hashlib.sha256()
        self._size = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending: list[tuple[str, int, str, int]] = []
        self.entries: list[FileEntry] = []

    def add(self, rel: str, content_id: str, data: bytes) -> None:
        if self._file is None:
            if self._local is not None:
                fd, self._path = self._local.new_temporary("pack-")
            else:
                fd, name = tempfile.mkstemp(prefix="shipyard-pack-")
                self._path = Path(name)
            self._file = os.fdopen(fd, "wb")
            self._digest = hashlib.sha256()
            self._size = 0
        self._buffer.append(data)
        self._buffered += len(data)
        self._pending.append((rel, len(data), content_id, self._size))
        self._size += len(data)
        if self._buffered >= _BUFFER:
            self._write()
        if self._size >= PACK_BYTES:
            self.flush()

    def _write(self) -> None:
        if self._file is not None and self._buffer:
            chunk = b"".join(self._buffer)
            self._digest.update(chunk)
            self._file.write(chunk)
        self._buffer = []
        self._buffered = 0

    def flush(self) -> None:
        """Store the pack being written (if any) as a blob."""
        if self._file is None or self._path is None:
            return
        self._write()
        self._file.close()
        self._file = None
        if self._local is not None:
            blob_id = ContentId("sha256:" + self._digest.hexdigest())
            pack = self._local.put_file(
                self._path, link=True, hashed_as=(blob_id, os.stat(self._path))
            )
        else:
            pack = self._artifacts.put_file(self._path)
        self.discard()
        self.entries += [
            FileEntry(rel, size, cid, pack, offset) for rel, size, cid, offset in self._pending
        ]
        self._pending = []

    def discard(self) -> None:
        """Remove the temporary file of the pack being written, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            with suppress(OSError):
                self._path.unlink()
            self._path = None


def _manifest(artifacts: ArtifactStore, version: DatasetVersion) -> list[FileEntry]:
    if version.kind != "files":
        raise SourceError(f"{version.reference} is a table, not a file version.")
    manifest = json.loads(artifacts.get_bytes(ContentId(str(version.data["manifest"]))))
    return [FileEntry(*row) for row in manifest["files"]]


class FileCatalog(Protocol):
    """Where file versions are recorded: ``catalog`` through a ``DatasetClient``, or
    ``files_sqlite.EmbeddedFileCatalog`` (the embedded store, without SQLAlchemy)."""

    @property
    def artifacts(self) -> ArtifactStore: ...

    def latest(self, name: str) -> DatasetVersion | None: ...

    def insert(
        self,
        name: str,
        *,
        content_id: str,
        num_rows: int,
        num_bytes: int,
        data: Mapping[str, Any],
        blobs: Sequence[tuple[str, str]],
        source: Mapping[str, Any],
        checks: Mapping[str, Any],
        tags: Mapping[str, str] | None = None,
    ) -> DatasetVersion: ...


class _ClientCatalog:
    """``FileCatalog`` over a ``DatasetClient``'s stores, through ``catalog``."""

    def __init__(self, client: DatasetClient) -> None:
        self._client = client

    @property
    def artifacts(self) -> ArtifactStore:
        return self._client.stores.artifacts

    def latest(self, name: str) -> DatasetVersion | None:
        from shipyard.data import catalog

        return catalog.latest_version(self._client.stores.metadata, name)

    def insert(self, name: str, **fields: Any) -> DatasetVersion:
        from shipyard.data import catalog

        return catalog.insert_version(
            self._client.stores.metadata, name, "files", schema=[], report_blob=None, **fields
        )


def version_files(
    client: DatasetClient,
    name: str,
    path: Path,
    *,
    tags: Any = None,
    link: Literal["auto", "copy", "hardlink"] = "auto",
    progress: StageProgress | None = None,
    read_ahead: ReadAhead | None = None,
) -> IngestResult:
    """Version the file or folder ``path`` as dataset ``name`` (see the module docstring).

    ``read_ahead`` (``file_changes.Prehash``) gives files listed, read and hashed while
    the caller was opening its stores; a file's entry counts only if its stat still
    matches.
    """
    return record_files(
        _ClientCatalog(client),
        _cache(client),
        name,
        path,
        tags=tags,
        link=link,
        progress=progress,
        read_ahead=read_ahead,
    )


def record_files(
    target: FileCatalog,
    cache: StatCache,
    name: str,
    path: Path,
    *,
    tags: Any = None,
    link: Literal["auto", "copy", "hardlink"] = "auto",
    progress: StageProgress | None = None,
    read_ahead: ReadAhead | None = None,
) -> IngestResult:
    """``version_files`` into any ``FileCatalog``, with the stat cache ``cache``.

    Every blob is stored (and fsynced) before the version is recorded, in one
    transaction: a failure on the way leaves no version (and blobs that GC removes).
    """
    root = Path(os.path.abspath(path.expanduser()))
    if not root.exists():
        raise NotFoundError(f"{root} does not exist.", hint="Check the path.")
    ahead = read_ahead if read_ahead is not None and read_ahead.root == str(root) else None
    found = ahead.files if ahead is not None else walk(root)
    if not found:
        raise SourceError(f"{root} holds no files to version.")
    cached_stats = cache.load(root)
    previous = target.latest(name)
    artifacts = target.artifacts
    known: dict[str, tuple[str, int]] = {}
    if previous is not None and previous.kind == "files":
        known = {e.content_id: (e.blob, e.offset) for e in _manifest(artifacts, previous)}
    local = artifacts if isinstance(artifacts, LocalArtifactStore) else None
    linking = link != "copy" and local is not None
    ids: dict[str, str] = {}
    entries: list[FileEntry] = []
    small_new: list[Found] = []
    large_new: list[Found] = []
    for item in found:
        cached = cached_stats.get(item.path)
        if cached is not None and cached.matches(item.stat):
            cid = cached.content_id
            if cid in known:
                blob, offset = known[cid]
                entries.append(FileEntry(item.rel, item.stat.st_size, cid, blob, offset))
                ids[item.rel] = cid
                continue
            if item.stat.st_size >= SMALL_FILE and artifacts.exists(ContentId(cid)):
                entries.append(FileEntry(item.rel, item.stat.st_size, cid, cid, 0))
                ids[item.rel] = cid
                continue
        (small_new if item.stat.st_size < SMALL_FILE else large_new).append(item)
    linked = 0
    total = len(small_new) + len(large_new)
    done = 0
    early_reads: Mapping[str, Prehashed] = ahead.hashed if ahead is not None else {}

    def read_early(item: Found) -> tuple[str, bytes]:
        early = early_reads.get(item.path)
        if early is not None and early[2] is not None and same_stat(early[0], item.stat):
            return early[1], early[2]
        return read_small(item)

    packer = _Packer(artifacts)
    try:
        packed_here: set[str] = set()
        duplicates: list[tuple[str, int, str]] = []
        for batch in _batches(small_new):
            # Small files are read in this thread: from the page cache, threads reading
            # 1 KiB files only fight over the GIL (measured 2x slower).
            for item, (cid, data) in zip(batch, map(read_early, batch), strict=True):
                ids[item.rel] = cid
                if cid in known:
                    blob, offset = known[cid]
                    entries.append(FileEntry(item.rel, len(data), cid, blob, offset))
                elif cid in packed_here:
                    duplicates.append((item.rel, len(data), cid))
                else:
                    packer.add(item.rel, cid, data)
                    packed_here.add(cid)
            done += len(batch)
            if progress:
                progress("hash", done, total)
        packer.flush()
    finally:
        packer.discard()
    entries += packer.entries
    packed = {e.content_id: (e.blob, e.offset) for e in packer.entries}
    entries += [FileEntry(rel, size, cid, *packed[cid]) for rel, size, cid in duplicates]

    def store_large(item: Found) -> tuple[str, bool]:
        if linking and local is not None:
            early = early_reads.get(item.path)
            if early is not None and same_stat(early[0], item.stat):
                cid = ContentId(early[1])
            else:
                cid = ContentId(hash_large(item))
            if local.exists(cid):
                return cid, False
            # The store links the file as the blob (or copies it if it cannot), keeping
            # the link only if the file's stat is still the one it was hashed under.
            stored = local.put_file(Path(item.path), link=True, hashed_as=(cid, item.stat))
        else:
            stored = artifacts.put_file(Path(item.path))
        after = os.stat(item.path)
        if not same_stat(after, item.stat):
            raise changed_error(item.path)
        was_linked = local is not None and after.st_ino == _inode(local.path_of(stored))
        return stored, was_linked

    if len(large_new) == 1:  # the common single large file: no pool to start
        stored_large = [store_large(large_new[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(THREADS) as pool:
            stored_large = list(pool.map(store_large, large_new))
    for item, (cid, was_linked) in zip(large_new, stored_large, strict=True):
        ids[item.rel] = cid
        linked += was_linked
        entries.append(FileEntry(item.rel, item.stat.st_size, cid, cid, 0))
        done += 1
        if progress:
            progress("hash", done, total)
    entries.sort(key=lambda e: e.path)
    cache.store(root, ((f.path, f.stat, ids[f.rel]) for f in found))
    content_id = manifest_id(entries)
    total_bytes = sum(e.size for e in entries)
    report = ContractReport(
        source=str(root),
        rows_read=len(entries),
        rows_passed=len(entries),
        rows_quarantined=0,
        content_id=content_id,
    )
    notes = []
    if linked:
        notes.append(
            f"{linked} large file(s) were hard-linked into the artifact store and made read-only "
            "(they are the stored bytes now); pass link='copy' (--link copy) to copy instead."
        )
    cache.store_manifest(content_id, {e.path: (e.size, e.content_id) for e in entries})
    if previous is not None and previous.content_id == content_id:
        return IngestResult(previous, report, created=False, notes=tuple(notes))
    manifest_blob = put_json(
        artifacts,
        {
            "format": FILES_FORMAT,
            "files": [[e.path, e.size, e.content_id, e.blob, e.offset] for e in entries],
        },
    )
    blobs: list[tuple[str, str]] = [(manifest_blob, "manifest")]
    blobs += [(blob, "file") for blob in sorted({e.blob for e in entries})]
    version = target.insert(
        name,
        content_id=content_id,
        num_rows=len(entries),
        num_bytes=total_bytes,
        data={"manifest": manifest_blob, "files": len(entries)},
        blobs=blobs,
        source={"kind": "files", "path": str(root), "files": len(entries), "bytes": total_bytes},
        checks=report.summary_dict(),
        tags=tags,
    )
    return IngestResult(version, report, created=True, notes=tuple(notes))


def _inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except OSError:
        return -1


def _batches(items: list[Found]) -> Iterator[list[Found]]:
    """Groups of small files of bounded total size (bytes held in memory at once)."""
    batch: list[Found] = []
    size = 0
    for item in items:
        batch.append(item)
        size += item.stat.st_size
        if size >= _BATCH_BYTES or len(batch) >= _BATCH_FILES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _cache(client: DatasetClient) -> StatCache:
    config = client.config
    home = config.home if config is not None else Path.cwd() / ".shipyard"
    return StatCache(home / "cache" / "file-stats.sqlite")


def file_status(client: DatasetClient, name: str, path: Path | None = None) -> FileStatus:
    """Compare a file dataset's folder with its latest version, hashing only files whose
    size, mtime or inode changed since they were last hashed (see ``file_changes``)."""
    from shipyard.data import catalog

    version = catalog.resolve_version(client.stores.metadata, name)
    if version.kind != "files":
        raise SourceError(
            f"Dataset '{name}' is a table; status compares file versions with their folder."
        )
    root = Path(os.path.abspath((path or Path(str(version.source["path"]))).expanduser()))
    recorded = {e.path: (e.size, e.content_id) for e in read_manifest(client, version)}
    cache = _cache(client)
    cache.store_manifest(version.content_id, recorded)
    return compare(cache, version.dataset, version.reference, root, recorded)
