"""The compiled contract on its own: typed values pass again, odd values get a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from shipyard.core.errors import DataContractError
from shipyard.models.contract import Contract, FieldError
from shipyard.models.records import FieldSpec, Signature

SIGNATURE = Signature(
    inputs=(
        FieldSpec("joined", "timestamp[us, tz=UTC]"),
        FieldSpec("born", "date32[day]"),
        FieldSpec("tags", "list<item: string>", rules={"allowed": ["a", "b"]}),
        FieldSpec("plan", "string", rules={"allowed": ["basic", "pro"]}),
    ),
    outputs=(),
)
VALID = {"joined": "2026-01-02T03:04:05+00:00", "born": "1990-05-06", "tags": "a", "plan": "pro"}


def test_the_service_uses_this_contract() -> None:
    from shipyard.serving import contract as served

    assert served.Contract is Contract and served.FieldError is FieldError


def test_a_checked_row_passes_again_unchanged() -> None:
    contract = Contract(SIGNATURE)
    row, errors, _ = contract.check(VALID, None)
    assert errors == []
    assert row["joined"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row["born"] == date(1990, 5, 6)
    again, errors, _ = contract.check(row, None)
    assert errors == [] and again == row


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("joined", "yesterday", "type"),
        ("joined", 1_700_000_000, "type"),
        ("born", datetime(1990, 5, 6, 7, tzinfo=UTC), "type"),  # a moment is not a date
        ("born", "1990-05-06T07:00:00", "type"),
        ("tags", ["a"], "allowed"),  # unhashable: no member, and no crash
        ("tags", {"a": 1}, "allowed"),
        ("plan", ["basic"], "type"),
    ],
)
def test_a_value_of_the_wrong_kind_names_field_and_rule(field: str, value: Any, rule: str) -> None:
    _, errors, _ = Contract(SIGNATURE).check({**VALID, field: value}, 2)
    assert [(e.record, e.field, e.rule) for e in errors] == [(2, field, rule)]
    assert errors[0].message.startswith(f"{field} is ")


def test_a_date_is_a_midnight_timestamp() -> None:
    row, errors, _ = Contract(SIGNATURE).check({**VALID, "joined": date(2026, 1, 2)}, None)
    assert errors == [] and row["joined"] == datetime(2026, 1, 2)


def test_an_invalid_declared_regex_is_refused_when_compiled() -> None:
    broken = Signature(inputs=(FieldSpec("code", "string", rules={"pattern": "[A-Z"}),), outputs=())
    with pytest.raises(DataContractError, match=r"Input 'code' declares the regex '\[A-Z'"):
        Contract(broken)


def test_a_record_that_is_not_an_object_is_named_by_its_kind() -> None:
    _, errors, _ = Contract(SIGNATURE).check(("a", "b"), None)
    assert [e.as_json() for e in errors] == [
        {
            "field": "(record)",
            "rule": "type",
            "message": "a record must be a JSON object of field values, not a tuple",
        }
    ]
