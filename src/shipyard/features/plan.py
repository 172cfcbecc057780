"""What a request for features resolves to: views to read, on-demand features to run.

Training sets, online reads and skew checks all go through one :class:`FeaturePlan`, so
they read the same views with the same features and run the same on-demand functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError
from shipyard.features.definitions import (
    DefinitionError,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    OnDemandFeature,
    arrow_type,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FeaturePlan", "ViewPart", "apply_on_demand", "plan_from_items"]


@dataclass(frozen=True)
class ViewPart:
    """One view in a plan: the features read from it (requested, or inputs of on-demands)."""

    view: FeatureView
    version: int | None
    features: tuple[str, ...]


@dataclass(frozen=True)
class FeaturePlan:
    """Views and on-demand features behind a request, and the output columns in order."""

    label: str
    views: tuple[ViewPart, ...]
    on_demands: tuple[OnDemandFeature, ...]
    outputs: tuple[str, ...]

    def dtypes(self) -> dict[str, pa.DataType]:
        """Declared Arrow type of every fetched or computed column."""
        types: dict[str, pa.DataType] = {}
        for part in self.views:
            for name in part.features:
                types[name] = arrow_type(part.view.feature(name).dtype)
        for odfv in self.on_demands:
            for feature in odfv.outputs:
                types[feature.name] = arrow_type(feature.dtype)
        return types

    @property
    def request_inputs(self) -> tuple[str, ...]:
        """Values the caller must pass with each row (``request:NAME`` inputs)."""
        seen: dict[str, None] = {}
        for odfv in self.on_demands:
            seen.update(dict.fromkeys(odfv.request_inputs))
        return tuple(seen)


def plan_from_items(
    label: str,
    items: Sequence[FeatureView | FeatureViewProjection | OnDemandFeature],
    view_lookup: Callable[[str], tuple[FeatureView, int | None]],
) -> FeaturePlan:
    """Resolve service items to a plan; ``view_lookup`` finds views on-demands read."""
    parts: dict[str, tuple[FeatureView, int | None, list[str]]] = {}
    outputs: list[str] = []
    on_demands: list[OnDemandFeature] = []
    for item in items:
        if isinstance(item, OnDemandFeature):
            on_demands.append(item)
            outputs.extend(item.feature_names)
            continue
        view = item.view if isinstance(item, FeatureViewProjection) else item
        _, version, names = parts.setdefault(view.name, (view, None, []))
        for name in item.feature_names:
            if name not in names:
                names.append(name)
        outputs.extend(item.feature_names)
    for odfv in on_demands:
        for view_name, feature in odfv.view_inputs:
            if view_name not in parts:
                found, version = view_lookup(view_name)
                parts[view_name] = (found, version, [])
            view, _, names = parts[view_name]
            view.feature(feature)  # raises naming the view if it has no such feature
            if feature not in names:
                names.append(feature)
    seen: dict[str, str] = {}
    for view, _, names in parts.values():
        for name in names:
            if name in seen and seen[name] != view.name:
                raise DefinitionError(
                    f"Feature {name!r} is read from both views {seen[name]!r} and "
                    f"{view.name!r}; column names must be unique.",
                    hint="Rename one of the features.",
                )
            seen[name] = view.name
    return FeaturePlan(
        label=label,
        views=tuple(ViewPart(v, ver, tuple(n)) for v, ver, n in parts.values()),
        on_demands=tuple(on_demands),
        outputs=tuple(outputs),
    )


def plan_from_service(
    service: FeatureService,
    label: str,
    view_lookup: Callable[[str], tuple[FeatureView, int | None]],
) -> FeaturePlan:
    """The plan of a feature service object."""
    return plan_from_items(label, service.features, view_lookup)


def apply_on_demand(odfv: OnDemandFeature, table: pa.Table) -> list[pa.ChunkedArray]:
    """Run an on-demand feature on ``table`` (which has its input columns).

    Returns the output columns, in declaration order, cast to their declared types. The
    same call serves training sets (many rows) and online reads (a few rows).
    """
    import pyarrow as pa

    missing = [c for c in odfv.input_columns if c not in table.column_names]
    if missing:
        raise DataContractError(
            f"On-demand feature {odfv.name!r} needs input column(s) {', '.join(missing)}, "
            "which the rows do not have.",
            hint="Pass request values (request:NAME inputs) as columns of the entity rows, "
            "or with request= online.",
        )
    frame = table.select(list(odfv.input_columns))
    try:
        result = odfv.function(frame)
    except Exception as exc:  # noqa: BLE001 - user code; reported with the feature's name
        raise DataContractError(
            f"On-demand feature {odfv.name!r} raised {type(exc).__name__}: {exc}",
            hint="Fix the function; it receives a pyarrow.Table of its inputs.",
        ) from exc
    columns = _result_columns(odfv, result)
    out: list[pa.ChunkedArray] = []
    for feature in odfv.outputs:
        if feature.name not in columns:
            raise DataContractError(
                f"On-demand feature {odfv.name!r} returned no {feature.name!r} column "
                f"(it returned {', '.join(columns) or 'nothing'}).",
                hint="Return a table or mapping with every declared output.",
            )
        try:
            array = columns[feature.name]
            chunked = (
                array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([pa.array(array)])
            )
            chunked = chunked.cast(arrow_type(feature.dtype))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as exc:
            raise DataContractError(
                f"Output {feature.name!r} of on-demand feature {odfv.name!r} is not "
                f"{feature.dtype}: {exc}"
            ) from exc
        if len(chunked) != table.num_rows:
            raise DataContractError(
                f"Output {feature.name!r} of on-demand feature {odfv.name!r} has "
                f"{len(chunked)} values for {table.num_rows} rows."
            )
        out.append(chunked)
    return out


def _result_columns(odfv: OnDemandFeature, result: Any) -> Mapping[str, Any]:
    import pyarrow as pa

    if isinstance(result, pa.Table):
        return {name: result.column(name) for name in result.column_names}
    if isinstance(result, pa.RecordBatch):
        return {name: result.column(name) for name in result.schema.names}
    if isinstance(result, Mapping):
        return result
    raise DataContractError(
        f"On-demand feature {odfv.name!r} returned a {type(result).__name__}; return a "
        "pyarrow Table, RecordBatch or a mapping of output name to column."
    )
