"""Garbage collection of the artifact store: delete blobs nothing refers to.

A blob is deleted only when it is unreferenced *and* older than the grace period. Both
halves matter with concurrent writers, which put a blob first and record their reference
to it afterwards:

- the grace period keeps a blob whose reference is not recorded yet (and a put of bytes
  already stored renews their write time, so re-used blobs get the same protection);
- the referenced set is read *after* the blobs are listed, so a reference recorded while
  the listing ran is seen;
- just before deleting, the blob's write time is read again, so one renewed by a put
  after the listing is kept.

What is left is a window of one request between that last check and the delete; keep the
grace period well above the time a writer takes between putting and recording (the
default is an hour).

Example::

    report = collect_garbage(store, metadata.referenced_blob_ids, dry_run=True)
    print(f"would free {report.bytes_freed} bytes in {report.deleted} blobs")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from shipyard.core.errors import NotFoundError
from shipyard.core.ids import ContentId
from shipyard.store.artifacts import ArtifactStore

__all__ = ["GcReport", "SupportsTemporaryCleanup", "collect_garbage"]


@runtime_checkable
class SupportsTemporaryCleanup(Protocol):
    """A store that can leave leftovers of interrupted writes (temporary files, uploads)."""

    def clean_temporary(self, older_than_seconds: float) -> int:
        """Remove leftovers older than ``older_than_seconds``; return how many."""
        ...


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one garbage collection found and did (or, with ``dry_run``, would do)."""

    examined: int
    kept_referenced: int
    kept_recent: int
    deleted: int
    bytes_freed: int
    deleted_ids: tuple[ContentId, ...]
    temporaries_removed: int = 0
    dry_run: bool = False


def collect_garbage(
    store: ArtifactStore,
    referenced: Iterable[ContentId] | Callable[[], Iterable[ContentId]],
    *,
    grace_seconds: float = 3600,
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
) -> GcReport:
    """Delete every blob that is not in ``referenced`` and older than ``grace_seconds``.

    Pass ``referenced`` as a callable (or a lazy iterable) so it is read after the
    listing; a set built beforehand can miss a reference recorded meanwhile. With
    ``dry_run`` nothing is deleted and the report says what would be. ``clock`` returns
    the current time in seconds since the epoch (tests move it forward).

    Leftovers of interrupted writes older than the grace period are removed too, when
    the store keeps any (``SupportsTemporaryCleanup``), except in a dry run.
    """
    if grace_seconds < 0:
        raise ValueError(f"grace_seconds must be >= 0, not {grace_seconds}")
    blobs = list(store.iter_blobs())
    keep = set(referenced() if callable(referenced) else referenced)
    now = clock()
    kept_referenced = kept_recent = bytes_freed = 0
    deleted_ids: list[ContentId] = []
    for blob in blobs:
        if blob.id in keep:
            kept_referenced += 1
            continue
        if now - blob.modified < grace_seconds:
            kept_recent += 1
            continue
        if dry_run:
            deleted_ids.append(blob.id)
            bytes_freed += blob.size
            continue
        try:
            current = store.info(blob.id)
        except NotFoundError:  # deleted by someone else meanwhile
            continue
        if now - current.modified < grace_seconds:  # re-put since the listing
            kept_recent += 1
            continue
        if store.delete(blob.id):
            deleted_ids.append(blob.id)
            bytes_freed += current.size
    temporaries_removed = 0
    if not dry_run and isinstance(store, SupportsTemporaryCleanup):
        temporaries_removed = store.clean_temporary(grace_seconds)
    return GcReport(
        examined=len(blobs),
        kept_referenced=kept_referenced,
        kept_recent=kept_recent,
        deleted=len(deleted_ids),
        bytes_freed=bytes_freed,
        deleted_ids=tuple(deleted_ids),
        temporaries_removed=temporaries_removed,
        dry_run=dry_run,
    )
