"""Robustness probes: answered validly or rejected by the declared rules, never a crash,
never a pass by rejecting everything; each probe reported."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import shipyard.evaluation as sy_eval
from shipyard.evaluation.contract import rejected_rows, row_errors, row_problem
from shipyard.evaluation.probes import PROBES, run_probes
from shipyard.evaluation.scoring import EstimatorPrediction, EstimatorPredictor
from shipyard.models.records import FieldSpec, Signature
from shipyard.serving.contract import Contract as ServedContract
from tests.evaluation.planted import FragileModel, PositionalModel


def outcomes(predictor: Any, features: pa.Table) -> dict[str, dict[str, Any]]:
    return {o["probe"]: o for o in run_probes(predictor, features, PROBES, 5)}


def with_rules(
    signature: Signature, rules: dict[str, dict[str, Any]], nullable: bool | None = None
) -> Signature:
    inputs = tuple(
        dataclasses.replace(
            spec,
            rules={**spec.rules, **rules.get(spec.name, {})},
            nullable=spec.nullable if nullable is None else nullable,
        )
        for spec in signature.inputs
    )
    return dataclasses.replace(signature, inputs=inputs)


@pytest.fixture
def features(churn_holdout: pa.Table) -> pa.Table:
    return churn_holdout.drop_columns(["churn"]).slice(0, 300)


def test_robust_pipeline_answers_every_probe(churn_model: Any, features: pa.Table) -> None:
    predictor = EstimatorPredictor.from_table(churn_model, features)
    found = outcomes(predictor, features)
    for probe in PROBES:
        assert found[probe]["status"] == "passed", found[probe]
    assert found["missing_values"]["answered"] == features.num_columns
    assert found["missing_values"]["controls"] == 5 and found["missing_values"]["rejected"] == 0
    # Serving takes finite numbers only: the infinities never reach the model, the
    # +/-1e300 do and are answered.
    extreme = found["extreme_values"]
    floats = sum(pa.types.is_floating(field.type) for field in features.schema)
    assert extreme["rejected"] == 2 * floats > 0
    assert all("expected a number" in why for why in extreme["rejected_by_contract"])


def test_declared_rules_reject_exactly_the_invalid_rows(
    churn_model: Any, features: pa.Table
) -> None:
    predictor = EstimatorPredictor.from_table(churn_model, features)
    numeric = [
        f.name
        for f in features.schema
        if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)
    ]
    bounded = with_rules(predictor.signature, {name: {"min": 0, "max": 1e6} for name in numeric})
    guarded = EstimatorPredictor(churn_model, bounded)
    found = outcomes(guarded, features)
    assert all(o["status"] == "passed" for o in found.values()), found
    extreme = found["extreme_values"]
    # Floats' +/-1e300 and +/-inf, ints' int64 limits: out of bounds. The 10,000-character
    # strings (4 string columns, no length rule) are answered.
    assert extreme["rejected"] == extreme["rows"] - 4 > 0 and extreme["answered"] == 4
    assert any(
        "the contract requires <= 1000000.0" in why for why in extreme["rejected_by_contract"]
    )
    # Out-of-range numbers below 0 are rejected, the ones above the observed range answered.
    out_of_range = found["out_of_range"]
    assert 0 < out_of_range["rejected"] < out_of_range["rows"]
    assert out_of_range["answered"] == out_of_range["rows"] - out_of_range["rejected"]


def test_fragile_model_fails_and_a_not_nullable_contract_saves_it(features: pa.Table) -> None:
    table = features.select(["state", "total_day_minutes"])
    model = FragileModel(set(table.column("state").to_pylist()), "state")
    predictor = EstimatorPredictor.from_table(model, table)
    found = outcomes(predictor, table)
    assert found["missing_values"]["status"] == "failed"
    assert "ValueError" in found["missing_values"]["reason"]
    assert found["unseen_category"]["status"] == "failed"
    assert "non-finite score" in found["unseen_category"]["reason"]
    strict = EstimatorPredictor(model, with_rules(predictor.signature, {}, nullable=False))
    found = outcomes(strict, table)
    assert found["missing_values"]["status"] == "passed"
    assert found["missing_values"]["rejected"] == found["missing_values"]["rows"] == 2
    assert found["missing_values"]["rejected_by_contract"][0].endswith(
        "state is null; it must have a value"
    )


def test_a_contract_that_rejects_everything_is_no_pass(
    churn_model: Any, features: pa.Table
) -> None:
    predictor = EstimatorPredictor.from_table(churn_model, features)
    impossible = with_rules(predictor.signature, {"state": {"allowed": ["Atlantis"]}})
    found = outcomes(EstimatorPredictor(churn_model, impossible), features)
    assert all(o["status"] == "failed" for o in found.values())
    assert "rejects everything" in found["missing_values"]["reason"]


class Positional:
    """A predictor that hands columns to the model in the order they arrive."""

    def __init__(self, signature: Signature, weights: np.ndarray) -> None:
        self.signature = signature
        self.model = PositionalModel(weights)

    def predict(self, rows: Any) -> EstimatorPrediction:
        table = (
            rows
            if isinstance(rows, pa.Table)
            else pa.Table.from_pylist(
                list(rows),
                schema=pa.schema([(s.name, pa.float64()) for s in self.signature.inputs]),
            )
        )
        values = (
            np.column_stack(
                [table.column(i).to_numpy(zero_copy_only=False) for i in range(table.num_columns)]
            )
            if table.num_rows
            else (np.zeros((0, table.num_columns)))
        )
        scores = np.nan_to_num(self.model.predict_proba(values)[:, 1], nan=0.5)
        return EstimatorPrediction(scores, np.where(scores >= 0.5, 1, 0))


def test_columns_read_by_position_fail_the_column_order_probe(features: pa.Table) -> None:
    table = features.select(["total_day_minutes", "total_eve_minutes"])
    signature = EstimatorPredictor.from_table(PositionalModel(np.ones(2)), table).signature
    found = outcomes(Positional(signature, np.array([0.02, -0.01])), table)
    assert found["column_order"]["status"] == "failed"
    assert "by position" in found["column_order"]["reason"]


class BatchNormalised:
    """Scores depend on the other rows of the batch (min-max scaled per batch)."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature

    def predict(self, rows: Any) -> EstimatorPrediction:
        values = np.array([float(r["total_day_minutes"] or 0.0) for r in rows], dtype=float)
        values = np.clip(values, -1e6, 1e6)
        span = (values.max() - values.min()) if values.size else 1.0
        scores = (values - values.min()) / (span or 1.0) if values.size else values
        return EstimatorPrediction(scores, np.where(scores >= 0.5, 1, 0))


def test_control_rows_must_keep_their_scores(features: pa.Table) -> None:
    table = features.select(["total_day_minutes"])
    signature = EstimatorPredictor.from_table(PositionalModel(np.ones(1)), table).signature
    found = outcomes(BatchNormalised(signature), table)
    assert found["out_of_range"]["status"] == "failed"
    assert "control rows' scores changed" in found["out_of_range"]["reason"]


class EmptyCrash(EstimatorPredictor):
    def predict(self, rows: Any) -> EstimatorPrediction:
        if len(rows) == 0:
            raise IndexError("index 0 is out of bounds for axis 0 with size 0")
        return super().predict(rows)


def test_a_crash_on_an_empty_batch_fails(churn_model: Any, features: pa.Table) -> None:
    base = EstimatorPredictor.from_table(churn_model, features)
    found = outcomes(EmptyCrash(churn_model, base.signature), features)
    assert found["empty_batch"]["status"] == "failed"
    assert "IndexError" in found["empty_batch"]["reason"]


def test_robustness_gate_reports_each_probe(churn_model: Any, churn_holdout: pa.Table) -> None:
    predictor = EstimatorPredictor.from_table(churn_model, churn_holdout.drop_columns(["churn"]))
    report = sy_eval.evaluate(
        predictor,
        data=churn_holdout.slice(0, 200),
        label="churn",
        gates=[sy_eval.robustness(probes=["missing_values", "column_order"])],
    )
    (result,) = report.gate_results
    assert result.status == "passed" and result.figure == 0.0
    assert [p["probe"] for p in result.detail["probes"]] == ["missing_values", "column_order"]


CONTRACT = Signature(
    inputs=(
        FieldSpec("age", "int64", nullable=False, rules={"min": 18, "max": 100}),
        FieldSpec("plan", "string", rules={"allowed": ["basic", "pro"]}),
        FieldSpec("code", "string", rules={"pattern": "[A-Z]+", "max_length": 2}),
        FieldSpec("score", "float64", observed={"min": 0.0, "max": 1.0}),
    ),
    outputs=(),
)
VALID = {"age": 30, "plan": "basic", "code": "KS", "score": 0.5}


@pytest.mark.parametrize(
    ("row", "broken", "reason"),
    [
        ({**VALID, "age": None}, [("age", "not_null")], "age is null; it must have a value"),
        ({**VALID, "age": 17}, [("age", "min")], "age is 17; the contract requires >= 18"),
        ({**VALID, "age": 101}, [("age", "max")], "age is 101; the contract requires <= 100"),
        (
            {**VALID, "plan": "gold"},
            [("plan", "allowed")],
            "plan is 'gold'; the contract allows only 'basic', 'pro'",
        ),
        (
            {**VALID, "code": "kansas"},
            [("code", "regex")],
            "code is 'kansas'; does not match /[A-Z]+/",
        ),
        (
            {**VALID, "code": "KSA"},
            [("code", "max_length")],
            "code is 'KSA'; longer than 2 characters",
        ),
        ({**VALID, "age": "thirty"}, [("age", "type")], "age is 'thirty'; expected an integer"),
        ({**VALID, "age": True}, [("age", "type")], "age is True; expected an integer"),
        ({**VALID, "score": "high"}, [("score", "type")], "score is 'high'; expected a number"),
        ({**VALID, "score": math.inf}, [("score", "type")], "score is inf; expected a number"),
        ({**VALID, "score": math.nan}, [("score", "type")], "score is nan; expected a number"),
        (
            {"age": 30, "plan": "pro"},
            [("code", "required"), ("score", "required")],
            "code is missing; it is required; score is missing; it is required",
        ),
        (
            {**VALID, "tenure": 3},
            [("tenure", "unknown_field")],
            "'tenure' is not an input of this model",
        ),
        (
            "not a row",
            [("(record)", "type")],
            "a record must be a JSON object of field values, not a string",
        ),
    ],
)
def test_the_contract_rejects_a_row_naming_field_and_rule(
    row: Any, broken: list[tuple[str, str]], reason: str
) -> None:
    assert [(error.field, error.rule) for error in row_errors(CONTRACT, row)] == broken
    assert row_problem(CONTRACT, row) == reason
    assert rejected_rows(CONTRACT, [VALID, row, VALID]) == {1: reason}


def test_the_contract_accepts_what_serving_accepts() -> None:
    accepted = [
        VALID,
        {**VALID, "plan": None, "score": None},  # nullable fields may be null
        {**VALID, "age": 30.0},  # an integral float is an integer
        {**VALID, "score": 7},  # outside what training saw: flagged by serving, not refused
    ]
    assert rejected_rows(CONTRACT, accepted) == {}
    assert [row_problem(CONTRACT, row) for row in accepted] == [None] * len(accepted)


def test_the_gate_and_the_service_give_the_same_answer() -> None:
    rows = [VALID, {**VALID, "age": 17}, {**VALID, "score": "x", "code": "k"}, [1, 2]]
    served = ServedContract(CONTRACT)
    for index, row in enumerate(rows):
        _, errors, _ = served.check(row, index)
        assert rejected_rows(CONTRACT, rows).get(index) == (
            "; ".join(error.message for error in errors) or None
        )
