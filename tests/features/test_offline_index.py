"""The DuckDB engine's sorted source index and row-group gather, against a brute-force oracle.

The conformance suite fixes the semantics; these tests reach the index's own paths that
small hand-written tables never take: key codes renumbered and event times ranked when
``codes * time span`` would overflow int64 (forced here by lowering the limit, and reached
for real with timestamps from year 1 to 9999), compound keys mixing integers and strings,
sources split over files and row groups, and the per-process cache noticing a file
rewritten in place.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.core.errors import BackendError
from shipyard.features import offline_index
from shipyard.features.offline import ViewQuery
from shipyard.features.offline_duckdb import DuckDBEngine

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def engine() -> Iterator[DuckDBEngine]:
    offline_index.clear_index_cache()
    with DuckDBEngine(threads=1) as engine:
        yield engine
    offline_index.clear_index_cache()


def _oracle(
    source: list[dict[str, Any]],
    entities: list[dict[str, Any]],
    keys: tuple[str, ...],
    ttl: timedelta | None,
) -> list[Any]:
    """Feature ``v`` of each entity row's winner (``None``: no winner), by brute force."""
    out = []
    for entity in entities:
        best: dict[str, Any] | None = None
        for row in source:
            if any(row[k] is None or row[k] != entity[k] for k in keys):
                continue
            if row["ts"] is None or entity["ts"] is None or row["ts"] > entity["ts"]:
                continue
            if ttl is not None and row["ts"] < entity["ts"] - ttl:
                continue
            rank = (row["ts"], row["created"] is not None, row["created"] or T0)
            if best is None or rank > (
                best["ts"],
                best["created"] is not None,
                best["created"] or T0,
            ):
                best = row
        out.append(None if best is None else best["v"])
    return out


def _random_case(
    seed: int, *, rows: int = 300, wide_times: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)  # noqa: S311 - seeded test data, not secrets
    span = (
        (datetime(9999, 1, 1, tzinfo=UTC) - datetime(1, 1, 2, tzinfo=UTC))
        if wide_times
        else timedelta(days=3)
    )
    start = datetime(1, 1, 2, tzinfo=UTC) if wide_times else T0

    def stamp() -> datetime:
        return start + timedelta(microseconds=rng.randrange(span // timedelta(microseconds=1)))

    seen: set[tuple[Any, ...]] = set()
    source: list[dict[str, Any]] = []
    stamps: list[datetime] = []
    while len(source) < rows:
        ts = rng.choice(stamps) if stamps and rng.random() < 0.3 else stamp()  # equal times
        row = {
            "a": None if rng.random() < 0.03 else rng.randrange(-3, 9),
            "b": None if rng.random() < 0.03 else rng.choice(["x", "y", "zz", ""]),
            "ts": None if rng.random() < 0.03 else ts,
            "created": None if rng.random() < 0.2 else stamp(),
        }
        identity = (row["a"], row["b"], row["ts"], row["created"])
        if identity in seen:
            continue  # exact duplicates have an unspecified winner
        seen.add(identity)
        stamps.append(ts)
        row["v"] = len(source)
        source.append(row)
    entities = [
        {
            "a": rng.randrange(-4, 11),
            "b": rng.choice(["x", "y", "zz", "", "w"]),
            "ts": None
            if rng.random() < 0.03
            else (rng.choice(stamps) if rng.random() < 0.4 else stamp()),
        }
        for _ in range(rows // 2)
    ]
    return source, entities


def _source_table(source: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "a": pa.array([r["a"] for r in source], pa.int32()),
            "b": pa.array([r["b"] for r in source], pa.string()),
            "ts": pa.array([r["ts"] for r in source], TS),
            "created": pa.array([r["created"] for r in source], TS),
            "v": pa.array([r["v"] for r in source], pa.int64()),
        }
    )


def _entity_table(entities: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "a": pa.array([e["a"] for e in entities], pa.int32()),
            "b": pa.array([e["b"] for e in entities], pa.string()),
            "ts": pa.array([e["ts"] for e in entities], TS),
        }
    )


def _query(source: Any, keys: tuple[str, ...], ttl: timedelta | None) -> ViewQuery:
    return ViewQuery(
        "v",
        source,
        keys,
        "ts",
        ("v",),
        created_timestamp="created",
        ttl=ttl,
        event_timestamp_output="v_ts",
    )


@pytest.mark.parametrize("limit", [2**62, 50, 7])
@pytest.mark.parametrize("keys", [("a",), ("b",), ("a", "b")])
@pytest.mark.parametrize("ttl", [None, timedelta(hours=20)])
def test_index_matches_the_oracle_with_and_without_overflow_renumbering(
    engine: DuckDBEngine,
    monkeypatch: pytest.MonkeyPatch,
    limit: int,
    keys: tuple[str, ...],
    ttl: timedelta | None,
) -> None:
    # A tiny limit makes every multiplication "overflow": codes are renumbered and event
    # times ranked, the paths real data reaches only with huge key counts or time spans.
    monkeypatch.setattr(offline_index, "_LIMIT", limit)
    for seed in range(3):
        source, entities = _random_case(seed)
        result = engine.point_in_time_join(
            _entity_table(entities),
            [_query(_source_table(source), keys, ttl)],
            entity_timestamp="ts",
        )
        want = _oracle(source, entities, keys, ttl)
        assert result.column("v").to_pylist() == want
        stamps = result.column("v_ts").to_pylist()
        assert stamps == [None if v is None else source[v]["ts"] for v in want]


def test_timestamps_from_year_1_to_9999_use_ranked_times(engine: DuckDBEngine) -> None:
    source, entities = _random_case(11, rows=200, wide_times=True)
    table = _source_table(source)
    index = offline_index.build_index(table, _query(table, ("a", "b"), None))
    assert index.ranks is not None  # 70 key pairs x 3e17 us would overflow int64
    result = engine.point_in_time_join(
        _entity_table(entities), [_query(table, ("a", "b"), None)], entity_timestamp="ts"
    )
    assert result.column("v").to_pylist() == _oracle(source, entities, ("a", "b"), None)


def test_a_huge_ttl_expires_nothing(engine: DuckDBEngine) -> None:
    source, entities = _random_case(5, rows=100)
    query = _query(_source_table(source), ("a",), timedelta.max)
    result = engine.point_in_time_join(_entity_table(entities), [query], entity_timestamp="ts")
    assert result.column("v").to_pylist() == _oracle(source, entities, ("a",), None)


def test_parquet_files_and_row_groups_give_the_table_answer(
    engine: DuckDBEngine, tmp_path: Path
) -> None:
    source, entities = _random_case(3, rows=400)
    table = _source_table(source)
    paths = []
    for part, (offset, length) in enumerate([(0, 150), (150, 250)]):
        path = tmp_path / f"part-{part}.parquet"
        pq.write_table(table.slice(offset, length), path, row_group_size=37)
        paths.append(str(path))
    rows = _entity_table(entities)
    from_files = engine.point_in_time_join(
        rows, [_query(tuple(paths), ("a", "b"), None)], entity_timestamp="ts"
    )
    from_table = engine.point_in_time_join(
        rows, [_query(table, ("a", "b"), None)], entity_timestamp="ts"
    )
    assert from_files.equals(from_table)
    latest_files = engine.latest_values(_query(tuple(paths), ("a",), None)).sort_by("a")
    latest_table = engine.latest_values(_query(table, ("a",), None)).sort_by("a")
    assert latest_files.equals(latest_table)


def test_a_file_rewritten_in_place_is_reindexed(engine: DuckDBEngine, tmp_path: Path) -> None:
    path = tmp_path / "source.parquet"
    entities = pa.table({"a": pa.array([1], pa.int64()), "ts": pa.array([T0], TS)})
    query = ViewQuery("v", (str(path),), ("a",), "ts", ("v",))

    def write(value: int) -> None:
        pq.write_table(
            pa.table(
                {
                    "a": pa.array([1, 1], pa.int64()),
                    "ts": pa.array([T0 - timedelta(days=1), T0], TS),
                    "v": pa.array([0, value], pa.int64()),
                }
            ),
            path,
        )

    write(10)
    assert engine.point_in_time_join(entities, [query], entity_timestamp="ts").column(
        "v"
    ).to_pylist() == [10]
    pq.write_table(
        pa.table(
            {
                "a": pa.array([1, 2, 1], pa.int64()),
                "ts": pa.array([T0, T0, T0 + timedelta(days=1)], TS),
                "v": pa.array([20, 30, 40], pa.int64()),
            }
        ),
        path,
    )
    assert engine.point_in_time_join(entities, [query], entity_timestamp="ts").column(
        "v"
    ).to_pylist() == [20]


def test_a_missing_or_unreadable_source_file_is_a_backend_error(
    engine: DuckDBEngine, tmp_path: Path
) -> None:
    entities = pa.table({"a": pa.array([1], pa.int64()), "ts": pa.array([T0], TS)})
    missing = ViewQuery("gone", (str(tmp_path / "nope.parquet"),), ("a",), "ts", ("v",))
    with pytest.raises(BackendError, match="'gone'"):
        engine.point_in_time_join(entities, [missing], entity_timestamp="ts")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    broken = ViewQuery("broken", (str(garbage),), ("a",), "ts", ("v",))
    with pytest.raises(BackendError, match="'broken'"):
        engine.point_in_time_join(entities, [broken], entity_timestamp="ts")


def test_integer_keys_outside_the_source_range_match_nothing(engine: DuckDBEngine) -> None:
    source = pa.table(
        {
            "a": pa.array([5, 6], pa.int64()),
            "ts": pa.array([T0, T0], TS),
            "v": pa.array([1, 2], pa.int64()),
        }
    )
    entities = pa.table(
        {
            "a": pa.array([4, 5, 6, 7, None, -(2**63), 2**63 - 1], pa.int64()),
            "ts": pa.array([T0] * 7, TS),
        }
    )
    result = engine.point_in_time_join(
        entities, [ViewQuery("v", source, ("a",), "ts", ("v",))], entity_timestamp="ts"
    )
    assert result.column("v").to_pylist() == [None, 1, 2, None, None, None, None]


def test_the_cache_reuses_an_index_and_drops_ones_over_its_budget(
    engine: DuckDBEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "source.parquet"
    source, entities = _random_case(8, rows=100)
    pq.write_table(_source_table(source), path)
    query = _query((str(path),), ("a",), None)
    first = offline_index.source_index(query)
    assert offline_index.source_index(query) is first
    offline_index.clear_index_cache()
    monkeypatch.setattr(offline_index, "_CACHE_BYTES", first.nbytes - 1)
    again = offline_index.source_index(query)
    assert again is not first
    assert offline_index.source_index(query) is not again  # over budget: never kept
    result = engine.point_in_time_join(_entity_table(entities), [query], entity_timestamp="ts")
    assert result.column("v").to_pylist() == _oracle(source, entities, ("a",), None)
