"""Every source: Parquet, JSON lines, tables in memory, SQL on PostgreSQL, transforms."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.core.errors import BackendUnavailableError
from shipyard.data.client import DatasetClient
from shipyard.data.contracts import Column, Contract
from shipyard.data.errors import SourceError
from shipyard.data.sources import ParquetSource
from shipyard.data.sources_jsonl import JsonLinesSource
from shipyard.data.sources_sql import SqlSource
from shipyard.data.transforms import PythonTransform, SqlTransform


def test_parquet_folder_with_row_numbers_per_file(client: DatasetClient, tmp_path: Path) -> None:
    folder = tmp_path / "parquet"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1, 2, 3], "v": [1.0, None, 3.0]}), folder / "a.parquet")
    pq.write_table(
        pa.table({"id": [4, 5], "v": [None, 5.0]}), folder / "b.parquet", row_group_size=1
    )
    result = client.ingest("p", folder, Contract(columns={"v": Column(nullable=False)}))
    assert {(v.file, v.row) for v in result.report.violations} == {
        (str(folder / "a.parquet"), 2),
        (str(folder / "b.parquet"), 1),
    }
    assert client.read_table("p").column("id").to_pylist() == [1, 3, 5]
    assert len(result.version.source["files"]) == 2
    assert all(f["sha256"].startswith("sha256:") for f in result.version.source["files"])


def test_a_damaged_parquet_file_fails_clearly(client: DatasetClient, tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        client.ingest("p", ParquetSource(path))


def test_json_lines_unify_types_and_quarantine_bad_lines(
    client: DatasetClient, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"id": 1, "score": 1, "tag": "a"}\n'
        "\n"
        '{"id": 2, "score": 2.5}\n'
        "{not json}\n"
        "[1, 2]\n"
        '{"id": 3, "score": null, "tag": "c"}\n'
    )
    result = client.ingest("events", path)
    assert {c.name: c.type for c in result.version.schema} == {
        "id": "int64",
        "score": "float64",
        "tag": "string",
    }
    assert client.read_table("events").to_pylist() == [
        {"id": 1, "score": 1.0, "tag": "a"},
        {"id": 2, "score": 2.5, "tag": None},
        {"id": 3, "score": None, "tag": "c"},
    ]
    malformed = {(v.row, v.message.split(":")[0]) for v in result.report.violations}
    assert malformed == {(4, "not valid JSON"), (5, "not a JSON object")}
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"a": 1}\n{"a": "text"}\n')
    with pytest.raises(SourceError, match=r"mixed.jsonl: lines 1-2 do not match"):
        client.ingest("mixed", JsonLinesSource(mixed))


@pytest.mark.parametrize("kind", ["arrow", "pandas", "polars"])
def test_in_memory_tables(client: DatasetClient, kind: str) -> None:
    data = {"id": [1, 2, 3], "name": ["a", None, "c"]}
    table = {"arrow": pa.table(data), "pandas": pd.DataFrame(data), "polars": pl.DataFrame(data)}[
        kind
    ]
    result = client.ingest("t", table, Contract(columns={"name": Column(nullable=False)}))
    assert [(v.file, v.row) for v in result.report.violations] == [(f"<{kind} table>", 2)]
    assert result.version.source["kind"] == kind
    assert client.read_table("t").to_pylist() == [{"id": 1, "name": "a"}, {"id": 3, "name": "c"}]
    with pytest.raises(SourceError, match="Cannot ingest a builtins.dict"):
        client.ingest("t", data)


def test_nanosecond_timestamps_are_refused_unless_declared(client: DatasetClient) -> None:
    frame = pd.DataFrame({"at": pd.to_datetime(["2024-01-01 00:00:00.000000001"])})
    with pytest.raises(SourceError, match="nanoseconds"):
        client.ingest("ns", frame)
    version = client.ingest("ns", frame, Contract(columns={"at": Column("timestamp_ns")})).version
    assert version.schema[0].type == "timestamp_ns"
    whole = pd.DataFrame({"at": pd.to_datetime(["2024-01-01 00:00:01"])})
    assert client.ingest("us", whole).version.schema[0].type == "timestamp"


@pytest.mark.postgres
def test_sql_query_on_postgresql(
    client: DatasetClient, postgres_uri: str, credit_csv: Path
) -> None:
    frame = pd.read_csv(credit_csv)
    with psycopg.connect(postgres_uri, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE credit (id serial PRIMARY KEY, status text, income numeric(12, 2), "
            "age integer, seen timestamptz DEFAULT '2024-05-01T10:00:00Z')"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO credit (status, income, age) VALUES (%s, %s, %s)",
                [
                    (row.Status, None if pd.isna(row.Income) else row.Income, int(row.Age))
                    for row in frame.itertuples()
                ],
            )
    source = SqlSource(
        "SELECT id, status, income, age, seen FROM credit WHERE age >= :age ORDER BY id",
        postgres_uri,
        params={"age": 18},
    )
    contract = Contract(columns={"income": Column(nullable=False)})
    result = client.ingest("credit_sql", source, contract)
    assert result.report.rows_read == len(frame)
    assert result.report.rows_quarantined == int(frame.Income.isna().sum())
    assert {c.name: c.type for c in result.version.schema} == {
        "id": "int64",
        "status": "string",
        "income": "decimal(38,2)",
        "age": "int64",
        "seen": "timestamp_tz",
    }
    lineage = result.version.source
    assert lineage["kind"] == "sql" and ":age" in lineage["query"]
    assert lineage["database"].endswith(postgres_uri.rsplit("/", 1)[1])
    first_bad = result.report.violations[0]
    assert first_bad.file is not None and first_bad.file.startswith("query on postgresql")
    with pytest.raises(SourceError, match="The query failed"):
        client.ingest("bad", SqlSource("SELECT * FROM no_such_table", postgres_uri))
    with pytest.raises(BackendUnavailableError, match="Cannot connect"):
        client.ingest("bad", SqlSource("SELECT 1", "postgresql://nobody@127.0.0.1:1/x"))
    assert [d.name for d in client.list_datasets()] == ["credit_sql"]


def test_sql_and_python_transforms_record_their_inputs(
    client: DatasetClient, credit_csv: Path
) -> None:
    base = client.ingest("credit", credit_csv).version
    sql = SqlTransform(
        "SELECT Status, Age, Income FROM credit WHERE Income IS NOT NULL ORDER BY Age, Income",
        inputs={"credit": "credit@v1"},
    )
    derived = client.ingest("credit_income", sql, Contract(columns={"Age": Column(min=18)})).version
    assert [(e.input_name, e.dataset, e.content_id) for e in derived.upstream] == [
        ("credit", "credit", base.content_id)
    ]
    assert derived.source["kind"] == "sql_transform"
    again = client.ingest("credit_income", sql)
    assert not again.created  # ORDER BY made it deterministic: same content, same version

    def add_ratio(credit_income: pd.DataFrame) -> pd.DataFrame:
        return credit_income.assign(ratio=credit_income.Income / credit_income.Age)

    python = PythonTransform(add_ratio, inputs={"credit_income": "credit_income"}, kind="pandas")
    ratio = client.ingest("credit_ratio", python).version
    assert ratio.source["function"].endswith("add_ratio")
    assert str(ratio.source["code_sha256"]).startswith("sha256:")
    node = client.lineage("credit_ratio")
    assert [n.reference for n in node.upstream] == ["credit_income@v1"]
    assert [n.reference for n in node.upstream[0].upstream] == ["credit@v1"]
    assert node.upstream[0].upstream[0].source["files"][0]["path"] == str(credit_csv)
    with pytest.raises(SourceError, match="The SQL transform failed"):
        client.ingest("x", SqlTransform("SELECT nope FROM credit", inputs={"credit": "credit"}))
    with pytest.raises(SourceError, match="not a valid table name"):
        client.ingest("x", SqlTransform("SELECT 1", inputs={"bad-name": "credit"}))
