"""Materialization, push and online reads through the store, on SQLite and on Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import shipyard.features as sf
from shipyard.core.errors import ConfigError, DataContractError
from tests.features import fixtures
from tests.features.fixtures import CUSTOMER, TS, at, events_table, make_project, ratio, stats_view

# Fixtures shared by the feature tests (conftest.py belongs to the offline suite).
features_template, redis_prefix_uri = fixtures.features_template, fixtures.redis_prefix_uri


@pytest.fixture(params=["sqlite", "redis"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, features_template: Path
) -> Iterator[sf.FeatureStore]:
    environ = {}
    if request.param == "redis":
        environ["SHIPYARD_FEATURES_ONLINE"] = request.getfixturevalue("redis_prefix_uri")
    config = make_project(tmp_path / "project", features_template, environ)
    with sf.FeatureStore.open(config) as store:
        store.datasets.ingest("events", events_table())
        view = stats_view()
        store.apply([CUSTOMER, view, ratio, sf.FeatureService("churn", [view, ratio])])
        yield store


def values(result: sf.OnlineFeatures, feature: str) -> list[object]:
    return [row[feature].value for row in result.rows]


def statuses(result: sf.OnlineFeatures, feature: str) -> list[str]:
    return [row[feature].status for row in result.rows]


def test_materialize_then_read_with_status_and_event_time(served: sf.FeatureStore) -> None:
    report = served.materialize(end=at(10))
    assert report.rows == 2 and report.views[0].start is None
    result = served.online_features(
        "churn@v1",
        [{"customer_id": 1}, {"customer_id": 2}, {"customer_id": 3}],
        as_of=at(6),
        request={"amount": [4.0, 4.0, 4.0]},
    )
    assert values(result, "f0") == [2.0, None, None]
    assert statuses(result, "f0") == ["present", "expired", "missing"]
    assert result.rows[0]["f0"].event_ts == at(5)
    # The on-demand feature runs the same function as training: 4 / 2.
    assert values(result, "ratio") == [2.0, None, None]
    assert statuses(result, "ratio") == ["present", "expired", "missing"]
    assert result.to_dicts()[0]["f1"] == {"value": 20, "event_ts": at(5), "status": "present"}


def test_training_and_serving_agree_on_the_same_rows(served: sf.FeatureStore) -> None:
    served.materialize(end=at(10))
    rows = pa.table(
        {
            "customer_id": pa.array([1, 2], pa.int64()),
            "event_ts": pa.array([at(6), at(3.5)], TS),
            "amount": [3.0, 3.0],
        }
    )
    train = served.training_set(rows, "churn@v1").table
    online = [
        served.online_features(
            "churn@v1", [{"customer_id": cid}], as_of=when, request={"amount": [3.0]}
        )
        for cid, when in ((1, at(6)), (2, at(3.5)))
    ]
    for index, result in enumerate(online):
        for feature in ("f0", "f1", "ratio"):
            assert result.rows[0][feature].value == train.column(feature)[index].as_py()


def test_incremental_materialization_starts_where_the_last_ended(served: sf.FeatureStore) -> None:
    first = served.materialize(end=at(2.5))
    assert first.rows == 2  # customer 1 at 1 h, customer 2 at 2 h
    second = served.materialize(end=at(10))
    assert second.views[0].start == at(2.5)
    assert second.rows == 2  # only rows after 2.5 h: customer 1 at 5 h, customer 2 at 3 h
    result = served.online_features(
        "churn@v1", {"customer_id": [1, 2]}, as_of=at(5), request={"amount": [1.0, 1.0]}
    )
    assert values(result, "f0") == [2.0, 4.0]
    full = served.materialize(["customer_stats"], incremental=False, end=at(10))
    assert full.views[0].start is None and full.rows == 2


def test_push_reaches_online_and_offline(served: sf.FeatureStore) -> None:
    served.materialize(end=at(10))
    now = datetime.now(UTC)
    pushed = served.push(
        "customer_stats", [{"customer_id": 2, "event_ts": now, "f0": 9.0, "f1": 90}]
    )
    assert pushed == 1
    online = served.online_features("churn@v1", [{"customer_id": 2}], request={"amount": [9.0]})
    assert values(online, "f0") == [9.0] and values(online, "ratio") == [1.0]
    rows = pa.table({"customer_id": [2], "event_ts": pa.array([now + timedelta(seconds=1)], TS)})
    offline = served.training_set(rows, ["customer_stats:f1"]).table
    assert offline.column("f1").to_pylist() == [90]
    # Offline only: the online value stays, the training set sees the new row.
    served.push(
        "customer_stats",
        pa.table(
            {
                "customer_id": [2],
                "event_ts": pa.array([now + timedelta(seconds=2)], TS),
                "f0": [1.0],
                "f1": [1],
            }
        ),
        to="offline",
    )
    assert values(
        served.online_features("churn@v1", [{"customer_id": 2}], request={"amount": [1.0]}), "f1"
    ) == [90]


def test_push_bad_input_is_named(served: sf.FeatureStore) -> None:
    with pytest.raises(DataContractError, match="lack feature column"):
        served.push("customer_stats", [{"customer_id": 1, "event_ts": at(1), "f0": 1.0}])
    with pytest.raises(DataContractError, match="'customer_id' is string in the rows pushed"):
        served.push("customer_stats", [{"customer_id": "1", "event_ts": at(1), "f0": 1.0, "f1": 1}])
    with pytest.raises(ConfigError, match="push to='disk'"):
        served.push("customer_stats", [{"customer_id": 1}], to="disk")


def test_online_bad_input_is_named(served: sf.FeatureStore) -> None:
    with pytest.raises(DataContractError, match="Entity row 0 has no 'customer_id'"):
        served.online_features("churn@v1", [{"id": 1}], request={"amount": [1.0]})
    with pytest.raises(
        DataContractError, match="'customer_id' of feature view 'customer_stats' is '1'"
    ):
        served.online_features("churn@v1", [{"customer_id": "1"}], request={"amount": [1.0]})
    with pytest.raises(DataContractError, match="needs the request value 'amount'"):
        served.online_features("churn@v1", [{"customer_id": 1}])
    with pytest.raises(DataContractError, match="has 2 values for 1 entity rows"):
        served.online_features("churn@v1", [{"customer_id": 1}], request={"amount": [1.0, 2.0]})
    with pytest.raises(DataContractError, match="No entity rows"):
        served.online_features("churn@v1", [])
    with pytest.raises(DataContractError, match="limit is 10000"):
        served.online_features("churn@v1", {"customer_id": list(range(10_001))})
    with pytest.raises(DataContractError, match="has no time zone"):
        served.online_features("churn@v1", [{"customer_id": 1}], as_of=datetime(2026, 1, 1))


def test_unknown_backends_in_config_are_named(tmp_path: Path, features_template: Path) -> None:
    for key, value, message in (
        ("SHIPYARD_FEATURES_ONLINE", "memcached://x", "online is 'memcached://x'"),
        ("SHIPYARD_FEATURES_OFFLINE", "pandas", "offline is 'pandas'"),
    ):
        config = make_project(tmp_path / key, features_template, {key: value})
        with sf.FeatureStore.open(config) as store, pytest.raises(ConfigError, match=message):
            _ = store.online if "ONLINE" in key else store.offline


def test_backends_follow_the_configuration(tmp_path: Path, features_template: Path) -> None:
    pytest.importorskip("pyspark")
    config = make_project(
        tmp_path / "spark", features_template, {"SHIPYARD_FEATURES_OFFLINE": "spark"}
    )
    with sf.FeatureStore.open(config) as store:
        assert store.offline.name == "spark"  # built lazily; no Spark session is started
    default = make_project(tmp_path / "default", features_template)
    with sf.FeatureStore.open(default) as store:
        assert store.offline.name == "duckdb"
        assert store.online.identity == f"sqlite:{default.home / 'online.db'}"
