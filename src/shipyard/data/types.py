"""Column types: the names a contract declares, and the canonical Arrow type of each.

A table's content id hashes its *canonical* schema, so two writers that mean the same
table agree on it: ``large_string``, ``string_view`` and ``string`` are all ``string``;
dictionary columns are their values; every timestamp unit coarser than microseconds is
stored as microseconds (nanoseconds are refused unless declared ``timestamp_ns``, so no
value is silently truncated); time zones are normalised to UTC (values are instants).

Type names (and their aliases)::

    bool (boolean)            int8 int16 int32 int64 (int, integer, bigint)
    uint8 uint16 uint32 uint64
    float32 (float, real)     float64 (double)
    string (str, text, varchar)   binary (bytes, blob)
    date   time   timestamp (datetime)   timestamp_tz   timestamp_ns
    decimal(P,S)

>>> parse_type("integer").name
'int64'
>>> str(parse_type("decimal(10, 2)").arrow)
'decimal128(10, 2)'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.core.errors import DataContractError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ColumnType",
    "NUMERIC_TYPES",
    "TEMPORAL_TYPES",
    "canonical_type_of",
    "parse_type",
    "type_names",
]

_ALIASES = {
    "boolean": "bool",
    "int": "int64",
    "integer": "int64",
    "bigint": "int64",
    "long": "int64",
    "float": "float32",
    "real": "float32",
    "double": "float64",
    "str": "string",
    "text": "string",
    "varchar": "string",
    "utf8": "string",
    "bytes": "binary",
    "blob": "binary",
    "datetime": "timestamp",
}

# name -> (DuckDB type, Arrow type factory name)
_SIMPLE: dict[str, tuple[str, str]] = {
    "bool": ("BOOLEAN", "bool_"),
    "int8": ("TINYINT", "int8"),
    "int16": ("SMALLINT", "int16"),
    "int32": ("INTEGER", "int32"),
    "int64": ("BIGINT", "int64"),
    "uint8": ("UTINYINT", "uint8"),
    "uint16": ("USMALLINT", "uint16"),
    "uint32": ("UINTEGER", "uint32"),
    "uint64": ("UBIGINT", "uint64"),
    "float32": ("FLOAT", "float32"),
    "float64": ("DOUBLE", "float64"),
    "string": ("VARCHAR", "string"),
    "binary": ("BLOB", "binary"),
    "date": ("DATE", "date32"),
    "time": ("TIME", ""),
    "timestamp": ("TIMESTAMP", ""),
    "timestamp_tz": ("TIMESTAMPTZ", ""),
    "timestamp_ns": ("TIMESTAMP_NS", ""),
}

INTEGER_TYPES = frozenset(
    {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
)
NUMERIC_TYPES = INTEGER_TYPES | {"float32", "float64"}
"""Names with a numeric order and a mean (decimals too, see ``ColumnType.is_numeric``)."""
TEMPORAL_TYPES = frozenset({"date", "time", "timestamp", "timestamp_tz", "timestamp_ns"})

_DECIMAL = re.compile(r"decimal\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)")


@dataclass(frozen=True, slots=True)
class ColumnType:
    """One column type: its canonical name, its DuckDB spelling and its Arrow type.

    ``duckdb`` is ``None`` for types passed through as they are (nested, durations).
    """

    name: str
    duckdb: str | None
    arrow: pa.DataType

    @property
    def is_numeric(self) -> bool:
        return self.name in NUMERIC_TYPES or self.name.startswith("decimal")

    @property
    def is_integer(self) -> bool:
        return self.name in INTEGER_TYPES

    @property
    def is_temporal(self) -> bool:
        return self.name in TEMPORAL_TYPES

    @property
    def is_string(self) -> bool:
        return self.name == "string"


def type_names() -> list[str]:
    """Every type name a contract may declare (without aliases)."""
    return [*_SIMPLE, "decimal(P,S)"]


def parse_type(text: str) -> ColumnType:
    """The column type a contract names; ``DataContractError`` for an unknown name."""
    import pyarrow as pa

    if not isinstance(text, str):
        raise DataContractError(f"A column type must be a string, not {text!r}.")
    name = " ".join(text.strip().lower().split())
    name = _ALIASES.get(name, name)
    if match := _DECIMAL.fullmatch(name):
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            raise DataContractError(
                f"Type {text!r}: a decimal needs 1 <= precision <= 38 and scale <= precision."
            )
        return ColumnType(
            f"decimal({precision},{scale})",
            f"DECIMAL({precision},{scale})",
            pa.decimal128(precision, scale),
        )
    if name not in _SIMPLE:
        import difflib

        close = difflib.get_close_matches(name, [*_SIMPLE, *_ALIASES], n=1)
        suggestion = f" Did you mean '{close[0]}'?" if close else ""
        raise DataContractError(
            f"Unknown column type {text!r}.{suggestion}",
            hint=f"Known types: {', '.join(type_names())}.",
        )
    duck, factory = _SIMPLE[name]
    arrow: pa.DataType
    if name == "time":
        arrow = pa.time64("us")
    elif name == "timestamp":
        arrow = pa.timestamp("us")
    elif name == "timestamp_tz":
        arrow = pa.timestamp("us", tz="UTC")
    elif name == "timestamp_ns":
        arrow = pa.timestamp("ns")
    else:
        arrow = getattr(pa, factory)()
    return ColumnType(name, duck, arrow)


def canonical_type_of(arrow_type: pa.DataType, column: str) -> ColumnType:
    """The canonical column type of data arriving as ``arrow_type`` (no contract given)."""
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_dictionary(arrow_type):
        return canonical_type_of(arrow_type.value_type, column)
    if t.is_null(arrow_type):
        return parse_type("string")  # every value is null: the most general type
    if t.is_boolean(arrow_type):
        return parse_type("bool")
    if t.is_integer(arrow_type) or t.is_floating(arrow_type):
        name = str(arrow_type)
        if name == "halffloat":
            name = "float32"
        elif name == "float":
            name = "float32"
        elif name == "double":
            name = "float64"
        return parse_type(name)
    if t.is_string(arrow_type) or t.is_large_string(arrow_type) or t.is_string_view(arrow_type):
        return parse_type("string")
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type) or t.is_binary_view(arrow_type):
        return parse_type("binary")
    if t.is_fixed_size_binary(arrow_type):
        return parse_type("binary")
    if t.is_date(arrow_type):
        return parse_type("date")
    if t.is_time(arrow_type):
        return parse_type("time")  # nanoseconds are cast losslessly or refused
    if t.is_timestamp(arrow_type):
        return parse_type("timestamp" if arrow_type.tz is None else "timestamp_tz")
    if t.is_decimal(arrow_type):
        if arrow_type.precision <= 38:
            return parse_type(f"decimal({arrow_type.precision},{arrow_type.scale})")
        return ColumnType(str(arrow_type), None, arrow_type)
    if t.is_duration(arrow_type):
        return ColumnType(str(arrow_type), None, arrow_type)
    if (
        t.is_large_list(arrow_type)
        or t.is_list_view(arrow_type)
        or t.is_large_list_view(arrow_type)
    ):
        value = canonical_type_of(arrow_type.value_type, column)
        return ColumnType(f"list<{value.name}>", None, pa.list_(value.arrow))
    if t.is_list(arrow_type):
        value = canonical_type_of(arrow_type.value_type, column)
        return ColumnType(f"list<{value.name}>", None, pa.list_(value.arrow))
    if t.is_struct(arrow_type):
        fields = [
            (arrow_type.field(i).name, canonical_type_of(arrow_type.field(i).type, column))
            for i in range(arrow_type.num_fields)
        ]
        name = "struct<" + ", ".join(f"{key}: {value.name}" for key, value in fields) + ">"
        return ColumnType(name, None, pa.struct([(key, value.arrow) for key, value in fields]))
    if t.is_map(arrow_type):
        key = canonical_type_of(arrow_type.key_type, column)
        item = canonical_type_of(arrow_type.item_type, column)
        return ColumnType(f"map<{key.name}, {item.name}>", None, pa.map_(key.arrow, item.arrow))
    raise DataContractError(
        f"Column {column!r} has Arrow type {arrow_type}, which Shipyard cannot store.",
        hint="Cast it to a supported type before ingesting, or declare its type in the contract.",
    )
