"""The skew check finds a planted stale online value, and nothing on clean logs."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

import shipyard.features as sf
from shipyard.core.errors import DataContractError
from tests.features import fixtures
from tests.features.fixtures import CUSTOMER, TS, at, events_table, ratio, stats_view

# Fixtures shared by the feature tests (conftest.py belongs to the offline suite).
features_template, project, store = fixtures.features_template, fixtures.project, fixtures.store


@pytest.fixture
def skewed(store: sf.FeatureStore) -> sf.FeatureStore:
    events = events_table().append_column("created_ts", pa.array([at(1), at(5), at(2), at(3)], TS))
    store.datasets.ingest("events", events)
    view = stats_view(created_timestamp="created_ts", ttl=timedelta(hours=10))
    store.apply([CUSTOMER, view, ratio, sf.FeatureService("churn", [view, ratio])])
    store.materialize(end=at(5))
    return store


def serve_and_log(store: sf.FeatureStore, ids: list[int], when: float) -> pa.Table:
    """What serving would log: keys, request time, request values, each served value."""
    amount = [2.0] * len(ids)
    result = store.online_features(
        "churn@v1", [{"customer_id": i} for i in ids], as_of=at(when), request={"amount": amount}
    )
    columns: dict[str, object] = {
        "customer_id": ids,
        "request_ts": pa.array([at(when)] * len(ids), TS),
        "amount": amount,
    }
    for feature in result.features:
        columns[feature] = [row[feature].value for row in result.rows]
    return pa.table(columns)


def test_clean_logs_have_no_skew(skewed: sf.FeatureStore) -> None:
    report = skewed.skew(serve_and_log(skewed, [1, 2, 3], when=6), "churn@v1")
    assert report.rows_checked == 3
    assert {f.feature: f.mismatched for f in report.features} == {"f0": 0, "f1": 0, "ratio": 0}
    assert report.skew_rate == 0.0 and report.offending == ()


def test_a_planted_stale_online_value_is_found(skewed: sf.FeatureStore) -> None:
    # A new value for customer 1 reaches the offline store at 6 h, but the online store
    # is not refreshed: serving at 7 h still answers the 5 h value.
    skewed.push(
        "customer_stats",
        [{"customer_id": 1, "event_ts": at(6), "created_ts": at(6), "f0": 7.0, "f1": 70}],
        to="offline",
    )
    report = skewed.skew(serve_and_log(skewed, [1, 2], when=7), "churn@v1")
    rates = {f.feature: f.rate for f in report.features}
    assert rates == {"f0": 0.5, "f1": 0.5, "ratio": 0.5}
    stale = [row for row in report.offending if row["feature"] == "f0"]
    assert stale == [
        {
            "row": 0,
            "customer_id": 1,
            "request_ts": at(7),
            "feature": "f0",
            "served": 2.0,
            "expected": 7.0,
        }
    ]


def test_a_late_arriving_row_is_not_skew(skewed: sf.FeatureStore) -> None:
    # Stamped 6 h but created at 8 h: serving at 7 h could not have seen it.
    skewed.push(
        "customer_stats",
        [{"customer_id": 1, "event_ts": at(6), "created_ts": at(8), "f0": 7.0, "f1": 70}],
        to="offline",
    )
    report = skewed.skew(serve_and_log(skewed, [1], when=7), "churn@v1")
    assert report.skew_rate == 0.0


def test_skew_bad_input(skewed: sf.FeatureStore) -> None:
    log = serve_and_log(skewed, [1], when=7)
    with pytest.raises(DataContractError, match="none of the service's features"):
        skewed.skew(log.select(["customer_id", "request_ts"]), "churn@v1")
    with pytest.raises(DataContractError, match="no timestamp column 'request_ts'"):
        skewed.skew(log.drop(["request_ts"]), "churn@v1")
    with pytest.raises(DataContractError, match="have no rows"):
        skewed.skew(log.slice(0, 0), "churn@v1")
