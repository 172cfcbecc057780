"""Training sets: point-in-time-correct joins, on-demand features, saved as datasets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError
from shipyard.features.offline import ViewQuery
from shipyard.features.plan import FeaturePlan, apply_on_demand
from shipyard.features.records import TrainingSet
from shipyard.features.sources import (
    align_keys,
    cast_features,
    normalise_timestamp,
    to_arrow_table,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.features.store import FeatureSpec, FeatureStore

__all__ = ["build_training_set", "point_in_time"]


def read_entity_rows(fs: FeatureStore, entity_rows: Any, *, what: str) -> pa.Table:
    """The entity rows as Arrow: a table-like value, or a dataset reference string."""
    if isinstance(entity_rows, str):
        return fs.datasets.read_table(entity_rows)
    return to_arrow_table(entity_rows, what=what)


def point_in_time(
    fs: FeatureStore,
    table: pa.Table,
    plan: FeaturePlan,
    timestamp: str,
    *,
    what: str,
    created_as_of: bool = False,
    rename: Sequence[tuple[str, str]] = (),
) -> tuple[pa.Table, list[str]]:
    """Entity rows joined with every view of ``plan``, then on-demand outputs appended.

    Returns the table and the names of the feature columns added (renamed by ``rename``,
    pairs of feature name -> output column, e.g. for the skew check's replay).
    """
    import pyarrow as pa

    table = normalise_timestamp(table, timestamp, what=what)
    renamed = dict(rename)
    queries: list[ViewQuery] = []
    for part in plan.views:
        source = fs.resolve_source(part.view)
        table = align_keys(table, part.view, source.schema, what=what, source_label=source.label)
        outputs = tuple(renamed.get(f, f) for f in part.features)
        for column in outputs:
            if column in table.column_names:
                raise DataContractError(
                    f"{what} already has a column {column!r}, which is also a feature of "
                    f"view {part.view.name!r}.",
                    hint=f"Rename or drop the {column!r} column of the entity rows.",
                )
        queries.append(
            ViewQuery(
                name=part.view.name,
                source=source.data,
                join_keys=part.view.join_keys,
                timestamp=part.view.timestamp,
                features=part.features,
                created_timestamp=part.view.created_timestamp,
                ttl=part.view.ttl,
                output_names=outputs,
                created_as_of=created_as_of,
            )
        )
    joined = fs.offline.point_in_time_join(table, queries, entity_timestamp=timestamp)
    if joined.num_rows != table.num_rows:
        raise DataContractError(
            f"The {fs.offline.name} engine returned {joined.num_rows} rows for "
            f"{table.num_rows} entity rows; training sets keep every row."
        )
    types = plan.dtypes()
    joined = cast_features(joined, {renamed.get(n, n): t for n, t in types.items()})
    added = [renamed.get(f, f) for part in plan.views for f in part.features]
    for odfv in plan.on_demands:
        frame_columns = {}
        for column in odfv.input_columns:
            source_name = renamed.get(column, column)
            if source_name not in joined.column_names:
                raise DataContractError(
                    f"On-demand feature {odfv.name!r} needs {column!r}, which {what} does "
                    "not have.",
                    hint=f"Add a {column!r} column (a request value) to the entity rows.",
                )
            frame_columns[column] = joined.column(source_name)
        frame = pa.table(frame_columns)
        for feature, array in zip(odfv.outputs, apply_on_demand(odfv, frame), strict=True):
            name = renamed.get(feature.name, feature.name)
            if name in joined.column_names:
                raise DataContractError(
                    f"{what} already has a column {name!r}, an output of on-demand "
                    f"feature {odfv.name!r}."
                )
            joined = joined.append_column(name, array)
            added.append(name)
    return joined, added


def build_training_set(
    fs: FeatureStore,
    entity_rows: Any,
    features: FeatureSpec,
    timestamp: str,
    save_as: str | None,
    description: str | None,
) -> TrainingSet:
    """See :meth:`shipyard.features.store.FeatureStore.training_set`."""
    what = f"entity rows {entity_rows!r}" if isinstance(entity_rows, str) else "the entity rows"
    table = read_entity_rows(fs, entity_rows, what=what)
    if table.num_rows == 0:
        raise DataContractError(f"{what} have no rows.", hint="Give at least one entity row.")
    plan = fs.plan(features)
    entity_columns = table.column_names
    joined, _ = point_in_time(fs, table, plan, timestamp, what=what)
    # Keep the entity rows' columns and the requested outputs, in the service's order;
    # on-demand inputs that were read only to compute outputs are left out.
    keep = [*entity_columns, *(o for o in plan.outputs if o not in entity_columns)]
    result = joined.select(keep)
    version = None
    if save_as is not None:
        from shipyard.data.sources_memory import TableSource

        ingest = fs.datasets.ingest(
            save_as,
            TableSource(result, name=f"training set of {plan.label}"),
            tags={"feature_service": plan.label, "kind": "training_set"},
            description=description or f"Point-in-time training set for {plan.label}",
        )
        version = ingest.version
    return TrainingSet(result, plan.outputs, plan.label, version)
