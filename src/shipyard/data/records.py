"""The records the datasets subsystem reads and writes: frozen, typed, what the store holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shipyard.data.report import ContractReport

__all__ = [
    "DataPart",
    "Dataset",
    "DatasetKind",
    "DatasetVersion",
    "IngestResult",
    "LineageEdge",
    "SchemaColumn",
]

DatasetKind = Literal["table", "files"]


@dataclass(frozen=True, slots=True)
class SchemaColumn:
    """One column of a table version's canonical schema."""

    name: str
    type: str
    nullable: bool


@dataclass(frozen=True, slots=True)
class DataPart:
    """One Parquet file of a table version (large tables are stored in several)."""

    blob_id: str
    rows: int
    bytes: int


@dataclass(frozen=True, slots=True)
class LineageEdge:
    """An upstream version a derived version was computed from."""

    input_name: str
    dataset: str
    content_id: str
    number: int | None


@dataclass(frozen=True, slots=True)
class Dataset:
    """A named dataset and a summary of its versions."""

    id: str
    name: str
    kind: DatasetKind
    description: str | None
    created_at: datetime
    versions: int
    latest: int | None


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a dataset: a table (Parquet parts) or a set of files.

    ``reference`` (``churn@v3``) names it in this store; ``content_id`` everywhere.
    """

    id: str
    dataset: str
    number: int
    content_id: str
    kind: DatasetKind
    schema: tuple[SchemaColumn, ...]
    num_rows: int
    num_bytes: int
    data: Mapping[str, Any]
    profile_blob: str | None
    sample_blob: str | None
    quarantine_blob: str | None
    quarantined_rows: int
    report_blob: str | None
    checks: Mapping[str, Any]
    contract: Mapping[str, Any] | None
    source: Mapping[str, Any]
    tags: Mapping[str, str]
    created_by: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    upstream: tuple[LineageEdge, ...] = ()

    @property
    def reference(self) -> str:
        return f"{self.dataset}@v{self.number}"

    @property
    def parts(self) -> tuple[DataPart, ...]:
        """The Parquet parts of a table version, in row order."""
        return tuple(
            DataPart(p["blob_id"], int(p["rows"]), int(p["bytes"]))
            for p in self.data.get("parts", [])
        )

    @property
    def short_id(self) -> str:
        """The first 12 hex digits of the content id: enough to name it (``name@<id>``)."""
        return self.content_id.removeprefix("sha256:")[:12]

    def blob_ids(self) -> list[tuple[str, str]]:
        """Every (blob id, role) this version keeps (data, profile, sample, quarantine...)."""
        blobs = [(part.blob_id, f"data/{index:04d}") for index, part in enumerate(self.parts)]
        if self.data.get("manifest"):
            blobs.append((str(self.data["manifest"]), "manifest"))
        for blob, role in (
            (self.profile_blob, "profile"),
            (self.sample_blob, "sample"),
            (self.quarantine_blob, "quarantine"),
            (self.report_blob, "report"),
        ):
            if blob:
                blobs.append((blob, role))
        return blobs

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.number,
            "reference": self.reference,
            "content_id": self.content_id,
            "kind": self.kind,
            "schema": [
                {"name": c.name, "type": c.type, "nullable": c.nullable} for c in self.schema
            ],
            "num_rows": self.num_rows,
            "num_bytes": self.num_bytes,
            "quarantined_rows": self.quarantined_rows,
            "checks": dict(self.checks),
            "source": dict(self.source),
            "tags": dict(self.tags),
            "aliases": list(self.aliases),
            "upstream": [
                {
                    "input": e.input_name,
                    "dataset": e.dataset,
                    "content_id": e.content_id,
                    "version": e.number,
                }
                for e in self.upstream
            ],
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest`` made: the version (new, or the latest one if the content did not
    change: ``created`` is then False and nothing was stored) and the contract report."""

    version: DatasetVersion
    report: ContractReport
    created: bool
    notes: tuple[str, ...] = field(default=())
