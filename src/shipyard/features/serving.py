"""Online reads: a compiled plan per feature service, one store round trip per view.

The plan (views, their online layout, feature positions, on-demand functions) is built
once per service reference and cached, so a read does no metadata lookup: it checks and
encodes the keys, reads each view in one statement or ``MGET``, and decodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError
from shipyard.features.encoding import micros
from shipyard.features.online import EXPIRED, MISSING, PRESENT, OnlineView
from shipyard.features.plan import FeaturePlan, apply_on_demand
from shipyard.features.records import OnlineFeatures
from shipyard.features.sources import key_kind

if TYPE_CHECKING:
    from shipyard.features.definitions import FeatureView
    from shipyard.features.store import FeatureSpec, FeatureStore

__all__ = ["ServingPlan", "online_view_for", "read_online"]

_MAX_ENTITIES = 10_000


def online_view_for(fs: FeatureStore, view: FeatureView) -> OnlineView:
    """The online layout of a view (its key types come from its source's schema)."""
    source = fs.resolve_source(view)
    kinds = []
    for key in view.join_keys:
        kind = key_kind(source.schema.field(key).type)
        if kind is None:  # check_view_schema already refused it; keep mypy honest
            raise DataContractError(f"Join key {key!r} of view {view.name!r} has no usable type.")
        kinds.append(kind)
    ttl = None if view.ttl is None else int(view.ttl.total_seconds() * 1_000_000)
    return OnlineView(view.name, view.join_keys, tuple(kinds), view.features, ttl)


@dataclass(frozen=True)
class _ViewRead:
    online: OnlineView
    positions: tuple[tuple[str, int], ...]  # (feature, index in the decoded values)


@dataclass(frozen=True)
class ServingPlan:
    """A compiled online read of one feature plan."""

    plan: FeaturePlan
    reads: tuple[_ViewRead, ...]


def _compile(fs: FeatureStore, plan: FeaturePlan) -> ServingPlan:
    reads = []
    for part in plan.views:
        online = online_view_for(fs, part.view)
        index = {name: i for i, name in enumerate(online.feature_names)}
        reads.append(_ViewRead(online, tuple((f, index[f]) for f in part.features)))
    return ServingPlan(plan, tuple(reads))


def _serving_plan(fs: FeatureStore, features: FeatureSpec) -> ServingPlan:
    plan = fs.plan(features)
    key = plan.label if isinstance(features, str) else None
    if key is not None:
        cached: ServingPlan | None = fs._serving.get(key)
        if cached is not None and cached.plan is plan:
            return cached
    compiled = _compile(fs, plan)
    if key is not None:
        fs._serving[key] = compiled
    return compiled


def _entities(
    entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
) -> list[Mapping[str, Any]]:
    if isinstance(entity_rows, Mapping):
        columns = {k: list(v) if not isinstance(v, str) else [v] for k, v in entity_rows.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise DataContractError(
                "Entity columns have different lengths: "
                + ", ".join(f"{k}={len(v)}" for k, v in columns.items())
                + "."
            )
        count = lengths.pop() if lengths else 0
        rows: list[Mapping[str, Any]] = [
            {k: v[i] for k, v in columns.items()} for i in range(count)
        ]
    elif isinstance(entity_rows, Sequence) and not isinstance(entity_rows, str | bytes):
        rows = list(entity_rows)
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise DataContractError(
                    f"Entity row {index} is {type(row).__name__}; give a dict of join key "
                    "values, e.g. {'customer_id': 7}."
                )
    else:
        raise DataContractError(
            f"Entity rows are a {type(entity_rows).__name__}; give a list of dicts or a dict "
            "of lists."
        )
    if not rows:
        raise DataContractError("No entity rows given; pass at least one.")
    if len(rows) > _MAX_ENTITIES:
        raise DataContractError(
            f"{len(rows)} entity rows in one online read; the limit is {_MAX_ENTITIES}.",
            hint="Split the request, or build a training set for bulk reads.",
        )
    return rows


def read_online(
    fs: FeatureStore,
    features: FeatureSpec,
    entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
    *,
    as_of: datetime | None = None,
    request: Mapping[str, Any] | None = None,
) -> OnlineFeatures:
    """See :meth:`shipyard.features.store.FeatureStore.online_features`."""
    compiled = _serving_plan(fs, features)
    rows = _entities(entity_rows)
    if as_of is None:
        as_of = datetime.now(UTC)
    elif as_of.tzinfo is None:
        raise DataContractError(
            f"as_of {as_of.isoformat()} has no time zone.", hint="Pass an aware datetime (UTC)."
        )
    as_of_us = micros(as_of)
    store = fs.online
    columns: dict[str, list[Any]] = {}
    statuses: dict[str, list[str]] = {}
    stamps: dict[str, list[int | None]] = {}
    for read in compiled.reads:
        online = read.online
        found = store.read(online, _encode_keys(online, rows), as_of_us)
        # One status and event-time list per view, shared by its features.
        view_status = [status for status, _, _ in found]
        view_stamps = [ts for _, ts, _ in found]
        values = [v for _, _, v in found]
        for feature, position in read.positions:
            columns[feature] = [None if v is None else v[position] for v in values]
            statuses[feature] = view_status
            stamps[feature] = view_stamps
    plan = compiled.plan
    if plan.on_demands:
        _run_on_demands(plan, rows, columns, statuses, stamps, request)
    return OnlineFeatures(plan.outputs, tuple(rows), columns, statuses, stamps)  # type: ignore[arg-type]


def _encode_keys(online: OnlineView, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    codec = online.keys
    pairs = tuple(zip(online.join_keys, online.key_types, strict=True))
    keys = []
    for index, row in enumerate(rows):
        key_values = []
        for key, kind in pairs:
            try:
                value = row[key]
            except KeyError:
                raise DataContractError(
                    f"Entity row {index} has no {key!r}, the join key of feature view "
                    f"{online.name!r} (it has {', '.join(map(str, row)) or 'nothing'}).",
                    hint=f"Pass {{{key!r}: ...}} for each entity.",
                ) from None
            key_values.append(codec.check(key, kind, value))
        keys.append(codec.encode(key_values))
    return keys


_RANK = {PRESENT: 0, MISSING: 1, EXPIRED: 2}


def _request_column(
    name: str, rows: list[Mapping[str, Any]], request: Mapping[str, Any], odfv: str
) -> Any:
    import pyarrow as pa

    if name in request:
        values = request[name]
        values = list(values) if isinstance(values, list | tuple) else [values] * len(rows)
    elif all(name in row for row in rows):
        values = [row[name] for row in rows]
    else:
        raise DataContractError(
            f"On-demand feature {odfv!r} needs the request value {name!r}.",
            hint=f"Pass request={{{name!r}: [...]}} (one value per entity row).",
        )
    if len(values) != len(rows):
        raise DataContractError(
            f"Request value {name!r} has {len(values)} values for {len(rows)} entity "
            "rows; give one per row."
        )
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataContractError(
            f"Request value {name!r} mixes types or is not a column: {exc}"
        ) from exc


def _run_on_demands(
    plan: FeaturePlan,
    rows: list[Mapping[str, Any]],
    columns: dict[str, list[Any]],
    statuses: dict[str, list[str]],
    stamps: dict[str, list[int | None]],
    request: Mapping[str, Any] | None,
) -> None:
    import pyarrow as pa

    request = dict(request or {})
    types = plan.dtypes()
    for odfv in plan.on_demands:
        inputs: dict[str, Any] = {}
        for _, feature in odfv.view_inputs:
            inputs[feature] = pa.array(columns[feature], type=types[feature])
        for name in odfv.request_inputs:
            inputs[name] = _request_column(name, rows, request, odfv.name)
        frame = pa.table({c: inputs[c] for c in odfv.input_columns})
        outputs = apply_on_demand(odfv, frame)
        sources = [f for _, f in odfv.view_inputs]
        status = [
            max((statuses[f][i] for f in sources), key=_RANK.__getitem__, default=PRESENT)
            for i in range(len(rows))
        ]
        event = [
            min((t for t in (stamps[f][i] for f in sources) if t is not None), default=None)
            for i in range(len(rows))
        ]
        for output, array in zip(odfv.outputs, outputs, strict=True):
            columns[output.name] = array.to_pylist()
            statuses[output.name] = status
            stamps[output.name] = event
