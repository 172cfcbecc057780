"""Move a project's stores to other backends: metadata rows and artifact blobs, verified.

``shipyard store migrate --to URI`` uses this to go from the embedded default (SQLite and a
local folder) to PostgreSQL and S3, and back. The copy is verified before it is declared
done: every table's row count matches, and every blob is present in the target and
re-hashes to its id. The source is never modified.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shipyard.core.errors import BackendError, IntegrityError, ShipyardError
from shipyard.core.ids import ContentId
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.metadata import MetadataStore
from shipyard.store.schema import metadata as schema_metadata

__all__ = ["TransferReport", "TransferTargetNotEmptyError", "copy_artifacts", "copy_metadata"]

_BATCH = 1000
_IDENTITY_TABLES = ("store_info",)
"""Tables whose rows describe the store itself: the source's replace the target's."""

Progress = Callable[[str, int], None]
"""Called with (what, how many more) as the copy advances."""


class TransferTargetNotEmptyError(ShipyardError):
    """The target store already holds records; copying into it could mix two projects."""

    code = "SY610"


@dataclass
class TransferReport:
    """What was copied and how it was verified."""

    rows: dict[str, int] = field(default_factory=dict)
    blobs_copied: int = 0
    blobs_already_present: int = 0
    bytes_copied: int = 0
    blobs_verified: int = 0


def _nonempty_tables(store: MetadataStore) -> list[str]:
    with store.connect() as conn:
        return [
            table.name
            for table in schema_metadata.sorted_tables
            if table.name not in _IDENTITY_TABLES
            and conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first()
        ]


def _batches(conn: sa.Connection, table: sa.Table) -> Iterator[list[dict[str, Any]]]:
    order = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(
        sa.select(table).order_by(*order)
    )
    for partition in result.mappings().partitions(_BATCH):
        yield [dict(row) for row in partition]


def copy_metadata(
    source: MetadataStore, target: MetadataStore, *, progress: Progress | None = None
) -> dict[str, int]:
    """Copy every table's rows from ``source`` to an empty ``target``; verify the counts.

    Both stores must be at the same schema revision (opening them migrates both to head).
    The copy runs in one transaction on the target: it lands whole or not at all.
    """
    if source.schema_revision() != target.schema_revision():
        raise BackendError(
            f"Source {source.display_uri} is at schema {source.schema_revision()} and target "
            f"{target.display_uri} at {target.schema_revision()}.",
            hint="Open both with this version of Shipyard so both migrate to the same schema.",
        )
    busy = _nonempty_tables(target)
    if busy:
        raise TransferTargetNotEmptyError(
            f"Target {target.display_uri} already holds records (tables: {', '.join(busy)}).",
            hint="Migrate into an empty database, or drop the target's tables first.",
        )
    counts: dict[str, int] = {}
    with source.connect() as read, target.transaction() as write:
        for table in schema_metadata.sorted_tables:
            if table.name in _IDENTITY_TABLES:
                write.execute(table.delete())
            copied = 0
            for rows in _batches(read, table):
                write.execute(table.insert(), rows)
                copied += len(rows)
                if progress:
                    progress(table.name, len(rows))
            counts[table.name] = copied
        if target.dialect == "postgresql":
            _reset_sequences(write)
    with target.connect() as conn:
        for table in schema_metadata.sorted_tables:
            found = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            if found != counts[table.name]:
                raise BackendError(
                    f"Table {table.name}: copied {counts[table.name]} rows but the target "
                    f"{target.display_uri} holds {found}.",
                    hint="Nothing else should write to the target during a migration; retry.",
                )
    return counts


def _reset_sequences(conn: sa.Connection) -> None:
    """After explicit ids were inserted, move each serial sequence past the largest id."""
    for table in schema_metadata.sorted_tables:
        column = table.autoincrement_column
        if column is None:
            continue
        next_value = sa.select(sa.func.coalesce(sa.func.max(column), 0) + 1).scalar_subquery()
        sequence = sa.func.pg_get_serial_sequence(table.name, column.name)
        conn.execute(sa.select(sa.func.setval(sequence, next_value, False)))


def copy_artifacts(
    source: ArtifactStore,
    target: ArtifactStore,
    *,
    progress: Progress | None = None,
) -> tuple[int, int, int]:
    """Copy every blob missing from ``target``; return (copied, already there, bytes).

    Each blob streams through a temporary file and is verified on the way out of the
    source (its hash is checked on read) and again by the target's content addressing.
    """
    copied = present = size = 0
    with tempfile.TemporaryDirectory(prefix="shipyard-transfer-") as scratch:
        for info in source.iter_blobs():
            if target.exists(info.id):
                present += 1
            else:
                local = source.get_file(info.id, Path(scratch) / "blob")
                stored = target.put_file(local)
                local.unlink()
                if stored != info.id:
                    raise IntegrityError(
                        f"Blob {info.id} from {source.uri} was stored as {stored} in {target.uri}.",
                        hint="The source blob changed while it was copied; run the "
                        "migration again.",
                    )
                copied += 1
                size += info.size
            if progress:
                progress("blobs", 1)
    return copied, present, size


def verify_artifacts(
    source: ArtifactStore, target: ArtifactStore, *, progress: Progress | None = None
) -> int:
    """Check every source blob is in ``target`` and re-hashes to its id there."""
    verified = 0
    for info in source.iter_blobs():
        target.verify(ContentId(info.id))
        verified += 1
        if progress:
            progress("verified", 1)
    return verified
