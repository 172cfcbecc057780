"""Datasets: ingestion, data contracts with quarantine, immutable versions, lineage.

A table version is Parquet in the artifact store, named by the hash of its canonical
content and schema (same data, same id, whatever wrote it), with a profile (statistics,
quantile sketches, categories, a random sample) and a contract report; rows that break
the contract's row rules are quarantined with their file, row, column, value and rule.
A file version is any file or folder, named by the hash of its bytes (like DVC).

>>> import shipyard.data as sy_data
>>> contract = sy_data.Contract(
...     columns={"Income": sy_data.Column("float64", nullable=False, min=0)},
...     max_quarantine_fraction=0.10,
... )
>>> result = sy_data.ingest("credit", "data/credit_data.csv", contract=contract)
>>> result.version.reference, result.report.rows_quarantined
('credit@v1', 381)
>>> sy_data.read_table("credit@v1").num_rows
4073

Heavy libraries load on first use: importing this package costs almost nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.data.api import (
        check,
        copy_version,
        diff,
        export,
        get_version,
        ingest,
        lineage,
        list_datasets,
        list_versions,
        read_table,
        set_alias,
        status,
        to_pandas,
        version_files,
    )
    from shipyard.data.client import DatasetClient
    from shipyard.data.contracts import (
        Check,
        Column,
        Contract,
        DatasetCheck,
        Freshness,
        QuarantineLimit,
        RowCount,
        Unique,
        load_contract,
    )
    from shipyard.data.differences import DatasetDiff
    from shipyard.data.errors import ContractFailed, SourceError
    from shipyard.data.files import FileStatus
    from shipyard.data.lineage_tree import LineageNode
    from shipyard.data.records import Dataset, DatasetVersion, IngestResult
    from shipyard.data.report import ContractReport, Violation
    from shipyard.data.sources import ParquetSource, source_from
    from shipyard.data.sources_jsonl import JsonLinesSource
    from shipyard.data.sources_memory import TableSource
    from shipyard.data.sources_sql import SqlSource
    from shipyard.data.sources_text import CsvSource
    from shipyard.data.transforms import PythonTransform, SqlTransform

__all__ = [
    "Check",
    "Column",
    "Contract",
    "ContractFailed",
    "ContractReport",
    "CsvSource",
    "Dataset",
    "DatasetCheck",
    "DatasetClient",
    "DatasetDiff",
    "DatasetVersion",
    "FileStatus",
    "Freshness",
    "IngestResult",
    "JsonLinesSource",
    "LineageNode",
    "ParquetSource",
    "PythonTransform",
    "QuarantineLimit",
    "RowCount",
    "SourceError",
    "SqlSource",
    "SqlTransform",
    "TableSource",
    "Unique",
    "Violation",
    "check",
    "copy_version",
    "diff",
    "export",
    "get_version",
    "ingest",
    "lineage",
    "list_datasets",
    "list_versions",
    "load_contract",
    "read_table",
    "set_alias",
    "source_from",
    "status",
    "to_pandas",
    "version_files",
]

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
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
        ),
        "shipyard.data.api",
    ),
    "DatasetClient": "shipyard.data.client",
    **dict.fromkeys(
        (
            "Check",
            "Column",
            "Contract",
            "DatasetCheck",
            "Freshness",
            "QuarantineLimit",
            "RowCount",
            "Unique",
            "load_contract",
        ),
        "shipyard.data.contracts",
    ),
    "DatasetDiff": "shipyard.data.differences",
    "ContractFailed": "shipyard.data.errors",
    "SourceError": "shipyard.data.errors",
    "FileStatus": "shipyard.data.files",
    "LineageNode": "shipyard.data.lineage_tree",
    "Dataset": "shipyard.data.records",
    "DatasetVersion": "shipyard.data.records",
    "IngestResult": "shipyard.data.records",
    "ContractReport": "shipyard.data.report",
    "Violation": "shipyard.data.report",
    "ParquetSource": "shipyard.data.sources",
    "TableSource": "shipyard.data.sources_memory",
    "source_from": "shipyard.data.sources",
    "SqlSource": "shipyard.data.sources_sql",
    "CsvSource": "shipyard.data.sources_text",
    "JsonLinesSource": "shipyard.data.sources_jsonl",
    "PythonTransform": "shipyard.data.transforms",
    "SqlTransform": "shipyard.data.transforms",
}


def __getattr__(name: str) -> Any:
    """Load the public API on first use, so ``import shipyard.data`` stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.data' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
