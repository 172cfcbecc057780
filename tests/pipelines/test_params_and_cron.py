"""``--param k=v`` typed by annotations, and the cron parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.pipelines import PipelineDefinitionError, PipelineParamError, pipeline, step
from shipyard.pipelines.cron import parse_cron
from shipyard.pipelines.params import parse_param_assignments, resolve_params


@step
def use(value: object) -> object:
    return value


@pipeline(name="typed_params", register=False)
def typed(
    n_estimators: int = 100,
    rate: float = 0.1,
    fast: bool = False,
    name: str = "churn",
    mode: Literal["fit", "score"] = "fit",
    limit: int | None = None,
    columns: list[str] | None = None,
    untyped=3,  # noqa: ANN001 - takes the default's type
) -> None:
    use(n_estimators)


@pipeline(name="required_params", register=False)
def required(path: str) -> None:
    use(path)


def test_values_are_parsed_by_annotation() -> None:
    parsed = parse_param_assignments(
        typed,
        [
            "n_estimators=200",
            "rate=1e-3",
            "fast=yes",
            "name=a=b",
            "mode=score",
            "limit=none",
            'columns=["a", "b"]',
            "untyped=7",
        ],
    )
    assert parsed == {
        "n_estimators": 200,
        "rate": 0.001,
        "fast": True,
        "name": "a=b",
        "mode": "score",
        "limit": None,
        "columns": ["a", "b"],
        "untyped": 7,
    }
    assert parse_param_assignments(typed, ["limit=5", "fast=0"]) == {"limit": 5, "fast": False}
    assert resolve_params(typed, {"rate": 2})["rate"] == 2
    assert resolve_params(typed, {})["n_estimators"] == 100


@pytest.mark.parametrize(
    ("assignment", "needle"),
    [
        (
            "n_estimators=abc",
            "'n_estimators' of pipeline 'typed_params' is 'abc'; expected an integer",
        ),
        ("rate=fast", "expected a number"),
        ("rate=nan", "finite number"),
        ("fast=maybe", "expected a boolean"),
        ("mode=train", "one of 'fit', 'score'"),
        ("columns=[1,", "JSON"),
        ("limit=ten", "limit"),
        ("n_estimatorz=3", "Did you mean 'n_estimators'"),
        ("no_equals_sign", "NAME=VALUE"),
        ("=3", "NAME=VALUE"),
    ],
)
def test_bad_values_name_the_parameter_and_the_fix(assignment: str, needle: str) -> None:
    with pytest.raises(PipelineParamError) as info:
        parse_param_assignments(typed, [assignment])
    assert needle in str(info.value)


def test_repeated_missing_and_wrongly_typed_python_values() -> None:
    with pytest.raises(PipelineParamError, match="more than once"):
        parse_param_assignments(typed, ["fast=1", "fast=0"])
    with pytest.raises(PipelineParamError, match="needs parameter 'path'"):
        resolve_params(required, {})
    with pytest.raises(PipelineParamError, match="expected int"):
        resolve_params(typed, {"n_estimators": "many"})
    with pytest.raises(PipelineParamError, match="JSON data"):
        resolve_params(typed, {"name": object()})
    with pytest.raises(PipelineParamError, match="has no parameter"):
        resolve_params(typed, {"unknown": 1})


UTC_NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", UTC_NOON, UTC_NOON + timedelta(minutes=1)),
        ("*/15 * * * *", UTC_NOON.replace(minute=7), UTC_NOON.replace(minute=15)),
        ("0 * * * *", UTC_NOON, UTC_NOON.replace(hour=13)),
        ("30 2 * * *", UTC_NOON, datetime(2026, 3, 5, 2, 30, tzinfo=UTC)),
        ("0 9-17/4 * * *", UTC_NOON, UTC_NOON.replace(hour=13)),
        (
            "0 0 * * MON-FRI",
            datetime(2026, 3, 6, 1, 0, tzinfo=UTC),
            datetime(2026, 3, 9, tzinfo=UTC),
        ),
        ("0 0 * * sun", UTC_NOON, datetime(2026, 3, 8, tzinfo=UTC)),
        ("0 0 * * 7", UTC_NOON, datetime(2026, 3, 8, tzinfo=UTC)),
        ("0 0 1 JAN,jul *", UTC_NOON, datetime(2026, 7, 1, tzinfo=UTC)),
        ("0 0 29 2 *", UTC_NOON, datetime(2028, 2, 29, tzinfo=UTC)),
        # day-of-month and day-of-week both restricted: either matches (Vixie cron)
        ("0 0 13 * FRI", UTC_NOON, datetime(2026, 3, 6, tzinfo=UTC)),
        ("5/20 * * * *", UTC_NOON, UTC_NOON.replace(minute=5)),
        ("1,2,3 0 * * *", UTC_NOON, datetime(2026, 3, 5, 0, 1, tzinfo=UTC)),
        ("@hourly", UTC_NOON, UTC_NOON.replace(hour=13)),
        ("@daily", UTC_NOON, datetime(2026, 3, 5, tzinfo=UTC)),
        ("@weekly", UTC_NOON, datetime(2026, 3, 8, tzinfo=UTC)),
        ("@monthly", UTC_NOON, datetime(2026, 4, 1, tzinfo=UTC)),
        ("@yearly", UTC_NOON, datetime(2027, 1, 1, tzinfo=UTC)),
        (
            "59 23 31 12 *",
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            datetime(2027, 12, 31, 23, 59, tzinfo=UTC),
        ),
    ],
)
def test_next_fire_times(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_cron(expression).next_after(after) == expected


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        ("* * * *", "has 4 fields"),
        ("* * * * * *", "has 6 fields"),
        ("", "has 0 fields"),
        ("60 * * * *", "minute field '60' has 60, outside 0-59"),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day of month field"),
        ("* * * 13 *", "month field"),
        ("* * * * 8", "day of week field"),
        ("* * * FOO *", "'FOO'"),
        ("*/0 * * * *", "bad step '0'"),
        ("*/x * * * *", "bad step 'x'"),
        ("5-1 * * * *", "backwards range"),
        ("1,,2 * * * *", "empty list item"),
        ("@often", "unknown shortcut"),
        ("0 0 30 2 *", "never fires"),
        ("x" * 300, "at most 256"),
    ],
)
def test_malformed_expressions_name_the_field(expression: str, needle: str) -> None:
    with pytest.raises(PipelineDefinitionError) as info:
        parse_cron(expression, where="@pipeline 'nightly' schedule")
    assert needle in str(info.value)
    assert "nightly" in str(info.value) or needle in ("never fires",)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        parse_cron("* * * * *").next_after(datetime(2026, 1, 1))  # noqa: DTZ001


@settings(max_examples=150, deadline=None)
@given(
    minute=st.sampled_from(["*", "0", "*/7", "5-40/5", "13,47"]),
    hour=st.sampled_from(["*", "3", "*/5", "9-17"]),
    day=st.sampled_from(["*", "1", "15", "*/10", "28-31"]),
    month=st.sampled_from(["*", "2", "JAN-MAR", "*/4"]),
    weekday=st.sampled_from(["*", "0", "MON-FRI", "6,0"]),
    offset_minutes=st.integers(0, 3 * 366 * 24 * 60),
)
def test_next_fire_is_the_first_matching_minute(
    minute: str, hour: str, day: str, month: str, weekday: str, offset_minutes: int
) -> None:
    expression = parse_cron(f"{minute} {hour} {day} {month} {weekday}")
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=offset_minutes, seconds=17)
    fire = expression.next_after(start)
    assert fire > start and fire.second == 0
    assert expression.matches(fire)
    # nothing matches in between (checked minute by minute over a bounded window)
    probe = start.replace(second=0) + timedelta(minutes=1)
    for _ in range(min(int((fire - probe).total_seconds() // 60), 3000)):
        assert not expression.matches(probe)
        probe += timedelta(minutes=1)
