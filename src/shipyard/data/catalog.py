"""The datasets catalog in the metadata store: datasets, versions, aliases, lineage edges.

A version is written in one transaction (dataset row if new, version row, lineage edges,
blob references, audit event) after its blobs are stored, so readers see a whole version
or none. Version numbers are taken under a lock on the dataset's row (PostgreSQL
``FOR UPDATE``; SQLite's write lock), so concurrent ingestions get distinct numbers.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from shipyard.core.errors import AlreadyExistsError, AmbiguousReferenceError, NotFoundError
from shipyard.core.ids import new_id
from shipyard.core.references import Reference, parse_reference, validate_name
from shipyard.data.records import (
    Dataset,
    DatasetKind,
    DatasetVersion,
    LineageEdge,
    SchemaColumn,
)
from shipyard.store.metadata import BlobRef, MetadataStore
from shipyard.store.schema import utc_now
from shipyard.store.schema.datasets import (
    dataset_aliases,
    dataset_lineage,
    dataset_versions,
    datasets,
)

__all__ = [
    "OWNER_KIND",
    "find_version_by_content",
    "insert_version",
    "list_datasets",
    "list_versions",
    "resolve_version",
    "set_alias",
]

OWNER_KIND = "dataset_version"
"""``blob_refs.owner_kind`` of every blob a dataset version keeps."""


def current_user() -> str:
    try:
        return getpass.getuser()[:256]
    except (KeyError, OSError):
        return "unknown"


def _version(
    row: RowMapping, name: str, aliases: Sequence[str] = (), edges: Sequence[LineageEdge] = ()
) -> DatasetVersion:
    return DatasetVersion(
        id=row["id"],
        dataset=name,
        number=int(row["number"]),
        content_id=row["content_id"],
        kind=row["kind"],
        schema=tuple(
            SchemaColumn(c["name"], c["type"], bool(c["nullable"])) for c in row["schema"]
        ),
        num_rows=int(row["num_rows"]),
        num_bytes=int(row["num_bytes"]),
        data=row["data"],
        profile_blob=row["profile_blob"],
        sample_blob=row["sample_blob"],
        quarantine_blob=row["quarantine_blob"],
        quarantined_rows=int(row["quarantined_rows"]),
        report_blob=row["report_blob"],
        checks=row["checks"],
        contract=row["contract"],
        source=row["source"],
        tags=row["tags"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        aliases=tuple(aliases),
        upstream=tuple(edges),
    )


def _dataset_row(conn: Connection, name: str) -> RowMapping | None:
    return conn.execute(select(datasets).where(datasets.c.name == name)).mappings().first()


def _load(conn: Connection, row: RowMapping, name: str) -> DatasetVersion:
    aliases = conn.execute(
        select(dataset_aliases.c.alias)
        .where(dataset_aliases.c.version_id == row["id"])
        .order_by(dataset_aliases.c.alias)
    ).scalars()
    edges = [
        LineageEdge(
            e["input_name"], e["upstream_dataset"], e["upstream_content_id"], e["upstream_number"]
        )
        for e in conn.execute(
            select(dataset_lineage)
            .where(dataset_lineage.c.version_id == row["id"])
            .order_by(dataset_lineage.c.input_name)
        ).mappings()
    ]
    return _version(row, name, list(aliases), edges)


def resolve_version(store: MetadataStore, reference: str | Reference) -> DatasetVersion:
    """The version ``churn``, ``churn@v3``, ``churn@prod`` or ``churn@3f9a1c`` names.

    A bare name means the latest version. ``NotFoundError`` says what exists instead.
    """
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    with store.connect() as conn:
        dataset = _dataset_row(conn, ref.name)
        if dataset is None:
            raise NotFoundError(
                f"Dataset '{ref.name}' does not exist.",
                hint="List datasets with `shipyard datasets list`.",
            )
        query = select(dataset_versions).where(dataset_versions.c.dataset_id == dataset["id"])
        if ref.kind == "latest":
            query = query.order_by(dataset_versions.c.number.desc()).limit(1)
        elif ref.kind == "version":
            query = query.where(dataset_versions.c.number == ref.version)
        elif ref.kind == "alias":
            query = query.join(
                dataset_aliases, dataset_aliases.c.version_id == dataset_versions.c.id
            ).where(
                dataset_aliases.c.dataset_id == dataset["id"], dataset_aliases.c.alias == ref.value
            )
        else:
            prefix = f"sha256:{ref.value}"
            rows = (
                conn.execute(
                    query.where(
                        dataset_versions.c.content_id.startswith(prefix, autoescape=True)
                    ).order_by(dataset_versions.c.number.desc())
                )
                .mappings()
                .all()
            )
            distinct = {row["content_id"] for row in rows}
            if len(distinct) > 1:
                shown = ", ".join(sorted(c[7:19] for c in distinct))
                raise AmbiguousReferenceError(
                    f"Reference '{ref}' matches versions with different content ({shown}).",
                    hint="Give more hex digits of the content id.",
                )
            row = rows[0] if rows else None
            if row is None:
                raise _missing(ref, conn, dataset["id"])
            return _load(conn, row, ref.name)
        found = conn.execute(query).mappings().first()
        if found is None:
            raise _missing(ref, conn, dataset["id"])
        return _load(conn, found, ref.name)


def _missing(ref: Reference, conn: Connection, dataset_id: str) -> NotFoundError:
    latest = conn.execute(
        select(func.max(dataset_versions.c.number)).where(
            dataset_versions.c.dataset_id == dataset_id
        )
    ).scalar()
    if latest is None:
        return NotFoundError(f"Dataset '{ref.name}' has no versions yet.")
    what = {"version": "version", "alias": "alias", "id": "version with content id"}[ref.kind]
    return NotFoundError(
        f"Dataset '{ref.name}' has no {what} '{ref.value}'.",
        hint=f"Its versions are v1..v{latest}; see `shipyard datasets list {ref.name}`.",
    )


def list_datasets(store: MetadataStore) -> list[Dataset]:
    """Every dataset, by name, with its version count and latest number."""
    counts = (
        select(
            dataset_versions.c.dataset_id,
            func.count().label("versions"),
            func.max(dataset_versions.c.number).label("latest"),
        )
        .group_by(dataset_versions.c.dataset_id)
        .subquery()
    )
    query = (
        select(datasets, counts.c.versions, counts.c.latest)
        .join(counts, counts.c.dataset_id == datasets.c.id, isouter=True)
        .order_by(datasets.c.name)
    )
    with store.connect() as conn:
        return [
            Dataset(
                row["id"],
                row["name"],
                row["kind"],
                row["description"],
                row["created_at"],
                int(row["versions"] or 0),
                row["latest"],
            )
            for row in conn.execute(query).mappings()
        ]


def list_versions(store: MetadataStore, name: str) -> list[DatasetVersion]:
    """A dataset's versions, newest first."""
    with store.connect() as conn:
        dataset = _dataset_row(conn, name)
        if dataset is None:
            raise NotFoundError(
                f"Dataset '{name}' does not exist.",
                hint="List datasets with `shipyard datasets list`.",
            )
        rows = (
            conn.execute(
                select(dataset_versions)
                .where(dataset_versions.c.dataset_id == dataset["id"])
                .order_by(dataset_versions.c.number.desc())
            )
            .mappings()
            .all()
        )
        return [_load(conn, row, name) for row in rows]


def find_version_by_content(
    store: MetadataStore, content_id: str, kind: DatasetKind
) -> DatasetVersion | None:
    """Any version (of any dataset) with this content: its blobs can be reused."""
    with store.connect() as conn:
        row = (
            conn.execute(
                select(dataset_versions, datasets.c.name)
                .join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
                .where(dataset_versions.c.content_id == content_id, dataset_versions.c.kind == kind)
                .order_by(dataset_versions.c.created_at)
                .limit(1)
            )
            .mappings()
            .first()
        )
        return _load(conn, row, row["name"]) if row is not None else None


def latest_version(store: MetadataStore, name: str) -> DatasetVersion | None:
    """The newest version of ``name``, or None (no dataset, or no version yet)."""
    try:
        return resolve_version(store, Reference(name, "latest"))
    except NotFoundError:
        return None


def insert_version(
    store: MetadataStore,
    name: str,
    kind: DatasetKind,
    *,
    content_id: str,
    schema: Sequence[Mapping[str, Any]],
    num_rows: int,
    num_bytes: int,
    data: Mapping[str, Any],
    blobs: Sequence[tuple[str, str]],
    source: Mapping[str, Any],
    checks: Mapping[str, Any],
    contract: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    profile_blob: str | None = None,
    sample_blob: str | None = None,
    quarantine_blob: str | None = None,
    quarantined_rows: int = 0,
    report_blob: str | None = None,
    upstream: Sequence[LineageEdge] = (),
    description: str | None = None,
) -> DatasetVersion:
    """Record a new version (its blobs are already stored); return it."""
    validate_name(name, what="dataset name")
    clean_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    version_id = new_id()
    with store.transaction() as conn:
        # Create the dataset if needed (a concurrent creator wins quietly), then lock its
        # row: version numbers are taken one transaction at a time.
        conn.execute(
            _insert_or_ignore(store, datasets).values(
                id=new_id(), name=name, kind=kind, description=description, created_at=utc_now()
            )
        )
        dataset = (
            conn.execute(select(datasets).where(datasets.c.name == name).with_for_update())
            .mappings()
            .one()
        )
        dataset_id = dataset["id"]
        if dataset["kind"] != kind:
            raise AlreadyExistsError(
                f"Dataset '{name}' holds {dataset['kind']} versions; this is a {kind} version.",
                hint="Use another dataset name for it.",
            )
        if description and description != dataset["description"]:
            conn.execute(
                update(datasets).where(datasets.c.id == dataset_id).values(description=description)
            )
        number = (
            conn.execute(
                select(func.max(dataset_versions.c.number)).where(
                    dataset_versions.c.dataset_id == dataset_id
                )
            ).scalar()
            or 0
        ) + 1
        row = {
            "id": version_id,
            "dataset_id": dataset_id,
            "number": number,
            "content_id": content_id,
            "kind": kind,
            "schema": list(schema),
            "num_rows": num_rows,
            "num_bytes": num_bytes,
            "data": dict(data),
            "profile_blob": profile_blob,
            "sample_blob": sample_blob,
            "quarantine_blob": quarantine_blob,
            "quarantined_rows": quarantined_rows,
            "report_blob": report_blob,
            "checks": dict(checks),
            "contract": dict(contract) if contract is not None else None,
            "source": dict(source),
            "tags": clean_tags,
            "created_by": current_user(),
            "created_at": utc_now(),
        }
        conn.execute(insert(dataset_versions).values(**row))
        if upstream:
            conn.execute(
                insert(dataset_lineage),
                [
                    {
                        "version_id": version_id,
                        "input_name": edge.input_name,
                        "upstream_dataset": edge.dataset,
                        "upstream_content_id": edge.content_id,
                        "upstream_number": edge.number,
                    }
                    for edge in upstream
                ],
            )
        store.add_blob_refs(
            conn, [BlobRef(blob_id, OWNER_KIND, version_id, role) for blob_id, role in blobs]
        )
        store.record_event(
            conn,
            current_user(),
            "dataset.version.create",
            OWNER_KIND,
            version_id,
            {"dataset": name, "version": number, "content_id": content_id},
        )
        stored = (
            conn.execute(select(dataset_versions).where(dataset_versions.c.id == version_id))
            .mappings()
            .one()
        )
        return _version(stored, name, (), tuple(upstream))


def _insert_or_ignore(store: MetadataStore, table: Any) -> Any:
    if store.dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.postgresql import insert as postgres_insert

    return postgres_insert(table).on_conflict_do_nothing()


def set_alias(store: MetadataStore, reference: str, alias: str) -> DatasetVersion:
    """Point ``name@alias`` at the version ``reference`` names (creating or moving it)."""
    ref = parse_reference(f"{parse_reference(reference).name}@alias:{alias}")
    version = resolve_version(store, reference)
    with store.transaction() as conn:
        dataset_id = conn.execute(
            select(dataset_versions.c.dataset_id).where(dataset_versions.c.id == version.id)
        ).scalar_one()
        existing = conn.execute(
            select(dataset_aliases.c.version_id).where(
                dataset_aliases.c.dataset_id == dataset_id, dataset_aliases.c.alias == ref.value
            )
        ).scalar()
        if existing is None:
            conn.execute(
                insert(dataset_aliases).values(
                    dataset_id=dataset_id,
                    alias=ref.value,
                    version_id=version.id,
                    updated_at=utc_now(),
                )
            )
        else:
            conn.execute(
                update(dataset_aliases)
                .where(
                    dataset_aliases.c.dataset_id == dataset_id, dataset_aliases.c.alias == ref.value
                )
                .values(version_id=version.id, updated_at=utc_now())
            )
        store.record_event(
            conn,
            current_user(),
            "dataset.alias.set",
            OWNER_KIND,
            version.id,
            {
                "dataset": version.dataset,
                "alias": ref.value,
                "version": version.number,
                "previous": existing,
            },
        )
    return resolve_version(store, version.reference)
