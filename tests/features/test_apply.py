"""Applying definitions: versions, feature services as ``name@vN``, breaking-change refusal."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import shipyard.features as sf
from shipyard.core.config import load_config
from shipyard.core.errors import DataContractError, NotFoundError
from shipyard.features.apply import BreakingChangeError
from shipyard.features.definitions import DefinitionError
from tests.features import fixtures
from tests.features.fixtures import CUSTOMER, TS, at, events_table, ratio, stats_view

# Fixtures shared by the feature tests (conftest.py belongs to the offline suite).
applied, features_template, project, store = (
    fixtures.applied,
    fixtures.features_template,
    fixtures.project,
    fixtures.store,
)


def test_apply_versions_only_changed_definitions(applied: sf.FeatureStore) -> None:
    again = applied.apply([CUSTOMER, stats_view(), ratio])
    assert again.created == ()
    changed = applied.apply([stats_view(ttl=timedelta(hours=3))])
    assert [d.reference for d in changed.created] == ["customer_stats@v2"]
    assert applied.get_view("customer_stats").ttl == timedelta(hours=3)
    assert applied.get_view("customer_stats@v1").ttl == timedelta(hours=2)
    assert [d.reference for d in applied.versions("view", "customer_stats")] == [
        "customer_stats@v1",
        "customer_stats@v2",
    ]


def test_services_are_versioned_bundles_pinning_their_views(applied: sf.FeatureStore) -> None:
    view = stats_view()
    applied.apply([sf.FeatureService("churn", [view[["f0", "f1"]], ratio])])
    assert applied.get_service("churn@v1").features[0].feature_names == ("f1",)
    assert applied.get_service("churn@v2").features[0].feature_names == ("f0", "f1")
    assert applied.get_service("churn").name == "churn"
    stored = applied.definition("service", "churn@v2")
    assert stored.spec["views"] == {"customer_stats": 1}
    # The view changes: v1 of the service still reads the view as it was.
    applied.apply([stats_view(ttl=timedelta(hours=5))])
    assert applied.plan("churn@v2").views[0].view.ttl == timedelta(hours=2)
    with pytest.raises(NotFoundError, match="No feature service 'churn@v9'"):
        applied.get_service("churn@v9")


def test_on_demand_functions_load_in_another_store_with_their_code(
    applied: sf.FeatureStore, project: object
) -> None:
    with sf.FeatureStore.open(project) as other:  # type: ignore[arg-type]
        # Found by module import (tests.features.fixtures), verified by its code hash.
        assert other.get_on_demand("ratio").function is ratio.function


def test_changed_on_demand_code_is_a_new_version(applied: sf.FeatureStore) -> None:
    @sf.on_demand(
        inputs=["customer_stats:f0", "request:amount"],
        outputs=[sf.Feature("ratio", "float64")],
        name="ratio",
    )
    def ratio_v2(frame: pa.Table) -> dict[str, object]:
        import pyarrow.compute as pc

        return {"ratio": pc.multiply(frame["amount"], frame["f0"])}

    report = applied.apply([ratio_v2])
    assert [d.reference for d in report.created] == ["ratio@v2"]


def users_of(service: str) -> list[tuple[str, frozenset[str]]]:
    return [("churn_model@v3", frozenset({"f1", "ratio"}))] if service == "churn" else []


@pytest.mark.parametrize(
    "change",
    [
        [sf.Feature("f0", "float64")],  # removes f1
        [sf.Feature("f0", "float64"), sf.Feature("f1", "float64")],  # retypes f1
        [sf.Feature("f0", "float64"), sf.Feature("f1_renamed", "int64")],  # renames f1
    ],
)
def test_breaking_a_models_feature_is_refused_naming_the_model(
    applied: sf.FeatureStore, change: list[sf.Feature]
) -> None:
    with pytest.raises(BreakingChangeError, match=r"model churn_model@v3 uses f1 .*'churn'"):
        applied.apply([stats_view(features=change)], users_of=users_of)
    assert [d.version for d in applied.versions("view", "customer_stats")] == [1]


def test_compatible_changes_pass_the_model_check(applied: sf.FeatureStore) -> None:
    extra = [sf.Feature("f0", "float64"), sf.Feature("f1", "int64"), sf.Feature("f2", "float64")]
    table = events_table().append_column("f2", pa.array([0.1, 0.2, 0.3, 0.4]))
    applied.datasets.ingest("events", table)
    report = applied.apply([stats_view(features=extra)], users_of=users_of)
    assert [d.reference for d in report.created] == ["customer_stats@v2"]
    # f0 is not used by the model: removing it is allowed.
    report = applied.apply([stats_view(features=[sf.Feature("f1", "int64")])], users_of=users_of)
    assert [d.reference for d in report.created] == ["customer_stats@v3"]


def test_dropping_a_used_feature_from_the_service_is_refused(applied: sf.FeatureStore) -> None:
    with pytest.raises(BreakingChangeError, match="churn_model@v3 uses ratio"):
        applied.apply([sf.FeatureService("churn", [stats_view()[["f1"]]])], users_of=users_of)


def test_a_view_over_a_dataset_without_the_timestamp_is_refused(store: sf.FeatureStore) -> None:
    store.datasets.ingest("events", events_table().drop(["event_ts"]))
    with pytest.raises(DataContractError, match=r"event timestamp column 'event_ts'.*events@v1"):
        store.apply([stats_view()])
    assert store.list() == []


def test_view_errors_name_the_column(store: sf.FeatureStore) -> None:
    store.datasets.ingest("events", events_table())
    with pytest.raises(DataContractError, match="feature column 'f9'"):
        store.apply([stats_view(features=[sf.Feature("f9")])])
    with pytest.raises(DataContractError, match="'f0' of view 'customer_stats' is declared"):
        store.apply([stats_view(features=[sf.Feature("f0", "string")])])
    table = events_table().set_column(1, "event_ts", pa.array([1, 2, 3, 4]))
    store.datasets.ingest("events2", table)
    with pytest.raises(
        DataContractError, match="'event_ts' of dataset events2@v1 .* not a timestamp"
    ):
        store.apply([stats_view(source="events2")])
    with pytest.raises(NotFoundError, match="reads dataset 'missing'"):
        store.apply([stats_view(source="missing")])


def test_on_demand_reading_an_unknown_view_is_refused(store: sf.FeatureStore) -> None:
    @sf.on_demand(inputs=["nowhere:x"], outputs=[sf.Feature("y")])
    def orphan(frame: pa.Table) -> pa.Table:
        return frame

    with pytest.raises(DefinitionError, match="no feature view 'nowhere'"):
        store.apply([orphan])


def test_two_different_definitions_with_one_name_are_refused(store: sf.FeatureStore) -> None:
    store.datasets.ingest("events", events_table())
    with pytest.raises(DefinitionError, match="Two different feature views named"):
        store.apply([stats_view(), stats_view(ttl=timedelta(hours=9))])


def test_file_sources(store: sf.FeatureStore, tmp_path: object) -> None:
    import pyarrow.parquet as pq

    path = f"{tmp_path}/events.parquet"
    pq.write_table(events_table(), path)
    view = stats_view(source=sf.FileSource(path))
    store.apply([view])
    rows = pa.table({"customer_id": [1], "event_ts": pa.array([at(2)], TS)})
    assert store.training_set(rows, ["customer_stats:f0"]).table.column("f0").to_pylist() == [1.0]
    with pytest.raises(NotFoundError, match="matches no file"):
        store.apply([stats_view(source=sf.FileSource(f"{tmp_path}/none/*.parquet"))])


def test_definitions_on_postgresql(postgres_uri: str, tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={"SHIPYARD_STORE_METADATA": postgres_uri})
    with sf.FeatureStore.open(config) as pg:
        pg.datasets.ingest("events", events_table())
        pg.apply([CUSTOMER, stats_view(), ratio, sf.FeatureService("churn", [stats_view()])])
        pg.apply([stats_view(ttl=timedelta(hours=4))])
        assert [d.reference for d in pg.versions("view", "customer_stats")] == [
            "customer_stats@v1",
            "customer_stats@v2",
        ]
        assert pg.definition("service", "churn@v1").spec["views"] == {"customer_stats": 1}
        rows = pa.table({"customer_id": [1], "event_ts": pa.array([at(2)], TS)})
        assert pg.training_set(rows, "churn@v1").table.column("f1").to_pylist() == [10]
        assert pg.materialize(end=at(10)).rows == 2


def test_the_registry_is_asked_by_default(applied: sf.FeatureStore) -> None:
    """Without ``users_of``, apply asks the project's model registry who reads a service."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from shipyard.models.registry import ModelRegistry

    frame = pd.DataFrame({"f1": [1, 2, 3, 4], "ratio": [0.1, 0.4, 0.2, 0.9]})
    model = LogisticRegression().fit(frame, [0, 1, 0, 1])
    with ModelRegistry(applied.stores, applied.config) as registry:
        version = registry.register(
            "churn_model", model=model, input_example=frame, feature_service="churn@v1"
        )
    with pytest.raises(BreakingChangeError, match=rf"model {version.reference} uses f1 .*'churn'"):
        applied.apply([stats_view(features=[sf.Feature("f0", "float64")])])
    assert [d.version for d in applied.versions("view", "customer_stats")] == [1]
