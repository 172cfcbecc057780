"""Online features in the service's process: entity keys in, feature values filled in.

A model whose signature names a feature service (``churn_features@v2``) may be called
with the entity's join keys (``{"customer_id": 42, "amount": 12.5}``) instead of all of
its inputs: the service reads the latest values from the online store (SQLite or Redis,
``[features] online``) in-process through ``shipyard.features.FeatureStore``, runs the
service's on-demand features with the same code as training did (request-time values
come from the record), and fills the model's inputs. A value the caller sent wins over
the stored one. Each filled value is logged with its feature view version, event time
and status (``present``, ``missing``, ``expired``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError
from shipyard.models.records import FieldSpec, Signature

if TYPE_CHECKING:
    from shipyard.core.config import Config

__all__ = ["MissingFeature", "OnlineLookup"]

_KEY_TYPES = {"int": "int64", "string": "string"}


@dataclass(frozen=True, slots=True)
class MissingFeature:
    """A model input the online store had no usable value for (record index, status)."""

    record: int
    field: str
    status: str
    entity: Mapping[str, Any]


class OnlineLookup:
    """Reads one feature service for one model, through a long-lived FeatureStore."""

    def __init__(self, store: Any, service: str, signature: Signature) -> None:
        from shipyard.features.serving import online_view_for

        self._store = store
        self.service = service
        plan = store.plan(service)
        self.signature = signature
        self.provided = frozenset(plan.outputs)
        self.request_inputs = tuple(plan.request_inputs)
        keys: dict[str, str] = {}
        self.view_of: dict[str, str] = {}
        for part in plan.views:
            online = online_view_for(store, part.view)
            for key, kind in zip(online.join_keys, online.key_types, strict=True):
                keys.setdefault(key, _KEY_TYPES.get(kind, "string"))
            version = f"@v{part.version}" if part.version is not None else ""
            for feature in part.features:
                self.view_of[feature] = f"{part.view.name}{version}"
        for odfv in plan.on_demands:
            for feature in odfv.feature_names:
                self.view_of[feature] = f"on_demand:{odfv.name}"
        self.join_keys = tuple(keys)
        self._key_types = keys
        inputs = {spec.name for spec in signature.inputs}
        self._fillable = tuple(name for name in plan.outputs if name in inputs)
        self._fillable_set = frozenset(self._fillable)
        self._required = frozenset(spec.name for spec in signature.inputs if not spec.nullable)

    @classmethod
    def open(cls, config: Config, signature: Signature) -> OnlineLookup:
        """The lookup for ``signature.feature_service`` on the configured online store."""
        service = signature.feature_service
        if not service:
            raise ConfigError("This model reads no feature service.")
        try:
            from shipyard.features.store import FeatureStore
        except ImportError as exc:  # pragma: no cover - the package ships with Shipyard
            raise ConfigError(
                f"The model reads feature service {service} but shipyard.features is missing."
            ) from exc
        store = FeatureStore.open(config)
        try:
            return cls(store, service, signature)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        self._store.close()

    def contract_fields(self) -> tuple[tuple[str, ...], tuple[FieldSpec, ...]]:
        """(inputs a request may omit, extra request fields: join keys, request values)."""
        inputs = {spec.name: spec for spec in self.signature.inputs}
        extra = [
            FieldSpec(key, kind, nullable=False)
            for key, kind in self._key_types.items()
            if key not in inputs
        ]
        extra.extend(FieldSpec(name, "any") for name in self.request_inputs if name not in inputs)
        return self._fillable, tuple(extra)

    def entity_key(self, record: Any) -> dict[str, Any] | None:
        """The record's join key values, or None when it does not carry all of them."""
        if type(record) is not dict:
            return None
        try:
            return {key: record[key] for key in self.join_keys}
        except KeyError:
            return None

    def fill(
        self,
        rows: Sequence[dict[str, Any]],
        keys: Sequence[Mapping[str, Any] | None],
        features: list[dict[str, Any] | None],
    ) -> list[MissingFeature]:
        """Fill the rows that carry entity keys; return the inputs left without a value."""
        indexes = [index for index, key in enumerate(keys) if key is not None]
        if not indexes:
            return []
        entities = [dict(keys[index] or {}) for index in indexes]
        request = None
        if self.request_inputs:
            request = {
                name: [rows[index].get(name) for index in indexes] for name in self.request_inputs
            }
        result = self._store.online_features(self.service, entities, request=request)
        missing: list[MissingFeature] = []
        required = self._required
        fillable = self._fillable_set
        view_of = self.view_of
        # Read column by column (what the store returns): one ISO string per distinct
        # event time (a view's features share theirs), no value object per cell.
        stamps: dict[int | None, str | None] = {None: None}
        columns = []
        for name in result.features:
            texts = []
            for micros in result.event_micros[name]:
                text = stamps.get(micros)
                if text is None and micros is not None:
                    text = stamps[micros] = _iso(micros)
                texts.append(text)
            columns.append(
                (name, view_of.get(name), result.columns[name], texts, result.statuses[name])
            )
        for position, index in enumerate(indexes):
            row = rows[index]
            logged: dict[str, Any] = {}
            for name, view, values, texts, statuses in columns:
                value = values[position]
                status = statuses[position]
                logged[name] = {
                    "value": value,
                    "view": view,
                    "event_ts": texts[position],
                    "status": status,
                }
                if name in fillable and name not in row:
                    row[name] = value
                    if value is None and name in required:
                        missing.append(MissingFeature(index, name, status, entities[position]))
            features[index] = logged
        return missing


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(micros: int) -> str:
    """An event time (microseconds since the epoch, UTC) as the ISO string logged."""
    return (_EPOCH + timedelta(microseconds=micros)).isoformat()
