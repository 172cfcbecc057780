"""``FeatureStore.apply``: validate definitions, refuse breaking changes, version them.

A definition whose spec changed gets a new version; an unchanged one is left alone. A
change that removes, renames or retypes a feature a registered model uses through a
feature service is refused, naming the model: the registry is asked through ``users_of``
(service name -> [(model reference, feature names it uses)]), so this package never
imports the model registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from shipyard.features import registry
from shipyard.features.definitions import (
    DefinitionError,
    Entity,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    OnDemandFeature,
)
from shipyard.features.records import ApplyReport, StoredDefinition

if TYPE_CHECKING:
    from shipyard.features.store import FeatureStore

__all__ = ["BreakingChangeError", "UsersOf", "apply_definitions"]

UsersOf = Callable[[str], Sequence[tuple[str, frozenset[str]]]]
"""Service name -> [(model reference, feature names the model uses)]."""


class BreakingChangeError(DefinitionError):
    """A definition change would break a registered model's features."""

    code = "SY121"


class _Batch:
    def __init__(self) -> None:
        self.entities: dict[str, Entity] = {}
        self.views: dict[str, FeatureView] = {}
        self.on_demands: dict[str, OnDemandFeature] = {}
        self.services: dict[str, FeatureService] = {}

    def add(self, bucket: dict[str, Any], item: Any, label: str) -> None:
        known = bucket.get(item.name)
        if known is not None and known is not item and known.spec() != item.spec():
            raise DefinitionError(
                f"Two different {label}s named {item.name!r} in one apply; give one of them "
                "another name."
            )
        bucket.setdefault(item.name, item)


def _flatten(definitions: Iterable[object]) -> _Batch:
    batch = _Batch()
    for item in definitions:
        if isinstance(item, Entity):
            batch.add(batch.entities, item, "entity")
        elif isinstance(item, FeatureView):
            batch.add(batch.views, item, "feature view")
        elif isinstance(item, FeatureViewProjection):
            batch.add(batch.views, item.view, "feature view")
        elif isinstance(item, OnDemandFeature):
            batch.add(batch.on_demands, item, "on-demand feature")
        elif isinstance(item, FeatureService):
            batch.add(batch.services, item, "feature service")
            for part in item.features:
                if isinstance(part, OnDemandFeature):
                    batch.add(batch.on_demands, part, "on-demand feature")
                else:
                    view = part.view if isinstance(part, FeatureViewProjection) else part
                    batch.add(batch.views, view, "feature view")
        else:
            raise DefinitionError(
                f"Cannot apply {item!r}: expected an Entity, FeatureView, on-demand feature "
                "or FeatureService."
            )
    for view in list(batch.views.values()):
        for entity in view.entities:
            batch.add(batch.entities, entity, "entity")
    return batch


def _affected_features(old: FeatureView, new: FeatureView) -> set[str]:
    """Features of ``old`` that ``new`` removes, retypes, or re-keys."""
    if old.join_keys != new.join_keys:
        return set(old.feature_names)
    new_types = {f.name: f.dtype for f in new.features}
    return {f.name for f in old.features if new_types.get(f.name) != f.dtype}


def _affected_outputs(old_spec: dict[str, Any], new: OnDemandFeature) -> set[str]:
    new_types = {f.name: f.dtype for f in new.outputs}
    return {o["name"] for o in old_spec["outputs"] if new_types.get(o["name"]) != o["dtype"]}


def _service_reads(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """(view or on-demand name, feature) pairs a stored service spec outputs."""
    pairs: set[tuple[str, str]] = set()
    for item in spec["items"]:
        if "on_demand" in item:
            pairs.update((item["on_demand"], name) for name in item.get("outputs", []))
        else:
            pairs.update((item["view"], name) for name in item["features"])
    return pairs


def _check_breaking(fs: FeatureStore, batch: _Batch, users_of: UsersOf | None) -> None:
    if users_of is None:
        return
    affected: set[tuple[str, str]] = set()
    for view in batch.views.values():
        previous = registry.resolve_optional(fs.metadata, "view", view.name)
        if previous is not None:
            old = registry.view_from_spec(previous.spec)
            affected.update((view.name, f) for f in _affected_features(old, view))
    for odfv in batch.on_demands.values():
        previous = registry.resolve_optional(fs.metadata, "on_demand", odfv.name)
        if previous is not None:
            affected.update((odfv.name, f) for f in _affected_outputs(dict(previous.spec), odfv))
    removed_by_service: dict[str, set[str]] = {}
    for service in batch.services.values():
        previous = registry.resolve_optional(fs.metadata, "service", service.name)
        if previous is not None:
            before = {f for _, f in _service_reads(dict(previous.spec))}
            after = {f for _, f in _service_reads(_service_spec_items(service))}
            if before - after:
                removed_by_service[service.name] = before - after
    users: dict[str, set[str]] = dict(removed_by_service)
    if affected:
        for stored in registry.all_versions(fs.metadata, "service"):
            hit = {
                f
                for pair in _service_reads(dict(stored.spec))
                if pair in affected
                for f in [pair[1]]
            }
            if hit:
                users.setdefault(stored.name, set()).update(hit)
    problems: list[str] = []
    for service_name, features in sorted(users.items()):
        for model, used in users_of(service_name):
            broken = sorted(features & set(used))
            if broken:
                problems.append(
                    f"model {model} uses {', '.join(broken)} through feature service "
                    f"{service_name!r}"
                )
    if problems:
        raise BreakingChangeError(
            "Refused: this change removes, renames or retypes features in use: "
            + "; ".join(problems)
            + ".",
            hint="Add the new feature alongside the old one (or under a new view name), "
            "move the models to a service without the old feature, then remove it.",
        )


def _service_spec_items(service: FeatureService) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for item in service.features:
        if isinstance(item, OnDemandFeature):
            items.append({"on_demand": item.name, "outputs": list(item.feature_names)})
        else:
            items.append({"view": item.name, "features": list(item.feature_names)})
    return {"name": service.name, "items": items}


def apply_definitions(
    fs: FeatureStore,
    definitions: Iterable[object],
    users_of: UsersOf | None,
    actor: str,
) -> ApplyReport:
    """Validate, check for breaking changes, and record new versions in one transaction."""
    batch = _flatten(definitions)
    # The model check first: "this breaks model X" matters more than a source problem.
    _check_breaking(fs, batch, users_of)
    for view in batch.views.values():
        fs.resolve_source(view)  # the source exists and has every declared column
    stored_views = {d.name for d in registry.list_latest(fs.metadata, "view")}
    for odfv in batch.on_demands.values():
        for view_name, feature in odfv.view_inputs:
            if view_name in batch.views:
                batch.views[view_name].feature(feature)
            elif view_name in stored_views:
                fs.get_view(view_name).feature(feature)
            else:
                raise DefinitionError(
                    f"On-demand feature {odfv.name!r} reads {view_name}:{feature}, but no "
                    f"feature view {view_name!r} is applied or being applied.",
                    hint="Apply the view with it, or fix the input name.",
                )
    created: list[StoredDefinition] = []
    unchanged: list[StoredDefinition] = []

    def keep(result: tuple[StoredDefinition, bool]) -> StoredDefinition:
        (created if result[1] else unchanged).append(result[0])
        return result[0]

    with fs.metadata.transaction() as conn:
        for entity in batch.entities.values():
            keep(registry.record(conn, "entity", entity.name, entity.spec(), actor))
        for view in batch.views.values():
            keep(registry.record(conn, "view", view.name, view.spec(), actor))
        for odfv in batch.on_demands.values():
            keep(
                registry.record(conn, "on_demand", odfv.name, registry.on_demand_spec(odfv), actor)
            )
        for service in batch.services.values():
            spec = _service_spec_items(service)
            pins: dict[str, int] = {}
            odfv_pins: dict[str, int] = {}
            for item in service.features:
                if isinstance(item, OnDemandFeature):
                    odfv_pins[item.name] = _version(conn, "on_demand", item.name)
                    for view_name, _ in item.view_inputs:
                        pins[view_name] = _version(conn, "view", view_name)
                else:
                    pins[item.name] = _version(conn, "view", item.name)
            spec["views"] = pins
            spec["on_demands"] = odfv_pins
            keep(registry.record(conn, "service", service.name, spec, actor))
        for new in created:
            fs.metadata.record_event(
                conn,
                actor,
                "features.apply",
                new.kind,
                new.reference,
                {"fingerprint": new.fingerprint},
            )
    fs.remember_on_demands(batch.on_demands.values())
    return ApplyReport(tuple(created), tuple(unchanged))


def _version(conn: Any, kind: registry.DefinitionKind, name: str) -> int:
    current = registry.latest(conn, kind, name)
    if current is None:
        raise DefinitionError(f"No {kind} {name!r} is applied.")
    return current.version
