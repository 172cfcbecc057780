"""Definitions are validated where they are written, with messages naming the mistake."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import shipyard.features as sf
from shipyard.features.definitions import DefinitionError, fingerprint
from tests.features.fixtures import CUSTOMER, ratio, stats_view


def test_entity_keys_compound_and_checked() -> None:
    assert sf.Entity("line", join_keys=["order_id", "line_no"]).join_keys == ("order_id", "line_no")
    assert sf.Entity("c", join_keys="customer_id").join_keys == ("customer_id",)
    with pytest.raises(DefinitionError, match="no join keys"):
        sf.Entity("c", join_keys=[])
    with pytest.raises(DefinitionError, match="join key 'a' twice"):
        sf.Entity("c", join_keys=["a", "a"])
    with pytest.raises(DefinitionError, match="Invalid join key"):
        sf.Entity("c", join_keys=["a; DROP TABLE x"])
    with pytest.raises(DefinitionError, match="Invalid entity name"):
        sf.Entity("9lives", join_keys=["a"])


def test_feature_types_are_arrow_names_normalised() -> None:
    assert sf.Feature("x", "float64").dtype == sf.Feature("x", "double").dtype
    assert sf.Feature("t", "timestamp[us, tz=UTC]").dtype == "timestamp[us, tz=UTC]"
    with pytest.raises(DefinitionError, match="Unknown feature type 'floaty'"):
        sf.Feature("x", "floaty")
    with pytest.raises(DefinitionError, match="give an Arrow type name"):
        sf.Feature("x", float)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"entities": []}, "has no entities"),
        ({"features": []}, "declares no features"),
        ({"features": [sf.Feature("f0"), sf.Feature("f0")]}, "feature 'f0' twice"),
        ({"features": [sf.Feature("customer_id")]}, "name of a join key or timestamp"),
        ({"ttl": timedelta(0)}, "positive datetime.timedelta"),
        ({"ttl": 3600}, "positive datetime.timedelta"),
        ({"source": "bad name@"}, "not a dataset reference"),
        ({"source": 42}, "give a dataset reference"),
        ({"created_timestamp": "event_ts"}, "both event and created"),
        ({"timestamp": "event ts"}, "Invalid timestamp column"),
    ],
)
def test_feature_view_mistakes_are_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        stats_view(**overrides)


def test_projection_and_unknown_feature() -> None:
    view = stats_view()
    assert view[["f1"]].feature_names == ("f1",)
    assert view["f0"].feature_names == ("f0",)
    with pytest.raises(DefinitionError, match="has no feature 'nope'; it declares f0, f1"):
        view[["nope"]]


def test_on_demand_inputs_and_outputs_are_checked() -> None:
    assert ratio.request_inputs == ("amount",)
    assert ratio.view_inputs == (("customer_stats", "f0"),)
    with pytest.raises(DefinitionError, match="write 'view:feature' or 'request:name'"):
        sf.on_demand(inputs=["f0"], outputs=[sf.Feature("y")], name="fy")(lambda frame: frame)
    with pytest.raises(DefinitionError, match="declares no outputs"):
        sf.on_demand(inputs=["v:f0"], outputs=[], name="fy")(lambda frame: frame)
    with pytest.raises(DefinitionError, match="name of one of its inputs"):

        @sf.on_demand(inputs=["v:f0"], outputs=[sf.Feature("f0")])
        def same(frame: Any) -> Any:
            return frame


def test_service_outputs_must_be_unique_and_views_listed_once() -> None:
    view = stats_view()
    with pytest.raises(DefinitionError, match="lists feature view 'customer_stats' twice"):
        sf.FeatureService("s", [view[["f0"]], view[["f1"]]])
    with pytest.raises(DefinitionError, match="lists no features"):
        sf.FeatureService("s", [])
    with pytest.raises(DefinitionError, match="is not a FeatureView"):
        sf.FeatureService("s", ["customer_stats:f0"])  # type: ignore[list-item]
    with pytest.raises(DefinitionError, match="'request' is reserved"):
        sf.FeatureService("request", [view])


def test_specs_are_canonical_and_change_with_the_definition() -> None:
    a, b = stats_view(), stats_view()
    assert fingerprint(a.spec()) == fingerprint(b.spec())
    assert fingerprint(a.spec()) != fingerprint(stats_view(ttl=timedelta(hours=3)).spec())
    assert CUSTOMER.spec() == {"name": "customer", "join_keys": ["customer_id"]}
    assert ratio.spec()["code_sha256"]
