"""Materialization (offline -> online, full or incremental) and the push API.

Materializing a view asks the offline engine for the latest row per entity in an
event-time window, and writes those rows to the online store in bulk (vectorised
encoding, one transaction or pipelined scripts). Incremental runs start where the last
run for the same view layout and online store ended; a view whose features changed gets
a new online layout and is materialized in full. Windows are on event time: a row that
arrives late, stamped before the last window's end, is not picked up incrementally (push
it, or materialize that window again; writes are newer-wins, so repeating is safe).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from shipyard.core.errors import ConfigError, DataContractError
from shipyard.core.ids import new_id
from shipyard.features import registry
from shipyard.features.offline import ViewQuery
from shipyard.features.records import MaterializeReport, ViewMaterialization
from shipyard.features.serving import online_view_for
from shipyard.features.sources import (
    align_keys,
    cast_features,
    normalise_timestamp,
    to_arrow_table,
)
from shipyard.store.metadata import BlobRef
from shipyard.store.schema.features import feature_materializations, feature_pushes

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.features.definitions import FeatureView
    from shipyard.features.store import FeatureStore

__all__ = ["materialize", "push"]

_TARGETS = ("online", "offline", "online_and_offline")


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ConfigError(
            f"{name} {value.isoformat()} has no time zone.", hint="Pass an aware (UTC) datetime."
        )
    return value


def _last_end(fs: FeatureStore, view: str, store_key: str) -> datetime | None:
    t = feature_materializations
    with fs.metadata.connect() as conn:
        value: datetime | None = conn.execute(
            select(t.c.window_end)
            .where(t.c.view == view, t.c.online_store == store_key)
            .order_by(t.c.window_end.desc())
            .limit(1)
        ).scalar()
    return value


def materialize(
    fs: FeatureStore,
    views: Sequence[str] | None,
    *,
    start: datetime | None,
    end: datetime | None,
    incremental: bool,
) -> MaterializeReport:
    """See :meth:`shipyard.features.store.FeatureStore.materialize`."""
    start = _aware(start, "start")
    end = _aware(end, "end") or datetime.now(UTC)
    if start is not None and start > end:
        raise ConfigError(f"start {start.isoformat()} is after end {end.isoformat()}.")
    names = list(views) if views else [d.name for d in fs.list("view")]
    online = fs.online
    done: list[ViewMaterialization] = []
    for name in names:
        stored = fs.definition("view", name)
        view = registry.view_from_spec(stored.spec)
        layout = online_view_for(fs, view)
        store_key = f"{online.identity}#{layout.namespace}"[:256]
        window_start = start
        if window_start is None and incremental:
            window_start = _last_end(fs, view.name, store_key)
        began = time.perf_counter()
        source = fs.resolve_source(view)
        query = ViewQuery(
            name=view.name,
            source=source.data,
            join_keys=view.join_keys,
            timestamp=view.timestamp,
            features=view.feature_names,
            created_timestamp=view.created_timestamp,
        )
        latest = fs.offline.latest_values(query, start=window_start, end=end)
        latest = cast_features(latest, _declared(view))
        written = online.write_batch(layout, latest, timestamp=view.timestamp)
        seconds = time.perf_counter() - began
        with fs.metadata.transaction() as conn:
            conn.execute(
                insert(feature_materializations).values(
                    id=new_id(),
                    view=view.name,
                    view_version=stored.version,
                    online_store=store_key,
                    window_start=window_start,
                    window_end=end,
                    rows=written,
                    seconds=seconds,
                )
            )
        done.append(
            ViewMaterialization(view.name, stored.version, window_start, end, written, seconds)
        )
    return MaterializeReport(online.identity, tuple(done))


def _declared(view: FeatureView) -> dict[str, pa.DataType]:
    from shipyard.features.definitions import arrow_type

    return {f.name: arrow_type(f.dtype) for f in view.features}


def push(fs: FeatureStore, view_name: str, rows: Any, *, to: str) -> int:
    """See :meth:`shipyard.features.store.FeatureStore.push`."""
    import pyarrow as pa

    if to not in _TARGETS:
        raise ConfigError(f"push to={to!r}; expected one of {', '.join(_TARGETS)}.")
    view = fs.get_view(view_name)
    what = f"the rows pushed to feature view {view.name!r}"
    table = to_arrow_table(rows, what=what)
    if table.num_rows == 0:
        return 0
    source = fs.resolve_source(view)
    table = normalise_timestamp(table, view.timestamp, what=what)
    if view.created_timestamp:
        if view.created_timestamp not in table.column_names:
            now = pa.array([datetime.now(UTC)] * table.num_rows, pa.timestamp("us", tz="UTC"))
            table = table.append_column(view.created_timestamp, now)
        table = normalise_timestamp(table, view.created_timestamp, what=what)
    table = align_keys(table, view, source.schema, what=what, source_label=source.label)
    missing = [f for f in view.feature_names if f not in table.column_names]
    if missing:
        raise DataContractError(
            f"{what.capitalize()} lack feature column(s) {', '.join(missing)}.",
            hint="Push every feature of the view (null where there is no value).",
        )
    table = cast_features(table, _declared(view))
    if to in ("offline", "online_and_offline"):
        _push_offline(fs, view, table, source.schema)
    if to in ("online", "online_and_offline"):
        layout = online_view_for(fs, view)
        query = ViewQuery(
            name=view.name,
            source=table,
            join_keys=view.join_keys,
            timestamp=view.timestamp,
            features=view.feature_names,
            created_timestamp=view.created_timestamp,
        )
        latest = fs.offline.latest_values(query)
        fs.online.write_batch(
            layout, cast_features(latest, _declared(view)), timestamp=view.timestamp
        )
    return int(table.num_rows)


def _push_offline(fs: FeatureStore, view: FeatureView, table: pa.Table, schema: pa.Schema) -> None:
    """Append the rows as a Parquet part with exactly the source's schema."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            if pa.types.is_timestamp(field.type) and field.type.tz is None:
                # Naive source timestamps mean UTC: store the UTC wall time.
                column = column.cast(pa.timestamp("us", tz="UTC"))
                column = pa.chunked_array(
                    [c.cast(pa.int64()).cast(pa.timestamp("us")) for c in column.chunks],
                    type=pa.timestamp("us"),
                )
            try:
                columns.append(column.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataContractError(
                    f"Pushed column {field.name!r} cannot be stored as {field.type} (the type "
                    f"in the source of view {view.name!r}): {exc}"
                ) from exc
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    part = pa.table(columns, schema=schema)
    stamps = part.column(view.timestamp)
    low, high = pc.min(stamps).as_py(), pc.max(stamps).as_py()
    with tempfile.TemporaryDirectory(prefix="shipyard-push-") as folder:
        path = Path(folder) / "part.parquet"
        pq.write_table(part, path)
        blob = fs.stores.artifacts.put_file(path)
    push_id = new_id()
    with fs.metadata.transaction() as conn:
        conn.execute(
            insert(feature_pushes).values(
                id=push_id,
                view=view.name,
                blob_id=str(blob),
                rows=part.num_rows,
                min_event_ts=_utc(low),
                max_event_ts=_utc(high),
            )
        )
        fs.metadata.add_blob_refs(conn, [BlobRef(str(blob), "feature_push", push_id, "rows")])
        fs.metadata.record_event(
            conn, "shipyard", "features.push", "view", view.name, {"rows": part.num_rows}
        )


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None
