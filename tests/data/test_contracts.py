"""Contracts: row rules quarantine, dataset rules carry a severity, files declare them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shipyard.core.errors import ConfigError, DataContractError
from shipyard.data.client import DatasetClient
from shipyard.data.contracts import (
    Check,
    Column,
    Contract,
    DatasetCheck,
    Freshness,
    QuarantineLimit,
    RowCount,
    Unique,
    load_contract,
)
from shipyard.data.errors import ContractFailed
from shipyard.data.report import MASK

PEOPLE = pa.table(
    {
        "id": [1, 2, 3, 4, 5, 6],
        "email": ["a@x.io", "b@x.io", "not-an-email", "d@x.io", "e@x.io", "f@x.io"],
        "age": [34, -1, 51, 130, 28, 40],
        "plan": ["free", "pro", "pro", "gold", "free", "free"],
        "code": ["AB1", "CD22", "EF3", "GH4", "IJ5", "KL6"],
        "spend": [10.0, 20.0, 5.0, 1.0, 99.0, 3.0],
        "limit": [20.0, 10.0, 50.0, 5.0, 100.0, 4.0],
    }
)


def even_id_or_free(batch: pa.RecordBatch) -> pa.Array:
    even = pc.equal(pc.bit_wise_and(batch["id"], 1), 0)
    return pc.or_(even, pc.equal(batch["plan"], "free"))


def test_row_rules_quarantine_each_failure_with_rule_column_and_value(
    client: DatasetClient,
) -> None:
    contract = Contract(
        columns={
            "age": Column("int64", min=0, max=120),
            "plan": Column("string", allowed=["free", "pro"]),
            "email": Column(regex=r"[^@]+@[^@]+\.[a-z]+", sensitive=True),
            "code": Column(min_length=3, max_length=3),
        },
        checks=[
            Check("spend_within_limit", sql='spend <= "limit"', columns=("spend", "limit")),
            Check("even_id_or_free", function=even_id_or_free),
        ],
    )
    result = client.ingest("people", PEOPLE, contract)
    failures = {(v.row, v.rule, v.column, v.value) for v in result.report.violations}
    assert failures == {
        (2, "min", "age", "-1"),
        (2, "max_length", "code", "CD22"),
        (2, "check:spend_within_limit", None, "spend=20, limit=10"),
        (3, "regex", "email", MASK),  # sensitive: masked in the report
        (3, "check:even_id_or_free", None, None),
        (4, "max", "age", "130"),
        (4, "allowed", "plan", "gold"),
    }
    assert client.read_table("people").column("id").to_pylist() == [1, 5, 6]
    quarantine = client.read_quarantine("people")
    assert quarantine is not None
    row3 = [r for r in quarantine.to_pylist() if r["_source_row"] == 3][0]
    assert row3["_value"] == MASK and row3["email"] == "not-an-email"
    assert {f["rule"] for f in row3["_failures"]} == {"regex", "check:even_id_or_free"}
    assert "not-an-email" not in json.dumps(result.report.to_dict())


def test_dataset_rules_warn_records_and_error_stops(client: DatasetClient) -> None:
    warn = Contract(
        row_count=RowCount(min=10, severity="warn"),
        unique=[Unique(("plan",), severity="warn")],
        max_quarantine_fraction=QuarantineLimit(0.5, severity="warn"),
        dataset_checks=[DatasetCheck("mean_spend", "SELECT avg(spend) < 10 FROM data", "warn")],
    )
    result = client.ingest("people", PEOPLE, warn)
    assert result.report.passed and result.created
    assert [r.rule for r in result.report.warnings] == [
        "row_count",
        "unique(plan)",
        "check:mean_spend",
    ]
    unique = result.report.warnings[1]
    assert unique.examples[0] == "plan='free' appears 3 times: <arrow table> rows 1, 5, 6"
    stored = client.report("people@v1")
    assert [r.rule for r in stored.warnings] == [r.rule for r in result.report.warnings]

    error = Contract(unique=["id"], row_count=(10, None))
    with pytest.raises(ContractFailed, match="row_count: 5 rows; expected") as caught:
        client.ingest("people", PEOPLE.slice(0, 5).append_column("x", pa.array([1] * 5)), error)
    assert [r.rule for r in caught.value.report.errors] == ["row_count"]
    assert len(client.list_versions("people")) == 1


def test_quarantine_fraction_and_freshness(client: DatasetClient) -> None:
    limited = Contract(columns={"age": Column(min=0)}, max_quarantine_fraction=0.1)
    with pytest.raises(ContractFailed, match=r"1 of 6 rows quarantined \(16.67%\)"):
        client.ingest("people", PEOPLE, limited)
    now = datetime.now(UTC)
    events = pa.table({"at": [now - timedelta(days=3), now - timedelta(hours=1)], "n": [1, 2]})
    fresh = Contract(freshness=Freshness("at", timedelta(days=1)))
    assert client.ingest("events", events, fresh).report.passed
    stale = Contract(freshness=Freshness("at", timedelta(minutes=5)))
    with pytest.raises(ContractFailed, match="freshness"):
        client.ingest("events", events, stale)
    with pytest.raises(DataContractError, match="needs a date or timestamp column"):
        client.ingest("events", events, Contract(freshness=Freshness("n", timedelta(days=1))))


def test_bad_checks_fail_clearly(client: DatasetClient) -> None:
    broken_sql = Contract(checks=[Check("broken", sql="no_such_column > 1")])
    with pytest.raises(DataContractError, match="'broken'.*cannot run"):
        client.ingest("people", PEOPLE, broken_sql)
    wrong_length = Contract(checks=[Check("short", function=lambda b: [True])])
    with pytest.raises(DataContractError, match="returned 1 value"):
        client.ingest("people", PEOPLE, wrong_length)
    raising = Contract(checks=[Check("boom", function=lambda b: 1 / 0)])
    with pytest.raises(DataContractError, match="'boom' raised ZeroDivisionError"):
        client.ingest("people", PEOPLE, raising)
    not_boolean = Contract(dataset_checks=[DatasetCheck("count", "SELECT count(*) FROM data")])
    with pytest.raises(DataContractError, match="must return one boolean"):
        client.ingest("people", PEOPLE, not_boolean)
    assert client.list_datasets() == []


@pytest.mark.parametrize(
    ("contract", "message"),
    [
        (lambda: Contract(columns={"a": Column("integr")}), "Did you mean 'integer'"),
        (lambda: Contract(columns={"a": Column(min=5, max=1)}), "min 5 is above max 1"),
        (lambda: Contract(columns={"a": Column(regex="(")}), "regex '\\(' is invalid"),
        (lambda: Contract(max_quarantine_fraction=1.5), "between 0 and 1"),
        (lambda: Contract(row_count=RowCount(min=5, severity="fatal")), "severity"),  # type: ignore[arg-type]
        (lambda: Check("x"), "exactly one of sql= or function="),
        (lambda: Check("bad name", sql="1"), "Check name"),
    ],
)
def test_contract_mistakes_are_caught_when_declared(contract: object, message: str) -> None:
    with pytest.raises(DataContractError, match=message):
        contract()  # type: ignore[operator]


def test_contract_files_in_toml_yaml_json_mean_the_same(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        'max_quarantine_fraction = 0.05\nrow_count = { min = 100, severity = "warn" }\n'
        'unique = [["id"]]\nfreshness = { column = "at", max_age = "2d" }\n'
        '[columns.id]\ntype = "int64"\nnullable = false\n'
        '[columns.plan]\nallowed = ["free", "pro"]\n'
        '[[checks]]\nname = "positive"\nsql = "id > 0"\n'
        '[[dataset_checks]]\nname = "some"\nsql = "SELECT count(*) > 0 FROM data"\n'
        'severity = "warn"\n'
    )
    contract = load_contract(toml)
    as_json = tmp_path / "c.json"
    as_json.write_text(json.dumps(contract.to_dict()))
    yaml = tmp_path / "c.yaml"
    import yaml as pyyaml

    yaml.write_text(pyyaml.safe_dump(contract.to_dict()))
    for other in (load_contract(as_json), load_contract(yaml)):
        assert other.to_dict() == contract.to_dict()
    assert contract.freshness == Freshness("at", timedelta(days=2))
    assert contract.row_count == RowCount(100, None, "warn")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[columns.a]\ntyp = 'int64'\n", "unknown key 'typ'. Did you mean 'type'"),
        ("colums = {}\n", "unknown key 'colums'"),
        ("[columns.a\n", "not valid TOML"),
        ("[[checks]]\nname = 'f'\nfunction = 'mod:f'\n", "only hold SQL checks"),
        ("freshness = { column = 'a', max_age = 'soon' }\n", "Duration 'soon'"),
    ],
)
def test_contract_file_errors_name_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises((DataContractError, ConfigError), match=message) as caught:
        load_contract(path)
    assert str(path) in str(caught.value)


def test_sensitive_columns_show_no_values_in_the_profile(client: DatasetClient) -> None:
    contract = Contract(columns={"email": Column(sensitive=True), "age": Column(sensitive=True)})
    client.ingest("people", PEOPLE, contract)
    columns = client.profile("people")["columns"]
    assert columns["email"]["sensitive"] is True
    assert "categories" not in columns["email"] and "min" not in columns["email"]
    assert columns["age"]["mean"] is not None  # aggregates stay: monitoring needs them
    assert "categories" in columns["plan"]
    plain = client.ingest("people_plain", PEOPLE).version  # same data, no sensitive columns
    assert plain.parts == client.get_version("people").parts
    assert "categories" in client.profile("people_plain")["columns"]["email"]
