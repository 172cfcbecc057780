"""The Spark offline engine: point-in-time joins at scale with pyspark.

Implements :class:`shipyard.features.offline.OfflineEngine` with exactly the semantics
written there, so the conformance suite gets identical tables from this engine and from
DuckDB on the same inputs. Use it when a view's source is too large for one machine's
DuckDB, with ``[features] offline = "spark"`` and ``spark_master`` pointing at a cluster
(Parquet paths must then be readable by every executor).

How the join works
------------------
For each view, the entity rows (keys, timestamp, row number) and the source rows (keys,
event timestamp, created timestamp, features packed in one struct) are stacked in one
frame, partitioned by the join keys and ordered by time, source rows before entity rows
at the same instant (the bound is inclusive) and older created timestamps first. The
last non-null struct up to each entity row is its winner: one shuffle, no range join, and
memory bounded by one key's rows rather than by keys x timestamps. TTL is then one
comparison against the winner (if the latest value is too old, every older one is too).

``created_as_of`` (replaying what serving could see) breaks that ordering: a newer event
created after the entity time must be skipped for an older one. There the engine does
a range join per key (keys equal, event and created time at or before the entity time,
within TTL) and keeps the greatest ``(event, created)`` per entity row.

Only keys and timestamps of the entity table go to Spark; its other columns never leave
Arrow, so they come back unchanged whatever their type. Results are put back in the
entity table's row order by the row numbers, in Arrow.

One Spark session per process, created on first use and shared by every engine (session
start takes tens of seconds). A session the caller already started is reused as is.

>>> engine = SparkEngine(master="local[2]")                         # doctest: +SKIP
>>> engine.point_in_time_join(entities, [view_query], entity_timestamp="ts")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import BackendError, BackendUnavailableError, ConfigError
from shipyard.features.offline import ViewQuery

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from shipyard.core.config import Config

__all__ = ["DEFAULT_MASTER", "SparkEngine", "spark_session", "stop_spark_session"]

DEFAULT_MASTER = "local[2]"
_CONFIG_KEY = "features.spark_master"
_MASTER = re.compile(
    r"local(\[(\*|[1-9][0-9]{0,3})(,\s*[1-9][0-9]{0,3})?\])?"
    r"|(spark|mesos|k8s)://\S+|yarn|sc://\S+"
)
# Few shuffle partitions: local mode has a couple of cores, and 200 (Spark's default)
# tiny tasks cost more than the work. Adaptive execution merges them further on a cluster.
_LOCAL_SETTINGS = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": "4",
}
_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
}

_lock = threading.Lock()
_session: SparkSession | None = None
_MICROSECOND = timedelta(microseconds=1)


def _check_master(master: str) -> str:
    if not isinstance(master, str) or not _MASTER.fullmatch(master.strip()):
        raise ConfigError(
            f"{_CONFIG_KEY} is {master!r}, which is not a Spark master URL.",
            hint="Use local[2], local[*], spark://HOST:PORT, k8s://..., yarn or sc://HOST "
            "(the default is local[2]).",
        )
    return master.strip()


def _is_alive(session: SparkSession) -> bool:
    context = getattr(session, "_sc", None)
    return context is not None and getattr(context, "_jsc", None) is not None


def spark_session(master: str = DEFAULT_MASTER) -> SparkSession:
    """The process's shared Spark session, started on the first call (tens of seconds).

    A session already running in this process (started by the caller, or by an earlier
    call) is returned as it is, whatever its master. Raises
    :class:`~shipyard.core.errors.BackendUnavailableError` when pyspark or Java is missing.
    """
    global _session
    master = _check_master(master)
    with _lock:
        if _session is not None and _is_alive(_session):
            return _session
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise BackendUnavailableError(
                f"The spark offline engine needs pyspark, which is not installed ({exc}).",
                hint="Install it with `pip install 'shipyard[spark]'` (and Java 17+), or set "
                '[features] offline = "duckdb".',
            ) from exc
        active = SparkSession.getActiveSession()
        if active is not None and _is_alive(active):
            _session = active
            return active
        local = master.startswith("local")
        if local:
            # The JVM reads this before binding; without it Spark resolves the host name,
            # which on many machines maps to an unreachable address.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = SparkSession.builder.master(master).appName("shipyard-features")
        for key, value in {**_SETTINGS, **(_LOCAL_SETTINGS if local else {})}.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # pyspark raises plain Exception/RuntimeError subclasses
            raise BackendUnavailableError(
                f"Could not start a Spark session on master {master!r}: {exc}",
                hint="Spark needs Java 17+ on PATH or JAVA_HOME; for a cluster, check "
                f"{_CONFIG_KEY} and that the master is reachable.",
            ) from exc
        session.sparkContext.setLogLevel("ERROR")
        _session = session
        return session


def stop_spark_session() -> None:
    """Stop the shared session, if one was started (the next use starts a new one)."""
    global _session
    with _lock:
        if _session is not None and _is_alive(_session):
            _session.stop()
        _session = None


class SparkEngine:
    """Point-in-time joins and latest values on Spark (see the module docstring).

    The session is the process's shared one, started on the first query, not here.
    """

    name = "spark"

    def __init__(self, master: str = DEFAULT_MASTER) -> None:
        self.master = _check_master(master)
        self._closed = False

    @classmethod
    def from_config(cls, config: Config) -> SparkEngine:
        """An engine on ``[features] spark_master`` (default ``local[2]``)."""
        return cls(config.get(_CONFIG_KEY, DEFAULT_MASTER) or DEFAULT_MASTER)

    # --- OfflineEngine ----------------------------------------------------------------

    def point_in_time_join(
        self,
        entity_rows: pa.Table,
        views: Sequence[ViewQuery],
        *,
        entity_timestamp: str,
    ) -> pa.Table:
        """Entity rows plus, for each view, its latest valid values at each row's time."""
        import pyarrow as pa

        table = entity_rows
        if not views:
            return table
        if table.num_rows == 0:
            return _append_nulls(table, views, {view.name: _source_schema(view) for view in views})
        session = self._session()
        row = _fresh_name("row", table.column_names)
        keys = list(dict.fromkeys(key for view in views for key in view.join_keys))
        spine = table.select([*keys, entity_timestamp]).append_column(
            row, pa.array(range(table.num_rows), type=pa.int64())
        )
        entities = _to_spark(session, spine, what="the entity rows")
        for view in views:
            schema = _source_schema(view)
            joined = _pit_view(session, entities, view, entity_timestamp, row)
            result = _collect(joined, what=f"feature view {view.name!r}")
            if result.num_rows != table.num_rows:
                raise BackendError(
                    f"Spark returned {result.num_rows} rows for feature view {view.name!r} "
                    f"and {table.num_rows} entity rows; expected one per entity row.",
                    hint='This is a bug in the spark engine; use offline = "duckdb" meanwhile.',
                )
            # Row numbers are exactly 0..n-1, so sorting by them restores the input order.
            ordered = result.sort_by([("_r", "ascending")])
            for index, output in enumerate(view.outputs):
                column = ordered.column(f"v{index}")
                table = table.append_column(
                    output, column.cast(schema.field(view.features[index]).type)
                )
            if view.event_timestamp_output:
                stamp = ordered.column("t").cast(pa.timestamp("us", tz="UTC"))
                table = table.append_column(view.event_timestamp_output, stamp)
        return table

    def latest_values(
        self,
        view: ViewQuery,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.Table:
        """One row per key: the winner among the rows with ``start <= ts <= end``."""
        import pyarrow as pa
        from pyspark.sql import Window
        from pyspark.sql import functions as F  # noqa: N812 - pyspark's own convention

        schema = _source_schema(view)
        session = self._session()
        rows = _source_frame(session, view)
        when = F.unix_micros(F.col("t"))
        if start is not None:
            rows = rows.filter(when >= _micros(start, "start"))
        if end is not None:
            rows = rows.filter(when <= _micros(end, "end"))
        key_columns = [F.col(f"k{i}") for i in range(len(view.join_keys))]
        order = Window.partitionBy(*key_columns).orderBy(
            F.col("t").desc(), F.col("c").desc_nulls_last()
        )
        winners = (
            rows.withColumn("_n", F.row_number().over(order))
            .filter(F.col("_n") == 1)
            .select(
                *key_columns,
                "t",
                *(["c"] if view.created_timestamp else []),
                *(F.col("p").getField(f"v{i}").alias(f"v{i}") for i in range(len(view.features))),
            )
        )
        result = _collect(winners, what=f"feature view {view.name!r}")
        names: list[str] = []
        arrays: list[Any] = []
        for index, key in enumerate(view.join_keys):
            names.append(key)
            arrays.append(result.column(f"k{index}").cast(schema.field(key).type))
        names.append(view.timestamp)
        arrays.append(result.column("t").cast(schema.field(view.timestamp).type))
        if view.created_timestamp:
            names.append(view.created_timestamp)
            arrays.append(result.column("c").cast(schema.field(view.created_timestamp).type))
        for index, (feature, output) in enumerate(zip(view.features, view.outputs, strict=True)):
            names.append(output)
            arrays.append(result.column(f"v{index}").cast(schema.field(feature).type))
        return pa.Table.from_arrays(arrays, names=names)

    def close(self) -> None:
        """Mark the engine closed. The shared session stays up for other engines (stop it
        with :func:`stop_spark_session`); it ends with the process."""
        self._closed = True

    def _session(self) -> SparkSession:
        if self._closed:
            raise BackendError(
                "This spark offline engine is closed.",
                hint="Open the feature store again to get a new engine.",
            )
        return spark_session(self.master)


# --- The join, one view at a time ------------------------------------------------------


def _pit_view(
    session: SparkSession,
    entities: DataFrame,
    view: ViewQuery,
    entity_timestamp: str,
    row: str,
) -> DataFrame:
    """``_r`` (entity row number), ``t`` (winner's event time) and ``v0..vn`` (features)."""
    from pyspark.sql import functions as F  # noqa: N812

    source = _source_frame(session, view)
    keys = [F.col(key).alias(f"k{i}") for i, key in enumerate(view.join_keys)]
    spine = entities.select(*keys, F.col(entity_timestamp).alias("e"), F.col(row).alias("_r"))
    ttl_micros = None if view.ttl is None else view.ttl // _MICROSECOND
    if view.created_as_of and view.created_timestamp:
        winners = _range_join(spine, source, view, ttl_micros)
    else:
        winners = _stacked_last(spine, source, view)
    winner = F.col("w")
    valid = winner.isNotNull() & F.col("e").isNotNull()
    if ttl_micros is not None:
        valid = valid & (
            F.unix_micros(winner.getField("t")) >= F.unix_micros(F.col("e")) - F.lit(ttl_micros)
        )
    return winners.select(
        "_r",
        F.when(valid, winner.getField("t")).alias("t"),
        *(
            F.when(valid, winner.getField(f"v{i}")).alias(f"v{i}")
            for i in range(len(view.features))
        ),
    )


def _stacked_last(spine: DataFrame, source: DataFrame, view: ViewQuery) -> DataFrame:
    """Entity and source rows in one frame; each entity row takes the last source row
    before it in (key, time, kind, created) order: the latest at or before its time."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    key_names = [f"k{i}" for i in range(len(view.join_keys))]
    payload = F.struct(
        F.col("t").alias("t"),
        *(F.col("p").getField(f"v{i}").alias(f"v{i}") for i in range(len(view.features))),
    )
    facts = source.select(
        *key_names,
        F.col("t").alias("e"),
        F.lit(0).alias("_kind"),
        F.col("c").alias("_c"),
        F.lit(None).cast("long").alias("_r"),
        payload.alias("w"),
    )
    asks = spine.select(
        *key_names,
        "e",
        F.lit(1).alias("_kind"),
        F.lit(None).cast(facts.schema["_c"].dataType).alias("_c"),
        "_r",
        F.lit(None).cast(facts.schema["w"].dataType).alias("w"),
    )
    # At one instant, source rows sort before entity rows (the bound is inclusive) and
    # older created timestamps first (nulls lowest), so the last one is the winner.
    order = (
        Window.partitionBy(*key_names)
        .orderBy(F.col("e").asc_nulls_first(), "_kind", F.col("_c").asc_nulls_first())
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    stacked = facts.unionByName(asks)
    return (
        stacked.withColumn("w", F.last("w", ignorenulls=True).over(order))
        .filter(F.col("_kind") == 1)
        .select("_r", "e", "w")
    )


def _range_join(
    spine: DataFrame, source: DataFrame, view: ViewQuery, ttl_micros: int | None
) -> DataFrame:
    """Entity rows joined to every source row they could see (keys equal, event and created
    time at or before theirs, within TTL), keeping the greatest (event, created) each."""
    from pyspark.sql import functions as F  # noqa: N812

    key_names = [f"k{i}" for i in range(len(view.join_keys))]
    facts = source.select(
        *(F.col(k).alias(f"s{k}") for k in key_names),
        F.col("t").alias("st"),
        F.coalesce(F.col("c"), F.col("t")).alias("sv"),
        F.col("c").alias("sc"),
        F.struct(
            F.col("t").alias("t"),
            *(F.col("p").getField(f"v{i}").alias(f"v{i}") for i in range(len(view.features))),
        ).alias("sw"),
    )
    condition = F.col("st") <= F.col("e")
    for key in key_names:
        condition = condition & (F.col(key) == F.col(f"s{key}"))
    condition = condition & (F.col("sv") <= F.col("e"))
    if ttl_micros is not None:
        condition = condition & (
            F.unix_micros(F.col("st")) >= F.unix_micros(F.col("e")) - F.lit(ttl_micros)
        )
    # Rank created timestamps with nulls lowest: (has a value, value).
    rank = F.struct(
        F.col("st").alias("a"),
        F.col("sc").isNotNull().alias("b"),
        F.col("sc").alias("c"),
    )
    matched = (
        spine.join(facts, condition, "inner")
        .groupBy("_r")
        .agg(F.max_by(F.col("sw"), rank).alias("w"))
    )
    return spine.select("_r", "e").join(matched, "_r", "left")


# --- Arrow <-> Spark ---------------------------------------------------------------------


def _source_frame(session: SparkSession, view: ViewQuery) -> DataFrame:
    """The view's source as ``k0..kn``, ``t``, ``c`` (created or null), ``p`` (struct of
    ``v0..vn``), without rows whose keys or event time are null (they never match)."""
    from pyspark.sql import functions as F  # noqa: N812

    if isinstance(view.source, tuple):
        try:
            frame = session.read.parquet(*view.source)
        except Exception as exc:
            raise BackendError(
                f"Spark could not read the Parquet files of feature view {view.name!r} "
                f"({len(view.source)} files, first {view.source[0]}): {exc}",
                hint="Check the files exist and are readable from every Spark executor.",
            ) from exc
    else:
        frame = _to_spark(session, view.source, what=f"the source of feature view {view.name!r}")
    columns = set(frame.columns)
    needed = [*view.join_keys, view.timestamp, *view.features]
    if view.created_timestamp:
        needed.append(view.created_timestamp)
    missing = [name for name in needed if name not in columns]
    if missing:
        raise BackendError(
            f"The source of feature view {view.name!r} has no column {missing[0]!r}; "
            f"it has {', '.join(sorted(columns))}.",
            hint="Fix the view's definition or its source data.",
        )
    created = (
        F.col(view.created_timestamp) if view.created_timestamp else F.lit(None).cast("timestamp")
    )
    selected = frame.select(
        *(F.col(key).alias(f"k{i}") for i, key in enumerate(view.join_keys)),
        F.col(view.timestamp).alias("t"),
        created.alias("c"),
        F.struct(*(F.col(f).alias(f"v{i}") for i, f in enumerate(view.features))).alias("p"),
    )
    not_null = F.col("t").isNotNull()
    for index in range(len(view.join_keys)):
        not_null = not_null & F.col(f"k{index}").isNotNull()
    return selected.filter(not_null)


def _to_spark(session: SparkSession, table: pa.Table, *, what: str) -> DataFrame:
    try:
        if hasattr(session, "createDataFrame") and _arrow_input_supported():
            return session.createDataFrame(table)
        return session.createDataFrame(table.to_pandas())  # pyspark 3.5: through pandas
    except Exception as exc:
        raise BackendError(
            f"Spark could not load {what} ({table.num_rows} rows, schema {table.schema}): {exc}",
            hint="Spark supports signed integers, floats, strings, booleans, dates and "
            "timestamps; cast other column types before the query.",
        ) from exc


def _arrow_input_supported() -> bool:
    import pyspark

    return int(pyspark.__version__.split(".", 1)[0]) >= 4


def _collect(frame: DataFrame, *, what: str) -> pa.Table:
    try:
        if hasattr(frame, "toArrow"):
            return frame.toArrow()
        legacy: Any = frame  # pyspark 3.5 spells it privately
        return legacy._collect_as_arrow()
    except Exception as exc:
        raise BackendError(
            f"Spark failed while computing {what}: {exc}",
            hint="Check the Spark master and its logs; the query itself is generated by Shipyard.",
        ) from exc


def _source_schema(view: ViewQuery) -> pa.Schema:
    if isinstance(view.source, tuple):
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(view.source[0])
        except (OSError, ValueError) as exc:
            raise BackendError(
                f"Cannot read the schema of {view.source[0]}, a source file of feature view "
                f"{view.name!r}: {exc}",
                hint="Check the file exists and is Parquet.",
            ) from exc
    return view.source.schema


def _append_nulls(
    table: pa.Table, views: Sequence[ViewQuery], schemas: dict[str, pa.Schema]
) -> pa.Table:
    import pyarrow as pa

    for view in views:
        schema = schemas[view.name]
        for feature, output in zip(view.features, view.outputs, strict=True):
            table = table.append_column(
                output, pa.nulls(table.num_rows, schema.field(feature).type)
            )
        if view.event_timestamp_output:
            table = table.append_column(
                view.event_timestamp_output,
                pa.nulls(table.num_rows, pa.timestamp("us", tz="UTC")),
            )
    return table


def _fresh_name(stem: str, taken: Sequence[str]) -> str:
    name, counter = f"__shipyard_{stem}", 0
    while name in taken:
        counter += 1
        name = f"__shipyard_{stem}_{counter}"
    return name


def _micros(moment: datetime, what: str) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"latest_values: {what} must be timezone-aware, got {moment!r}.")
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // _MICROSECOND
