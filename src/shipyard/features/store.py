"""``FeatureStore``: the feature store over one project's stores and configured backends.

>>> import shipyard.features as sf
>>> with sf.FeatureStore.open() as store:                           # doctest: +SKIP
...     store.apply([customer, stats, service])
...     train = store.training_set(labels, "churn_features@v1", timestamp="ts")
...     train.reference                                    # 'churn_features.training@v1'
...     store.materialize()
...     store.online_features("churn_features@v1", [{"customer_id": 7}]).to_dicts()

The offline engine is ``[features] offline`` (``duckdb``, the default, its ASOF JOIN mode
``duckdb-asof``, or ``spark``); the
online store is ``[features] online`` (``sqlite``, the default, a file under
``.shipyard/``, or ``redis://HOST:PORT/DB``).
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from shipyard.core.config import Config, load_config
from shipyard.core.errors import ConfigError
from shipyard.core.references import parse_reference
from shipyard.features import registry
from shipyard.features.apply import UsersOf, apply_definitions
from shipyard.features.definitions import (
    DefinitionError,
    Entity,
    FeatureService,
    FeatureView,
    OnDemandFeature,
)
from shipyard.features.plan import FeaturePlan, plan_from_items
from shipyard.features.records import (
    ApplyReport,
    DefinitionKind,
    MaterializeReport,
    OnlineFeatures,
    SkewReport,
    StoredDefinition,
    TrainingSet,
)
from shipyard.features.sources import ResolvedSource, resolve_source
from shipyard.features.training import AD_HOC_LABEL
from shipyard.store.schema.features import feature_pushes
from shipyard.store.stores import Stores, open_stores

if TYPE_CHECKING:
    from shipyard.data.client import DatasetClient
    from shipyard.features.offline import OfflineEngine
    from shipyard.features.online import OnlineStore
    from shipyard.store.metadata import MetadataStore

__all__ = ["FeatureStore", "FeatureSpec"]

FeatureSpec = str | FeatureService | Sequence[str]
"""What to read: a service reference (``churn@v2``), a service, or ``["view:feature"]``."""

_LATEST_CACHE_SECONDS = 5.0


def open_offline_engine(config: Config) -> OfflineEngine:
    """The offline engine ``[features] offline`` names."""
    name = (config.get("features.offline", "duckdb") or "duckdb").strip().lower()
    if name == "duckdb":
        from shipyard.features.offline_duckdb import DuckDBEngine

        return DuckDBEngine()
    if name == "duckdb-asof":
        from shipyard.features.offline_duckdb import DuckDBEngine

        return DuckDBEngine(join="asof", cache_dir=config.home / "cache" / "features")
    if name == "spark":
        # Imported only when configured: pyspark is an optional, heavy dependency.
        from shipyard.features.offline_spark import SparkEngine

        engine: OfflineEngine = SparkEngine.from_config(config)
        return engine
    raise ConfigError(
        f"[features] offline is {name!r}; expected 'duckdb', 'duckdb-asof' or 'spark'.",
        hint="Set features.offline in shipyard.toml (or SHIPYARD_FEATURES_OFFLINE).",
    )


def open_online_store(config: Config) -> OnlineStore:
    """The online store ``[features] online`` names."""
    value = (config.get("features.online", "sqlite") or "sqlite").strip()
    if value.lower() == "sqlite":
        from shipyard.features.online_sqlite import SQLiteOnlineStore

        return SQLiteOnlineStore(config.home / "online.db")
    if value.startswith("sqlite:"):
        from shipyard.features.online_sqlite import SQLiteOnlineStore

        path = value.removeprefix("sqlite:").removeprefix("///").removeprefix("//")
        return SQLiteOnlineStore(path if path.startswith("/") else config.project_dir / path)
    if value.startswith(("redis://", "rediss://", "unix://")):
        from shipyard.features.online_redis import RedisOnlineStore

        return RedisOnlineStore(value)
    raise ConfigError(
        f"[features] online is {value!r}; expected 'sqlite', 'sqlite:PATH' or "
        "'redis://HOST:PORT/DB'.",
        hint="Set features.online in shipyard.toml (or SHIPYARD_FEATURES_ONLINE).",
    )


class FeatureStore:
    """Definitions, training sets, materialization, online reads and skew checks.

    Use :meth:`open` and close it (or use ``with``) when done.
    """

    def __init__(
        self,
        stores: Stores,
        config: Config,
        *,
        offline: OfflineEngine | None = None,
        online: OnlineStore | None = None,
        users_of: UsersOf | None = None,
        owns_stores: bool = False,
    ) -> None:
        from shipyard.data.client import DatasetClient

        self.stores = stores
        self.config = config
        self.users_of = users_of
        self._owns = owns_stores
        self._offline = offline
        self._online = online
        self._owns_offline = offline is None
        self._owns_online = online is None
        self.datasets: DatasetClient = DatasetClient(stores, config)
        self._on_demands: dict[str, OnDemandFeature] = {}
        self._plans: dict[str, tuple[float, FeaturePlan]] = {}
        self._serving: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        config: Config | None = None,
        *,
        offline: OfflineEngine | None = None,
        online: OnlineStore | None = None,
        users_of: UsersOf | None = None,
    ) -> FeatureStore:
        """The feature store of the project (found from the current folder by default)."""
        config = config or load_config()
        return cls(
            open_stores(config),
            config,
            offline=offline,
            online=online,
            users_of=users_of,
            owns_stores=True,
        )

    # --- Lifecycle ---------------------------------------------------------------------------

    @property
    def metadata(self) -> MetadataStore:
        """The metadata store definitions are versioned in."""
        return self.stores.metadata

    @property
    def offline(self) -> OfflineEngine:
        """The offline engine (opened on first use)."""
        with self._lock:
            if self._offline is None:
                self._offline = open_offline_engine(self.config)
            return self._offline

    @property
    def online(self) -> OnlineStore:
        """The online store (opened on first use)."""
        with self._lock:
            if self._online is None:
                self._online = open_online_store(self.config)
            return self._online

    def close(self) -> None:
        """Close the backends this store opened, and its stores if it opened them."""
        try:
            if self._offline is not None and self._owns_offline:
                self._offline.close()
            if self._online is not None and self._owns_online:
                self._online.close()
        finally:
            self.datasets.close()
            if self._owns:
                self.stores.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- Definitions -------------------------------------------------------------------------

    def apply(
        self,
        definitions: Iterable[Entity | FeatureView | OnDemandFeature | FeatureService],
        users_of: UsersOf | None = None,
        *,
        actor: str | None = None,
    ) -> ApplyReport:
        """Validate and store definitions; a changed definition becomes a new version.

        ``users_of`` (or the one given to :meth:`open`) maps a feature service name to the
        registered models using it, so a change breaking one of them is refused naming it.
        """
        from shipyard.data.catalog import current_user

        if isinstance(definitions, Entity | FeatureView | OnDemandFeature | FeatureService):
            definitions = [definitions]
        report = apply_definitions(
            self,
            definitions,
            users_of or self.users_of or self._registered_users,
            actor or current_user(),
        )
        with self._lock:
            self._plans.clear()
            self._serving.clear()
        return report

    def _registered_users(self, service_name: str) -> list[tuple[str, frozenset[str]]]:
        """The registered model versions reading ``service_name``, with the inputs they
        read: the default ``users_of``, so no definition change breaks a registered model."""
        from shipyard.models.registry import ModelRegistry

        registry = ModelRegistry(self.stores, self.config)
        try:
            return [
                (version.reference, frozenset(field.name for field in version.signature.inputs))
                for version in registry.versions_using_feature_service(service_name)
            ]
        finally:
            registry.close()

    def remember_on_demands(self, features: Iterable[OnDemandFeature]) -> None:
        """Keep applied on-demand functions, so this process serves them without import."""
        for feature in features:
            self._on_demands[feature.name] = feature

    def list(self, kind: DefinitionKind | None = None) -> builtins.list[StoredDefinition]:
        """The latest version of every definition (of one kind if given)."""
        return registry.list_latest(self.metadata, kind)

    def versions(self, kind: DefinitionKind, name: str) -> builtins.list[StoredDefinition]:
        """Every version of one definition, oldest first."""
        return registry.versions(self.metadata, kind, name)

    def definition(self, kind: DefinitionKind, reference: str) -> StoredDefinition:
        """A stored definition by ``name`` or ``name@vN``."""
        return registry.resolve(self.metadata, kind, reference)

    def get_view(self, reference: str) -> FeatureView:
        """A feature view by ``name`` (latest) or ``name@vN``."""
        return registry.view_from_spec(self.definition("view", reference).spec)

    def get_entity(self, reference: str) -> Entity:
        """An entity by ``name`` or ``name@vN``."""
        return registry.entity_from_spec(self.definition("entity", reference).spec)

    def get_on_demand(self, reference: str) -> OnDemandFeature:
        """An on-demand feature, with the function it was applied with."""
        spec = self.definition("on_demand", reference).spec
        return registry.load_on_demand(spec, self._on_demands)

    def get_service(self, reference: str) -> FeatureService:
        """A feature service by ``name`` or ``name@vN``, over the view versions it pinned."""
        stored = self.definition("service", reference)
        views = {
            name: registry.view_from_spec(registry.get_version(self.metadata, "view", name, v).spec)
            for name, v in stored.spec.get("views", {}).items()
        }
        odfvs = {
            name: registry.load_on_demand(
                registry.get_version(self.metadata, "on_demand", name, v).spec, self._on_demands
            )
            for name, v in stored.spec.get("on_demands", {}).items()
        }
        return registry.service_from_spec(stored.spec, views, odfvs)

    # --- Plans and sources -------------------------------------------------------------------

    def plan(self, features: FeatureSpec) -> FeaturePlan:
        """Resolve what to read (service reference, service object, or view:feature list)."""
        if isinstance(features, FeatureService):
            return plan_from_items(features.name, features.features, self._latest_view)
        if isinstance(features, str):
            ref = parse_reference(features)
            pinned = ref.kind == "version"
            now = time.monotonic()
            cached = self._plans.get(features)
            if cached is not None and (pinned or now - cached[0] < _LATEST_CACHE_SECONDS):
                return cached[1]
            stored = self.definition("service", features)
            service = self.get_service(stored.reference)
            pins = dict(stored.spec.get("views", {}))

            def lookup(name: str) -> tuple[FeatureView, int | None]:
                version = pins.get(name)
                if version is None:
                    return self._latest_view(name)
                spec = registry.get_version(self.metadata, "view", name, version).spec
                return registry.view_from_spec(spec), version

            plan = plan_from_items(stored.reference, service.features, lookup)
            plan = _with_versions(plan, pins)
            self._plans[features] = (now, plan)
            return plan
        names = builtins.list(features)
        if not names or not all(isinstance(n, str) and n.count(":") == 1 for n in names):
            raise DefinitionError(
                f"Features {features!r} are not a service reference or a list of "
                "'view:feature' names.",
                hint="Pass 'service@vN', a FeatureService, or ['view:feature', ...].",
            )
        items: dict[str, list[str]] = {}
        for name in names:
            view_name, feature = name.split(":")
            items.setdefault(view_name, []).append(feature)
        views = [self._latest_view(v)[0][fs] for v, fs in items.items()]
        return plan_from_items(AD_HOC_LABEL, views, self._latest_view)

    def _latest_view(self, name: str) -> tuple[FeatureView, int | None]:
        stored = self.definition("view", name)
        return registry.view_from_spec(stored.spec), stored.version

    def pushed_parts(self, view: str) -> builtins.list[str]:
        """Local paths of the Parquet parts pushed to a view's offline store."""
        with self.metadata.connect() as conn:
            blobs = (
                conn.execute(
                    select(feature_pushes.c.blob_id)
                    .where(feature_pushes.c.view == view)
                    .order_by(feature_pushes.c.created_at, feature_pushes.c.id)
                )
                .scalars()
                .all()
            )
        return [str(self.datasets.blobs.path(blob)) for blob in blobs]

    def resolve_source(self, view: FeatureView) -> ResolvedSource:
        """The view's rows for an engine: its dataset or files, plus pushed rows."""
        return resolve_source(view, self.datasets, self.pushed_parts(view.name))

    # --- Work --------------------------------------------------------------------------------

    def training_set(
        self,
        entity_rows: Any,
        features: FeatureSpec,
        *,
        timestamp: str = "event_ts",
        save_as: str | None = None,
        description: str | None = None,
    ) -> TrainingSet:
        """Point-in-time-correct features for each entity row, saved as a dataset version.

        ``entity_rows``: a pyarrow Table, pandas DataFrame, or dataset reference, with the
        join keys and ``timestamp``; other columns (labels) are kept. The result is always
        saved (with its profile) as a version of dataset ``save_as``, by default
        ``<service>.training``; the same rows again are the same version (content ids,
        nothing copied). ``TrainingSet.reference`` (``churn.training@v3``) is what a model
        or a monitor points at. See :mod:`shipyard.features.training`.
        """
        from shipyard.features.training import build_training_set

        return build_training_set(self, entity_rows, features, timestamp, save_as, description)

    def materialize(
        self,
        views: Sequence[str] | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        incremental: bool = True,
    ) -> MaterializeReport:
        """Copy the latest values per entity from the offline engine to the online store."""
        from shipyard.features.materialize import materialize

        return materialize(self, views, start=start, end=end, incremental=incremental)

    def push(self, view: str, rows: Any, *, to: str = "online_and_offline") -> int:
        """Write fresh rows of a view to the online store, the offline store, or both."""
        from shipyard.features.materialize import push

        return push(self, view, rows, to=to)

    def online_features(
        self,
        features: FeatureSpec,
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        *,
        as_of: datetime | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> OnlineFeatures:
        """Latest values for entities, TTL enforced at ``as_of`` (default now)."""
        from shipyard.features.serving import read_online

        return read_online(self, features, entity_rows, as_of=as_of, request=request)

    def skew(
        self,
        logged_rows: Any,
        service: FeatureSpec,
        *,
        timestamp: str = "request_ts",
        tolerance: float = 1e-9,
        max_offending: int = 1000,
    ) -> SkewReport:
        """Compare served values with a point-in-time replay at each request's time."""
        from shipyard.features.skew import check_skew

        return check_skew(
            self,
            logged_rows,
            service,
            timestamp=timestamp,
            tolerance=tolerance,
            max_offending=max_offending,
        )


def _with_versions(plan: FeaturePlan, pins: Mapping[str, int]) -> FeaturePlan:
    from dataclasses import replace

    parts = tuple(
        replace(part, version=pins.get(part.view.name, part.version)) for part in plan.views
    )
    return replace(plan, views=parts)
