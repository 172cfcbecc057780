"""The content id of a table: its canonical schema and values, never its file bytes.

Two tables have the same id exactly when they have the same column names, types,
nullability and values *in the same row order* (as DVC and git: a reordered file is a
changed file). How the table was chunked, which library wrote it, and how Parquet
encoded or compressed it do not matter: each column is hashed as a stream of values in
a fixed encoding, so any split into batches gives the same digests.

Per column, three SHA-256 streams:

- ``validity``: one byte per row, 1 for a value and 0 for a null;
- ``data``: fixed-width values little-endian (nulls as zero; every float NaN as the one
  canonical NaN), or the bytes of variable-width values concatenated;
- ``lengths``: for variable-width values, each value's length as a little-endian int64.

Decimals are hashed as their exact decimal text, nested values as canonical JSON. The id
is the SHA-256 of a small JSON document naming the format, the schema, the row count and
every column's digests.

>>> hasher = TableHasher(schema, ["int64", "string"])
>>> for batch in batches:
...     hasher.update(batch)
>>> hasher.content_id()
'sha256:...'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shipyard.core.ids import ContentId, content_id_of_bytes

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = ["FORMAT", "TableHasher", "schema_json"]

FORMAT = "shipyard.table.v1"
"""Changes only if the encoding changes; it is part of every table id."""


def schema_json(schema: pa.Schema, type_names: Sequence[str]) -> list[dict[str, Any]]:
    """The canonical schema: ``[{"name", "type", "nullable"}]`` in column order."""
    return [
        {"name": field.name, "type": type_name, "nullable": bool(field.nullable)}
        for field, type_name in zip(schema, type_names, strict=True)
    ]


class _ColumnDigest:
    __slots__ = ("data", "lengths", "validity")

    def __init__(self) -> None:
        self.validity = hashlib.sha256()
        self.data = hashlib.sha256()
        self.lengths = hashlib.sha256()

    def hexdigests(self) -> dict[str, str]:
        return {
            "validity": self.validity.hexdigest(),
            "data": self.data.hexdigest(),
            "lengths": self.lengths.hexdigest(),
        }


class TableHasher:
    """Streams batches of a canonical table into its content id."""

    def __init__(self, schema: pa.Schema, type_names: Sequence[str]) -> None:
        self._schema = schema
        self._type_names = list(type_names)
        self._columns = [_ColumnDigest() for _ in schema]
        self._rows = 0

    @property
    def rows(self) -> int:
        return self._rows

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add the next rows (columns in schema order, canonical types)."""
        import pyarrow as pa

        if batch.num_rows == 0:
            return
        for index, digest in enumerate(self._columns):
            column = batch.column(index)
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            for chunk in chunks:
                _hash_array(chunk, digest)
        self._rows += batch.num_rows

    def content_id(self) -> ContentId:
        """The id of everything added so far."""
        document = {
            "format": FORMAT,
            "schema": schema_json(self._schema, self._type_names),
            "rows": self._rows,
            "columns": [digest.hexdigests() for digest in self._columns],
        }
        encoded = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        return content_id_of_bytes(encoded)


def _validity(array: pa.Array) -> np.ndarray[Any, Any]:
    import numpy as np

    if array.null_count == 0:
        return np.ones(len(array), dtype=np.uint8)
    valid: np.ndarray[Any, Any] = array.is_valid().to_numpy(zero_copy_only=False)
    return valid.astype(np.uint8)


def _hash_array(array: pa.Array, digest: _ColumnDigest) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    kind = array.type
    digest.validity.update(_validity(array).tobytes())
    if t.is_boolean(kind):
        values = pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(np.uint8)
        digest.data.update(values.tobytes())
    elif t.is_floating(kind):
        values = pc.fill_null(array, 0).to_numpy(zero_copy_only=False)
        nan = np.isnan(values)
        if nan.any():
            values = np.where(nan, values.dtype.type("nan"), values)
        digest.data.update(
            np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<")).tobytes()
        )
    elif t.is_integer(kind) or t.is_temporal(kind):
        width = kind.bit_width
        as_int = (
            array.view(pa.int64() if width == 64 else pa.int32())
            if not t.is_integer(kind)
            else array
        )
        values = pc.fill_null(as_int, 0).to_numpy(zero_copy_only=False)
        digest.data.update(values.astype(values.dtype.newbyteorder("<")).tobytes())
    elif (
        t.is_string(kind) or t.is_binary(kind) or t.is_large_string(kind) or t.is_large_binary(kind)
    ):
        _hash_variable(array.cast(pa.large_binary()), digest)
    elif t.is_decimal(kind):
        _hash_variable(array.cast(pa.string()).cast(pa.large_binary()), digest)
    else:
        encoded = [
            json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()
            if value is not None
            else b""
            for value in array.to_pylist()
        ]
        _hash_variable(pa.array(encoded, type=pa.large_binary()), digest)


def _hash_variable(array: pa.Array, digest: _ColumnDigest) -> None:
    """Hash a ``large_binary`` array's value lengths and bytes (nulls as empty values)."""
    import numpy as np
    import pyarrow.compute as pc

    if array.null_count:
        array = pc.fill_null(array, b"")
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype="<i8")[array.offset : array.offset + len(array) + 1]
    digest.lengths.update(np.diff(offsets).astype("<i8").tobytes())
    start, end = int(offsets[0]), int(offsets[-1])
    if end > start and buffers[2] is not None:
        digest.data.update(memoryview(buffers[2])[start:end])
