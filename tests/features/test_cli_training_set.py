"""``shipyard features training-set``: entity rows from a file in, a saved dataset version out."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from shipyard.core.config import Config
from tests.features import fixtures
from tests.features.fixtures import TS, at, make_project
from tests.features.test_cli import define, run

features_template, project = fixtures.features_template, fixtures.project


def entities() -> pa.Table:
    """Customer 1 at 2 h, customer 2 at 4 h, customer 3 (no events) at 6 h; with labels."""
    return pa.table(
        {
            "customer_id": pa.array([1, 2, 3], pa.int64()),
            "label_ts": pa.array([at(2), at(4), at(6)], TS),
            "amount": [5.0, 6.0, 7.0],
            "label": [1, 0, 1],
        }
    )


def write_csv(table: pa.Table, path: Path) -> str:
    pacsv.write_csv(table, path)
    return str(path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, features_template: Path) -> Config:
    """One applied project for the error tests (they change nothing)."""
    return define(make_project(tmp_path_factory.mktemp("cli-ts"), features_template))


def test_training_set_from_csv_is_saved_and_written(
    shared: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    rows = write_csv(entities(), tmp_path / "labels.csv")
    output = tmp_path / "train.parquet"
    args = ("training-set", "churn@v1", "--entities", rows, "--timestamp", "label_ts")
    code, out, err = run(shared, capsys, *args, "--output", str(output), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["reference"] == "churn.training@v1"
    assert report["rows"] == 3 and report["features"] == ["f0", "f1", "ratio"]
    assert report["with_values"] == {"f0": 2, "f1": 2, "ratio": 2}
    written = pq.read_table(output)
    assert written.column("f1").to_pylist() == [10, 40, None]
    assert written.column("ratio").to_pylist() == [5.0, 1.5, None]
    assert written.column("label").to_pylist() == [1, 0, 1]  # labels are kept

    # The same rows again: the same version, nothing new stored.
    code, out, _ = run(shared, capsys, *args)
    assert code == 0 and out.startswith("saved churn.training@v1: 3 rows, 3 features")
    from shipyard.data.client import DatasetClient

    with DatasetClient.open(shared) as client:
        assert [v.reference for v in client.list_versions("churn.training")] == [
            "churn.training@v1"
        ]
        stored = client.read_table("churn.training@v1")
    assert stored.column("ratio").to_pylist() == [5.0, 1.5, None]


def test_training_set_from_parquet_with_save_as(
    shared: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    path = tmp_path / "labels.parquet"
    pq.write_table(entities().slice(0, 2), path)
    output = tmp_path / "train.csv"
    code, out, err = run(
        shared,
        capsys,
        *("training-set", "churn", "--entities", str(path), "--timestamp", "label_ts"),
        *("--save-as", "churn_train", "--output", str(output)),
    )
    assert code == 0, err
    assert "saved churn_train@v1: 2 rows, 3 features of churn@v1" in out
    assert pacsv.read_csv(output).column("f0").to_pylist() == [1.0, 4.0]


def bad_files(folder: Path) -> dict[str, str]:
    table = entities()
    files = {
        "no_key": table.drop_columns(["customer_id"]),
        "no_ts": table.drop_columns(["label_ts"]),
        "key_text": table.set_column(0, "customer_id", pa.array(["a", "b", "c"])),
        "ts_int": table.set_column(1, "label_ts", pa.array([1, 2, 3], pa.int64())),
        "ts_junk": table.set_column(1, "label_ts", pa.array(["soon", "x", "y"])),
        "good": table,
    }
    paths = {name: write_csv(t, folder / f"{name}.csv") for name, t in files.items()}
    (folder / "broken.parquet").write_bytes(b"not parquet at all")
    paths["broken"] = str(folder / "broken.parquet")
    (folder / "rows.txt").write_text("customer_id\n1\n")
    paths["txt"] = str(folder / "rows.txt")
    return paths


@pytest.mark.parametrize(
    ("service", "entities_file", "extra", "expected"),
    [
        ("churn@v1", "no_key", (), ["no_key.csv", "no column 'customer_id'", "customer_stats"]),
        ("churn@v1", "no_ts", (), ["no_ts.csv", "label_ts"]),
        ("churn@v1", "key_text", (), ["key_text.csv", "Join key 'customer_id'", "int64"]),
        ("churn@v1", "ts_int", (), ["ts_int.csv", "'label_ts'", "not a timestamp"]),
        ("churn@v1", "ts_junk", (), ["ts_junk.csv", "'label_ts'", "timestamps"]),
        ("ghost@v1", "good", (), ["ghost"]),
        ("churn@v1", "missing", (), ["missing.csv", "does not exist"]),
        ("churn@v1", "broken", (), ["broken.parquet", "Cannot read"]),
        ("churn@v1", "txt", (), ["rows.txt", ".csv or .parquet"]),
        ("churn@v1", "good", ("--output", "out.json"), ["--output", "out.json"]),
        ("churn@v1", "good", ("--save-as", "bad name!"), ["bad name!"]),
    ],
)
def test_bad_input_is_one_clear_error_naming_it(
    shared: Config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    service: str,
    entities_file: str,
    extra: tuple[str, ...],
    expected: list[str],
) -> None:
    paths = bad_files(tmp_path)
    path = paths.get(entities_file, str(tmp_path / f"{entities_file}.csv"))
    extra = tuple(str(tmp_path / e) if e.startswith("out.") else e for e in extra)
    capsys.readouterr()
    code, _, err = run(
        shared,
        capsys,
        *("training-set", service, "--entities", path, "--timestamp", "label_ts", *extra),
    )
    assert code != 0
    assert "Traceback" not in err
    for fragment in expected:
        assert fragment in err, err
    assert not list(tmp_path.glob("out.*"))


def test_the_timestamp_column_defaults_to_event_ts(
    shared: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = write_csv(entities(), tmp_path / "labels.csv")
    capsys.readouterr()
    code, _, err = run(shared, capsys, "training-set", "churn", "--entities", rows)
    assert code != 0 and "'event_ts'" in err and "labels.csv" in err
