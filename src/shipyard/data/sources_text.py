"""CSV sources, streamed, every malformed row kept with its place.

CSV values are read as text; the contract's declared types (or types inferred by a first
pass over the whole file, never from a sample) convert them later, so a value that does
not fit its type is a quarantined row, not a failed read. A row with the wrong number of
fields is quarantined with its record number and text. Bytes are validated as UTF-8 as
they are read: a file in another encoding fails at its first bad byte, with the line and
the fix (``encoding="latin-1"``).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.data.errors import SourceError
from shipyard.data.sources import (
    FileFingerprint,
    MalformedRow,
    Scan,
    Source,
    SourceBatch,
    SourceContext,
    changed_error,
    check_same_columns,
    resolve_paths,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["CsvSource", "RestartPass"]

DEFAULT_NULLS = ("", "NA", "N/A", "NULL", "null")
_READ_CHUNK = 1 << 20
_MAX_TEXT = 500


class RestartPass(Exception):  # noqa: N818 - control flow, never shown to a user
    """A parallel read met malformed rows whose numbers it cannot tell: read again,
    sequentially (the pipeline discards the partial pass and restarts)."""


class _HashingFile(io.RawIOBase):
    """A binary file that hashes what is read, counts lines, and checks UTF-8 on the way."""

    def __init__(
        self,
        path: Path,
        *,
        check_utf8: bool,
        scan: Scan,
        offset: int,
        total: int | None,
        expected_size: int,
    ) -> None:
        super().__init__()
        self._path = path
        self._file = path.open("rb", buffering=0)
        self._digest = hashlib.sha256()
        self._decoder = codecs.getincrementaldecoder("utf-8")() if check_utf8 else None
        self._lines = 0
        self.bytes_read = 0
        self.error: SourceError | None = None
        self._scan = scan
        self._offset = offset
        self._total = total
        self._expected = expected_size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        count = self._file.readinto(view)
        if not count:
            if self._decoder is not None and self.error is None:
                try:
                    self._decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    self.error = self._encoding_error(0, b"")
                    raise self.error from None
            return 0
        chunk = bytes(view[:count])
        self._digest.update(chunk)
        if self._decoder is not None:
            try:
                self._decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                self.error = self._encoding_error(exc.start, chunk)
                raise self.error from None
            self._lines += chunk.count(b"\n")
        self.bytes_read += count
        if self.bytes_read > self._expected:
            self.error = changed_error(self._path, "it grew while it was read")
            raise self.error
        if self._scan.progress:
            self._scan.progress(self._offset + self.bytes_read, self._total)
        return count

    def _encoding_error(self, start: int, chunk: bytes) -> SourceError:
        # The decoder may hold up to 3 bytes of an unfinished sequence from the last chunk.
        position = max(self.bytes_read + start, 0)
        line = self._lines + chunk[:start].count(b"\n") + 1
        bad = chunk[start : start + 4]
        return SourceError(
            f"{self._path} is not valid UTF-8: line {line} (byte {position:,}) has {bad!r}.",
            hint="It is probably Latin-1 or Windows-1252: pass encoding='latin-1' "
            "(--encoding latin-1), or re-save the file as UTF-8.",
        )

    def sha256(self) -> str:
        return "sha256:" + self._digest.hexdigest()

    def close(self) -> None:
        self._file.close()
        super().close()


# --- CSV ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvSource(Source):
    """CSV files (a path, glob, folder or list). Options apply to every file.

    >>> CsvSource("exports/*.csv", delimiter=";", encoding="latin-1")
    """

    path: str | Path | Sequence[str | Path]
    delimiter: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = DEFAULT_NULLS
    max_row_bytes: int = 8 << 20

    def open(self, context: SourceContext | None = None) -> Scan:
        if len(self.delimiter) != 1 or len(self.quote) != 1:
            raise SourceError("delimiter and quote must each be one character.")
        try:
            codecs.lookup(self.encoding)
        except LookupError as exc:
            raise SourceError(f"Unknown encoding {self.encoding!r}.") from exc
        return _CsvScan(self, resolve_paths(self.path))


class _CsvScan(Scan):
    text = True

    def __init__(self, source: CsvSource, paths: list[Path]) -> None:
        import pyarrow as pa

        super().__init__(str(source.path))
        self._source = source
        self._paths = paths
        self._fingerprints = [FileFingerprint.of(p) for p in paths]
        self._hashes: dict[Path, str] = {}
        self.exact_rows = False
        """Read sequentially so malformed rows have numbers (set once any is seen)."""
        self._columns = self._header(paths[0])
        for path in paths[1:]:
            check_same_columns(paths[0], self._columns, path, self._header(path))
        self._schema = pa.schema([pa.field(name, pa.string()) for name in self._columns])
        self._total = sum(f.size for f in self._fingerprints)
        self._sizes = {f.path: f.size for f in self._fingerprints}

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def _header(self, path: Path) -> list[str]:
        fingerprint = FileFingerprint.of(path)
        if fingerprint.size == 0:
            raise SourceError(
                f"{path} is empty (0 bytes): a CSV file needs at least a header line.",
                hint="Check the export that wrote it.",
            )
        with path.open("rb") as stream:
            head = stream.read(self._source.max_row_bytes)
        text = head.decode(self._source.encoding, errors="replace").lstrip("\ufeff")
        try:
            reader = csv.reader(
                io.StringIO(text), delimiter=self._source.delimiter, quotechar=self._source.quote
            )
            header = next(reader, None)
        except csv.Error as exc:
            raise SourceError(f"{path}: cannot read the header line: {exc}.") from exc
        if not header or all(not name.strip() for name in header):
            raise SourceError(
                f"{path}: the first line is empty; it should name the columns.",
                hint="Add a header line (col1,col2,...).",
            )
        blank = [index + 1 for index, name in enumerate(header) if not name.strip()]
        if blank:
            raise SourceError(
                f"{path}: header column {blank[0]} has no name.",
                hint="Name every column in the header line.",
            )
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise SourceError(
                f"{path}: the header names {duplicates} more than once.",
                hint="Column names must be unique.",
            )
        return header

    def batches(self) -> Iterator[SourceBatch]:
        offset = 0
        for path, fingerprint in zip(self._paths, self._fingerprints, strict=True):
            yield from self._file_batches(path, offset)
            fingerprint.check_unchanged()
            offset += fingerprint.size

    def _file_batches(self, path: Path, offset: int) -> Iterator[SourceBatch]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.csv as pcsv

        source = self._source
        invalid: list[tuple[int | None, str, str]] = []
        exact = self.exact_rows

        def on_invalid(row: Any) -> str:
            text = str(row.text)
            message = f"expected {row.expected_columns} fields, found {row.actual_columns}"
            invalid.append((row.number, text, message))
            return "skip"

        utf8 = codecs.lookup(source.encoding).name in ("utf-8", "utf-8-sig")
        stream = _HashingFile(
            path,
            check_utf8=utf8,
            scan=self,
            offset=offset,
            total=self._total,
            expected_size=self._sizes[path],
        )
        seen = 0
        reported = 0
        numbers: list[int] = []
        try:
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(
                    use_threads=not exact,
                    block_size=max(1 << 20, source.max_row_bytes),
                    encoding=source.encoding if not utf8 else "utf8",
                ),
                parse_options=pcsv.ParseOptions(
                    delimiter=source.delimiter,
                    quote_char=source.quote,
                    newlines_in_values=True,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={name: pa.string() for name in self._columns},
                    null_values=list(source.null_values),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                    include_columns=self._columns,
                ),
            )
            for batch in reader:
                fresh = invalid[reported:]
                reported = len(invalid)
                if any(number is None for number, _, _ in fresh):
                    if not self.inferring:
                        self.exact_rows = True
                        raise RestartPass()
                    self.exact_rows = True
                numbers.extend(n for n, _, _ in fresh if n is not None)
                numbers.sort()
                k = np.arange(seen, seen + batch.num_rows, dtype=np.int64)
                if numbers:
                    ordered = np.asarray(numbers, dtype=np.int64)
                    before = ordered - 2 - np.arange(len(ordered), dtype=np.int64)
                    rows = k + 2 + np.searchsorted(before, k, side="right")
                else:
                    rows = k + 2
                malformed = [
                    MalformedRow(str(path), number, text[:_MAX_TEXT], message)
                    for number, text, message in fresh
                ]
                seen += batch.num_rows
                yield SourceBatch(str(path), rows, batch.select(self._columns), malformed)
            leftover = invalid[reported:]
            if leftover:
                if any(n is None for n, _, _ in leftover) and not self.inferring:
                    self.exact_rows = True
                    raise RestartPass()
                empty = pa.RecordBatch.from_pylist([], schema=self._schema)
                yield SourceBatch(
                    str(path),
                    np.zeros(0, dtype=np.int64),
                    empty,
                    [MalformedRow(str(path), n, t[:_MAX_TEXT], m) for n, t, m in leftover],
                )
        except (RestartPass, SourceError):
            raise
        except Exception as exc:
            if stream.error is not None:
                raise stream.error from exc
            raise _csv_error(path, exc, seen) from exc
        finally:
            stream.close()
        digest = stream.sha256()
        previous = self._hashes.setdefault(path, digest)
        if previous != digest:
            raise changed_error(path, "its bytes differ between two reads")

    def lineage(self) -> dict[str, Any]:
        source = self._source
        return {
            "kind": "csv",
            "display": self.display,
            "options": {
                "delimiter": source.delimiter,
                "quote": source.quote,
                "encoding": source.encoding,
                "null_values": list(source.null_values),
            },
            "files": [f.describe(self._hashes.get(f.path, "")) for f in self._fingerprints],
        }


def _csv_error(path: Path, exc: Exception, rows_before: int) -> SourceError:
    text = " ".join(str(exc).split())
    if "straddling" in text or "block size" in text:
        return SourceError(
            f"{path}: a row after data row {rows_before:,} is larger than the row size limit.",
            hint="If the file really has rows that long, raise it: max_row_bytes=... "
            "(--max-row-bytes); otherwise look for an unclosed quote near that row.",
        )
    if "Empty CSV file" in text:
        return SourceError(f"{path} has no header line.", hint="Add a header line.")
    return SourceError(f"{path}: cannot parse the CSV after data row {rows_before:,}: {text}.")
