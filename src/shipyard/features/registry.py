"""Definitions in the metadata store: versioned specs, and definitions rebuilt from them.

A definition's spec is canonical JSON; its fingerprint leaves out ``origin`` (where an
on-demand function was defined), so moving a file does not make a new version. A feature
service's stored spec pins the version of every view it reads.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import and_, func, insert, select
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from shipyard.core.errors import AlreadyExistsError, NotFoundError, ReferenceError_
from shipyard.core.references import parse_reference
from shipyard.features.definitions import (
    DefinitionError,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    FileSource,
    OnDemandFeature,
    fingerprint,
)
from shipyard.features.records import DefinitionKind, StoredDefinition
from shipyard.store.metadata import MetadataStore
from shipyard.store.schema.features import feature_definitions

__all__ = [
    "DefinitionKind",
    "all_versions",
    "definition_fingerprint",
    "entity_from_spec",
    "get_version",
    "latest",
    "list_latest",
    "load_on_demand",
    "record",
    "resolve",
    "resolve_optional",
    "service_from_spec",
    "versions",
    "view_from_spec",
]

_KIND_LABEL = {
    "entity": "entity",
    "view": "feature view",
    "on_demand": "on-demand feature",
    "service": "feature service",
}


def definition_fingerprint(spec: Mapping[str, Any]) -> str:
    """The version identity of a spec (its ``origin`` left out)."""
    return fingerprint({k: v for k, v in spec.items() if k != "origin"})


def _stored(row: RowMapping) -> StoredDefinition:
    return StoredDefinition(
        kind=cast(DefinitionKind, row["kind"]),
        name=row["name"],
        version=int(row["version"]),
        fingerprint=row["fingerprint"],
        spec=row["spec"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def latest(conn: Connection, kind: DefinitionKind, name: str) -> StoredDefinition | None:
    """The newest version of a definition, or ``None``."""
    t = feature_definitions
    row = (
        conn.execute(
            select(t)
            .where(t.c.kind == kind, t.c.name == name)
            .order_by(t.c.version.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if row is None else _stored(row)


def resolve(store: MetadataStore, kind: DefinitionKind, reference: str) -> StoredDefinition:
    """``name`` (latest) or ``name@vN`` of a definition, or a clear ``NotFoundError``."""
    ref = parse_reference(reference)
    if ref.kind not in ("latest", "version"):
        raise ReferenceError_(
            f"{_KIND_LABEL[kind].capitalize()} reference {reference!r} uses an alias or id; "
            "feature definitions are named NAME or NAME@vN.",
        )
    t = feature_definitions
    with store.connect() as conn:
        if ref.kind == "latest":
            found = latest(conn, kind, ref.name)
        else:
            row = (
                conn.execute(
                    select(t).where(
                        t.c.kind == kind, t.c.name == ref.name, t.c.version == ref.version
                    )
                )
                .mappings()
                .first()
            )
            found = None if row is None else _stored(row)
    if found is None:
        raise NotFoundError(
            f"No {_KIND_LABEL[kind]} {reference!r} in the feature store.",
            hint="Run `shipyard features list` to see what is applied, or apply it first "
            "(`shipyard features apply DEFINITIONS.py`).",
        )
    return found


def list_latest(store: MetadataStore, kind: DefinitionKind | None = None) -> list[StoredDefinition]:
    """The newest version of every definition (of one kind, if given), sorted by kind, name."""
    t = feature_definitions
    newest = (
        select(t.c.kind, t.c.name, func.max(t.c.version).label("version"))
        .group_by(t.c.kind, t.c.name)
        .subquery()
    )
    query = select(t).join(
        newest,
        and_(t.c.kind == newest.c.kind, t.c.name == newest.c.name, t.c.version == newest.c.version),
    )
    if kind is not None:
        query = query.where(t.c.kind == kind)
    with store.connect() as conn:
        rows = conn.execute(query.order_by(t.c.kind, t.c.name)).mappings().all()
    return [_stored(row) for row in rows]


def versions(store: MetadataStore, kind: DefinitionKind, name: str) -> list[StoredDefinition]:
    """Every version of one definition, oldest first."""
    t = feature_definitions
    with store.connect() as conn:
        rows = (
            conn.execute(select(t).where(t.c.kind == kind, t.c.name == name).order_by(t.c.version))
            .mappings()
            .all()
        )
    return [_stored(row) for row in rows]


def record(
    conn: Connection, kind: DefinitionKind, name: str, spec: Mapping[str, Any], actor: str
) -> tuple[StoredDefinition, bool]:
    """Store ``spec`` as the next version unless the latest has the same fingerprint.

    Returns the current version and whether it was created now.
    """
    digest = definition_fingerprint(spec)
    current = latest(conn, kind, name)
    if current is not None and current.fingerprint == digest:
        return current, False
    version = 1 if current is None else current.version + 1
    try:
        conn.execute(
            insert(feature_definitions).values(
                kind=kind,
                name=name,
                version=version,
                fingerprint=digest,
                spec=dict(spec),
                created_by=actor[:128],
            )
        )
    except SqlIntegrityError as exc:
        raise AlreadyExistsError(
            f"{_KIND_LABEL[kind].capitalize()} {name}@v{version} was written by another "
            "apply at the same time.",
            hint="Run the apply again.",
        ) from exc
    stored = latest(conn, kind, name)
    if stored is None:  # pragma: no cover - we just inserted it in this transaction
        raise NotFoundError(f"{name}@v{version} vanished while being applied.")
    return stored, True


# --- Definitions rebuilt from stored specs ---------------------------------------------------


def entity_from_spec(spec: Mapping[str, Any]) -> Entity:
    """The :class:`Entity` a stored spec describes."""
    return Entity(spec["name"], join_keys=spec["join_keys"])


def view_from_spec(spec: Mapping[str, Any]) -> FeatureView:
    """The :class:`FeatureView` a stored spec describes."""
    source_spec = spec["source"]
    source: str | FileSource = (
        source_spec["dataset"]
        if "dataset" in source_spec
        else FileSource(source_spec["file"], source_spec.get("format", "parquet"))
    )
    ttl = spec.get("ttl_seconds")
    return FeatureView(
        spec["name"],
        entities=[entity_from_spec(e) for e in spec["entities"]],
        source=source,
        timestamp=spec["timestamp"],
        created_timestamp=spec.get("created_timestamp"),
        ttl=None if ttl is None else timedelta(seconds=ttl),
        features=[Feature(f["name"], f["dtype"]) for f in spec["features"]],
    )


def on_demand_spec(feature: OnDemandFeature) -> dict[str, Any]:
    """An on-demand feature's spec with where its function lives (to load it elsewhere)."""
    spec = feature.spec()
    code = getattr(feature.function, "__code__", None)
    spec["origin"] = {
        "module": getattr(feature.function, "__module__", None),
        "qualname": getattr(feature.function, "__qualname__", None),
        "file": None if code is None else code.co_filename,
    }
    return spec


def _code_digest(feature: OnDemandFeature) -> str:
    return hashlib.sha256(feature.source_code.encode()).hexdigest()


def _find_in_module(module: Any, name: str) -> OnDemandFeature | None:
    for value in vars(module).values():
        if isinstance(value, OnDemandFeature) and value.name == name:
            return value
    return None


def load_on_demand(
    spec: Mapping[str, Any], known: Mapping[str, OnDemandFeature]
) -> OnDemandFeature:
    """The applied on-demand feature: from this process, its module, or its file.

    Its code must hash to the stored digest: a function edited since it was applied is
    refused rather than silently computing something else than training did.
    """
    name = spec["name"]
    wanted = spec["code_sha256"]
    candidates: list[Callable[[], OnDemandFeature | None]] = [lambda: known.get(name)]
    origin = spec.get("origin") or {}
    module_name = origin.get("module")
    if module_name and module_name != "__main__":
        candidates.append(lambda: _from_module(module_name, name))
    file = origin.get("file")
    if file and Path(file).is_file():
        candidates.append(lambda: _from_file(Path(file), name))
    for candidate in candidates:
        found = candidate()
        if found is not None and _code_digest(found) == wanted:
            return found
    raise DefinitionError(
        f"On-demand feature {name!r} cannot be loaded with the code it was applied with "
        f"(module {module_name!r}, file {file!r}).",
        hint="Import or apply its definitions in this process (`FeatureStore.apply`, or "
        "`shipyard features apply FILE`) so serving runs the same function as training.",
    )


def _from_module(module_name: str, name: str) -> OnDemandFeature | None:
    try:
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - any import failure means "not loadable from here"
        return None
    return _find_in_module(module, name)


def _from_file(path: Path, name: str) -> OnDemandFeature | None:
    from shipyard.features.loading import load_module_from_file

    try:
        module = load_module_from_file(path)
    except Exception:  # noqa: BLE001 - a broken file is reported by the caller's error
        return None
    return _find_in_module(module, name)


def projection_of(
    item: FeatureView | FeatureViewProjection,
) -> tuple[str, tuple[str, ...]]:
    """(view name, feature names) of a service item."""
    return item.name, item.feature_names


def service_from_spec(
    spec: Mapping[str, Any],
    views: Mapping[str, FeatureView],
    on_demands: Mapping[str, OnDemandFeature],
) -> FeatureService:
    """The :class:`FeatureService` a stored spec describes, over the given definitions."""
    items: list[FeatureView | FeatureViewProjection | OnDemandFeature] = []
    for item in spec["items"]:
        if "on_demand" in item:
            items.append(on_demands[item["on_demand"]])
        else:
            items.append(views[item["view"]][list(item["features"])])
    return FeatureService(spec["name"], items)


def resolve_optional(
    store: MetadataStore, kind: DefinitionKind, name: str
) -> StoredDefinition | None:
    """The latest version of ``name``, or ``None`` if it was never applied."""
    with store.connect() as conn:
        return latest(conn, kind, name)


def all_versions(store: MetadataStore, kind: DefinitionKind) -> list[StoredDefinition]:
    """Every version of every definition of one kind."""
    t = feature_definitions
    with store.connect() as conn:
        rows = (
            conn.execute(select(t).where(t.c.kind == kind).order_by(t.c.name, t.c.version))
            .mappings()
            .all()
        )
    return [_stored(row) for row in rows]


def get_version(
    store: MetadataStore, kind: DefinitionKind, name: str, version: int
) -> StoredDefinition:
    """One exact version, or a clear ``NotFoundError``."""
    return resolve(store, kind, f"{name}@v{version}")
