"""Training sets: point-in-time correct, saved as dataset versions, bad input named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import shipyard.features as sf
from shipyard.core.errors import DataContractError, NotFoundError
from tests.features import fixtures
from tests.features.fixtures import CUSTOMER, TS, at, stats_view

# Fixtures shared by the feature tests (conftest.py belongs to the offline suite).
applied, features_template, project, store = (
    fixtures.applied,
    fixtures.features_template,
    fixtures.project,
    fixtures.store,
)


def entity_rows() -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array([1, 2, 1, 3, 2], pa.int64()),
            "event_ts": pa.array([at(2), at(4), at(6), at(6), at(5.5)], TS),
            "amount": [5.0, 6.0, 7.0, 8.0, 9.0],
            "label": [1, 0, 1, 0, 1],
        }
    )


def test_training_set_is_point_in_time_with_ttl_and_on_demand(applied: sf.FeatureStore) -> None:
    result = applied.training_set(entity_rows(), "churn@v1", timestamp="event_ts")
    table = result.table
    assert table.column_names == ["customer_id", "event_ts", "amount", "label", "f1", "ratio"]
    # customer 2 at 5.5 h: its last value (3 h) is 2.5 h old, past the 2 h TTL.
    assert table.column("f1").to_pylist() == [10, 40, 20, None, None]
    assert table.column("ratio").to_pylist() == [5.0, 1.5, 3.5, None, None]
    assert table.schema.field("f1").type == pa.int64()
    assert result.features == ("f1", "ratio") and result.service == "churn@v1"


def test_training_set_is_saved_as_a_dataset_version_with_profile(
    applied: sf.FeatureStore,
) -> None:
    result = applied.training_set(
        entity_rows().to_pandas(), "churn@v1", timestamp="event_ts", save_as="churn_train"
    )
    assert result.version is not None
    assert result.version.reference == "churn_train@v1"
    assert result.version.profile_blob is not None
    assert result.version.tags["feature_service"] == "churn@v1"
    stored = applied.datasets.read_table("churn_train@v1")
    assert stored.column("ratio").to_pylist() == result.table.column("ratio").to_pylist()
    # A dataset reference works as entity rows too.
    again = applied.training_set("churn_train@v1", ["customer_stats:f0"], timestamp="event_ts")
    assert again.table.column("f0").to_pylist() == [1.0, 4.0, 2.0, None, None]


def test_every_training_set_is_saved_content_addressed_by_default(
    applied: sf.FeatureStore,
) -> None:
    first = applied.training_set(entity_rows(), "churn@v1", timestamp="event_ts")
    assert first.reference == "churn.training@v1" == first.version.reference
    assert first.version.profile_blob is not None
    assert first.version.tags == {"feature_service": "churn@v1", "kind": "training_set"}
    # The same rows again are the same version: nothing new is stored.
    again = applied.training_set(entity_rows().to_pandas(), "churn@v1", timestamp="event_ts")
    assert again.version.id == first.version.id
    # Other rows are a new version; going back to the first rows finds v1 again.
    other = applied.training_set(entity_rows().slice(0, 3), "churn@v1", timestamp="event_ts")
    assert other.reference == "churn.training@v2"
    back = applied.training_set(entity_rows(), "churn", timestamp="event_ts")
    assert back.reference == "churn.training@v1"
    assert [v.reference for v in applied.datasets.list_versions("churn.training")] == [
        "churn.training@v2",
        "churn.training@v1",
    ]
    ad_hoc = applied.training_set(entity_rows(), ["customer_stats:f0"], timestamp="event_ts")
    assert ad_hoc.reference == "ad_hoc.training@v1" and ad_hoc.service == "ad hoc"


def test_the_content_id_found_without_ingesting_is_the_ingested_one(
    store: sf.FeatureStore,
) -> None:
    from shipyard.features.training import table_content_id

    table = pa.table(
        {
            "key": pa.array(["a", None, "c"], pa.large_string()),
            "n": pa.array([1, 2, None], pa.int32()),
            "x": pa.array([0.5, float("nan"), None], pa.float32()),
            "ok": pa.array([True, None, False]),
            "at": pa.array([at(1), None, at(3)], pa.timestamp("ms", tz="Europe/Paris")),
            "day": pa.array([at(1).date(), at(2).date(), None], pa.date32()),
        }
    )
    stored = store.datasets.ingest("shapes", table).version
    assert table_content_id(table) == stored.content_id
    assert table_content_id(table.slice(1)) != stored.content_id


def test_matches_pandas_merge_asof_on_random_data(store: sf.FeatureStore) -> None:
    rng = np.random.default_rng(7)
    n_source, n_entities = 3_000, 1_000
    base = np.datetime64("2026-03-01T00:00:00", "us")
    source = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 200, n_source),
            "event_ts": base + rng.choice(10**9, n_source, replace=False).astype("timedelta64[ms]"),
            "f0": rng.random(n_source),
        }
    )
    source["event_ts"] = source["event_ts"].dt.tz_localize("UTC")
    store.datasets.ingest("random_events", source)
    view = sf.FeatureView(
        "random_stats",
        entities=[CUSTOMER],
        source="random_events",
        timestamp="event_ts",
        features=[sf.Feature("f0", "float64")],
    )
    store.apply([view])
    entities = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 220, n_entities),
            "event_ts": base + rng.integers(0, 10**9, n_entities).astype("timedelta64[ms]"),
        }
    )
    entities["event_ts"] = entities["event_ts"].dt.tz_localize("UTC")
    got = store.training_set(entities, ["random_stats:f0"]).table.to_pandas()
    expected = (
        pd.merge_asof(
            entities.reset_index().sort_values("event_ts"),
            source.sort_values("event_ts"),
            on="event_ts",
            by="customer_id",
            direction="backward",
            allow_exact_matches=True,
        )
        .set_index("index")
        .sort_index()
    )
    assert len(got) == n_entities
    np.testing.assert_array_equal(got["f0"].to_numpy(), expected["f0"].to_numpy())


def test_entity_rows_missing_the_key_or_timestamp(applied: sf.FeatureStore) -> None:
    with pytest.raises(
        DataContractError, match="no column 'customer_id', the join key of feature view"
    ):
        applied.training_set(entity_rows().drop(["customer_id"]), "churn@v1", timestamp="event_ts")
    with pytest.raises(DataContractError, match="no timestamp column 'ts'"):
        applied.training_set(entity_rows(), "churn@v1", timestamp="ts")


def test_mismatched_key_types_are_named(applied: sf.FeatureStore) -> None:
    rows = entity_rows().set_column(0, "customer_id", pa.array(["1", "2", "1", "3", "2"]))
    with pytest.raises(
        DataContractError, match="'customer_id' is string in the entity rows but int64"
    ):
        applied.training_set(rows, "churn@v1", timestamp="event_ts")
    # Narrower integers are widened, not refused.
    rows = entity_rows().set_column(0, "customer_id", pa.array([1, 2, 1, 3, 2], pa.int32()))
    assert applied.training_set(rows, "churn@v1", timestamp="event_ts").table.num_rows == 5


def test_bad_timestamps_and_values(applied: sf.FeatureStore) -> None:
    rows = entity_rows().set_column(1, "event_ts", pa.array([at(1), None, at(1), at(1), at(1)], TS))
    with pytest.raises(DataContractError, match="'event_ts' of the entity rows is empty at row 1"):
        applied.training_set(rows, "churn@v1", timestamp="event_ts")
    rows = entity_rows().set_column(1, "event_ts", pa.array(["yesterday"] * 5))
    with pytest.raises(DataContractError, match="cannot be read as timestamps"):
        applied.training_set(rows, "churn@v1", timestamp="event_ts")
    rows = entity_rows().set_column(1, "event_ts", pa.array([1.5] * 5))
    with pytest.raises(DataContractError, match="is double, not a timestamp"):
        applied.training_set(rows, "churn@v1", timestamp="event_ts")
    iso = entity_rows().set_column(1, "event_ts", pa.array(["2026-03-01T02:00:00Z"] * 5))
    assert applied.training_set(iso, "churn@v1", timestamp="event_ts").table.num_rows == 5


def test_other_bad_input(applied: sf.FeatureStore) -> None:
    with pytest.raises(DataContractError, match="have no rows"):
        applied.training_set(entity_rows().slice(0, 0), "churn@v1", timestamp="event_ts")
    with pytest.raises(DataContractError, match="expected a table"):
        applied.training_set(42, "churn@v1", timestamp="event_ts")
    with pytest.raises(DataContractError, match="needs 'amount'"):
        applied.training_set(entity_rows().drop(["amount"]), "churn@v1", timestamp="event_ts")
    clash = entity_rows().append_column("f1", pa.array([0] * 5))
    with pytest.raises(DataContractError, match="already has a column 'f1'"):
        applied.training_set(clash, "churn@v1", timestamp="event_ts")
    with pytest.raises(NotFoundError, match="No feature view 'nope'"):
        applied.training_set(entity_rows(), ["nope:f0"], timestamp="event_ts")
    with pytest.raises(NotFoundError, match="No feature service 'nope'"):
        applied.training_set(entity_rows(), "nope", timestamp="event_ts")


def test_on_demand_errors_are_named(applied: sf.FeatureStore) -> None:
    @sf.on_demand(inputs=["customer_stats:f0"], outputs=[sf.Feature("boom", "float64")])
    def boom(frame: pa.Table) -> dict[str, object]:
        raise ZeroDivisionError("no")

    @sf.on_demand(inputs=["customer_stats:f0"], outputs=[sf.Feature("short", "float64")])
    def short(frame: pa.Table) -> dict[str, object]:
        return {"short": [1.0]}

    with pytest.raises(DataContractError, match="'boom' raised ZeroDivisionError"):
        applied.training_set(entity_rows(), sf.FeatureService("s", [boom]), timestamp="event_ts")
    with pytest.raises(DataContractError, match="has 1 values for 5 rows"):
        applied.training_set(entity_rows(), sf.FeatureService("s", [short]), timestamp="event_ts")


def test_created_timestamp_dedups_equal_event_times(store: sf.FeatureStore) -> None:
    source = pa.table(
        {
            "customer_id": pa.array([1, 1], pa.int64()),
            "event_ts": pa.array([at(1), at(1)], TS),
            "created_ts": pa.array([at(3), at(2)], TS),
            "f0": [30.0, 20.0],
            "f1": pa.array([1, 2], pa.int64()),
        }
    )
    store.datasets.ingest("events", source)
    store.apply([stats_view(created_timestamp="created_ts", ttl=timedelta(days=1))])
    rows = pa.table({"customer_id": [1], "event_ts": pa.array([at(4)], TS)})
    assert store.training_set(rows, ["customer_stats:f0"]).table.column("f0").to_pylist() == [30.0]


def test_the_asof_engine_option_gives_the_same_saved_training_set(
    tmp_path: Path, features_template: Path
) -> None:
    events = tmp_path / "events.parquet"
    pq.write_table(fixtures.events_table(), events)
    view = sf.FeatureView(
        "stats",
        entities=[CUSTOMER],
        source=sf.FileSource(str(events)),
        timestamp="event_ts",
        ttl=timedelta(hours=2),
        features=[sf.Feature("f0", "float64"), sf.Feature("f1", "int64")],
    )
    definitions = [CUSTOMER, view, sf.FeatureService("churn", [view])]
    results = {}
    for offline in ("duckdb", "duckdb-asof"):
        config = fixtures.make_project(
            tmp_path / offline, features_template, {"SHIPYARD_FEATURES_OFFLINE": offline}
        )
        with sf.FeatureStore.open(config) as opened:
            opened.apply(definitions)
            results[offline] = opened.training_set(entity_rows(), "churn", timestamp="event_ts")
            expected_join = "asof" if offline == "duckdb-asof" else "index"
            assert opened.offline.join == expected_join  # type: ignore[attr-defined]
        cached = list((config.home / "cache" / "features").glob("*.duckdb"))
        assert bool(cached) == (offline == "duckdb-asof")
    assert results["duckdb-asof"].table.equals(results["duckdb"].table)
    assert results["duckdb"].table.column("f1").to_pylist() == [10, 40, 20, None, None]
    assert results["duckdb-asof"].version.content_id == results["duckdb"].version.content_id
