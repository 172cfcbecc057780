"""The online store interface: bulk writes, one-round-trip reads with TTL enforced.

An online store keeps, per feature view and entity key, the latest feature values and
their event timestamp. Writes are newer-wins: a row replaces the stored one only if its
event timestamp is at least as recent, so replaying an old window never regresses a value.
Every read is measured against its ``as_of`` time (now, by default): a value whose age
``as_of - event_ts`` exceeds the view's TTL is returned with status ``expired`` and no
value, never as fresh. Keys not stored are ``missing``. The store keeps only the latest
value; ``as_of`` is the time TTL is measured against, not a time travel.

Implementations: ``online_sqlite.SQLiteOnlineStore`` (default, a file under the project's
``.shipyard/``) and ``online_redis.RedisOnlineStore``; one conformance suite
(``tests/features/test_online_conformance.py``) runs over both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shipyard.features.definitions import Feature
from shipyard.features.encoding import KeyCodec, ValueCodec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["OnlineRow", "OnlineStore", "OnlineView", "PRESENT", "MISSING", "EXPIRED"]

PRESENT = "present"
MISSING = "missing"
EXPIRED = "expired"

OnlineRow = tuple[str, int | None, tuple[Any, ...] | None]
"""One read result: (status, event timestamp in microseconds or None, values or None)."""


@dataclass(frozen=True)
class OnlineView:
    """A feature view as an online store sees it: its keys, features, TTL and codecs.

    ``namespace`` names where its rows live: the view name plus a fingerprint of the key
    and feature layout, so a view whose features change reads nothing stale in an old
    layout (it reads ``missing`` until materialized again).
    """

    name: str
    join_keys: tuple[str, ...]
    key_types: tuple[str, ...]  # "int" | "string", per join key
    features: tuple[Feature, ...]
    ttl_micros: int | None
    namespace: str = field(init=False)
    keys: KeyCodec = field(init=False, repr=False, compare=False)
    values: ValueCodec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        layout = json.dumps(
            [list(self.join_keys), list(self.key_types), [f.spec() for f in self.features]]
        )
        digest = hashlib.sha256(layout.encode()).hexdigest()[:12]
        object.__setattr__(self, "namespace", f"{self.name}:{digest}")
        object.__setattr__(self, "keys", KeyCodec(self.name, self.join_keys, self.key_types))
        object.__setattr__(self, "values", ValueCodec(self.name, self.features))

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features, in declaration order (the order of decoded values)."""
        return tuple(f.name for f in self.features)


@runtime_checkable
class OnlineStore(Protocol):
    """Latest feature values per entity key, read with TTL enforced (see module doc)."""

    identity: str
    """A stable name of the store without secrets (``sqlite:/path``, ``redis://host:6379/0``)."""

    def write_batch(self, view: OnlineView, rows: pa.Table, *, timestamp: str) -> int:
        """Upsert rows (join keys, ``timestamp`` column, features), newer-wins; return count.

        ``rows`` has at most one row per key (callers pass latest values); the whole batch
        is written or, on error, none of it where the backend allows (SQLite: one
        transaction; Redis: pipelined scripts, each all-or-nothing per chunk).
        """
        ...

    def read(self, view: OnlineView, keys: Sequence[str], as_of_micros: int) -> list[OnlineRow]:
        """One result per encoded key (``view.keys.encode``), in order, in one round trip."""
        ...

    def drop(self, view: OnlineView) -> None:
        """Forget every row of ``view``'s namespace."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...


def status_of(event_micros: int, ttl_micros: int | None, as_of_micros: int) -> str:
    """``present`` or ``expired`` (age strictly greater than TTL) for a stored row."""
    if ttl_micros is not None and as_of_micros - event_micros > ttl_micros:
        return EXPIRED
    return PRESENT
