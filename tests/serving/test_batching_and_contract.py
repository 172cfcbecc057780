"""Micro-batching and the compiled contract, on their own (no HTTP)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shipyard.models.records import FieldSpec, Signature
from shipyard.serving.batching import MicroBatcher
from shipyard.serving.contract import Contract, json_schema_of


class Scores:
    def __init__(self, rows: list[Any]) -> None:
        self.scores = [row["x"] * 2 for row in rows]


def _score(calls: list[int]) -> Any:
    def predict(rows: list[Any]) -> Scores:
        calls.append(len(rows))
        if any(row["x"] < 0 for row in rows):
            raise ValueError("negative x")
        return Scores(rows)

    return predict


async def _submit_all(batcher: MicroBatcher, requests: list[list[dict[str, int]]]) -> list[Any]:
    return await asyncio.gather(
        *(batcher.submit(rows) for rows in requests), return_exceptions=True
    )


def test_concurrent_requests_share_one_model_call_and_get_their_own_rows() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(_score(calls), budget_seconds=0.01)
    requests = [[{"x": i}, {"x": i + 100}] for i in range(10)]
    results = asyncio.run(_submit_all(batcher, requests))
    assert calls == [20]
    for index, (prediction, start, end) in enumerate(results):
        assert prediction.scores[start:end] == [index * 2, (index + 100) * 2]


def test_the_latency_budget_caps_a_batch_and_disabled_batching_scores_alone() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(_score(calls), budget_seconds=0.004)
    batcher.row_seconds = 0.001  # 1 ms per extra row: 1 + 4 rows fit the budget
    asyncio.run(_submit_all(batcher, [[{"x": i}] for i in range(12)]))
    assert calls == [5, 5, 2]
    calls.clear()
    alone = MicroBatcher(_score(calls), enabled=False)
    asyncio.run(_submit_all(alone, [[{"x": i}] for i in range(4)]))
    assert calls == [1, 1, 1, 1]


def test_a_failing_request_fails_alone() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(_score(calls))
    results = asyncio.run(_submit_all(batcher, [[{"x": 1}], [{"x": -1}], [{"x": 3}]]))
    assert isinstance(results[1], ValueError)
    assert results[0][0].scores[results[0][1]] == 2
    assert results[2][0].scores[results[2][1]] == 6
    assert calls[0] == 3  # tried together first, then one by one


def test_calibration_measures_whether_batching_pays() -> None:
    import time

    def fixed_cost(rows: list[Any]) -> Scores:
        time.sleep(0.002)  # a fixed cost per call: batching pays
        return Scores(rows)

    def per_row_cost(rows: list[Any]) -> Scores:
        time.sleep(0.0005 * len(rows))  # cost grows with rows: batching does not pay
        return Scores(rows)

    paying = MicroBatcher(fixed_cost)
    assert paying.calibrate({"x": 1}) < 0.5 and paying.enabled
    flat = MicroBatcher(per_row_cost)
    assert flat.calibrate({"x": 1}) > 0.5 and not flat.enabled


SIGNATURE = Signature(
    inputs=(
        FieldSpec("age", "int8", nullable=False, rules={"min": 0}, observed={"max": 90}),
        FieldSpec("income", "float64", rules={"max": 1e6}),
        FieldSpec(
            "plan",
            "string",
            rules={"pattern": "[a-z]+", "max_length": 8},
            observed={"categories": ["basic", "gold"]},
        ),
        FieldSpec("active", "bool"),
        FieldSpec("joined", "timestamp_tz"),
    ),
    outputs=(FieldSpec("score", "float64"),),
    task="binary_classification",
)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("age", 300, "type"),  # outside int8
        ("age", 1.5, "type"),
        ("age", "3", "type"),
        ("age", -1, "min"),
        ("income", True, "type"),
        ("income", 2e6, "max"),
        ("plan", "Gold", "regex"),
        ("plan", "platinumplus", "max_length"),
        ("plan", 3, "type"),
        ("active", 1, "type"),
        ("joined", "yesterday", "type"),
        ("joined", 5, "type"),
    ],
)
def test_each_rule_is_named(field: str, value: Any, rule: str) -> None:
    contract = Contract(SIGNATURE)
    record = {
        "age": 30,
        "income": 10.0,
        "plan": "gold",
        "active": True,
        "joined": "2026-01-02T03:04:05+00:00",
        field: value,
    }
    _, errors, _ = contract.check(record, None)
    assert [(e.field, e.rule) for e in errors] == [(field, rule)]


def test_valid_values_are_typed_and_unseen_ones_flagged() -> None:
    row, errors, flags = Contract(SIGNATURE).check(
        {"age": 95, "income": 3, "plan": "silver", "active": False, "joined": None}, None
    )
    assert errors == []
    assert row["income"] == 3.0 and isinstance(row["income"], float)
    assert {flag["field"] for flag in flags} == {"age", "plan"}
    _, errors, _ = Contract(SIGNATURE).check([1, 2], 4)
    assert [(e.record, e.rule) for e in errors] == [(4, "type")]


def test_json_schema_carries_the_rules() -> None:
    assert json_schema_of(SIGNATURE.inputs[0]) == {"type": "integer", "minimum": 0, "maximum": 127}
    assert json_schema_of(SIGNATURE.inputs[2])["pattern"] == "^(?:[a-z]+)$"
