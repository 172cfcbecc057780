"""``shipyard datasets`` as a user meets it: tables, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.cli.main import main
from shipyard.core.config import Config

CONTRACT = """
max_quarantine_fraction = 0.2
row_count = { min = 100 }

[columns.Status]
type = "string"
allowed = ["good", "bad"]
nullable = false

[columns.Income]
type = "float64"
nullable = false
min = 0
sensitive = true

[[checks]]
name = "amount_below_price"
sql = "Amount <= Price"
columns = ["Amount", "Price"]
"""


def run(config: Config, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-C", str(config.project_dir), "datasets", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    path = tmp_path / "credit.toml"
    path.write_text(CONTRACT)
    return path


def test_ingest_list_show_and_json(
    config: Config, capsys: pytest.CaptureFixture[str], credit_csv: Path, contract: Path
) -> None:
    code, out, err = run(
        config,
        capsys,
        "ingest",
        "credit",
        str(credit_csv),
        "--contract",
        str(contract),
        "--tag",
        "team=risk",
    )
    assert code == 0, err
    assert "4,454 rows read, 4,073 passed, 381 quarantined" in out
    assert "Created credit@v1: 4,073 rows, 14 columns" in out
    assert "credit_data.csv" in out and "not_null" in out and "Income" in out
    code, out, _ = run(
        config, capsys, "ingest", "credit", str(credit_csv), "--contract", str(contract), "--json"
    )
    payload = json.loads(out)
    assert payload["created"] is False and payload["version"]["reference"] == "credit@v1"
    values = {v["value"] for v in payload["report"]["violations"] if v["column"] == "Income"}
    assert values == {None}  # nulls; a present value would show as ***
    code, out, _ = run(config, capsys, "list", "--json")
    assert [d["name"] for d in json.loads(out)] == ["credit"]
    code, out, _ = run(config, capsys, "list", "credit")
    assert code == 0 and "v1" in out
    code, out, _ = run(config, capsys, "list", "credit", "--json")
    assert json.loads(out)[0]["tags"] == {"team": "risk"}
    code, out, _ = run(config, capsys, "show", "credit@v1")
    assert "content id" in out and "Income" in out and "float64" in out
    code, out, _ = run(config, capsys, "show", "credit", "--json")
    shown = json.loads(out)
    assert shown["profile"]["columns"]["Age"]["min"] == 18


def test_failing_contract_exits_1_with_the_report_and_one_line(
    config: Config, capsys: pytest.CaptureFixture[str], credit_csv: Path, tmp_path: Path
) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text(CONTRACT.replace("0.2", "0.01"))
    quarantine = tmp_path / "q.parquet"
    code, out, err = run(
        config,
        capsys,
        "ingest",
        "credit",
        str(credit_csv),
        "--contract",
        str(strict),
        "--quarantine-out",
        str(quarantine),
    )
    assert code == 1
    assert "max_quarantine_fraction" in out and "FAIL" in out
    assert err.startswith("error[SY320]: ") and "No version was created" in err
    assert "Traceback" not in err and quarantine.is_file()
    code, out, err = run(
        config, capsys, "check", str(credit_csv), "--contract", str(strict), "--json"
    )
    assert code == 1 and json.loads(out)["passed"] is False
    code, out, _ = run(config, capsys, "check", str(credit_csv), "--contract", str(strict))
    assert code == 1 and "FAILS its contract" in out
    code, out, _ = run(config, capsys, "list")
    assert "credit" not in out


def test_diff_lineage_export_alias(
    config: Config, capsys: pytest.CaptureFixture[str], credit_csv: Path, tmp_path: Path
) -> None:
    head = tmp_path / "head.csv"
    head.write_text("".join(credit_csv.read_text().splitlines(keepends=True)[:101]))
    assert run(config, capsys, "ingest", "credit", str(head))[0] == 0
    assert run(config, capsys, "ingest", "credit", str(credit_csv))[0] == 0
    code, out, _ = run(config, capsys, "diff", "credit@v1", "credit@v2")
    assert code == 0 and "rows: 100 -> 4,454; 4,354 added, 0 removed" in out
    code, out, _ = run(config, capsys, "diff", "credit@v1", "credit@v2", "--json")
    assert json.loads(out)["rows_added"] == 4354
    code, out, _ = run(config, capsys, "lineage", "credit@v2")
    assert "credit@v2" in out and "credit_data.csv" in out
    code, out, _ = run(config, capsys, "lineage", "credit@v2", "--json")
    assert json.loads(out)["source"]["files"][0]["path"] == str(credit_csv)
    target = tmp_path / "out.csv"
    assert run(config, capsys, "export", "credit@v1", str(target))[0] == 0
    assert len(target.read_text().splitlines()) == 101
    code, out, _ = run(config, capsys, "alias", "credit@v1", "prod")
    assert code == 0 and "credit@prod -> credit@v1" in out
    assert json.loads(run(config, capsys, "show", "credit@prod", "--json")[1])["version"] == 1


def test_files_and_status(
    config: Config, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(20):
        (folder / f"{i}.png").write_bytes(os.urandom(100))
    code, out, err = run(config, capsys, "ingest", "images", str(folder), "--files")
    assert code == 0, err
    assert "Created images@v1: 20 files, 2,000 bytes" in out
    code, out, _ = run(config, capsys, "status")
    assert code == 0 and out.startswith("images@v1: clean (20 files")
    (folder / "0.png").unlink()
    (folder / "new.png").write_bytes(b"x")
    code, out, _ = run(config, capsys, "status", "images", "--json")
    [status] = json.loads(out)
    assert code == 1 and status["removed"] == ["0.png"] and status["added"] == ["new.png"]
    code, out, _ = run(config, capsys, "status", "images")
    assert "deleted   0.png" in out and "added     new.png" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nothing"], "error[SY200]: Dataset 'nothing' does not exist."),
        (["ingest", "x", "/no/such.csv"], "File /no/such.csv does not exist."),
        (
            ["ingest", "x", "a.csv", "--contract", "/no/contract.toml"],
            "Contract file /no/contract.toml does not exist",
        ),
        (["ingest", "x", "--sql", "SELECT 1"], "A SQL source needs --sql QUERY and --database URI"),
        (["ingest", "bad name", "x.csv"], "Invalid dataset name"),
        (["ingest", "x", "a.csv", "--tag", "oops"], "Tag 'oops' is not KEY=VALUE"),
        (["diff", "a@v1"], "Missing argument"),
    ],
)
def test_mistakes_get_one_clear_line(
    config: Config, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(config, capsys, *args)
    assert code != 0 and message in err and "Traceback" not in err


def test_the_installed_command_in_a_fresh_process(config: Config, credit_csv: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "-C",
            str(config.project_dir),
            "datasets",
            "ingest",
            "credit",
            str(credit_csv),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"]["num_rows"] == 4454
