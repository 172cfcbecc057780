"""Training sets: point-in-time-correct joins, on-demand features, saved as datasets.

Every training set is saved as a dataset version (with its profile), so a model's
lineage and monitoring can point at the exact rows it was trained on. The dataset is
``save_as`` if given, else ``<service>.training`` (``ad_hoc.training`` for a list of
``view:feature`` names). Versions are content-addressed: the same rows again return the
version that already holds them, computing only the table's content id (no copy, no
new version); new rows go through the datasets subsystem's ingestion (profile, sample,
blobs stored once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError, NotFoundError
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

    from shipyard.data.records import DatasetVersion
    from shipyard.features.store import FeatureSpec, FeatureStore

__all__ = ["build_training_set", "default_dataset_name", "point_in_time"]

AD_HOC_LABEL = "ad hoc"
"""The plan label of ``view:feature`` names (no service); their dataset is ``ad_hoc.training``."""


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
    from shipyard.core.references import validate_name

    if save_as is not None:
        # Checked before the join, so a typo does not cost the whole computation.
        validate_name(save_as, what="training set dataset name (save_as)")
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
    name = save_as or default_dataset_name(plan.label)
    version = save_training_set(fs, result, name, plan.label, description)
    return TrainingSet(result, plan.outputs, plan.label, version)


def default_dataset_name(label: str) -> str:
    """``<service>.training``: the dataset a service's training sets are saved in.

    ``label`` is the plan's (``churn@v2``, a service's name, or ``"ad hoc"``).

    >>> default_dataset_name("churn@v2")
    'churn.training'
    """
    service = "ad_hoc" if label == AD_HOC_LABEL else label.partition("@")[0]
    return f"{service}.training"


def save_training_set(
    fs: FeatureStore, table: pa.Table, name: str, service: str, description: str | None
) -> DatasetVersion:
    """The version of dataset ``name`` holding ``table``: an existing one with the same
    content, else a new one (profiled, tagged with the feature service).

    The table is hashed once: its content id is looked up as ``<name>@<content id>``,
    and a new version's ingestion takes that id rather than hashing the rows again.
    """
    from shipyard.data.sources_memory import CanonicalTable, TableSource

    label = f"training set of {service}"
    canonical = CanonicalTable.of(table, name=label)
    if canonical is not None:
        existing = _version_with_content(fs, name, canonical.content_id)
        if existing is not None:
            return existing
    ingest = fs.datasets.ingest(
        name,
        canonical if canonical is not None else TableSource(table, name=label),
        tags={"feature_service": service, "kind": "training_set"},
        description=description or f"Point-in-time training set for {service}",
    )
    return ingest.version


def _version_with_content(fs: FeatureStore, name: str, content_id: str) -> DatasetVersion | None:
    """A version of ``name`` whose content id is ``content_id``, found without ingesting.

    The id is computed the way ingestion computes it (canonical types, every column
    nullable, no contract; ingestion then uses this very id). A table whose types
    ingestion must convert itself has no id here, finds nothing, and is ingested as
    usual: a slower path, never a wrong version.
    """
    try:
        version = fs.datasets.get_version(f"{name}@{content_id}")
    except NotFoundError:
        return None
    return version if version.content_id == content_id else None


def table_content_id(table: pa.Table) -> str | None:
    """The content id ingesting ``table`` without a contract gives it (None: not known)."""
    from shipyard.data.sources_memory import CanonicalTable

    canonical = CanonicalTable.of(table)
    return canonical.content_id if canonical is not None else None
