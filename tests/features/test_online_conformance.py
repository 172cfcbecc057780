"""One conformance suite for every online store (SQLite, Redis): same writes, same reads.

TTL is enforced on every read against the read's as-of time (age > TTL: ``expired``, no
value), writes are newer-wins, keys not written are ``missing``, and every value type
round-trips exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from shipyard.core.errors import DataContractError
from shipyard.features.definitions import Feature
from shipyard.features.encoding import micros
from shipyard.features.online import OnlineStore, OnlineView
from tests.features import fixtures
from tests.features.fixtures import TS, at

redis_prefix_uri = fixtures.redis_prefix_uri

HOUR = 3_600_000_000


@pytest.fixture(params=["sqlite", "redis"])
def online(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        from shipyard.features.online_sqlite import SQLiteOnlineStore

        store: OnlineStore = SQLiteOnlineStore(tmp_path / "online.db")
    else:
        from shipyard.features.online_redis import RedisOnlineStore

        store = RedisOnlineStore(request.getfixturevalue("redis_prefix_uri"))
    try:
        yield store
    finally:
        store.close()


def view(ttl_hours: float | None = 2, features: list[Feature] | None = None) -> OnlineView:
    return OnlineView(
        "stats",
        ("customer_id",),
        ("int",),
        tuple(features or [Feature("f0", "float64"), Feature("f1", "int64")]),
        None if ttl_hours is None else int(ttl_hours * HOUR),
    )


def rows(
    ids: list[int], hours: list[float], f0: list[float | None], f1: list[int | None]
) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "ts": pa.array([at(h) for h in hours], TS),
            "f0": pa.array(f0, pa.float64()),
            "f1": pa.array(f1, pa.int64()),
        }
    )


def read(store: OnlineStore, v: OnlineView, ids: list[object], hours: float) -> list[tuple]:
    keys = [v.keys.encode([v.keys.check("customer_id", "int", i)]) for i in ids]
    return store.read(v, keys, micros(at(hours)))


def test_store_satisfies_the_protocol(online: OnlineStore) -> None:
    assert isinstance(online, OnlineStore)
    assert "password" not in online.identity


def test_present_missing_and_expired_in_one_read_in_request_order(online: OnlineStore) -> None:
    v = view()
    assert online.write_batch(v, rows([1, 2], [1, 3], [1.5, 2.5], [10, None]), timestamp="ts") == 2
    result = read(online, v, [2, 9, 1], hours=3.5)
    assert result[0] == ("present", micros(at(3)), (2.5, None))
    assert result[1] == ("missing", None, None)
    # Customer 1's value is 2.5 h old at 3.5 h: past its 2 h TTL, so no value is served.
    assert result[2] == ("expired", micros(at(1)), None)


def test_ttl_is_measured_against_each_reads_as_of_time_inclusively(online: OnlineStore) -> None:
    v = view(ttl_hours=2)
    online.write_batch(v, rows([1], [1], [1.0], [1]), timestamp="ts")
    assert read(online, v, [1], hours=3)[0][0] == "present"  # exactly 2 h old: still valid
    just_after = micros(at(3)) + 1
    key = v.keys.encode([1])
    assert online.read(v, [key], just_after)[0][0] == "expired"
    assert read(online, v, [1], hours=1.5)[0][0] == "present"


def test_no_ttl_never_expires(online: OnlineStore) -> None:
    v = view(ttl_hours=None)
    online.write_batch(v, rows([1], [1], [1.0], [1]), timestamp="ts")
    assert read(online, v, [1], hours=10_000)[0][0] == "present"


def test_writes_are_newer_wins(online: OnlineStore) -> None:
    v = view(ttl_hours=None)
    online.write_batch(v, rows([1, 2], [5, 5], [5.0, 5.0], [5, 5]), timestamp="ts")
    # An older replay does not regress customer 1; an equal time replaces; newer replaces.
    online.write_batch(v, rows([1], [4], [4.0], [4]), timestamp="ts")
    online.write_batch(v, rows([2], [5], [5.5], [6]), timestamp="ts")
    assert read(online, v, [1, 2], hours=6) == [
        ("present", micros(at(5)), (5.0, 5)),
        ("present", micros(at(5)), (5.5, 6)),
    ]
    online.write_batch(v, rows([1], [7], [7.0], [7]), timestamp="ts")
    assert read(online, v, [1], hours=8)[0] == ("present", micros(at(7)), (7.0, 7))


def test_every_supported_type_round_trips(online: OnlineStore) -> None:
    features = [
        Feature("b", "bool"),
        Feature("i8", "int8"),
        Feature("u32", "uint32"),
        Feature("f32", "float32"),
        Feature("s", "string"),
        Feature("raw", "binary"),
        Feature("d", "date32"),
        Feature("t", "timestamp[us, tz=UTC]"),
    ]
    v = view(features=features)
    table = pa.table(
        {
            "customer_id": pa.array([1, 2], pa.int64()),
            "ts": pa.array([at(1), at(1)], TS),
            "b": pa.array([True, None]),
            "i8": pa.array([-5, None], pa.int8()),
            "u32": pa.array([4_000_000_000, 0], pa.uint32()),
            "f32": pa.array([0.5, None], pa.float32()),
            "s": pa.array(["héllo ✓", None]),
            "raw": pa.array([b"\x00\xff", b""]),
            "d": pa.array([date(2026, 3, 1), None], pa.date32()),
            "t": pa.array([at(2), None], TS),
        }
    )
    online.write_batch(v, table, timestamp="ts")
    first, second = read(online, v, [1, 2], hours=1)
    assert first[2] == (
        True,
        -5,
        4_000_000_000,
        0.5,
        "héllo ✓",
        b"\x00\xff",
        date(2026, 3, 1),
        at(2),
    )
    assert second[2] == (None, None, 0, None, None, b"", None, None)


def test_string_and_compound_keys(online: OnlineStore) -> None:
    v = OnlineView(
        "orders", ("order_id", "region"), ("int", "string"), (Feature("x", "float64"),), None
    )
    table = pa.table(
        {
            "order_id": pa.array([1, 1], pa.int64()),
            "region": ["eu", 'u"s,[1]'],
            "ts": pa.array([at(1), at(1)], TS),
            "x": [1.0, 2.0],
        }
    )
    online.write_batch(v, table, timestamp="ts")
    keys = [v.keys.encode([1, 'u"s,[1]']), v.keys.encode([1, "eu"]), v.keys.encode([2, "eu"])]
    assert [r[2] for r in online.read(v, keys, micros(at(1)))] == [(2.0,), (1.0,), None]


def test_a_changed_feature_layout_reads_missing_not_stale_bytes(online: OnlineStore) -> None:
    old = view()
    online.write_batch(old, rows([1], [1], [1.0], [1]), timestamp="ts")
    new = view(features=[Feature("f0", "float64"), Feature("f1", "string")])
    assert new.namespace != old.namespace
    assert read(online, new, [1], hours=1)[0][0] == "missing"
    online.drop(old)
    assert read(online, old, [1], hours=1)[0][0] == "missing"


def test_many_keys_in_one_read_and_bulk_write(online: OnlineStore) -> None:
    v = view(ttl_hours=None)
    n = 5_000
    table = pa.table(
        {
            "customer_id": pa.array(range(n), pa.int64()),
            "ts": pa.array([at(1)] * n, TS),
            "f0": pa.array([float(i) for i in range(n)]),
            "f1": pa.array(list(range(n)), pa.int64()),
        }
    )
    assert online.write_batch(v, table, timestamp="ts") == n
    wanted = list(range(0, n + 100, 7))
    result = read(online, v, wanted, hours=2)
    for key, (status, _, values) in zip(wanted, result, strict=True):
        if key < n:
            assert status == "present" and values == (float(key), key)
        else:
            assert status == "missing"


def test_wrong_key_type_is_refused_naming_the_key() -> None:
    v = view()
    with pytest.raises(DataContractError, match="'customer_id' of feature view 'stats' is '7'"):
        v.keys.check("customer_id", "int", "7")
    with pytest.raises(DataContractError, match="expected an integer"):
        v.keys.check("customer_id", "int", True)


def test_unsupported_feature_type_is_refused_naming_the_feature() -> None:
    with pytest.raises(DataContractError, match="Feature 'tags' of view 'stats'"):
        view(features=[Feature("tags", "float16")])


def test_redis_uri_is_checked() -> None:
    from shipyard.core.errors import ConfigError
    from shipyard.features.online_redis import RedisOnlineStore

    with pytest.raises(ConfigError, match="not a Redis URI"):
        RedisOnlineStore("http://127.0.0.1:6379")


def test_unreachable_redis_is_a_clear_error() -> None:
    from shipyard.core.errors import BackendUnavailableError
    from shipyard.features.online_redis import RedisOnlineStore

    with pytest.raises(BackendUnavailableError, match="Cannot reach the Redis online store"):
        RedisOnlineStore("redis://127.0.0.1:1/0")


def test_ttl_microseconds_precision() -> None:
    v = view(ttl_hours=None)
    assert v.ttl_micros is None
    assert view(ttl_hours=1).ttl_micros == timedelta(hours=1) // timedelta(microseconds=1)
