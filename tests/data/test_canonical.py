"""A table's content id hashes its canonical content and schema, never its file bytes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.data.canonical import TableHasher
from shipyard.data.client import DatasetClient


def _id(table: pa.Table, names: list[str], **batching: int) -> str:
    hasher = TableHasher(table.schema, names)
    for batch in table.to_batches(**batching):
        hasher.update(batch)
    return hasher.content_id()


TABLE = pa.table(
    {
        "i": pa.array([1, None, 3, 4], pa.int64()),
        "f": [1.5, float("nan"), None, -0.0],
        "s": ["a", None, "ccc", ""],
        "b": [True, None, False, True],
        "d": [dt.date(2020, 1, 1), None, dt.date(2021, 1, 1), dt.date(2022, 1, 1)],
        "ts": pa.array(
            [dt.datetime(2020, 1, 1), None, None, dt.datetime(2020, 1, 2)], pa.timestamp("us")
        ),
        "dec": pa.array([Decimal("1.50"), None, Decimal("2.00"), None], pa.decimal128(10, 2)),
        "l": [[1], [2, 3], None, []],
    }
)
NAMES = ["int64", "float64", "string", "bool", "date", "timestamp", "decimal(10,2)", "list<int64>"]


def test_the_id_does_not_depend_on_how_the_rows_are_batched() -> None:
    whole = _id(TABLE, NAMES)
    assert _id(TABLE, NAMES, max_chunksize=1) == whole
    assert _id(pa.concat_tables([TABLE.slice(0, 3), TABLE.slice(3)]), NAMES) == whole


@pytest.mark.parametrize(
    ("column", "value"),
    [("i", 5), ("f", 1.25), ("s", "ccd"), ("b", False), ("d", dt.date(2020, 1, 2)), ("s", None)],
)
def test_any_one_cell_change_changes_the_id(column: str, value: object) -> None:
    values = TABLE.column(column).to_pylist()
    values[0] = value
    changed = TABLE.set_column(
        TABLE.schema.get_field_index(column),
        column,
        pa.array(values, TABLE.schema.field(column).type),
    )
    assert _id(changed, NAMES) != _id(TABLE, NAMES)


def test_null_and_empty_string_differ_and_row_order_matters() -> None:
    empty = TABLE.set_column(2, "s", pa.array(["a", "", "ccc", ""]))
    assert _id(empty, NAMES) != _id(TABLE, NAMES)
    reversed_rows = TABLE.take(pa.array([3, 2, 1, 0]))
    assert _id(reversed_rows, NAMES) != _id(TABLE, NAMES)


def test_schema_is_part_of_the_id() -> None:
    renamed = TABLE.rename_columns(["j", *TABLE.column_names[1:]])
    assert _id(renamed, NAMES) != _id(TABLE, NAMES)
    assert _id(TABLE, ["int32", *NAMES[1:]]) != _id(TABLE, NAMES)


def test_same_data_from_csv_pandas_polars_and_parquet_writers_gets_one_id(
    client: DatasetClient, credit_csv: Path, tmp_path: Path
) -> None:
    ids = {"csv": client.ingest("from_csv", credit_csv).version.content_id}
    ids["pandas"] = client.ingest("from_pandas", pd.read_csv(credit_csv)).version.content_id
    ids["polars"] = client.ingest("from_polars", pl.read_csv(credit_csv)).version.content_id
    table = client.read_table("from_csv")
    for name, options in {
        "parquet_small_groups": {"row_group_size": 100, "compression": "snappy"},
        "parquet_one_group": {"row_group_size": 1_000_000, "compression": "none"},
        "parquet_v1": {"version": "1.0", "use_dictionary": False},
    }.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path, **options)  # type: ignore[arg-type]
        ids[name] = client.ingest(name, path).version.content_id
    assert len(set(ids.values())) == 1, ids


def test_same_content_keeps_its_id_and_is_stored_once(
    client: DatasetClient, credit_csv: Path
) -> None:
    first = client.ingest("credit", credit_csv)
    again = client.ingest("credit", credit_csv)
    assert first.created and not again.created
    assert again.version.reference == "credit@v1"
    other = client.ingest("credit_copy", pd.read_csv(credit_csv))
    assert other.created
    assert other.version.parts == first.version.parts  # the data blobs are shared, not copied
