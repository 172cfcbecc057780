"""What dataset triggers watch: the newest version of a dataset, read from the datasets tables.

``latest_version`` returns ``(cursor, reference)`` for a dataset's newest committed
version (the highest version number): ``cursor`` is that version's record id, so it
changes whenever a newer version is committed; ``reference`` is what a triggered run
receives, ``name@vN``. A dataset with no version yet (or no such dataset) gives ``None``.
A version row is written in the same transaction as the rest of the version, so a
version seen here is complete.
"""

from __future__ import annotations

from sqlalchemy import select

from shipyard.store.metadata import MetadataStore
from shipyard.store.schema.datasets import dataset_versions, datasets

__all__ = ["latest_version"]


def latest_version(store: MetadataStore, dataset: str) -> tuple[str, str] | None:
    """The newest version of ``dataset`` as ``(cursor, reference)``, or ``None``."""
    query = (
        select(dataset_versions.c.id, dataset_versions.c.number)
        .join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
        .where(datasets.c.name == dataset)
        .order_by(dataset_versions.c.number.desc())
        .limit(1)
    )
    with store.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return str(row.id), f"{dataset}@v{row.number}"
