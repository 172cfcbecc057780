"""Feature store: one set of definitions for training sets and online serving.

Entities, feature views (over dataset versions or files, with an event timestamp, an
optional created timestamp and a TTL), on-demand features (Python functions run by the
same code in training and serving) and feature services (versioned bundles a model uses)
are applied to the metadata store. Training sets are point-in-time-correct joins (a sorted
index searched in-process by default, DuckDB's ASOF JOIN or Spark on request, identical
answers) always saved as dataset versions (``<service>.training`` unless named, content-
addressed, so the same rows are the same version); materialization copies
the latest values to an online store (SQLite by default, Redis at scale) whose reads
enforce TTL against the read's as-of time.

>>> import shipyard.features as sf
>>> customer = sf.Entity("customer", join_keys=["customer_id"])
>>> stats = sf.FeatureView("customer_stats", entities=[customer], source="events",
...                        timestamp="event_ts", features=[sf.Feature("f0", "float64")])
>>> store = sf.FeatureStore.open()                                      # doctest: +SKIP
>>> store.apply([customer, stats, sf.FeatureService("churn", [stats])])  # doctest: +SKIP
>>> store.training_set(entity_rows, "churn@v1", timestamp="ts").reference  # doctest: +SKIP
'churn.training@v1'

Heavy libraries load on first use: importing this package costs almost nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.features.apply import BreakingChangeError, UsersOf
    from shipyard.features.definitions import (
        DefinitionError,
        Entity,
        Feature,
        FeatureService,
        FeatureView,
        FeatureViewProjection,
        FileSource,
        OnDemandFeature,
        on_demand,
    )
    from shipyard.features.offline import OfflineEngine, ViewQuery
    from shipyard.features.online import OnlineStore
    from shipyard.features.records import (
        ApplyReport,
        FeatureValue,
        MaterializeReport,
        OnlineFeatures,
        SkewReport,
        StoredDefinition,
        TrainingSet,
    )
    from shipyard.features.store import FeatureStore

__all__ = [
    "ApplyReport",
    "BreakingChangeError",
    "DefinitionError",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureStore",
    "FeatureValue",
    "FeatureView",
    "FeatureViewProjection",
    "FileSource",
    "MaterializeReport",
    "OfflineEngine",
    "OnDemandFeature",
    "OnlineFeatures",
    "OnlineStore",
    "SkewReport",
    "StoredDefinition",
    "TrainingSet",
    "UsersOf",
    "ViewQuery",
    "on_demand",
]

_LAZY: dict[str, str] = {
    "BreakingChangeError": "shipyard.features.apply",
    "UsersOf": "shipyard.features.apply",
    **dict.fromkeys(
        (
            "DefinitionError",
            "Entity",
            "Feature",
            "FeatureService",
            "FeatureView",
            "FeatureViewProjection",
            "FileSource",
            "OnDemandFeature",
            "on_demand",
        ),
        "shipyard.features.definitions",
    ),
    "OfflineEngine": "shipyard.features.offline",
    "ViewQuery": "shipyard.features.offline",
    "OnlineStore": "shipyard.features.online",
    **dict.fromkeys(
        (
            "ApplyReport",
            "FeatureValue",
            "MaterializeReport",
            "OnlineFeatures",
            "SkewReport",
            "StoredDefinition",
            "TrainingSet",
        ),
        "shipyard.features.records",
    ),
    "FeatureStore": "shipyard.features.store",
}


def __getattr__(name: str) -> Any:
    """Load the public API on first use, so ``import shipyard.features`` stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.features' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
