"""Input tables and feature view sources: read, checked and normalised for the engines.

Everything a user hands the feature store (entity tables, pushed rows, source files) goes
through here, so every mistake is reported the same way: which table, which column,
what was expected, what to do.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError, NotFoundError
from shipyard.features.definitions import FeatureView, FileSource, arrow_type

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.data.client import DatasetClient

__all__ = [
    "ResolvedSource",
    "align_keys",
    "check_view_schema",
    "key_kind",
    "normalise_timestamp",
    "resolve_source",
    "to_arrow_table",
]

UTC_MICROS = "timestamp[us, tz=UTC]"


def to_arrow_table(value: Any, *, what: str) -> pa.Table:
    """A pyarrow Table from a Table, pandas/Polars DataFrame, list of dicts or dict of lists."""
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    module = type(value).__module__.split(".")[0]
    try:
        if module == "pandas":
            return pa.Table.from_pandas(value, preserve_index=False)
        if module == "polars":
            return value.to_arrow()
        if isinstance(value, list) and all(isinstance(row, dict) for row in value):
            if not value:
                raise DataContractError(f"{what} is an empty list; give at least one row.")
            return pa.Table.from_pylist(value)
        if isinstance(value, dict):
            return pa.table(value)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise DataContractError(
            f"{what} cannot be read as a table: {exc}",
            hint="Give a pyarrow Table, a pandas DataFrame, a list of dicts or a dict of "
            "equal-length lists, each column of one type.",
        ) from exc
    raise DataContractError(
        f"{what} is a {type(value).__name__}; expected a table.",
        hint="Give a pyarrow Table, a pandas DataFrame, a list of dicts or a dict of lists.",
    )


def _require_column(table: pa.Table, column: str, *, what: str, role: str) -> None:
    if column not in table.column_names:
        shown = ", ".join(table.column_names[:20]) or "none"
        raise DataContractError(
            f"{what} has no {role} column {column!r} (its columns: {shown}).",
            hint=f"Add a {column!r} column, or name the {role} column you have.",
        )


def normalise_timestamp(
    table: pa.Table, column: str, *, what: str, allow_nulls: bool = False
) -> pa.Table:
    """``table`` with ``column`` as ``timestamp[us, tz=UTC]`` (naive values taken as UTC).

    Dates become midnight UTC; ISO-8601 strings are parsed. Anything else, or (unless
    ``allow_nulls``) a null, is an error naming the column and row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    _require_column(table, column, what=what, role="timestamp")
    array = table.column(column)
    kind = array.type
    target = pa.timestamp("us", tz="UTC")
    try:
        if pa.types.is_timestamp(kind):
            if kind.tz is None:
                array = pc.assume_timezone(array.cast(pa.timestamp("us")), "UTC")
            converted = array.cast(target)
        elif pa.types.is_date(kind):
            converted = array.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            converted = _parse_strings(array, target)
        else:
            raise DataContractError(
                f"Column {column!r} of {what} is {kind}, not a timestamp.",
                hint="Give timestamps (datetime values, or ISO-8601 strings like "
                "2024-01-31T12:00:00Z).",
            )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataContractError(
            f"Column {column!r} of {what} cannot be read as timestamps: {exc}",
            hint="Use ISO-8601 values (2024-01-31T12:00:00Z) or datetime values.",
        ) from exc
    if not allow_nulls and converted.null_count:
        row = pc.index(pc.is_null(converted), True).as_py()
        raise DataContractError(
            f"Column {column!r} of {what} is empty at row {row} "
            f"({converted.null_count} empty in all).",
            hint="Every row needs a timestamp: fill or drop those rows.",
        )
    index = table.column_names.index(column)
    return table.set_column(index, column, converted)


def _parse_strings(array: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        naive = array.cast(pa.timestamp("us"))
        return pc.assume_timezone(naive, "UTC").cast(target)


def key_kind(dtype: pa.DataType) -> str | None:
    """``"int"`` or ``"string"`` for a supported join key type, else ``None``."""
    import pyarrow as pa

    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    return None


def align_keys(
    table: pa.Table, view: FeatureView, source_schema: pa.Schema, *, what: str, source_label: str
) -> pa.Table:
    """``table`` with the view's join keys present and cast to the source's key types."""
    for key in view.join_keys:
        if key not in table.column_names:
            shown = ", ".join(table.column_names[:20])
            raise DataContractError(
                f"{what} has no column {key!r}, the join key of feature view "
                f"{view.name!r} (its columns: {shown}).",
                hint=f"Add the {key!r} column to identify the {view.name!r} entity.",
            )
        have = table.schema.field(key).type
        want = source_schema.field(key).type
        have_kind, want_kind = key_kind(have), key_kind(want)
        if have_kind is None or have_kind != want_kind:
            raise DataContractError(
                f"Join key {key!r} is {have} in {what} but {want} in the source "
                f"{source_label} of feature view {view.name!r}.",
                hint=f"Cast {key!r} to {want} in {what}.",
            )
        if have != want:
            table = table.set_column(
                table.column_names.index(key), key, table.column(key).cast(want)
            )
    return table


@dataclass(frozen=True)
class ResolvedSource:
    """A view's source ready for an engine: the data, its schema, a label for messages."""

    data: pa.Table | tuple[str, ...]
    schema: pa.Schema
    label: str
    version: str | None = None  # the dataset version reference, for lineage


def _file_paths(source: FileSource, view: str) -> list[str]:
    path = Path(source.path).expanduser()
    if path.is_dir():
        suffix = ".parquet" if source.format == "parquet" else ".csv"
        found = sorted(str(p) for p in path.rglob(f"*{suffix}"))
    elif any(ch in source.path for ch in "*?["):
        found = sorted(glob.glob(str(path)))
    else:
        found = [str(path)] if path.is_file() else []
    if not found:
        raise NotFoundError(
            f"The source {source.path} of feature view {view!r} matches no file.",
            hint="Check the path (a file, a folder or a glob of Parquet or CSV files).",
        )
    return found


def resolve_source(
    view: FeatureView, datasets: DatasetClient, pushed: Sequence[str] = ()
) -> ResolvedSource:
    """Locate a view's rows (dataset version parts or files, plus pushed parts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    version_ref: str | None = None
    if isinstance(view.source, str):
        try:
            version = datasets.get_version(view.source)
        except NotFoundError as exc:
            raise NotFoundError(
                f"Feature view {view.name!r} reads dataset {view.source!r}, which does not exist.",
                hint="Ingest it first (`shipyard datasets ingest`) or fix the view's source.",
            ) from exc
        if version.kind != "table":
            raise DataContractError(
                f"Feature view {view.name!r} reads {version.reference}, a file dataset; "
                "feature views need a table dataset."
            )
        paths = [str(p) for p in datasets.part_paths(version)]
        label = f"dataset {version.reference}"
        version_ref = version.reference
        data: pa.Table | list[str] = paths
    else:
        files = _file_paths(view.source, view.name)
        label = f"file source {view.source.path}"
        if view.source.format == "csv":
            import pyarrow.csv as pacsv

            try:
                data = pa.concat_tables(
                    [pacsv.read_csv(f) for f in files], promote_options="default"
                )
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataContractError(
                    f"Cannot read {label} of feature view {view.name!r}: {exc}"
                ) from exc
        else:
            data = files
    if isinstance(data, list):
        try:
            schema = pq.read_schema(data[0])
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataContractError(
                f"Cannot read {label} of feature view {view.name!r} as Parquet: {exc}"
            ) from exc
        data = [*data, *pushed] if pushed else data
    else:
        schema = data.schema
        if pushed:
            extra = [pq.ParquetFile(p).read() for p in pushed]
            data = pa.concat_tables([data, *(t.cast(schema) for t in extra)])
    check_view_schema(view, schema, label)
    if not _engine_ready(view, schema):
        table = (
            pa.concat_tables([pq.ParquetFile(p).read() for p in data])
            if isinstance(data, list)
            else data
        )
        table = _normalise_source(table, view, label)
        return ResolvedSource(table, table.schema, label, version_ref)
    final = tuple(data) if isinstance(data, list) else data
    return ResolvedSource(final, schema, label, version_ref)


def _engine_ready(view: FeatureView, schema: pa.Schema) -> bool:
    import pyarrow as pa

    ok = {pa.timestamp("us"), pa.timestamp("us", tz="UTC")}
    columns = [view.timestamp, *([view.created_timestamp] if view.created_timestamp else [])]
    if any(schema.field(c).type not in ok for c in columns):
        return False
    return all(key_kind(schema.field(k).type) for k in view.join_keys)


def _normalise_source(table: pa.Table, view: FeatureView, label: str) -> pa.Table:
    what = f"the {label} of feature view {view.name!r}"
    table = normalise_timestamp(table, view.timestamp, what=what, allow_nulls=True)
    if view.created_timestamp:
        table = normalise_timestamp(table, view.created_timestamp, what=what, allow_nulls=True)
    return table


def check_view_schema(view: FeatureView, schema: pa.Schema, label: str) -> None:
    """Every column the view declares is in the source, with a usable type."""
    import pyarrow as pa

    names = schema.names
    shown = ", ".join(names[:30])
    for column, role in (
        (view.timestamp, "event timestamp"),
        *([(view.created_timestamp, "created timestamp")] if view.created_timestamp else []),
        *((key, "join key") for key in view.join_keys),
        *((feature.name, "feature") for feature in view.features),
    ):
        if column not in names:
            raise DataContractError(
                f"Feature view {view.name!r} declares {role} column {column!r}, but "
                f"{label} has no such column (its columns: {shown}).",
                hint="Fix the view definition or the source's column names.",
            )
    for stamp in (view.timestamp, view.created_timestamp):
        if stamp is None:
            continue
        dtype = schema.field(stamp).type
        if not (
            pa.types.is_timestamp(dtype)
            or pa.types.is_date(dtype)
            or pa.types.is_string(dtype)
            or pa.types.is_large_string(dtype)
        ):
            raise DataContractError(
                f"Column {stamp!r} of {label} (feature view {view.name!r}) is {dtype}, "
                "not a timestamp.",
                hint="Point the view at a timestamp column.",
            )
    for key in view.join_keys:
        if key_kind(schema.field(key).type) is None:
            raise DataContractError(
                f"Join key {key!r} of {label} (feature view {view.name!r}) is "
                f"{schema.field(key).type}; join keys must be integers or strings.",
                hint="Cast the key column to int64 or string in the source.",
            )
    for feature in view.features:
        have = schema.field(feature.name).type
        want = arrow_type(feature.dtype)
        if have != want and not _castable(have, want):
            raise DataContractError(
                f"Feature {feature.name!r} of view {view.name!r} is declared {want} but is "
                f"{have} in {label}.",
                hint=f"Declare Feature({feature.name!r}, {str(have)!r}) or cast the column.",
            )


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    import pyarrow as pa

    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
    if any(test(have) for test in numeric) and any(test(want) for test in numeric):
        return True
    stringy = (pa.types.is_string, pa.types.is_large_string)
    if any(t(have) for t in stringy) and any(t(want) for t in stringy):
        return True
    return bool(pa.types.is_timestamp(have) and pa.types.is_timestamp(want))


def cast_features(table: pa.Table, columns: dict[str, pa.DataType]) -> pa.Table:
    """``table`` with the named columns cast to their declared types (safe casts only)."""
    import pyarrow as pa

    for name, dtype in columns.items():
        if name in table.column_names and table.schema.field(name).type != dtype:
            index = table.column_names.index(name)
            try:
                table = table.set_column(index, name, table.column(name).cast(dtype))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataContractError(
                    f"Feature column {name!r} cannot be cast to its declared type {dtype}: {exc}",
                    hint="Declare the feature with the column's real type.",
                ) from exc
    return table
