"""Step caching: the cache key, and the index of successful executions by key.

A step's cache key is the content id of the canonical JSON of its parts:

- ``code``: the fingerprint of the step's source and the project code it reaches
  (``fingerprint.code_fingerprint``);
- ``params``: its non-input arguments, as canonical JSON;
- ``inputs``: the content id of every upstream output it reads, by argument path;
- ``libraries``: the installed version of every distribution it declares;
- ``seed``: its seed; and what it produces (output names, ``allow_pickle``).

A step is skipped when its key is in the index *and* every blob of every output still
exists and re-hashes to its id; otherwise it runs again and its new outputs replace the
entry. Each part's digest is recorded with the step, so ``explain_miss`` can say which
part changed since the last execution of the same step.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from shipyard.core.ids import ContentId, hex_digest
from shipyard.pipelines.canonical import digest
from shipyard.pipelines.errors import PipelineDefinitionError
from shipyard.pipelines.fingerprint import code_fingerprint
from shipyard.pipelines.graph import Node
from shipyard.pipelines.outputs import OutputRecord
from shipyard.store.metadata import BlobRef, MetadataStore
from shipyard.store.schema.pipelines import pipeline_cache, pipeline_outputs

__all__ = [
    "CacheEntry",
    "CacheKey",
    "OUTPUT_OWNER",
    "cache_key",
    "explain_miss",
    "library_versions",
    "load_outputs",
    "lookup",
    "remember",
    "save_outputs",
]

KEY_FORMAT = 1
OUTPUT_OWNER = "pipeline_output"
"""``blob_refs.owner_kind`` of step outputs (``owner_id``: the output id's hex digits)."""


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A step's cache key and the digest of each of its parts."""

    key: ContentId
    parts: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """The outputs of the last successful execution of a key, and who produced them."""

    key: str
    records: Mapping[str, OutputRecord]
    """Output name -> its record (kept in the entry: one read serves a cache hit)."""
    run_id: str
    pipeline_run_id: str
    step: str

    @property
    def outputs(self) -> dict[str, str]:
        """Output name -> output id."""
        return {name: record.id for name, record in self.records.items()}


def library_versions(node: Node) -> dict[str, str]:
    """The installed version of each library the step declares."""
    versions: dict[str, str] = {}
    for library in node.step.libraries:
        try:
            versions[library] = _installed_version(library)
        except importlib.metadata.PackageNotFoundError:
            raise PipelineDefinitionError(
                f"Step {node.step.name!r} declares library {library!r}, which is not installed.",
                hint="Install it, or fix the distribution name in @step(libraries=[...]) "
                "(the name pip knows, e.g. 'scikit-learn').",
            ) from None
    return versions


_versions: dict[str, tuple[tuple[tuple[str, int], ...], str]] = {}


def _installed_version(distribution: str) -> str:
    """A distribution's version, remembered while the folders on ``sys.path`` are unchanged.

    Reading it from the installed metadata scans ``sys.path`` (milliseconds); installing
    or removing a distribution changes its folder's modification time, which is cheap to
    check (as ``importlib.metadata`` itself does).
    """
    signature = tuple((entry, _mtime(entry)) for entry in sys.path)
    known = _versions.get(distribution)
    if known is not None and known[0] == signature:
        return known[1]
    version = importlib.metadata.version(distribution)
    _versions[distribution] = (signature, version)
    return version


def _mtime(entry: str) -> int:
    try:
        return os.stat(entry or ".").st_mtime_ns
    except OSError:
        return -1


def cache_key(
    node: Node,
    *,
    seed: int,
    inputs: Mapping[str, str],
    project_dir: Path,
    libraries: Mapping[str, str] | None = None,
) -> CacheKey:
    """The cache key of ``node`` run with ``seed`` on inputs ``{argument path: output id}``."""
    code = code_fingerprint(node.step.fn, project_dir)
    params = node.params()  # without an injected seed: the seed is its own part
    parts: dict[str, Any] = {
        "format": KEY_FORMAT,
        "code": code.digest,
        "params": digest(params),
        "inputs": dict(sorted(inputs.items())),
        "libraries": dict(libraries if libraries is not None else library_versions(node)),
        "seed": seed,
        "outputs": list(node.output_names),
        "allow_pickle": node.step.allow_pickle,
    }
    key = digest(parts)
    return CacheKey(key, {**parts, "code_parts": dict(code.parts)})


def explain_miss(current: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str:
    """Which parts of a key differ from the last execution's, in words."""
    if previous is None:
        return "never executed before"
    changed: list[str] = []
    if current.get("code") != previous.get("code"):
        before = dict(previous.get("code_parts") or {})
        after = dict(current.get("code_parts") or {})
        names = sorted(
            name for name in set(before) | set(after) if before.get(name) != after.get(name)
        )
        changed.append("code (" + ", ".join(names[:5]) + ("..." if len(names) > 5 else "") + ")")
    changed.extend(
        part
        for part in ("params", "inputs", "libraries", "seed", "outputs", "allow_pickle")
        if current.get(part) != previous.get(part)
    )
    return "changed: " + ", ".join(changed) if changed else "same key (outputs were unusable)"


_LOOKUP = select(pipeline_cache).where(pipeline_cache.c.cache_key == bindparam("key"))


def lookup(conn: Connection, key: str) -> CacheEntry | None:
    """The index entry of ``key``, or ``None``."""
    row = conn.execute(_LOOKUP, {"key": key}).first()
    if row is None:
        return None
    records = {name: _record(data) for name, data in dict(row.outputs).items()}
    return CacheEntry(row.cache_key, records, row.run_id, row.pipeline_run_id, row.step)


def _record(data: Mapping[str, Any]) -> OutputRecord:
    return OutputRecord(
        data["id"],
        data["kind"],
        data["python_type"],
        dict(data["blobs"]),
        int(data["size"]),
        dict(data.get("detail") or {}),
    )


def load_outputs(conn: Connection, output_ids: list[str]) -> dict[str, OutputRecord]:
    """The stored records of these outputs (missing ones are left out)."""
    if not output_ids:
        return {}
    rows = conn.execute(
        select(pipeline_outputs).where(pipeline_outputs.c.id.in_(sorted(set(output_ids))))
    )
    return {
        row.id: OutputRecord(
            row.id, row.kind, row.python_type, dict(row.blobs), row.size, dict(row.detail)
        )
        for row in rows
    }


def save_outputs(
    conn: Connection, store: MetadataStore, records: list[OutputRecord], run_id: str
) -> None:
    """Record outputs (first producer wins) and the blob references that keep them."""
    if not records:
        return
    rows = [
        {
            "id": record.id,
            "kind": record.kind,
            "python_type": record.python_type[:64],
            "blobs": dict(record.blobs),
            "size": record.size,
            "detail": dict(record.detail),
            "run_id": run_id,
        }
        for record in records
    ]
    conn.execute(_insert_or_ignore(store, pipeline_outputs), rows)
    store.add_blob_refs(
        conn,
        [
            BlobRef(blob, OUTPUT_OWNER, hex_digest(ContentId(record.id)), name[:128])
            for record in records
            for name, blob in record.blobs.items()
        ],
    )


def remember(
    conn: Connection,
    store: MetadataStore,
    key: str,
    outputs: Mapping[str, OutputRecord],
    *,
    run_id: str,
    pipeline_run_id: str,
    step: str,
) -> None:
    """Point ``key`` at these outputs (replacing an entry whose outputs went bad)."""
    values = {
        "outputs": {name: record.as_dict() for name, record in outputs.items()},
        "run_id": run_id,
        "pipeline_run_id": pipeline_run_id,
        "step": step[:256],
    }
    updated = conn.execute(
        update(pipeline_cache).where(pipeline_cache.c.cache_key == key).values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(_insert_or_ignore(store, pipeline_cache), [{"cache_key": key, **values}])


def _insert_or_ignore(store: MetadataStore, table: Any) -> Any:
    if store.dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.postgresql import insert as postgres_insert

    return postgres_insert(table).on_conflict_do_nothing()
