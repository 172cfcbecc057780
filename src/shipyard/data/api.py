"""Module-level functions: each opens the project's stores, does one thing, closes them.

For many calls in a row, hold a ``DatasetClient`` instead (one connection pool).

>>> import shipyard.data as sy_data
>>> result = sy_data.ingest("credit", "data/credit_data.csv",
...                         contract=sy_data.load_contract("credit.toml"))
>>> sy_data.read_table("credit@v1").num_rows == result.report.rows_passed
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.core.config import Config
from shipyard.data.client import DatasetClient
from shipyard.data.contracts import Contract
from shipyard.data.records import Dataset, DatasetVersion, IngestResult
from shipyard.data.report import ContractReport

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import pyarrow as pa

    from shipyard.data.differences import DatasetDiff
    from shipyard.data.files import FileStatus
    from shipyard.data.lineage_tree import LineageNode

__all__ = [
    "check",
    "copy_version",
    "diff",
    "export",
    "get_version",
    "ingest",
    "lineage",
    "list_datasets",
    "list_versions",
    "read_table",
    "set_alias",
    "status",
    "to_pandas",
    "version_files",
]


def ingest(
    name: str,
    source: Any,
    contract: Contract | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    config: Config | None = None,
    quarantine_path: str | Path | None = None,
) -> IngestResult:
    """Ingest ``source`` (a path, glob, folder, table or ``Source``) as a new version of
    ``name`` through ``contract``. Raises ``ContractFailed`` if an error rule fails."""
    with DatasetClient.open(config) as client:
        return client.ingest(name, source, contract, tags=tags, quarantine_path=quarantine_path)


def check(
    source: Any,
    contract: Contract | None = None,
    *,
    config: Config | None = None,
    quarantine_path: str | Path | None = None,
) -> ContractReport:
    """Check ``source`` against ``contract`` without creating a version."""
    with DatasetClient.open(config) as client:
        return client.check(source, contract, quarantine_path=quarantine_path)


def get_version(reference: str, *, config: Config | None = None) -> DatasetVersion:
    """The version ``name``, ``name@v3``, ``name@alias`` or ``name@<id prefix>`` names."""
    with DatasetClient.open(config) as client:
        return client.get_version(reference)


def list_datasets(*, config: Config | None = None) -> list[Dataset]:
    with DatasetClient.open(config) as client:
        return client.list_datasets()


def list_versions(name: str, *, config: Config | None = None) -> list[DatasetVersion]:
    with DatasetClient.open(config) as client:
        return client.list_versions(name)


def read_table(
    reference: str, columns: Sequence[str] | None = None, *, config: Config | None = None
) -> pa.Table:
    """A table version as a pyarrow Table."""
    with DatasetClient.open(config) as client:
        return client.read_table(reference, columns)


def to_pandas(reference: str, *, config: Config | None = None) -> pd.DataFrame:
    with DatasetClient.open(config) as client:
        return client.to_pandas(reference)


def diff(
    a: str, b: str, *, key: Sequence[str] | None = None, config: Config | None = None
) -> DatasetDiff:
    """What changed between two versions (schema, rows, statistics; files)."""
    with DatasetClient.open(config) as client:
        return client.diff(a, b, key=key)


def lineage(reference: str, *, config: Config | None = None) -> LineageNode:
    with DatasetClient.open(config) as client:
        return client.lineage(reference)


def export(
    reference: str,
    path: str | Path,
    *,
    format: Literal["parquet", "csv"] | None = None,  # noqa: A002
    what: Literal["data", "quarantine", "sample"] = "data",
    config: Config | None = None,
) -> Path:
    """Write a version to ``path`` (one Parquet/CSV file, or a folder of files)."""
    with DatasetClient.open(config) as client:
        return client.export(reference, path, format=format, what=what)


def copy_version(reference: str, from_config: Config, to_config: Config) -> DatasetVersion:
    """Copy a version and its blobs from one project's stores to another's."""
    from shipyard.data.exports import copy_version as _copy

    return _copy(reference, from_config, to_config)


def set_alias(reference: str, alias: str, *, config: Config | None = None) -> DatasetVersion:
    with DatasetClient.open(config) as client:
        return client.set_alias(reference, alias)


def version_files(
    name: str,
    path: str | Path,
    *,
    tags: Mapping[str, str] | None = None,
    link: Literal["auto", "copy", "hardlink"] = "auto",
    config: Config | None = None,
) -> IngestResult:
    """Version a file or folder by the hash of its bytes."""
    with DatasetClient.open(config) as client:
        return client.version_files(name, path, tags=tags, link=link)


def status(
    name: str, path: str | Path | None = None, *, config: Config | None = None
) -> FileStatus:
    """What changed in a file dataset's folder since its latest version."""
    with DatasetClient.open(config) as client:
        return client.status(name, path)
