"""Export versions to files, and copy versions between two projects' stores.

An export streams part by part and lands atomically (a temporary file beside the target,
renamed when complete): a table as one Parquet or CSV file, a file version as a folder
of its files (each verified against its content id on the way out).

``copy_version`` copies a version's blobs (verified) and its record to another store; the
copy keeps its content id, schema, profile, lineage edges and tags, and gets the next
version number there. Copying a version the target already holds is a no-op.

>>> export(client, "credit@v2", "out/credit.csv")
>>> copy_version("credit@v2", load_config(Path(".")), load_config(Path("../prod")))
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shipyard.core.config import Config
from shipyard.core.errors import AlreadyExistsError, IntegrityError
from shipyard.core.ids import ContentId
from shipyard.data import catalog
from shipyard.data.engine import connect
from shipyard.data.errors import SourceError
from shipyard.data.records import DatasetVersion

if TYPE_CHECKING:
    from shipyard.data.client import DatasetClient

__all__ = ["copy_version", "export_version"]

_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def _temporary_beside(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent / f".{target.name}.{secrets.token_hex(6)}.part"


def export_version(
    client: DatasetClient,
    version: DatasetVersion,
    path: Path,
    *,
    format: Literal["parquet", "csv"] | None = None,  # noqa: A002
    what: Literal["data", "quarantine", "sample"] = "data",
) -> Path:
    """Write ``version`` to ``path`` (see the module docstring); return the path."""
    if version.kind == "files":
        if what != "data":
            raise SourceError(f"{version.reference} is a file version: only its files export.")
        return _export_files(client, version, path)
    kind = format or _FORMATS.get(path.suffix.lower())
    if kind not in ("parquet", "csv"):
        raise SourceError(
            f"Cannot tell the export format of {path}.",
            hint="End the path with .parquet or .csv, or pass format= (--format).",
        )
    if what == "data":
        sources = client.part_paths(version)
    elif what == "quarantine":
        if not version.quarantine_blob:
            raise SourceError(f"{version.reference} has no quarantined rows.")
        sources = [client.blobs.path(version.quarantine_blob)]
    else:
        if not version.sample_blob:
            raise SourceError(f"{version.reference} has no sample.")
        sources = [client.blobs.path(version.sample_blob)]
    temp = _temporary_beside(path)
    try:
        _write_table(sources, temp, kind)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def _write_table(sources: list[Path], target: Path, kind: str) -> None:
    import pyarrow.parquet as pq

    if kind == "csv":
        # DuckDB writes floats as 1.0 (not 1) and ISO timestamps, so reading the CSV back
        # infers the same types: the round trip keeps the content id.
        con = connect()
        try:
            con.read_parquet([str(s) for s in sources]).write_csv(str(target))
        finally:
            con.close()
        return
    schema = pq.read_schema(sources[0])
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        for source in sources:
            with pq.ParquetFile(source) as parquet:
                for batch in parquet.iter_batches(batch_size=65_536):
                    writer.write_batch(batch)


def _export_files(client: DatasetClient, version: DatasetVersion, path: Path) -> Path:
    from shipyard.data.files import read_manifest

    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise AlreadyExistsError(
            f"{path} exists and is not an empty folder.", hint="Export into a new folder."
        )
    temp = _temporary_beside(path)
    temp.mkdir()
    try:
        artifacts = client.stores.artifacts
        for entry in read_manifest(client, version):
            target = temp / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.blob == entry.content_id:
                artifacts.get_file(ContentId(entry.blob), target)
                continue
            pack = client.blobs.path(entry.blob)
            with pack.open("rb") as stream:
                stream.seek(entry.offset)
                data = stream.read(entry.size)
            if "sha256:" + hashlib.sha256(data).hexdigest() != entry.content_id:
                raise IntegrityError(
                    f"{entry.path} of {version.reference} does not match its content id.",
                    hint="Run `shipyard store verify`.",
                )
            target.write_bytes(data)
        if path.exists():
            path.rmdir()
        os.replace(temp, path)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return path


def _all_blobs(client: DatasetClient, version: DatasetVersion) -> list[tuple[str, str]]:
    blobs = version.blob_ids()
    if version.kind == "files":
        from shipyard.data.files import read_manifest

        blobs += [
            (blob, "file") for blob in sorted({e.blob for e in read_manifest(client, version)})
        ]
    return list(dict.fromkeys(blobs))


def copy_version(
    reference: str,
    source: Config | DatasetClient,
    target: Config | DatasetClient,
) -> DatasetVersion:
    """Copy a version (its blobs and record) from one project's stores to another's."""
    from shipyard.data.client import DatasetClient

    own_source = isinstance(source, Config)
    own_target = isinstance(target, Config)
    src = DatasetClient.open(source) if isinstance(source, Config) else source
    try:
        # Resolve the version first: a wrong reference must not create the target stores.
        version = src.get_version(reference)
        dst = DatasetClient.open(target) if isinstance(target, Config) else target
        try:
            blobs = _all_blobs(src, version)
            # Blobs first, even when the target's catalog already holds this content: a
            # target that shares the catalog but not the artifact store still needs them.
            _copy_blobs(src, dst, blobs)
            for existing in _versions_or_empty(dst, version.dataset):
                if existing.content_id == version.content_id:
                    return existing
            return catalog.insert_version(
                dst.stores.metadata,
                version.dataset,
                version.kind,
                content_id=version.content_id,
                schema=[
                    {"name": c.name, "type": c.type, "nullable": c.nullable} for c in version.schema
                ],
                num_rows=version.num_rows,
                num_bytes=version.num_bytes,
                data=version.data,
                blobs=blobs,
                source={**version.source, "copied_from": version.reference},
                checks=version.checks,
                contract=version.contract,
                tags=version.tags,
                profile_blob=version.profile_blob,
                sample_blob=version.sample_blob,
                quarantine_blob=version.quarantine_blob,
                quarantined_rows=version.quarantined_rows,
                report_blob=version.report_blob,
                upstream=version.upstream,
            )
        finally:
            if own_target:
                dst.close()
    finally:
        if own_source:
            src.close()


def _copy_blobs(src: DatasetClient, dst: DatasetClient, blobs: list[tuple[str, str]]) -> None:
    """Copy the blobs the target lacks, verified on read and by their id on write."""
    with tempfile.TemporaryDirectory(prefix="shipyard-copy-") as scratch:
        for blob_id, _ in blobs:
            content_id = ContentId(blob_id)
            if dst.stores.artifacts.exists(content_id):
                continue
            local = src.stores.artifacts.get_file(content_id, Path(scratch) / "blob")
            stored = dst.stores.artifacts.put_file(local)
            local.unlink()
            if stored != content_id:
                raise IntegrityError(
                    f"Blob {blob_id} was stored as {stored} in {dst.stores.artifacts.uri}.",
                    hint="The source blob changed while it was copied; copy again.",
                )


def _versions_or_empty(client: DatasetClient, name: str) -> list[DatasetVersion]:
    from shipyard.core.errors import NotFoundError

    try:
        return client.list_versions(name)
    except NotFoundError:
        return []
