"""The scale-out online store: Redis, one string per entity key, one round trip per read.

A row is ``PREFIX + namespace + ":" + key`` -> 8 bytes of event timestamp (big-endian,
offset by 2**63 so byte order is time order) followed by the packed values. A read is one
``GET`` (one entity) or one ``MGET`` (many). Writes go through a server-side script that
keeps the newer row, called with up to 1,000 keys at a time and pipelined, so
materializing 100,000 keys is a few hundred round trips, not 100,000.

The URI is ``redis://[:password@]host:port/db``; ``?prefix=...`` sets the key prefix
(default ``shipyard:features:``), so several projects can share one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from shipyard.core.errors import BackendError, BackendUnavailableError, ConfigError
from shipyard.features.online import EXPIRED, MISSING, PRESENT, OnlineRow, OnlineView

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["RedisOnlineStore"]

_OFFSET = 1 << 63
_CHUNK = 1_000
_DEFAULT_PREFIX = "shipyard:features:"
# Newer-wins upsert of many keys: compare the 8-byte big-endian timestamps byte by byte
# (string comparison in Redis's Lua may follow the server's locale).
_UPSERT_SCRIPT = """
local written = 0
for i, key in ipairs(KEYS) do
  local new = ARGV[i]
  local old = redis.call('GET', key)
  local newer = true
  if old then
    for j = 1, 8 do
      local a, b = string.byte(new, j), string.byte(old, j)
      if a ~= b then newer = a > b; break end
    end
  end
  if newer then redis.call('SET', key, new); written = written + 1 end
end
return written
"""


def _split_uri(uri: str) -> tuple[str, str, str]:
    """(URI for redis-py without our options, key prefix, identity without secrets)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"Online store URI {uri!r} is not a Redis URI.",
            hint="Write redis://HOST:PORT/DB (e.g. redis://127.0.0.1:6379/0) in [features] "
            "online, or 'sqlite' for the embedded store.",
        )
    query = parse_qs(parts.query)
    prefix = query.pop("prefix", [_DEFAULT_PREFIX])[0]
    if not prefix or len(prefix) > 128:
        raise ConfigError(f"Online store URI {uri!r} has an empty or too long prefix.")
    clean = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    host = parts.hostname or "localhost"
    port = parts.port or 6379
    database = parts.path.lstrip("/") or "0"
    return clean, prefix, f"{parts.scheme}://{host}:{port}/{database}?prefix={prefix}"


class RedisOnlineStore:
    """Online values in Redis (see module docstring)."""

    def __init__(self, uri: str) -> None:
        import redis

        clean, self.prefix, self.identity = _split_uri(uri)
        try:
            self._client: Any = redis.Redis.from_url(
                clean, socket_connect_timeout=5, socket_timeout=30
            )
            self._client.ping()
            self._upsert = self._client.register_script(_UPSERT_SCRIPT)
        except (redis.RedisError, ValueError) as exc:
            raise BackendUnavailableError(
                f"Cannot reach the Redis online store {self.identity}: {exc}",
                hint="Check the server runs and [features] online names it.",
            ) from exc

    # --- OnlineStore -----------------------------------------------------------------------

    def write_batch(self, view: OnlineView, rows: pa.Table, *, timestamp: str) -> int:
        """Upsert ``rows`` newer-wins, 1,000 keys per script call, pipelined."""
        import pyarrow as pa
        import redis

        if rows.num_rows == 0:
            return 0
        keys = view.keys.encode_columns([rows.column(k) for k in view.join_keys])
        stamps = rows.column(timestamp).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        values = view.values.encode_columns([rows.column(f.name) for f in view.features])
        head = f"{self.prefix}{view.namespace}:"
        payload = [
            (ts + _OFFSET).to_bytes(8, "big") + value
            for ts, value in zip(stamps.to_pylist(), values, strict=True)
        ]
        names = [head + key for key in keys]
        try:
            pipe = self._client.pipeline(transaction=False)
            for start in range(0, len(names), _CHUNK):
                stop = start + _CHUNK
                self._upsert(keys=names[start:stop], args=payload[start:stop], client=pipe)
                if (start // _CHUNK) % 50 == 49:
                    pipe.execute()
            pipe.execute()
        except redis.RedisError as exc:
            raise BackendError(
                f"Writing feature view {view.name!r} to Redis {self.identity} failed: {exc}",
                hint="Check the server's memory and connectivity, then materialize again "
                "(writes are newer-wins, so repeating is safe).",
            ) from exc
        return len(names)

    def read(self, view: OnlineView, keys: Sequence[str], as_of_micros: int) -> list[OnlineRow]:
        """Stored rows of ``keys`` with their status; one GET or MGET."""
        import redis

        head = f"{self.prefix}{view.namespace}:"
        try:
            if len(keys) == 1:
                found = [self._client.get(head + keys[0])]
            else:
                found = self._client.mget([head + key for key in keys])
        except redis.RedisError as exc:
            raise BackendError(
                f"Reading feature view {view.name!r} from Redis {self.identity} failed: {exc}"
            ) from exc
        ttl = view.ttl_micros
        decode = view.values.decode
        out: list[OnlineRow] = []
        for blob in found:
            if blob is None:
                out.append((MISSING, None, None))
                continue
            ts = int.from_bytes(blob[:8], "big") - _OFFSET
            if ttl is not None and as_of_micros - ts > ttl:
                out.append((EXPIRED, ts, None))
            else:
                out.append((PRESENT, ts, decode(blob[8:])))
        return out

    def drop(self, view: OnlineView) -> None:
        """Delete every key of the view's namespace (SCAN + UNLINK in batches)."""
        import redis

        pattern = f"{self.prefix}{view.namespace}:*"
        try:
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._client.unlink(*batch)
                    batch.clear()
            if batch:
                self._client.unlink(*batch)
        except redis.RedisError as exc:
            raise BackendError(
                f"Clearing {view.name!r} in Redis {self.identity} failed: {exc}"
            ) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
