"""Pushing events into a feature view: the online store at once, the offline store in batches.

An event is a JSON object with the view's join keys, its timestamp field (ISO text, or
milliseconds since the epoch) and feature values. The :class:`Ingestor` writes each batch
of events to the online store as it arrives and buffers it for the offline store (the
view's source dataset), which gets one appended version per flush. Brokers acknowledge
events only after the flush that holds them, so a consumer that dies is re-sent what it
had not flushed: the online write is idempotent (a row replaces one at least as new) and
the offline append skips rows whose keys and timestamp the dataset already holds, so a
restart neither loses nor duplicates an event.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopml.data import append, resolve
from loopml.errors import InvalidInput
from loopml.features._online import OnlineStore, encode_key
from loopml.features._registry import Registered, get
from loopml.features._source import connect, is_dataset_ref, quote
from loopml.store import Workspace, now_ms

_SAMPLES = 200_000  # freshness samples kept (the newest)


@dataclass
class IngestStats:
    """What an ingestion run did."""

    events: int = 0
    rejected: int = 0
    offline_rows: int = 0
    duplicates_skipped: int = 0
    flushes: int = 0
    last_error: str = ""
    freshness_ms: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        """The counts, plus freshness percentiles (event produced -> online write)."""
        out: dict[str, Any] = {
            k: v for k, v in self.__dict__.items() if k not in ("freshness_ms", "last_error")
        }
        if self.freshness_ms:
            arr = np.asarray(self.freshness_ms)
            out["freshness_p50_ms"] = round(float(np.percentile(arr, 50)), 1)
            out["freshness_p99_ms"] = round(float(np.percentile(arr, 99)), 1)
        if self.last_error:
            out["last_error"] = self.last_error
        return out


@dataclass(frozen=True)
class Event:
    """One parsed event."""

    key: str
    ts_ms: int
    values: dict[str, Any]
    row: dict[str, Any]


class Ingestor:
    """Writes events of one feature view to the online store and its source dataset.

    Parameters
    ----------
    ws : the workspace holding the view and its source dataset.
    view : the feature view's name; its source must be a dataset reference.
    store : the online store to write.
    batch_rows : flush to the offline store once this many events are buffered...
    flush_interval : ...or once the oldest buffered event waited this many seconds.
    """

    def __init__(
        self,
        ws: Workspace,
        view: str,
        store: OnlineStore,
        *,
        batch_rows: int = 5_000,
        flush_interval: float = 1.0,
    ) -> None:
        if batch_rows < 1:
            raise InvalidInput(f"batch_rows must be at least 1, got {batch_rows}")
        if flush_interval <= 0:
            raise InvalidInput(f"flush_interval must be positive, got {flush_interval}")
        self.ws = ws
        self.view: Registered = get(ws, "feature_view", view)
        source = self.view.spec["source"]
        if not is_dataset_ref(source):
            raise InvalidInput(
                f"feature view {view!r}: its source is SQL; stream into a view whose source "
                "is a dataset reference (e.g. 'txns@latest')"
            )
        base = resolve(source, workspace=ws)
        self.dataset = base.name
        self._kinds = {c.name: _kind(c.arrow_type) for c in base.columns}
        self.keys: list[str] = []
        for entity in self.view.spec["entities"]:
            self.keys += get(ws, "entity", entity).spec["join_keys"]
        self.ts_field: str = self.view.spec["timestamp_field"]
        self.features = [f["name"] for f in self.view.spec["features"]]
        self.store = store
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.stats = IngestStats()
        self._buffer: list[Event] = []
        self._oldest: float | None = None
        self._offline_lock = threading.Lock()

    # -- parsing -------------------------------------------------------------------------
    def parse(self, payload: bytes | str | Mapping[str, Any]) -> Event:
        """An event from its JSON (InvalidInput naming what is wrong)."""
        if isinstance(payload, bytes | str):
            try:
                payload = json.loads(payload)
            except ValueError as exc:
                raise InvalidInput(f"event is not JSON: {exc}") from None
        if not isinstance(payload, Mapping):
            raise InvalidInput(f"event must be a JSON object, got {type(payload).__name__}")
        missing = [c for c in [*self.keys, self.ts_field] if c not in payload]
        if missing:
            raise InvalidInput(f"event has no {missing[0]!r}")
        ts = payload[self.ts_field]
        if isinstance(ts, bool) or not isinstance(ts, int | float | str):
            raise InvalidInput(f"event field {self.ts_field!r} must be ISO text or epoch ms")
        if isinstance(ts, str):
            try:
                stamp = pd.Timestamp(ts)
            except ValueError as exc:
                raise InvalidInput(f"event field {self.ts_field!r}: {exc}") from None
            if stamp.tzinfo is None:
                stamp = stamp.tz_localize("UTC")
            ts_ms = int(stamp.value // 1_000_000)
        else:
            if not math.isfinite(ts):
                raise InvalidInput(f"event field {self.ts_field!r} is not finite")
            ts_ms = int(ts)
        values = {f: payload.get(f) for f in self.features}
        for name in [*self.keys, *self.features]:
            if not _fits(payload.get(name), self._kinds.get(name)):
                raise InvalidInput(
                    f"event field {name!r} is {payload.get(name)!r}, which does not fit the "
                    f"dataset's {self._kinds.get(name)} column"
                )
        key = encode_key([payload[k] for k in self.keys])
        row = {**{k: payload[k] for k in self.keys}, self.ts_field: ts_ms, **values}
        return Event(key, ts_ms, values, row)

    # -- writing -------------------------------------------------------------------------
    def add(
        self, payloads: Sequence[bytes | str | Mapping[str, Any]], produced_ms: Sequence[int]
    ) -> None:
        """Parse a batch, write it online, and buffer it for the offline store.

        A malformed event is counted as rejected (``stats.last_error`` says why) and
        dropped: it would fail the same way on every redelivery.
        """
        events: list[Event] = []
        produced: list[int] = []
        for payload, made in zip(payloads, produced_ms, strict=True):
            try:
                events.append(self.parse(payload))
                produced.append(made)
            except InvalidInput as exc:
                self.stats.rejected += 1
                self.stats.last_error = str(exc)
        if events:
            self.store.write(self.view.name, [(e.key, e.ts_ms, e.values) for e in events])
            done = now_ms()
            self.stats.freshness_ms += [done - p for p in produced]
            if len(self.stats.freshness_ms) > _SAMPLES:
                del self.stats.freshness_ms[: -_SAMPLES // 2]
            self.stats.events += len(events)
            self._buffer += events
            if self._oldest is None:
                self._oldest = time.monotonic()

    @property
    def buffered(self) -> int:
        """Events waiting for the offline flush."""
        return len(self._buffer)

    def due(self) -> bool:
        """Whether the buffer should be flushed now."""
        if not self._buffer:
            return False
        waited = time.monotonic() - (self._oldest or time.monotonic())
        return len(self._buffer) >= self.batch_rows or waited >= self.flush_interval

    def take(self) -> list[Event]:
        """Detach the buffered events (to write them offline, maybe in another thread)."""
        events, self._buffer, self._oldest = self._buffer, [], None
        return events

    def flush(self) -> int:
        """Append the buffered events to the source dataset; returns the rows appended."""
        return self.write_offline(self.take())

    def write_offline(self, events: Sequence[Event]) -> int:
        """Append ``events`` to the source dataset, skipping rows it already holds (same
        keys and timestamp); returns the rows appended. One writer at a time."""
        if not events:
            return 0
        with self._offline_lock:
            base = resolve(f"{self.dataset}@latest", workspace=self.ws)
            schema = base.to_arrow().schema
            frame = pd.DataFrame([e.row for e in events])
            frame[self.ts_field] = pd.to_datetime(frame[self.ts_field], unit="ms", utc=True)
            frame = frame.drop_duplicates([*self.keys, self.ts_field], keep="last")
            new = self._new_rows(base.path(), frame)
            if len(new):
                table = _conform(new, schema, self.ts_field)
                append(base, table, normalize_columns=False, workspace=self.ws)
            self.stats.duplicates_skipped += len(events) - len(new)
            self.stats.offline_rows += len(new)
            self.stats.flushes += 1
        return len(new)

    def _new_rows(self, path: Any, frame: pd.DataFrame) -> pd.DataFrame:
        con = connect()
        try:
            con.register("batch", frame)
            cols = [*self.keys, self.ts_field]
            on = " AND ".join(
                f"CAST(b.{quote(c)} AS TIMESTAMP) = CAST(d.{quote(c)} AS TIMESTAMP)"
                if c == self.ts_field
                else f"b.{quote(c)} = d.{quote(c)}"
                for c in cols
            )
            p = str(path).replace("'", "''")
            new: pd.DataFrame = con.sql(
                f"SELECT b.* FROM batch b ANTI JOIN read_parquet('{p}') d ON {on}"
            ).df()
        finally:
            con.close()
        return new


def _kind(arrow_type: str) -> str:
    """The JSON value kind a column of this Arrow type takes."""
    if arrow_type == "bool":
        return "boolean"
    if arrow_type.startswith(("int", "uint")):
        return "integer"
    if arrow_type in ("double", "float", "halffloat") or arrow_type.startswith("decimal"):
        return "number"
    if arrow_type in ("string", "large_string"):
        return "string"
    return "other"


def _fits(value: Any, kind: str | None) -> bool:
    """Whether a JSON value can go into a column of ``kind`` (null always can)."""
    if value is None or kind in (None, "other"):
        return True
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float)
    return isinstance(value, str)


def _conform(frame: pd.DataFrame, schema: pa.Schema, ts_field: str) -> pa.Table:
    """``frame`` as a table of exactly ``schema`` (absent columns null)."""
    arrays = []
    for f in schema:
        if f.name not in frame.columns:
            arrays.append(pa.nulls(len(frame), f.type))
            continue
        col = frame[f.name]
        if f.name == ts_field and pa.types.is_timestamp(f.type) and f.type.tz is None:
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        try:
            arrays.append(pa.array(col, from_pandas=True).cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            msg = f"event field {f.name!r} does not fit column type {f.type}: {exc}"
            raise InvalidInput(msg) from None
    return pa.Table.from_arrays(arrays, schema=schema)
