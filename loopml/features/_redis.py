"""The Redis online store: one string key per (view, entity key), ``"<ts>|<json>"``.

Writes go through a small Lua script so a row only replaces one at least as new (atomic
per key, in batches of 500 keys per call); reads are one ``MGET``. Every key starts with
``prefix`` (setting ``online_key_prefix``), so several workspaces can share a server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from loopml.errors import InvalidInput, MissingDependency, StoreError
from loopml.features._online import Found, Row, encode_values

_BATCH = 500
_WRITE = """
local written = 0
for i, key in ipairs(KEYS) do
  local ts = tonumber(ARGV[2 * i - 1])
  local cur = redis.call('GET', key)
  local keep = false
  if cur then
    local bar = string.find(cur, '|', 1, true)
    keep = tonumber(string.sub(cur, 1, bar - 1)) > ts
  end
  if not keep then
    redis.call('SET', key, ARGV[2 * i - 1] .. '|' .. ARGV[2 * i])
    written = written + 1
  end
end
return written
"""


class RedisOnlineStore:
    """An online store on a Redis server.

    Parameters
    ----------
    url : ``redis://host:port/db``.
    prefix : prepended to every key (``loopml:`` by default).
    """

    def __init__(self, url: str, *, prefix: str = "loopml:") -> None:
        try:
            import redis
        except ModuleNotFoundError as exc:
            raise MissingDependency("redis", "redis") from exc
        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self.url = url
        self.prefix = prefix
        self.name = f"{url}#{prefix}"
        try:
            self._client: Any = redis.Redis.from_url(url)
        except ValueError as exc:
            raise InvalidInput(f"online store {url!r}: {exc}") from None
        self._script = self._client.register_script(_WRITE)

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self.url!r}, prefix={self.prefix!r})"

    def _key(self, view: str, key: str) -> str:
        return f"{self.prefix}{view}:{key}"

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._errors as exc:
            raise StoreError(f"Redis online store {self.url} failed to {what}: {exc}") from exc

    def write(self, view: str, rows: Sequence[Row]) -> int:
        """Write rows in batches; a stored row with a newer timestamp is kept."""
        written = 0
        for start in range(0, len(rows), _BATCH):
            chunk = rows[start : start + _BATCH]
            keys = [self._key(view, key) for key, _, _ in chunk]
            args: list[Any] = []
            for _, ts, values in chunk:
                args += [int(ts), encode_values(values)]
            written += int(self._call("write", self._script, keys, args))
        return written

    def read(self, view: str, keys: Sequence[str]) -> list[Found]:
        """One MGET for all ``keys``."""
        if not keys:
            return []
        raw = self._call("read", self._client.mget, [self._key(view, k) for k in keys])
        out: list[Found] = []
        for value in raw:
            if value is None:
                out.append(None)
                continue
            ts, _, body = value.partition(b"|")
            out.append((int(ts), json.loads(body)))
        return out

    def _scan(self, view: str) -> list[bytes]:
        pattern = self._key(view, "*").replace("[", "\\[")
        return list(self._call("scan", self._client.scan_iter, pattern, 1000))

    def count(self, view: str) -> int:
        """How many keys ``view`` has (a SCAN: for tests and tools, not the hot path)."""
        return len(self._scan(view))

    def delete_view(self, view: str) -> None:
        """Delete every key of ``view``."""
        keys = self._scan(view)
        for start in range(0, len(keys), _BATCH):
            self._call("delete", self._client.delete, *keys[start : start + _BATCH])

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
