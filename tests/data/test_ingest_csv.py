"""CSV ingestion: real dirty data quarantined row by row, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from shipyard.core.errors import NotFoundError
from shipyard.data.client import DatasetClient
from shipyard.data.contracts import Column, Contract
from shipyard.data.errors import ContractFailed, SourceError
from shipyard.data.sources_text import CsvSource
from shipyard.store.schema import blob_refs


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def assert_nothing_stored(client: DatasetClient) -> None:
    """A failed ingestion leaves no dataset, no version and no blob reference behind."""
    assert client.list_datasets() == []
    with client.stores.metadata.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(blob_refs)).scalar() == 0


def test_credit_datas_real_missing_values_are_quarantined_with_their_lines(
    client: DatasetClient, credit_csv: Path
) -> None:
    frame = pd.read_csv(credit_csv)
    missing = frame.isna()
    assert int(missing.to_numpy().sum()) == 455  # the dataset's documented dirt
    contract = Contract(columns={name: Column(nullable=False) for name in frame.columns})
    result = client.ingest("credit", credit_csv, contract)
    report = result.report
    bad_rows = missing.any(axis=1)
    assert report.rows_read == len(frame) == 4454
    assert report.rows_quarantined == int(bad_rows.sum())
    assert report.rows_passed == result.version.num_rows == len(frame) - int(bad_rows.sum())
    counts = {c.column: c.count for c in report.rule_counts if c.rule == "not_null"}
    assert counts == {c: int(n) for c, n in missing.sum().items() if n}
    assert len(report.violations) == 455  # one per missing value, each naming its place
    quarantine = client.read_quarantine("credit@v1")
    assert quarantine is not None
    # Line numbers: the header is line 1, so data row i (0-based) is line i + 2.
    expected_lines = sorted(int(i) + 2 for i in frame.index[bad_rows])
    assert sorted(quarantine.column("_source_row").to_pylist()) == expected_lines
    assert set(quarantine.column("_source_file").to_pylist()) == {str(credit_csv)}
    first = next(v for v in report.violations if v.row == 31 and v.column == "Home")
    assert (first.rule, first.value, first.file) == ("not_null", None, str(credit_csv))
    row31 = quarantine.filter(pa_equal(quarantine, "_source_row", 31)).to_pylist()[0]
    assert row31["Status"] == "bad" and row31["Amount"] == "1500"  # original values kept
    assert {f["column"] for f in row31["_failures"]} == set(frame.columns[missing.iloc[29]])
    assert client.read_table("credit").num_rows == report.rows_passed


def pa_equal(table: Any, column: str, value: Any) -> Any:
    import pyarrow.compute as pc

    return pc.equal(table.column(column), value)


def test_wrong_field_count_is_quarantined_with_its_line_and_later_lines_stay_right(
    client: DatasetClient, tmp_path: Path
) -> None:
    lines = ["id,name,score"] + [f"{i},n{i},{i * 10}" for i in range(1, 10)]
    lines[4] = "4,n4"  # line 5 has a missing field
    lines[7] = "7,n7,70,extra"  # line 8 has one too many
    lines[9] = "9,,90"  # line 10: a null name
    path = write(tmp_path / "scores.csv", "\n".join(lines) + "\n")
    result = client.ingest("scores", path, Contract(columns={"name": Column(nullable=False)}))
    quarantine = client.read_quarantine("scores")
    assert quarantine is not None
    by_row = {r["_source_row"]: r for r in quarantine.to_pylist()}
    assert set(by_row) == {5, 8, 10}
    assert by_row[5]["_rule"] == "malformed_row" and by_row[5]["_value"] == "4,n4"
    assert "expected 3 fields, found 2" in by_row[5]["_message"]
    assert by_row[8]["_rule"] == "malformed_row" and "found 4" in by_row[8]["_message"]
    assert by_row[10]["_rule"] == "not_null" and by_row[10]["_column"] == "name"
    assert result.report.rows_read == 9 and result.version.num_rows == 6
    assert client.read_table("scores").column("id").to_pylist() == [1, 2, 3, 5, 6, 8]


def test_a_latin1_file_fails_at_its_first_bad_byte_and_reads_with_its_encoding(
    client: DatasetClient, tmp_path: Path
) -> None:
    path = write(tmp_path / "cities.csv", "city,size\nParis,1\nZ\xfcrich,2\n".encode("latin-1"))
    with pytest.raises(SourceError) as caught:
        client.ingest("cities", path)
    message = str(caught.value)
    assert str(path) in message and "line 3" in message and "latin-1" in message
    assert_nothing_stored(client)
    result = client.ingest("cities", CsvSource(path, encoding="latin-1"))
    assert client.read_table("cities").column("city").to_pylist() == ["Paris", "Zürich"]
    assert result.version.source["options"]["encoding"] == "latin-1"


def test_a_missing_column_names_the_file_and_the_closest_match(
    client: DatasetClient, credit_csv: Path
) -> None:
    contract = Contract(columns={"Incme": Column("float64")})
    with pytest.raises(SourceError) as caught:
        client.ingest("credit", credit_csv, contract)
    assert "['Incme']" in str(caught.value) and "'Incme' looks like 'Income'" in str(caught.value)
    assert str(credit_csv) in str(caught.value)
    optional = Contract(columns={"Incme": Column("float64", required=False)})
    version = client.ingest("credit", credit_csv, optional).version
    assert version.schema[-1].name == "Incme" and version.schema[-1].type == "float64"


def test_a_wrong_type_quarantines_the_value_with_its_place(
    client: DatasetClient, tmp_path: Path
) -> None:
    path = write(tmp_path / "ages.csv", "name,age\nana,34\nbob,abc\ncy,1.5\ndee,\n")
    result = client.ingest("ages", path, Contract(columns={"age": Column("int64")}))
    found = {(v.row, v.value, v.rule) for v in result.report.violations}
    assert found == {(3, "abc", "type"), (4, "1.5", "type")}
    assert "column 'age' is 'abc'; expected int64" in str(result.report.violations[0])
    assert client.read_table("ages").column("age").to_pylist() == [34, None]


def test_a_column_of_the_wrong_type_fails_the_ingestion_and_stores_nothing(
    client: DatasetClient, credit_csv: Path, tmp_path: Path
) -> None:
    contract = Contract(columns={"Status": Column("int64")})
    quarantine = tmp_path / "out" / "quarantine.parquet"
    with pytest.raises(ContractFailed) as caught:
        client.ingest("credit", credit_csv, contract, quarantine_path=quarantine)
    report = caught.value.report
    assert report.rows_passed == 0 and not report.passed
    assert report.errors[0].rule == "rows_passed"
    assert report.violations[0].value == "good" and report.violations[0].row == 2
    assert quarantine.is_file()  # what failed is kept for the user to look at
    assert_nothing_stored(client)


def test_empty_file_and_header_only(client: DatasetClient, tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.csv", "")
    with pytest.raises(SourceError, match=r"empty \(0 bytes\)"):
        client.ingest("empty", empty)
    blank = write(tmp_path / "blank.csv", "\n\n")
    with pytest.raises(SourceError, match="first line is empty"):
        client.ingest("blank", blank)
    assert_nothing_stored(client)
    header = write(tmp_path / "header.csv", "a,b\n")
    version = client.ingest("header", header).version
    assert version.num_rows == 0 and [c.name for c in version.schema] == ["a", "b"]
    assert client.read_table("header").num_rows == 0


@pytest.mark.parametrize(
    ("header", "problem"),
    [("a,b,a\n1,2,3\n", "more than once"), ("a,,c\n1,2,3\n", "column 2 has no name")],
)
def test_bad_headers(client: DatasetClient, tmp_path: Path, header: str, problem: str) -> None:
    with pytest.raises(SourceError, match=problem):
        client.ingest("bad", write(tmp_path / "bad.csv", header))


def test_a_huge_field_needs_a_larger_row_limit(client: DatasetClient, tmp_path: Path) -> None:
    huge = "x" * (3 << 20)
    path = write(tmp_path / "huge.csv", f"id,blob\n1,small\n2,{huge}\n3,small\n")
    with pytest.raises(SourceError) as caught:
        client.ingest("huge", CsvSource(path, max_row_bytes=1 << 20))
    assert "row size limit" in str(caught.value) and "max_row_bytes" in str(caught.value)
    assert_nothing_stored(client)
    table = client.ingest("huge", path).version
    assert table.num_rows == 3
    assert client.read_table("huge").column("blob").to_pylist()[1] == huge


def test_a_file_that_changes_while_it_is_read_leaves_no_version(
    client: DatasetClient, tmp_path: Path
) -> None:
    path = write(tmp_path / "live.csv", "id,v\n" + "".join(f"{i},{i}\n" for i in range(20_000)))

    appended = []

    def writer_appends(stage: str, done: int, total: int | None) -> None:
        if stage == "read" and not appended:
            with path.open("a") as stream:
                stream.write("99999,1\n")
            appended.append(done)

    with pytest.raises(SourceError, match="changed while it was read"):
        client.ingest("live", path, progress=writer_appends)
    assert_nothing_stored(client)


def test_quoted_newlines_globs_and_tsv(client: DatasetClient, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    write(folder / "a.csv", 'id,note\n1,"two\nlines"\n2,plain\n')
    write(folder / "b.csv", "note,id\nfine,3\n,4\n")  # same columns, another order
    contract = Contract(columns={"note": Column(nullable=False)})
    result = client.ingest("notes", str(folder / "*.csv"), contract)
    assert client.read_table("notes").to_pylist() == [
        {"id": 1, "note": "two\nlines"},
        {"id": 2, "note": "plain"},
        {"id": 3, "note": "fine"},
    ]
    [violation] = result.report.violations
    assert (violation.file, violation.row) == (str(folder / "b.csv"), 3)
    assert [f["path"] for f in result.version.source["files"]] == [
        str(folder / "a.csv"),
        str(folder / "b.csv"),
    ]
    tsv = write(tmp_path / "t.tsv", "a\tb\n1\tx\n")
    assert client.ingest("tsv", tsv).version.num_rows == 1
    write(folder / "c.csv", "id,other\n5,x\n")
    with pytest.raises(SourceError, match=r"c\.csv lacks \['note'\] and adds \['other'\]"):
        client.ingest("notes", str(folder / "*.csv"))


def test_missing_paths(client: DatasetClient, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        client.ingest("x", tmp_path / "nope.csv")
    with pytest.raises(NotFoundError, match="No file matches"):
        client.ingest("x", str(tmp_path / "*.csv"))
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(NotFoundError, match="holds no data files"):
        client.ingest("x", tmp_path / "empty_folder")
    with pytest.raises(SourceError, match="Cannot tell the format"):
        client.ingest("x", write(tmp_path / "data.xlsx", "x"))


def test_inferred_types_are_strict(client: DatasetClient, tmp_path: Path) -> None:
    path = write(
        tmp_path / "types.csv",
        "zip,n,x,flag,day,at,text\n"
        "007,1,1.5,true,2024-01-02,2024-01-02 10:00:00,a\n"
        "010,-2,1e3,FALSE,2024-02-03,2024-02-03T11:30:00,\n",
    )
    version = client.ingest("types", path).version
    assert {c.name: c.type for c in version.schema} == {
        "zip": "string",
        "n": "int64",
        "x": "float64",
        "flag": "bool",
        "day": "date",
        "at": "timestamp",
        "text": "string",
    }
    assert client.read_table("types").column("zip").to_pylist() == ["007", "010"]


def test_malformed_rows_keep_their_numbers_when_every_type_is_declared(
    client: DatasetClient, tmp_path: Path
) -> None:
    # No inference pass: the parallel read meets the bad row and the pass restarts
    # sequentially, so the row number is exact.
    rows = [f"{i},{i * 2}" for i in range(1, 30_000)]
    rows[20_000] = "20001,2,3"
    path = write(tmp_path / "declared.csv", "a,b\n" + "\n".join(rows) + "\n")
    contract = Contract(columns={"a": Column("int64"), "b": Column("int64")})
    result = client.ingest("declared", path, contract)
    [violation] = result.report.violations
    assert (violation.rule, violation.row, violation.value) == (
        "malformed_row",
        20_002,
        "20001,2,3",
    )
    assert result.version.num_rows == 29_998
