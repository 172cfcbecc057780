"""Compact encodings of online keys and values, shared by every online store.

A key is a string: the value itself for a one-column key, compact JSON for a compound key
(``[42,"eu"]``). Within one view every key column has a fixed type, so this is
unambiguous. A value row is packed with ``struct``: a null bitmap, the fixed-width values
in declaration order (strings and binaries as their byte length), then the variable-width
bytes. One precompiled ``Struct.unpack_from`` decodes a row; bulk encoding of fixed-width
rows is one numpy structured array, no Python loop per value.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError
from shipyard.features.definitions import Feature

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["KeyCodec", "ValueCodec", "micros", "from_micros"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)
_FIXED: dict[str, str] = {
    "bool": "?",
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint8": "B",
    "uint16": "H",
    "uint32": "I",
    "uint64": "Q",
    "float": "f",
    "double": "d",
    "date32[day]": "i",
}
_VARIABLE = {"string", "large_string", "binary", "large_binary"}
# Microseconds per stored unit, as (multiply, floor-divide): integers, no float rounding.
_TS_SCALE = {"s": (1_000_000, 1), "ms": (1_000, 1), "us": (1, 1), "ns": (1, 1_000)}


def micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (naive ones are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    """The UTC datetime ``value`` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=value)


def _timestamp_unit(dtype: str) -> str | None:
    if dtype.startswith("timestamp["):
        return dtype[len("timestamp[") :].split(",")[0].rstrip("]")
    return None


def _timestamp_reader(multiply: int, divide: int) -> Callable[[int], datetime]:
    def read(value: int) -> datetime:
        return from_micros(value * multiply // divide)

    return read


class KeyCodec:
    """Turns a view's entity key values into the string the online stores key on."""

    def __init__(self, view: str, join_keys: Sequence[str], key_types: Sequence[str]) -> None:
        self.view = view
        self.join_keys = tuple(join_keys)
        self.key_types = tuple(key_types)
        for key, kind in zip(self.join_keys, self.key_types, strict=True):
            if kind not in ("int", "string"):
                raise DataContractError(
                    f"Join key {key!r} of feature view {view!r} has type {kind!r}; online "
                    "stores key on integers or strings.",
                    hint="Cast the key column to int64 or string in the source.",
                )
        self._single = len(self.join_keys) == 1

    def check(self, key: str, kind: str, value: Any) -> Any:
        """``value`` as the key column's Python type, or a clear error naming the key."""
        if kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu":
                return int(value)
        elif isinstance(value, str):
            return value
        expected = "an integer" if kind == "int" else "a string"
        raise DataContractError(
            f"Entity key {key!r} of feature view {self.view!r} is {value!r} "
            f"({type(value).__name__}); expected {expected}.",
            hint=f"Pass {key} as {expected}, the type of the view's join key.",
        )

    def encode(self, values: Sequence[Any]) -> str:
        """The key string of one entity (values already checked)."""
        if self._single:
            return str(values[0])
        return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)

    def encode_columns(self, columns: Sequence[pa.ChunkedArray | pa.Array]) -> list[str]:
        """Key strings of many entities, from Arrow key columns (bulk writes)."""
        import pyarrow.compute as pc

        if self._single:
            return pc.cast(columns[0], "string").to_pylist()  # type: ignore[no-any-return]
        lists = [column.to_pylist() for column in columns]
        dumps = json.dumps
        return [
            dumps(list(row), separators=(",", ":"), ensure_ascii=False)
            for row in zip(*lists, strict=True)
        ]


class ValueCodec:
    """Packs and unpacks one view's feature values (see module docstring)."""

    def __init__(self, view: str, features: Sequence[Feature]) -> None:
        self.view = view
        self.features = tuple(features)
        self._words = max(1, (len(self.features) + 63) // 64)
        codes = ["Q"] * self._words
        self._variable: list[int] = []
        self._post: list[tuple[int, Callable[[Any], Any]]] = []
        self._kinds: list[str] = []
        for index, feature in enumerate(self.features):
            dtype = feature.dtype
            unit = _timestamp_unit(dtype)
            if dtype in _FIXED:
                codes.append(_FIXED[dtype])
                self._kinds.append("fixed")
                if dtype == "date32[day]":
                    self._post.append((index, lambda v: _EPOCH_DATE + timedelta(days=v)))
            elif unit is not None:
                codes.append("q")
                self._kinds.append("timestamp")
                self._post.append((index, _timestamp_reader(*_TS_SCALE[unit])))
            elif dtype in _VARIABLE:
                codes.append("I")
                self._kinds.append("bytes" if "binary" in dtype else "text")
                self._variable.append(index)
            else:
                raise DataContractError(
                    f"Feature {feature.name!r} of view {view!r} has type {dtype}, which the "
                    "online stores cannot hold.",
                    hint="Online features are numbers, booleans, strings, binaries, dates or "
                    "timestamps; leave this one out of services read online.",
                )
        self._struct = struct.Struct("<" + "".join(codes))
        self.fixed_size = self._struct.size
        self._fixed_only = not self._variable
        self._plain = self._fixed_only and not self._post and self._words == 1
        self._numpy_codes = codes

    # --- Decoding (the hot path of every online read) ---------------------------------------

    def decode(self, blob: bytes) -> tuple[Any, ...]:
        """The feature values of one packed row, in declaration order (``None`` for nulls)."""
        raw = self._struct.unpack_from(blob)
        if self._plain and not raw[0]:
            return raw[1:]  # fixed-width, no conversion, no nulls: the common case
        words = self._words
        values = list(raw[words:])
        if self._variable:
            offset = self.fixed_size
            for index in self._variable:
                length = values[index]
                chunk = blob[offset : offset + length]
                offset += length
                values[index] = chunk.decode() if self._kinds[index] == "text" else bytes(chunk)
        for index, convert in self._post:
            values[index] = convert(values[index])
        nulls = raw[0] if words == 1 else _join_words(raw[:words])
        if nulls:
            for index in range(len(values)):
                if nulls >> index & 1:
                    values[index] = None
        return tuple(values)

    # --- Encoding (bulk, for materialization and push) --------------------------------------

    def encode_columns(self, columns: Sequence[pa.ChunkedArray]) -> list[bytes]:
        """Packed rows from Arrow feature columns (one per feature, same length)."""
        import numpy as np
        import pyarrow as pa

        rows = len(columns[0]) if columns else 0
        bitmap = np.zeros((rows, self._words), dtype=np.uint64)
        arrays: list[Any] = []
        for index, (feature, column) in enumerate(zip(self.features, columns, strict=True)):
            combined = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            if combined.null_count:
                mask = combined.is_null().to_numpy(zero_copy_only=False)
                bitmap[:, index // 64] |= mask.astype(np.uint64) << np.uint64(index % 64)
            kind = self._kinds[index]
            if kind == "timestamp":
                combined = combined.cast(pa.int64())
            elif feature.dtype == "date32[day]":
                combined = combined.cast(pa.int32())
            arrays.append(combined)
        if self._fixed_only:
            return self._encode_fixed(rows, bitmap, arrays)
        return self._encode_rows(rows, bitmap, arrays)

    def _encode_fixed(self, rows: int, bitmap: Any, arrays: list[Any]) -> list[bytes]:
        import numpy as np

        fields = [(f"w{i}", "<u8") for i in range(self._words)]
        fields += [
            (f"f{i}", np.dtype("<" + code).str)
            for i, code in enumerate(self._numpy_codes[self._words :])
        ]
        packed = np.zeros(rows, dtype=np.dtype(fields, align=False))
        for word in range(self._words):
            packed[f"w{word}"] = bitmap[:, word]
        for index, array in enumerate(arrays):
            filled = array.fill_null(False if array.type == "bool" else 0)
            packed[f"f{index}"] = filled.to_numpy(zero_copy_only=False)
        buffer = packed.tobytes()
        size = packed.dtype.itemsize
        if size != self.fixed_size:  # numpy and struct must agree on the layout
            raise AssertionError(f"row layout mismatch: numpy {size} vs struct {self.fixed_size}")
        return [buffer[i : i + size] for i in range(0, rows * size, size)]

    def _encode_rows(self, rows: int, bitmap: Any, arrays: list[Any]) -> list[bytes]:
        pack = self._struct.pack
        lists = [array.to_pylist() for array in arrays]
        words = [bitmap[:, w].tolist() for w in range(self._words)]
        out: list[bytes] = []
        variable = self._variable
        kinds = self._kinds
        for row in range(rows):
            values = [column[row] for column in lists]
            tail: list[bytes] = []
            for index in variable:
                value = values[index]
                data = (
                    b"" if value is None else (value.encode() if kinds[index] == "text" else value)
                )
                values[index] = len(data)
                tail.append(data)
            for index, value in enumerate(values):
                if value is None:
                    values[index] = False if self.features[index].dtype == "bool" else 0
            out.append(pack(*(w[row] for w in words), *values) + b"".join(tail))
        return out


def _join_words(words: Sequence[int]) -> int:
    total = 0
    for position, word in enumerate(words):
        total |= word << (64 * position)
    return total
