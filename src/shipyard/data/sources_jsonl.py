"""JSON-lines sources: one JSON object per line, streamed in blocks of whole lines.

The schema is unified over the whole file first (so ``1`` on line 1 and ``1.5`` on line
900 make a float column), and a line that is not a JSON object is quarantined with its
line number. Blank lines are skipped (and counted: numbers stay line numbers).
"""

from __future__ import annotations

import hashlib
import io
import json
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
    normalize_raw,
    resolve_paths,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["JsonLinesSource"]

_MAX_TEXT = 500


@dataclass(frozen=True)
class JsonLinesSource(Source):
    """JSON-lines files: one JSON object per line (a path, glob, folder or list)."""

    path: str | Path | Sequence[str | Path]
    block_bytes: int = 4 << 20

    def open(self, context: SourceContext | None = None) -> Scan:
        return _JsonLinesScan(resolve_paths(self.path), str(self.path), self.block_bytes)


def _line_blocks(path: Path, block_bytes: int) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, the block's lines) over a file, in whole lines."""
    line = 1
    carry = b""
    with path.open("rb") as stream:
        while True:
            chunk = stream.read(block_bytes)
            if not chunk:
                break
            data = carry + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            lines = data[:cut].split(b"\n")
            carry = data[cut + 1 :]
            yield line, lines
            line += len(lines)
    if carry:
        yield line, [carry]


class _JsonLinesScan(Scan):
    def __init__(self, paths: list[Path], display: str, block_bytes: int) -> None:
        import pyarrow as pa

        super().__init__(display)
        self._paths = paths
        self._block = block_bytes
        self._fingerprints = [FileFingerprint.of(p) for p in paths]
        self._hashes: dict[Path, str] = {}
        schemas: list[pa.Schema] = []
        for path in paths:
            digest = hashlib.sha256()
            for first, lines in _line_blocks(path, block_bytes):
                for line in lines:
                    digest.update(line + b"\n")
                parsed, _, _ = self._parse(path, first, lines, None)
                if parsed is not None:
                    schemas.append(parsed.schema)
            self._hashes[path] = digest.hexdigest()
        if not schemas:
            raise SourceError(
                f"{display} holds no JSON objects.", hint="Check the file is JSON lines."
            )
        try:
            self._schema = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SourceError(
                f"{display}: a field has values of incompatible types on different lines: {exc}.",
                hint="Make the field's values one type (quote numbers that are really text).",
            ) from exc

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def _parse(
        self, path: Path, first: int, lines: list[bytes], schema: pa.Schema | None
    ) -> tuple[pa.Table | None, list[int], list[tuple[int, bytes, str]]]:
        """Parse a block's non-blank lines: (table, their line numbers, malformed lines)."""
        numbered = [(first + i, ln) for i, ln in enumerate(lines) if ln.strip()]
        bad: list[tuple[int, bytes, str]] = []
        table = self._read(numbered, schema)
        if table is None:
            good = []
            for number, text in numbered:
                try:
                    value = json.loads(text)
                except (ValueError, UnicodeDecodeError) as exc:
                    bad.append((number, text, f"not valid JSON: {exc}"))
                    continue
                if not isinstance(value, dict):
                    bad.append((number, text, "not a JSON object"))
                    continue
                good.append((number, text))
            numbered = good
            table = self._read(numbered, schema, raise_errors=True, path=path)
        return table, [n for n, _ in numbered], bad

    def _read(
        self,
        numbered: list[tuple[int, bytes]],
        schema: pa.Schema | None,
        *,
        raise_errors: bool = False,
        path: Path | None = None,
    ) -> pa.Table | None:
        import pyarrow as pa
        import pyarrow.json as pj

        if not numbered:
            return pa.table({}) if schema is None else schema.empty_table()
        payload = b"\n".join(text for _, text in numbered) + b"\n"
        try:
            return pj.read_json(
                io.BytesIO(payload),
                read_options=pj.ReadOptions(use_threads=False, block_size=len(payload) + 1),
                parse_options=pj.ParseOptions(
                    explicit_schema=schema,
                    unexpected_field_behavior="error" if schema is not None else "infer",
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            if not raise_errors:
                return None
            first, last = numbered[0][0], numbered[-1][0]
            raise SourceError(
                f"{path}: lines {first}-{last} do not match the file's columns: {exc}.",
                hint="Make every line's fields the same types.",
            ) from exc

    def batches(self) -> Iterator[SourceBatch]:
        import numpy as np

        done = 0
        for path, fingerprint in zip(self._paths, self._fingerprints, strict=True):
            digest = hashlib.sha256()
            for first, lines in _line_blocks(path, self._block):
                for line in lines:
                    digest.update(line + b"\n")
                table, numbers, bad = self._parse(path, first, lines, self._schema)
                malformed = [
                    MalformedRow(str(path), n, t.decode("utf-8", "replace")[:_MAX_TEXT], m)
                    for n, t, m in bad
                ]
                if table is None:
                    continue
                rows = np.asarray(numbers, dtype=np.int64)
                data = table.combine_chunks()
                record = data.to_batches()[0] if data.num_rows else _empty_batch(self._schema)
                yield SourceBatch(str(path), rows, normalize_raw(record), malformed)
                if self.progress:
                    self.progress(done + sum(len(ln) + 1 for ln in lines), None)
            fingerprint.check_unchanged()
            if digest.hexdigest() != self._hashes[path]:
                raise changed_error(path, "its bytes differ between two reads")
            done += fingerprint.size

    def lineage(self) -> dict[str, Any]:
        return {
            "kind": "jsonl",
            "display": self.display,
            "files": [
                f.describe("sha256:" + self._hashes.get(f.path, "")) for f in self._fingerprints
            ],
        }


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.RecordBatch.from_pylist([], schema=schema)
