"""Property: through the whole store, no future value ever reaches a training set.

Random histories get a value planted just after each entity row's time (one
microsecond later); whatever the data, every training-set value must be one stamped at
or before its row's time, within TTL, and equal to a brute-force answer.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shipyard.features as sf
from tests.features import fixtures
from tests.features.fixtures import CUSTOMER, TS, at

features_template, project, store = fixtures.features_template, fixtures.project, fixtures.store

TTL = timedelta(hours=3)


def brute_force(history: list[tuple[int, float, float]], key: int, when: float) -> float | None:
    visible = [
        (hour, value)
        for k, hour, value in history
        if k == key and hour <= when and at(when) - at(hour) <= TTL
    ]
    return max(visible)[1] if visible else None


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 40).map(lambda h: h / 4),
            st.floats(0, 100, allow_nan=False),
        ),
        min_size=1,
        max_size=30,
        unique_by=lambda row: (row[0], row[1]),
    ),
    requests=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 44).map(lambda h: h / 4)),
        min_size=1,
        max_size=20,
        unique_by=lambda row: row,
    ),
)
def test_no_future_value_leaks(
    store: sf.FeatureStore,
    tmp_path: Path,
    history: list[tuple[int, float, float]],
    requests: list[tuple[int, float]],
) -> None:
    # Plant, for each request, a value stamped one microsecond after its time: -1, -2...
    one_micro = 1 / 3_600_000_000
    taken = {(k, h) for k, h, _ in history}
    planted = [
        (key, when + one_micro, -1.0 - index)
        for index, (key, when) in enumerate(requests)
        if (key, when + one_micro) not in taken
    ]
    rows = [*history, *planted]
    source = pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "event_ts": pa.array([at(r[1]) for r in rows], TS),
            "f0": pa.array([r[2] for r in rows], pa.float64()),
        }
    )
    path = tmp_path / f"events-{uuid.uuid4().hex}.parquet"
    pq.write_table(source, path)
    view = sf.FeatureView(
        "history",
        entities=[CUSTOMER],
        source=sf.FileSource(str(path)),
        timestamp="event_ts",
        ttl=TTL,
        features=[sf.Feature("f0", "float64")],
    )
    entities = pa.table(
        {
            "customer_id": pa.array([k for k, _ in requests], pa.int64()),
            "event_ts": pa.array([at(h) for _, h in requests], TS),
        }
    )
    store.apply([view])
    got = store.training_set(entities, ["history:f0"]).table.column("f0").to_pylist()
    for index, value in enumerate(got):
        assert value != -1.0 - index, f"row {index} got the value planted after its time"
    assert got == [brute_force(rows, k, h) for k, h in requests]
