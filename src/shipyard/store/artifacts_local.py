"""The artifact store in a local (or mounted) folder: ``root/blobs/ab/cd/<hex>``.

A write streams into a temporary file in ``root/tmp/`` (same filesystem, so the final
rename is atomic), fsyncs it, then ``os.replace``-s it into ``blobs/``: a reader sees the
whole blob or none, and a crash leaves at most a stale temporary that
``clean_temporary`` (run by ``store.gc.collect_garbage``) removes. ``put_file(path,
link=True)`` stores a file by hard link instead of a copy (the file becomes the blob).

Example::

    with LocalArtifactStore(Path("artifacts")) as store:
        blob_id = store.put_file(Path("model.pkl"))
        store.get_file(blob_id, Path("restored/model.pkl"))
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import stat as stat_module
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from shipyard.core.errors import BackendUnavailableError, IntegrityError, NotFoundError
from shipyard.core.ids import ContentId, content_id_of_bytes
from shipyard.store.artifacts import BlobInfo
from shipyard.store.artifacts_blobs import (
    CHUNK_SIZE,
    blob_id_from_key,
    blob_key,
    blob_not_found,
    create_temporary_file,
    open_source_file,
    verify_chunks,
    write_verified_file,
)

__all__ = ["LocalArtifactStore"]

_HEX2 = re.compile(r"[0-9a-f]{2}")
_BLOB_MODE = 0o444  # blobs are immutable; read-only guards against an accidental edit


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); a no-op where unsupported."""
    if os.name != "posix":
        return
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalArtifactStore:
    """Content-addressed blobs in a folder. Creating it touches nothing on disk.

    >>> store = LocalArtifactStore(Path("artifacts"))
    >>> store.uri.endswith("artifacts")
    True
    """

    def __init__(self, root: Path | str) -> None:
        self._root = Path(root).expanduser().absolute()
        self._blobs = self._root / "blobs"
        self._tmp = self._root / "tmp"

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self._root)!r})"

    @property
    def uri(self) -> str:
        """The absolute folder path."""
        return str(self._root)

    @property
    def root(self) -> Path:
        """The store's folder."""
        return self._root

    def path_of(self, blob_id: ContentId) -> Path:
        """The file a blob is (or would be) stored in."""
        return self._blobs / blob_key(blob_id)

    # --- writing ------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> ContentId:
        """Store ``data``; return its content id. Idempotent."""
        blob_id = content_id_of_bytes(data)
        if self._refresh(blob_id, len(data)):
            return blob_id
        return self._write_blob([data])

    def put_file(
        self,
        path: Path,
        *,
        link: bool = False,
        hashed_as: tuple[ContentId, os.stat_result] | None = None,
    ) -> ContentId:
        """Store a file's bytes; return its content id.

        **Copy mode** (the default): the bytes are streamed in 1 MiB chunks, hashed while
        they are copied to a temporary file; if that blob is already stored, the copy is
        dropped and the stored blob is left as it is.

        **Link mode** (``link=True``): the file itself becomes the blob, by a hard link
        into the store, with no copy (the way DVC's ``cache.type hardlink`` works). The
        file is made read-only, since it now *is* the stored bytes: edit a copy, never the
        file in place (an in-place edit would surface as an ``IntegrityError`` on the
        next read of the blob). The store hashes the file first, unless the caller has
        already: ``hashed_as=(content_id, stat)`` gives the id and the ``os.stat`` of the
        file when it was hashed, and the link is kept only if the linked file's size,
        mtime and inode still match (else ``IntegrityError``, nothing stored). The file is
        fsynced and the rename made durable, as in copy mode. When the file cannot be
        linked (another filesystem, links not permitted) it is copied instead.

        >>> blob = store.put_file(Path("weights.bin"), link=True)
        >>> store.path_of(blob).samefile("weights.bin")
        True
        """
        path = Path(path)
        if link:
            linked = self._link_file(path, hashed_as)
            if linked is not None:
                return linked
        with open_source_file(path) as source:
            return self._write_blob(iter(lambda: source.read(CHUNK_SIZE), b""))

    def _link_file(
        self, path: Path, hashed_as: tuple[ContentId, os.stat_result] | None
    ) -> ContentId | None:
        """Link mode of ``put_file``; None if the file cannot be hard-linked here."""
        if hashed_as is None:
            with open_source_file(path) as source:
                before = os.fstat(source.fileno())
                # A BufferedReader, typed IO[bytes]: file_digest reads it in C without the GIL.
                digest = hashlib.file_digest(source, "sha256")  # type: ignore[arg-type]
            hashed_as = (ContentId("sha256:" + digest.hexdigest()), before)
        blob_id, hashed_stat = hashed_as
        if self._refresh(blob_id, hashed_stat.st_size):
            return blob_id  # already stored: leave the caller's file as it is
        with self._writing():
            self._tmp.mkdir(parents=True, exist_ok=True)
        temp = self._tmp / f"link-{secrets.token_hex(12)}.part"
        try:
            os.link(path, temp)
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"File {path} does not exist, so it cannot be stored.", hint="Check the path."
            ) from exc
        except OSError:
            return None  # another filesystem, or links not allowed: the caller copies
        try:
            now = os.stat(temp)
            if (now.st_size, now.st_mtime_ns, now.st_ino) != (
                hashed_stat.st_size,
                hashed_stat.st_mtime_ns,
                hashed_stat.st_ino,
            ):
                raise IntegrityError(
                    f"{path} changed after it was hashed, so it was not stored.",
                    hint="Store it again once nothing writes to it.",
                )
            with self._writing():
                os.chmod(temp, stat_module.S_IMODE(now.st_mode) & ~0o222)
                fd = os.open(temp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                final = self.path_of(blob_id)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp, final)
            _fsync_directory(final.parent)
            return blob_id
        finally:
            with suppress(OSError):
                temp.unlink()

    def _write_blob(self, chunks: Iterable[bytes]) -> ContentId:
        fd, temp = self.new_temporary()
        try:
            digest = hashlib.sha256()
            size = 0
            out = os.fdopen(fd, "wb")
            try:
                for chunk in chunks:  # the caller's read errors propagate unchanged
                    digest.update(chunk)
                    size += len(chunk)
                    with self._writing():
                        out.write(chunk)
                with self._writing():
                    out.flush()
                    os.fsync(out.fileno())
            finally:
                # Nothing is left to flush: the data is fsynced, or about to be discarded.
                with suppress(OSError):
                    out.close()
            blob_id = ContentId("sha256:" + digest.hexdigest())
            if not self._refresh(blob_id, size):
                final = self.path_of(blob_id)
                with self._writing():
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(temp, final)
                _fsync_directory(final.parent)
            return blob_id
        finally:
            with suppress(OSError):
                temp.unlink()

    def new_temporary(self, prefix: str = "put-") -> tuple[int, Path]:
        """A new file in the store's temporary folder, open for writing (its descriptor
        and path): a caller that writes a blob's bytes there can ``put_file(path,
        link=True, ...)`` it with no copy. Left behind by a crash, it is removed by
        ``clean_temporary``; remove it yourself once stored."""
        with self._writing():
            try:
                return create_temporary_file(self._tmp, prefix, _BLOB_MODE)
            except FileNotFoundError:
                self._tmp.mkdir(parents=True, exist_ok=True)
                return create_temporary_file(self._tmp, prefix, _BLOB_MODE)

    def _refresh(self, blob_id: ContentId, size: int | None = None) -> bool:
        """If the blob is stored (with ``size`` bytes, when given), renew its write time
        and return True.

        Putting bytes that are already stored writes nothing, but the caller is about to
        record a reference to them: the renewed time gives it GC's whole grace period. A
        stored file of the wrong size (truncated by a crash or a full disk) is damaged:
        False, so the caller's good bytes replace it instead of being dropped.
        """
        path = self.path_of(blob_id)
        try:
            if size is not None and path.stat().st_size != size:
                return False
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:
            # e.g. a shared store whose blob another user wrote: keep it, unrefreshed.
            return path.is_file()
        return True

    # --- reading ------------------------------------------------------------------------

    def get_bytes(self, blob_id: ContentId) -> bytes:
        """Return a blob's bytes, verified. ``NotFoundError`` / ``IntegrityError``."""
        with self._open_blob(blob_id) as source, self._reading():
            data = source.read()
        verify_chunks([data], blob_id, str(self.path_of(blob_id)), self._repair_hint(blob_id))
        return data

    def get_file(self, blob_id: ContentId, destination: Path) -> Path:
        """Write a blob to ``destination`` atomically, verified; return the path."""
        with self._open_blob(blob_id) as source:
            return write_verified_file(
                self._chunks(source),
                blob_id,
                destination,
                str(self.path_of(blob_id)),
                self._repair_hint(blob_id),
            )

    def verify(self, blob_id: ContentId) -> None:
        """Re-hash a stored blob; raise ``IntegrityError`` if it changed."""
        with self._open_blob(blob_id) as source:
            verify_chunks(
                self._chunks(source),
                blob_id,
                str(self.path_of(blob_id)),
                self._repair_hint(blob_id),
            )

    def exists(self, blob_id: ContentId) -> bool:
        """Whether the blob is stored (does not verify its bytes)."""
        return self.path_of(blob_id).is_file()

    def info(self, blob_id: ContentId) -> BlobInfo:
        """Size and write time of a blob. ``NotFoundError`` if absent."""
        try:
            stat = self.path_of(blob_id).stat()
        except FileNotFoundError as exc:
            raise blob_not_found(blob_id, self.uri) from exc
        except OSError as exc:
            raise self._unreadable(exc) from exc
        return BlobInfo(id=blob_id, size=stat.st_size, modified=stat.st_mtime)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob, in no particular order; stray files are skipped."""
        for first in _subdirectories(self._blobs, _HEX2):
            for second in _subdirectories(first, _HEX2):
                with self._reading(), os.scandir(second) as entries:
                    found = list(entries)
                for entry in found:
                    blob_id = blob_id_from_key(entry.path)
                    if blob_id is None or not entry.is_file(follow_symlinks=False):
                        continue
                    try:
                        stat = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # deleted while we listed
                        continue
                    yield BlobInfo(id=blob_id, size=stat.st_size, modified=stat.st_mtime)

    # --- removing -----------------------------------------------------------------------

    def delete(self, blob_id: ContentId) -> bool:
        """Remove a blob; return whether it was there.

        Empty ``ab/cd`` folders are kept: removing one could race a concurrent put that
        has just created it and is about to rename its blob into it.
        """
        with self._writing():
            try:
                self.path_of(blob_id).unlink()
            except FileNotFoundError:
                return False
        return True

    def clean_temporary(self, older_than_seconds: float) -> int:
        """Remove temporaries in ``root/tmp/`` left by interrupted writes; return how many.

        Only files older than ``older_than_seconds`` go: a younger one may be a put in
        progress.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        try:
            entries = list(os.scandir(self._tmp))
        except (FileNotFoundError, NotADirectoryError):
            return 0
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    with self._writing():
                        os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:  # removed by someone else meanwhile
                continue
        return removed

    # --- lifecycle ----------------------------------------------------------------------

    def check_writable(self) -> None:
        """Create the folder if needed and write a probe file; ``BackendUnavailableError``
        with the reason and the fix if that fails."""
        with self._writing():
            self._blobs.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
            fd, probe = create_temporary_file(self._tmp, "check-", 0o600)
            os.close(fd)
            probe.unlink()

    def close(self) -> None:
        """Nothing to release: the store holds no open handles between calls."""

    def __enter__(self) -> LocalArtifactStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- errors -------------------------------------------------------------------------

    @contextmanager
    def _open_blob(self, blob_id: ContentId) -> Iterator[IO[bytes]]:
        path = self.path_of(blob_id)
        try:
            source = path.open("rb")
        except FileNotFoundError as exc:
            raise blob_not_found(blob_id, self.uri) from exc
        except OSError as exc:
            raise self._unreadable(exc) from exc
        with source:
            yield source

    def _chunks(self, source: IO[bytes]) -> Iterator[bytes]:
        while True:
            with self._reading():
                chunk = source.read(CHUNK_SIZE)
            if not chunk:
                return
            yield chunk

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise self._not_writable(exc) from exc

    @contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise self._unreadable(exc) from exc

    def _not_writable(self, exc: OSError) -> BackendUnavailableError:
        blocker = self._file_in_the_way()
        if blocker is not None:
            fix = f"Move {blocker} out of the way"
        elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = "Free space on that disk"
        else:
            fix = "Fix its permissions"
        return BackendUnavailableError(
            f"Artifact folder {self._root} is not writable ({self._reason(exc, blocker)}).",
            hint=f"{fix} or set store.artifacts / SHIPYARD_STORE_ARTIFACTS to a writable folder.",
        )

    def _unreadable(self, exc: OSError) -> BackendUnavailableError:
        blocker = self._file_in_the_way()
        return BackendUnavailableError(
            f"Artifact folder {self._root} is not readable ({self._reason(exc, blocker)}).",
            hint="Fix its permissions or set store.artifacts / SHIPYARD_STORE_ARTIFACTS "
            "to the right folder.",
        )

    def _file_in_the_way(self) -> Path | None:
        """The file, if any, sitting where the store needs a folder."""
        for ancestor in [self._tmp, self._blobs, self._root, *self._root.parents]:
            if ancestor.exists() and not ancestor.is_dir():
                return ancestor
        return None

    @staticmethod
    def _reason(exc: OSError, blocker: Path | None) -> str:
        reason = exc.strerror or str(exc)
        # "Not a directory" alone does not say which path is in the way.
        return f"{reason}: {blocker} is a file" if blocker is not None else reason

    def _repair_hint(self, blob_id: ContentId) -> str:
        return (
            f"Delete {self.path_of(blob_id)} and put the original file again, "
            "or restore that file from a backup."
        )


def _subdirectories(folder: Path, name: re.Pattern[str]) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [
                Path(entry.path)
                for entry in entries
                if name.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
