"""Sources: where a dataset's rows come from, read as a stream of Arrow batches.

A ``Source`` is a description (a path, a query, a table); ``open()`` gives a ``Scan``
that streams ``SourceBatch``-es in the source's row order, each naming the file and the
row number of every row (``_source_row``: the CSV record number counting the header as
1, which is the line number unless a quoted value spans lines; the line of a JSON-lines
file; the 1-based row of a Parquet file, table or query result). Memory stays bounded:
nothing reads a whole file at once.

``source_from`` turns what a user hands over into a source::

    source_from("data/credit.csv")            # CSV (also .tsv), Parquet, JSON lines
    source_from("data/2024-*.csv")            # a glob: every file, in sorted order
    source_from("data/exports/")              # a folder: its data files, recursively
    source_from(dataframe)                    # pandas, Polars or Arrow, in memory
    SqlSource("SELECT * FROM customers", "postgresql://...")   # any SQLAlchemy database

Every file's bytes are hashed as they are read (the version's lineage keeps the hashes),
and a file whose size, modification time or bytes changed while it was read fails the
ingestion with ``SourceError`` instead of giving a version of half-old, half-new data.
"""

from __future__ import annotations

import glob as globbing
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.core.errors import NotFoundError
from shipyard.data.errors import SourceError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = [
    "FileFingerprint",
    "MalformedRow",
    "ParquetSource",
    "Progress",
    "ResolvedInput",
    "Scan",
    "Source",
    "SourceBatch",
    "SourceContext",
    "resolve_paths",
    "source_from",
]

BATCH_ROWS = 65_536
"""Rows per batch read from Parquet files, tables and query results."""
_HASH_CHUNK = 4 << 20

Progress = Callable[[int, int | None], None]
"""Called as reading advances with (units done, total units or None): bytes for files,
rows for tables and queries."""

_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


@dataclass(frozen=True, slots=True)
class MalformedRow:
    """A row the reader could not parse (wrong field count, bad JSON...): quarantined."""

    file: str
    row: int | None
    text: str
    message: str


@dataclass(slots=True)
class SourceBatch:
    """Rows from one file: their data, their row numbers, and rows that failed to parse."""

    file: str
    rows: np.ndarray[Any, Any]
    data: pa.RecordBatch
    malformed: list[MalformedRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ResolvedInput:
    """A dataset version a transform reads: its identity and its local Parquet files."""

    name: str
    dataset: str
    number: int
    content_id: str
    paths: tuple[Path, ...]


class SourceContext(Protocol):
    """What a source may ask of the datasets client (transforms read other versions)."""

    def resolve_input(self, name: str, reference: str) -> ResolvedInput:
        """Resolve ``reference`` and make its data readable locally."""
        ...


class Scan(ABC):
    """An opened source. ``batches()`` streams one full pass; text scans allow two."""

    text: bool = False
    """Values are unparsed text (CSV): undeclared types are inferred by a first pass."""
    rewindable: bool = True
    """``batches()`` may be called again (files, tables), not for a query result."""
    inferring: bool = False
    """Set during a type-inference pass: malformed rows need no numbers yet."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.progress: Progress | None = None

    @property
    @abstractmethod
    def schema(self) -> pa.Schema:
        """The raw columns, in source order."""

    @abstractmethod
    def batches(self) -> Iterator[SourceBatch]:
        """One pass over every row, in order."""

    def lineage(self) -> dict[str, Any]:
        """What was read, for the version's lineage (call after a full pass)."""
        return {"display": self.display}

    def inputs(self) -> list[ResolvedInput]:
        """Dataset versions this scan read (transforms), for lineage edges."""
        return []

    def close(self) -> None:  # noqa: B027 - most scans hold nothing between passes
        """Release files and connections."""


class Source(ABC):
    """Where rows come from. ``open`` gives a ``Scan``."""

    @abstractmethod
    def open(self, context: SourceContext | None = None) -> Scan:
        """Open the source for reading."""


# --- Files -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileFingerprint:
    """What ``stat`` says of a file: if any of it changes, the file changed."""

    path: Path
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileFingerprint:
        try:
            stat = path.stat()
        except FileNotFoundError as exc:
            raise NotFoundError(f"File {path} does not exist.", hint="Check the path.") from exc
        except OSError as exc:
            raise SourceError(f"Cannot read {path}: {exc.strerror}.") from exc
        return cls(path, stat.st_size, stat.st_mtime_ns, stat.st_ino)

    def check_unchanged(self) -> None:
        """Raise ``SourceError`` if the file changed since this fingerprint was taken."""
        try:
            now = FileFingerprint.of(self.path)
        except NotFoundError as exc:
            raise SourceError(
                f"{self.path} was deleted while it was read; nothing was saved.",
                hint="Re-run when whatever writes the file has finished.",
            ) from exc
        if now != self:
            what = (
                f"its size went from {self.size:,} to {now.size:,} bytes"
                if now.size != self.size
                else "it was modified"
                if now.mtime_ns != self.mtime_ns
                else "it was replaced"
            )
            raise changed_error(self.path, what)

    def describe(self, sha256: str) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.size,
            "sha256": sha256,
            "modified": datetime.fromtimestamp(self.mtime_ns / 1e9, UTC).isoformat(),
        }


def changed_error(path: Path, what: str) -> SourceError:
    return SourceError(
        f"{path} changed while it was read ({what}); nothing was saved.",
        hint="Re-run when whatever writes the file has finished.",
    )


def hash_file(path: Path) -> str:
    """The content id of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _has_magic(text: str) -> bool:
    return any(char in text for char in "*?[")


def resolve_paths(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """The files a path, glob, folder or list of them names, sorted, each checked to exist.

    A folder means its data files (.csv, .tsv, .parquet, .jsonl...), recursively, skipping
    hidden ones. A glob or folder that matches nothing raises ``NotFoundError``.
    """
    if isinstance(spec, str | Path):
        specs: list[str | Path] = [spec]
    else:
        specs = list(spec)
        if not specs:
            raise NotFoundError("No source files were given.", hint="Name a file, folder or glob.")
    found: list[Path] = []
    for item in specs:
        text = str(item)
        if _has_magic(text):
            matches = sorted(Path(p) for p in globbing.glob(text, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise NotFoundError(
                    f"No file matches {text}.", hint="Check the pattern and the working folder."
                )
            found.extend(files)
        else:
            path = Path(text).expanduser()
            if path.is_dir():
                files = sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.suffix.lower() in _FORMATS
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
                if not files:
                    raise NotFoundError(
                        f"Folder {path} holds no data files (.csv, .tsv, .parquet, .jsonl).",
                        hint="Point at the files themselves, or use a glob.",
                    )
                found.extend(files)
            elif path.is_file():
                found.append(path)
            else:
                raise NotFoundError(f"File {path} does not exist.", hint="Check the path.")
    return [p.absolute() for p in dict.fromkeys(found)]


def detect_format(paths: Sequence[Path]) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from the files' extensions (all must agree)."""
    formats = {_FORMATS.get(p.suffix.lower()) for p in paths}
    if None in formats:
        unknown = next(p for p in paths if p.suffix.lower() not in _FORMATS)
        raise SourceError(
            f"Cannot tell the format of {unknown} from its extension.",
            hint="Name the format: format='csv' | 'parquet' | 'jsonl' (--format).",
        )
    if len(formats) > 1:
        raise SourceError(
            f"The source mixes formats ({', '.join(sorted(str(f) for f in formats))}).",
            hint="Ingest each format separately, or narrow the glob.",
        )
    return str(formats.pop())


def check_same_columns(
    first: Path, first_columns: Sequence[str], path: Path, columns: Sequence[str]
) -> None:
    """Every file of a multi-file source has the first file's columns (any order)."""
    if set(columns) == set(first_columns) and len(columns) == len(first_columns):
        return
    missing = [c for c in first_columns if c not in columns]
    extra = [c for c in columns if c not in first_columns]
    parts = []
    if missing:
        parts.append(f"lacks {missing}")
    if extra:
        parts.append(f"adds {extra}")
    raise SourceError(
        f"{path} {' and '.join(parts)} compared with {first}.",
        hint="Every file of one source must have the same columns.",
    )


def normalize_raw(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Plain Arrow types DuckDB and Parquet share: views, large and dictionary types become
    plain ones; coarse time units become microseconds (nanoseconds are left to the
    column's conversion, which refuses to drop digits)."""
    import pyarrow as pa
    import pyarrow.types as t

    columns = []
    changed = False
    for column in batch.columns:
        kind = column.type
        target: pa.DataType | None = None
        if t.is_dictionary(kind):
            column = column.dictionary_decode()
            kind = column.type
            changed = True
        if t.is_string_view(kind) or t.is_large_string(kind):
            target = pa.string()
        elif t.is_binary_view(kind) or t.is_large_binary(kind):
            target = pa.binary()
        elif t.is_timestamp(kind) and kind.unit in ("s", "ms"):
            target = pa.timestamp("us", tz=kind.tz)
        elif t.is_time(kind) and kind.unit in ("s", "ms"):
            target = pa.time64("us")
        elif t.is_date64(kind):
            target = pa.date32()
        elif t.is_large_list(kind) or t.is_list_view(kind) or t.is_large_list_view(kind):
            target = pa.list_(kind.value_type)
        elif t.is_floating(kind) and kind.bit_width == 16:
            target = pa.float32()
        if target is not None:
            column = column.cast(target, safe=True)
            changed = True
        columns.append(column)
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def row_numbers(start: int, count: int) -> np.ndarray[Any, Any]:
    """1-based row numbers ``start + 1 .. start + count``."""
    import numpy as np

    return np.arange(start + 1, start + count + 1, dtype=np.int64)


# --- Parquet -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ParquetSource(Source):
    """One or more Parquet files (a path, folder or glob), read row group by row group."""

    path: str | Path | Sequence[str | Path]

    def open(self, context: SourceContext | None = None) -> Scan:
        return _ParquetScan(resolve_paths(self.path), str(self.path))


class _ParquetScan(Scan):
    def __init__(self, paths: list[Path], display: str) -> None:
        import pyarrow.parquet as pq

        super().__init__(display)
        self._paths = paths
        self._fingerprints = [FileFingerprint.of(p) for p in paths]
        self._hashes: dict[Path, str] = {}
        try:
            self._schema = pq.read_schema(paths[0])
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise SourceError(f"{paths[0]} is not a readable Parquet file: {exc}.") from exc
        self._total = sum(f.size for f in self._fingerprints)

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def batches(self) -> Iterator[SourceBatch]:
        import pyarrow.parquet as pq

        done = 0
        for path, fingerprint in zip(self._paths, self._fingerprints, strict=True):
            self._hashes[path] = hash_file(path)
            try:
                parquet = pq.ParquetFile(path)
            except Exception as exc:
                raise SourceError(f"{path} is not a readable Parquet file: {exc}.") from exc
            with parquet:
                check_same_columns(
                    self._paths[0], self._schema.names, path, parquet.schema_arrow.names
                )
                seen = 0
                for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                    data = normalize_raw(batch.select(self._schema.names))
                    yield SourceBatch(str(path), row_numbers(seen, data.num_rows), data)
                    seen += data.num_rows
                    if self.progress:
                        total_rows = max(parquet.metadata.num_rows, 1)
                        self.progress(done + fingerprint.size * seen // total_rows, self._total)
            fingerprint.check_unchanged()
            if hash_file(path) != self._hashes[path]:
                raise changed_error(path, "its bytes changed")
            done += fingerprint.size

    def lineage(self) -> dict[str, Any]:
        return {
            "kind": "parquet",
            "display": self.display,
            "files": [f.describe(self._hashes.get(f.path, "")) for f in self._fingerprints],
        }


# --- Choosing a source -------------------------------------------------------------------


def source_from(obj: object, *, format: str | None = None, **options: Any) -> Source:  # noqa: A002
    """The source for ``obj``: a ``Source`` as is; a path, glob, folder or list of paths
    (format from the extension unless ``format`` names it); or an in-memory table.

    ``options`` go to the file source (``CsvSource(delimiter=";", encoding="latin-1")``).
    """
    from shipyard.data.sources_jsonl import JsonLinesSource
    from shipyard.data.sources_memory import TableSource
    from shipyard.data.sources_text import CsvSource

    if isinstance(obj, Source):
        return obj
    if isinstance(obj, str | Path) or (
        isinstance(obj, list | tuple) and obj and all(isinstance(o, str | Path) for o in obj)
    ):
        spec: Any = obj
        paths = resolve_paths(spec)
        kind = format or detect_format(paths)
        if kind == "csv":
            if all(p.suffix.lower() == ".tsv" for p in paths) and "delimiter" not in options:
                options["delimiter"] = "\t"
            return CsvSource(spec, **options)
        if options:
            raise SourceError(f"Options {sorted(options)} only apply to CSV sources.")
        if kind == "parquet":
            return ParquetSource(spec)
        if kind in ("jsonl", "json"):
            return JsonLinesSource(spec)
        raise SourceError(f"Unknown format {kind!r}.", hint="Use 'csv', 'parquet' or 'jsonl'.")
    return TableSource(obj)
