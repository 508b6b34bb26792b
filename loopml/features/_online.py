"""Online stores: the latest feature values per entity key, for low-latency lookups.

An :class:`OnlineStore` keeps, per feature view and entity key, one row: the source
timestamp of the values (ms since the epoch) and the values themselves. A write only
replaces a row with one at least as new, so replaying a window or a stream is harmless.
:class:`SqliteOnlineStore` is the default (a file in the workspace);
:class:`~loopml.features._redis.RedisOnlineStore` is the shared one. The settings
``online_store`` / ``online_key_prefix`` choose it
(:func:`~loopml.features._stores.open_online_store`).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from loopml.errors import InvalidInput

Row = tuple[str, int, Mapping[str, Any]]  # (entity key, timestamp ms, {feature: value})
Found = tuple[int, dict[str, Any]] | None  # (timestamp ms, values) or nothing stored


@runtime_checkable
class OnlineStore(Protocol):
    """Where online feature values live; ``name`` identifies it (for watermarks)."""

    name: str

    def write(self, view: str, rows: Sequence[Row]) -> int:
        """Store rows; keep an existing row that is newer. Returns the rows written."""
        ...

    def read(self, view: str, keys: Sequence[str]) -> list[Found]:
        """The stored row of each key, in order (None where nothing is stored)."""
        ...

    def count(self, view: str) -> int:
        """How many entity keys the view has."""
        ...

    def delete_view(self, view: str) -> None:
        """Forget every row of ``view``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def encode_key(values: Sequence[Any]) -> str:
    """One string for an entity's join key values (``[42]`` -> ``'[42]'``)."""
    try:
        return json.dumps([_plain(v) for v in values], separators=(",", ":"))
    except TypeError as exc:
        raise InvalidInput(f"entity key {list(values)!r} is not a plain value: {exc}") from None


def encode_values(values: Mapping[str, Any]) -> str:
    """The JSON text of a row's feature values (NaN becomes null)."""
    out = {}
    for k, v in values.items():
        v = _plain(v)
        out[k] = None if isinstance(v, float) and math.isnan(v) else v
    return json.dumps(out, separators=(",", ":"))


class SqliteOnlineStore:
    """An online store in one SQLite file (WAL mode), safe across threads and processes.

    Parameters
    ----------
    path : the database file (created with its folder if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"sqlite://{self.path.resolve()}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=60, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS online_features (view TEXT NOT NULL, key TEXT NOT NULL, "
            "ts INTEGER NOT NULL, value TEXT NOT NULL, PRIMARY KEY (view, key)) WITHOUT ROWID"
        )

    def __repr__(self) -> str:
        return f"SqliteOnlineStore({str(self.path)!r})"

    def write(self, view: str, rows: Sequence[Row]) -> int:
        """Upsert rows, keeping a stored row with a newer timestamp."""
        if not rows:
            return 0
        params = [(view, key, int(ts), encode_values(values)) for key, ts, values in rows]
        with self._lock:
            before = self._conn.total_changes
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO online_features (view, key, ts, value) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (view, key) DO UPDATE SET ts = excluded.ts, "
                    "value = excluded.value WHERE excluded.ts >= online_features.ts",
                    params,
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return self._conn.total_changes - before

    def read(self, view: str, keys: Sequence[str]) -> list[Found]:
        """The stored rows of ``keys`` (None where missing)."""
        if not keys:
            return []
        found: dict[str, tuple[int, str]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                query = (
                    "SELECT key, ts, value FROM online_features "
                    f"WHERE view = ? AND key IN ({marks})"
                )
                cur = self._conn.execute(query, [view, *chunk])
                for key, ts, value in cur:
                    found[key] = (ts, value)
        out: list[Found] = []
        for key in keys:
            hit = found.get(key)
            out.append(None if hit is None else (hit[0], json.loads(hit[1])))
        return out

    def count(self, view: str) -> int:
        """How many keys ``view`` has."""
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*) FROM online_features WHERE view = ?", [view]
            ).fetchone()
        return int(row[0])

    def delete_view(self, view: str) -> None:
        """Delete every row of ``view``."""
        with self._lock:
            self._conn.execute("DELETE FROM online_features WHERE view = ?", [view])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
