"""``DatasetClient``: the datasets subsystem over one project's stores.

>>> with DatasetClient.open() as client:
...     contract = Contract(columns={"Income": Column("float64", nullable=False)})
...     result = client.ingest("credit", "data/credit_data.csv", contract)
...     result.version.reference, result.report.summary()
...     table = client.read_table("credit@v1")
('credit@v1', '4,454 rows read, 4,073 passed, 381 quarantined')

Reading a version verifies its blobs' hashes; writing one stores every blob first and
records the version in one transaction, so a failed ingestion leaves no version.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from shipyard.core.config import Config, load_config
from shipyard.core.errors import NotFoundError
from shipyard.core.references import validate_name
from shipyard.data import catalog
from shipyard.data.blobs import BlobReader, put_json
from shipyard.data.contracts import Contract
from shipyard.data.engine import connect
from shipyard.data.errors import ContractFailed, SourceError
from shipyard.data.records import Dataset, DatasetVersion, IngestResult, LineageEdge
from shipyard.data.report import ContractReport
from shipyard.data.sources import ResolvedInput, source_from
from shipyard.store.stores import Stores, open_stores

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import polars as pl
    import pyarrow as pa

    from shipyard.data.differences import DatasetDiff
    from shipyard.data.file_changes import ReadAhead
    from shipyard.data.files import FileStatus
    from shipyard.data.ingestion import Evaluation, StageProgress
    from shipyard.data.lineage_tree import LineageNode

__all__ = ["DatasetClient"]


class DatasetClient:
    """Datasets in one project's stores. Close it (or use ``with``) when done."""

    def __init__(
        self, stores: Stores, config: Config | None = None, *, owns_stores: bool = False
    ) -> None:
        self.stores = stores
        self.config = config
        self._owns = owns_stores
        self._scratch = Path(tempfile.mkdtemp(prefix="shipyard-datasets-"))
        self.blobs = BlobReader(stores.artifacts, self._scratch / "blobs")

    @classmethod
    def open(cls, config: Config | None = None) -> DatasetClient:
        """A client on the project's configured stores (found from the cwd by default)."""
        config = config or load_config()
        return cls(open_stores(config), config, owns_stores=True)

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)
        if self._owns:
            self.stores.close()

    def __enter__(self) -> DatasetClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- Ingestion ----------------------------------------------------------------------

    def _evaluate(
        self, source: Any, contract: Contract | None, workdir: Path, progress: StageProgress | None
    ) -> tuple[Evaluation, Any]:
        from shipyard.data.ingestion import evaluate

        con = connect(workdir / "spill")
        scan = source_from(source).open(self)
        try:
            evaluation = evaluate(scan, contract, con, workdir, progress)
        except BaseException:
            con.close()
            raise
        finally:
            scan.close()
        return evaluation, con

    def check(
        self,
        source: Any,
        contract: Contract | None = None,
        *,
        quarantine_path: str | Path | None = None,
        progress: StageProgress | None = None,
    ) -> ContractReport:
        """Check ``source`` against ``contract`` without creating a version.

        ``quarantine_path`` receives the quarantined rows as Parquet (if there are any).
        """
        workdir = Path(tempfile.mkdtemp(prefix="check-", dir=self._scratch))
        try:
            evaluation, con = self._evaluate(source, contract, workdir, progress)
            con.close()
            _save_quarantine(evaluation, quarantine_path)
            return evaluation.report
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def ingest(
        self,
        name: str,
        source: Any,
        contract: Contract | None = None,
        *,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        quarantine_path: str | Path | None = None,
        progress: StageProgress | None = None,
    ) -> IngestResult:
        """Read ``source`` through ``contract`` into a new version of dataset ``name``.

        Raises ``ContractFailed`` (with ``.report``) if an error-severity rule fails; the
        quarantined rows then go to ``quarantine_path`` if given. If the content equals
        the latest version's, nothing is stored and that version is returned
        (``created=False``).
        """
        validate_name(name, what="dataset name")
        workdir = Path(tempfile.mkdtemp(prefix="ingest-", dir=self._scratch))
        try:
            evaluation, con = self._evaluate(source, contract, workdir, progress)
            try:
                report = evaluation.report
                if not report.passed:
                    _save_quarantine(evaluation, quarantine_path)
                    raise ContractFailed(
                        f"{report.source} breaks the contract of dataset '{name}': "
                        + "; ".join(f"{r.rule}: {r.detail}" for r in report.errors)
                        + ". No version was created.",
                        report=report,
                        hint="See the report; fix the data or the contract, then ingest again.",
                    )
                _save_quarantine(evaluation, quarantine_path)
                latest = catalog.latest_version(self.stores.metadata, name)
                if latest is not None and latest.content_id == evaluation.content_id:
                    return IngestResult(latest, report, created=False)
                version = self._store(name, evaluation, con, contract, tags, description, progress)
                return IngestResult(version, report, created=True)
            finally:
                con.close()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _store(
        self,
        name: str,
        evaluation: Evaluation,
        con: Any,
        contract: Contract | None,
        tags: Mapping[str, str] | None,
        description: str | None,
        progress: StageProgress | None,
    ) -> DatasetVersion:
        import pyarrow.parquet as pq

        artifacts = self.stores.artifacts
        report = evaluation.report
        sensitive = contract.sensitive_columns if contract else frozenset()
        profile_blob: str | None
        sample_blob: str | None
        same = catalog.find_version_by_content(self.stores.metadata, evaluation.content_id, "table")
        if same is not None and _sensitive_of(same) != sensitive:
            # Same data, other sensitive columns: share the data, not the profile.
            data = dict(same.data)
            profile_blob = put_json(artifacts, evaluation.compute_profile(con, sensitive))
            sample_blob, num_bytes = same.sample_blob, same.num_bytes
        elif same is not None:
            # The same table is stored already (another dataset, or an older version): reuse
            # its data, profile and sample blobs; nothing is copied.
            data = dict(same.data)
            profile_blob, sample_blob = same.profile_blob, same.sample_blob
            num_bytes = same.num_bytes
        else:
            if progress:
                progress("profile", 0, None)
            profile = evaluation.compute_profile(con, sensitive)
            parts: list[dict[str, Any]] = []
            total = len(evaluation.parts)
            for index, (path, rows) in enumerate(evaluation.parts):
                if progress:
                    progress("store", index, total)
                parts.append(
                    {
                        "blob_id": artifacts.put_file(path),
                        "rows": rows,
                        "bytes": path.stat().st_size,
                    }
                )
            sample_path = evaluation.workdir / "sample.parquet"
            pq.write_table(evaluation.sample, sample_path, compression="zstd")
            sample_blob = artifacts.put_file(sample_path)
            profile_blob = put_json(artifacts, profile)
            data = {"parts": parts}
            num_bytes = sum(int(p["bytes"]) for p in parts)
        quarantine_blob = (
            artifacts.put_file(evaluation.quarantine) if evaluation.quarantine else None
        )
        report_blob = put_json(artifacts, report.to_dict())
        edges = [LineageEdge(i.name, i.dataset, i.content_id, i.number) for i in evaluation.inputs]
        blobs = [
            (str(part["blob_id"]), f"data/{index:04d}") for index, part in enumerate(data["parts"])
        ]
        for blob, role in (
            (profile_blob, "profile"),
            (sample_blob, "sample"),
            (quarantine_blob, "quarantine"),
            (report_blob, "report"),
        ):
            if blob:
                blobs.append((str(blob), role))
        return catalog.insert_version(
            self.stores.metadata,
            name,
            "table",
            content_id=evaluation.content_id,
            schema=evaluation.schema,
            num_rows=report.rows_passed,
            num_bytes=num_bytes,
            data=data,
            blobs=blobs,
            source=evaluation.lineage,
            checks=report.summary_dict(),
            contract=contract.to_dict() if contract else None,
            tags=tags,
            profile_blob=profile_blob,
            sample_blob=sample_blob,
            quarantine_blob=quarantine_blob,
            quarantined_rows=report.rows_quarantined,
            report_blob=report_blob,
            upstream=edges,
            description=description,
        )

    # --- Reading ------------------------------------------------------------------------

    def get_version(self, reference: str) -> DatasetVersion:
        """The version ``name``, ``name@v3``, ``name@alias`` or ``name@<id prefix>`` names."""
        return catalog.resolve_version(self.stores.metadata, reference)

    def list_datasets(self) -> list[Dataset]:
        return catalog.list_datasets(self.stores.metadata)

    def list_versions(self, name: str) -> list[DatasetVersion]:
        """A dataset's versions, newest first."""
        return catalog.list_versions(self.stores.metadata, name)

    def set_alias(self, reference: str, alias: str) -> DatasetVersion:
        """Point ``name@alias`` at a version (``set_alias("credit@v3", "prod")``)."""
        return catalog.set_alias(self.stores.metadata, reference, alias)

    def part_paths(self, version: DatasetVersion) -> list[Path]:
        """Local, verified Parquet files of a table version, in row order."""
        _require_table(version)
        return [self.blobs.path(part.blob_id) for part in version.parts]

    def read_table(self, reference: str, columns: Sequence[str] | None = None) -> pa.Table:
        """A table version as a pyarrow Table (``columns`` to read only some)."""
        import pyarrow.parquet as pq

        version = self.get_version(reference)
        paths = self.part_paths(version)
        tables = [pq.read_table(p, columns=list(columns) if columns else None) for p in paths]
        import pyarrow as pa

        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def to_pandas(self, reference: str) -> pd.DataFrame:
        return self.read_table(reference).to_pandas()

    def to_polars(self, reference: str) -> pl.DataFrame:
        import polars as pl

        return pl.DataFrame(self.read_table(reference))

    def read_quarantine(self, reference: str) -> pa.Table | None:
        """The quarantined rows of a version (None if none were quarantined)."""
        import pyarrow.parquet as pq

        version = self.get_version(reference)
        if not version.quarantine_blob:
            return None
        return pq.read_table(self.blobs.path(version.quarantine_blob))

    def read_sample(self, reference: str) -> pa.Table:
        """The version's fixed-size random sample of rows."""
        import pyarrow.parquet as pq

        version = self.get_version(reference)
        _require_table(version)
        if not version.sample_blob:
            raise NotFoundError(f"{version.reference} has no sample.")
        return pq.read_table(self.blobs.path(version.sample_blob))

    def profile(self, reference: str) -> dict[str, Any]:
        """The version's profile (per-column statistics, sketches, categories)."""
        version = self.get_version(reference)
        _require_table(version)
        if not version.profile_blob:
            raise NotFoundError(f"{version.reference} has no profile.")
        profile: dict[str, Any] = self.blobs.json(version.profile_blob)
        return profile

    def report(self, reference: str) -> ContractReport:
        """The contract report recorded with the version."""
        version = self.get_version(reference)
        if not version.report_blob:
            return ContractReport.from_dict(version.checks)
        return ContractReport.from_dict(self.blobs.json(version.report_blob))

    # --- SourceContext (transforms read other versions) --------------------------------

    def resolve_input(self, name: str, reference: str) -> ResolvedInput:
        version = self.get_version(reference)
        return ResolvedInput(
            name,
            version.dataset,
            version.number,
            version.content_id,
            tuple(self.part_paths(version)),
        )

    # --- Comparisons, lineage, export, files --------------------------------------------

    def diff(self, a: str, b: str, *, key: Sequence[str] | None = None) -> DatasetDiff:
        """What changed from version ``a`` to version ``b`` (schema, rows, statistics)."""
        from shipyard.data.differences import diff_versions

        return diff_versions(self, self.get_version(a), self.get_version(b), key=key)

    def lineage(self, reference: str, *, depth: int = 10) -> LineageNode:
        """Where a version came from: its source, and recursively its upstream versions."""
        from shipyard.data.lineage_tree import build_lineage

        return build_lineage(self, self.get_version(reference), depth=depth)

    def export(
        self,
        reference: str,
        path: str | Path,
        *,
        format: Literal["parquet", "csv"] | None = None,  # noqa: A002
        what: Literal["data", "quarantine", "sample"] = "data",
    ) -> Path:
        """Write a version to files: a table as one Parquet or CSV file (``what`` may pick
        its quarantine or sample instead); a file version as its folder of files."""
        from shipyard.data.exports import export_version

        return export_version(
            self, self.get_version(reference), Path(path), format=format, what=what
        )

    def version_files(
        self,
        name: str,
        path: str | Path,
        *,
        tags: Mapping[str, str] | None = None,
        link: Literal["auto", "copy", "hardlink"] = "auto",
        progress: StageProgress | None = None,
        read_ahead: ReadAhead | None = None,
    ) -> IngestResult:
        """Version a file or folder by the hash of its bytes (see ``shipyard.data.files``)."""
        from shipyard.data.files import version_files

        return version_files(
            self, name, Path(path), tags=tags, link=link, progress=progress, read_ahead=read_ahead
        )

    def status(self, name: str, path: str | Path | None = None) -> FileStatus:
        """What changed in a file dataset's folder since its latest version."""
        from shipyard.data.files import file_status

        return file_status(self, name, Path(path) if path is not None else None)


def _sensitive_of(version: DatasetVersion) -> frozenset[str]:
    columns = (version.contract or {}).get("columns", {})
    return frozenset(name for name, spec in columns.items() if spec.get("sensitive"))


def _require_table(version: DatasetVersion) -> None:
    if version.kind != "table":
        raise SourceError(
            f"{version.reference} is a file version, not a table.",
            hint="Export it to a folder: `shipyard datasets export NAME@REF DEST`.",
        )


def _save_quarantine(evaluation: Evaluation, path: str | Path | None) -> None:
    if path is None or evaluation.quarantine is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(evaluation.quarantine, target)
