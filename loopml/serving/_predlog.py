"""The prediction log: every prediction and feedback label, buffered off the request path
and written as hourly Parquet partitions into the blob store.

:class:`PredictionLogger` keeps references to each predicted batch in a bounded in-memory
buffer; a background thread turns them into Arrow tables, one Parquet blob per
(deployment, kind, hour) and flush, indexed in the ``log_partitions`` table. A full buffer
drops log rows (counted in :attr:`PredictionLogger.dropped`), never requests. A failed
write keeps its rows for the next flush and is reported, never raised into the server.
The readers (:func:`read_predictions`, :func:`read_feedback`,
:func:`labelled_predictions`, in ``_predread``) query them with DuckDB.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.errors import InvalidInput
from loopml.store import Workspace, now_ms
from loopml.store.schema import log_partitions

Kind = Literal["predictions", "feedback", "errors"]
HOUR_MS = 3_600_000
TS_TYPE = pa.timestamp("ms", tz="UTC")
log = logging.getLogger("loopml.serving")


@dataclass(frozen=True)
class _Entry:
    """One logged batch, held by reference until the flush thread converts it."""

    kind: Kind
    deployment: str
    ts: int
    rows: int
    payload: tuple[Any, ...]


def _hour_of(ts: int) -> int:
    return ts - ts % HOUR_MS


def _repeat(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    return pa.array(np.full(n, value, dtype=object), type_) if n else pa.array([], type_)


def _prediction_table(entries: list[_Entry]) -> pa.Table:
    """One table of batches that share model, version, role, input columns and classes."""
    first = entries[0].payload
    model, version, role, classes = first[0], first[1], first[2], first[7]
    counts = [e.rows for e in entries]
    n = sum(counts)
    cols: dict[str, pa.Array] = {
        "request_id": pa.array([r for e in entries for r in e.payload[3]], pa.string()),
        "ts": pa.array(np.repeat(np.array([e.ts for e in entries], np.int64), counts), TS_TYPE),
        "deployment": _repeat(entries[0].deployment, n, pa.string()),
        "model": _repeat(model, n, pa.string()),
        "version": pa.array(np.full(n, version, dtype=np.int32)),
        "role": _repeat(role, n, pa.string()),
        "latency_ms": pa.array(np.repeat(np.array([e.payload[8] for e in entries], float), counts)),
    }
    inputs = [e.payload[4] for e in entries]
    frame = pa.Table.from_pandas(
        inputs[0] if len(inputs) == 1 else pd.concat(inputs, ignore_index=True),
        preserve_index=False,
    )
    for name, column in zip(frame.column_names, frame.columns, strict=True):
        cols[f"input.{name}"] = column.combine_chunks()
    parts = []
    for e in entries:
        values = np.asarray(e.payload[5])
        parts.append(values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values)
    values = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if len(values) != n:
        raise ValueError(f"{len(values)} predictions for {n} rows")
    cols["prediction"] = pa.array(values if values.ndim == 1 else list(values))
    if first[6] is not None:
        p = np.vstack([np.asarray(e.payload[6], dtype=np.float64) for e in entries])
        labels = list(classes) if classes is not None else list(range(p.shape[1]))
        if p.ndim != 2 or p.shape != (n, len(labels)):
            raise ValueError(
                f"probabilities of shape {p.shape} for {n} rows, {len(labels)} classes"
            )
        for j, label in enumerate(labels):
            cols[f"proba.{label}"] = pa.array(p[:, j])
    return pa.table(cols)


def _feedback_table(entries: list[_Entry]) -> pa.Table:
    counts = [e.rows for e in entries]
    labels = [label for e in entries for label in e.payload[1]]
    return pa.table(
        {
            "request_id": pa.array([r for e in entries for r in e.payload[0]], pa.string()),
            "ts": pa.array(np.repeat(np.array([e.ts for e in entries], np.int64), counts), TS_TYPE),
            "label": labels,
        }
    )


def _errors_table(entries: list[_Entry]) -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([e.payload[0] for e in entries], pa.string()),
            "ts": pa.array(np.array([e.ts for e in entries], np.int64), TS_TYPE),
            "status": pa.array([e.payload[1] for e in entries], pa.int16()),
            "error": pa.array([e.payload[2] for e in entries], pa.string()),
        }
    )


_BUILDERS = {"predictions": _prediction_table, "feedback": _feedback_table, "errors": _errors_table}


def _same_shape(e: _Entry) -> tuple[Any, ...]:
    """What batches must share to become one table in one step."""
    if e.kind != "predictions":
        return ()
    model, version, role, _, inputs, _, proba, classes, _ = e.payload
    dtypes = tuple(zip(inputs.columns, map(str, inputs.dtypes), strict=True))
    return (model, version, role, dtypes, proba is None, tuple(classes or ()))


def _tables(entries: list[_Entry]) -> list[tuple[pa.Table, list[_Entry]]]:
    """Arrow tables of ``entries`` (one per shape); raises only for a single bad batch."""
    build = _BUILDERS[entries[0].kind]
    shapes: dict[tuple[Any, ...], list[_Entry]] = {}
    for e in entries:
        shapes.setdefault(_same_shape(e), []).append(e)
    out = []
    for group in shapes.values():
        try:
            out.append((build(group), group))
        except Exception:
            if len(group) == 1:
                raise
            out.extend((build([e]), [e]) for e in group)  # find the bad batch below
    return out


class PredictionLogger:
    """Buffers predictions and feedback and writes them to the workspace in the background.

    Parameters
    ----------
    ws : the workspace whose blob store and ``log_partitions`` table receive the logs.
    max_buffer_rows : rows held in memory at most (buffered plus being written); rows that
        would exceed it are dropped and counted in :attr:`dropped`.
    flush_interval : seconds between background flushes.
    on_hour_closed : called (in a thread of its own) as ``on_hour_closed(deployment,
        hour_start_ms)`` for each deployment this logger wrote, once an hour has closed
        (``create_app`` passes one that compacts that deployment's closed hours). Its
        errors are reported, never raised.

    Attributes
    ----------
    dropped : rows dropped because the buffer was full (or the logger closed, or a batch
        could not be converted to Arrow).
    written : rows written so far.
    write_errors : failed partition writes (their rows are retried at the next flush).
    last_error : the message of the latest failure, or None.

    Examples
    --------
    >>> logger = PredictionLogger(ws)  # doctest: +SKIP
    >>> logger.log("churn", "churn", 3, "primary", ids, X, y, None, None, 1.2)  # doctest: +SKIP
    >>> logger.close()  # flushes  # doctest: +SKIP
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        max_buffer_rows: int = 100_000,
        flush_interval: float = 2.0,
        on_hour_closed: Callable[[str, int], object] | None = None,
    ) -> None:
        if isinstance(max_buffer_rows, bool) or not isinstance(max_buffer_rows, int):
            raise InvalidInput(f"max_buffer_rows must be an int, not {max_buffer_rows!r}")
        if max_buffer_rows < 1:
            raise InvalidInput(f"max_buffer_rows must be at least 1, not {max_buffer_rows}")
        if not isinstance(flush_interval, int | float) or not flush_interval > 0:
            raise InvalidInput(f"flush_interval must be a positive number, not {flush_interval!r}")
        self.ws = ws
        self.max_buffer_rows = max_buffer_rows
        self.flush_interval = float(flush_interval)
        self.dropped = 0
        self.written = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self._buffer: list[_Entry] = []
        self._held = 0  # rows buffered or being written
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.on_hour_closed = on_hour_closed
        self._hour = _hour_of(now_ms())  # the hour the logger last saw open
        self._deployments: set[str] = set()
        self._hook: threading.Thread | None = None

    def __repr__(self) -> str:
        return (
            f"PredictionLogger(held={self._held}, written={self.written}, "
            f"dropped={self.dropped}, write_errors={self.write_errors})"
        )

    @property
    def buffered_rows(self) -> int:
        """Rows held in memory now (buffered or being written)."""
        return self._held

    # -- the hot path -------------------------------------------------------------------
    def log(
        self,
        deployment: str,
        model: str,
        version: int,
        role: str,
        request_ids: list[str],
        inputs: pd.DataFrame,
        predictions: Sequence[Any] | np.ndarray,
        probabilities: np.ndarray | None,
        classes: Sequence[Any] | None,
        latency_ms: float,
    ) -> None:
        """Buffer one predicted batch (one row per request id); never blocks on I/O.

        The objects are kept by reference until the next flush: do not mutate them.

        Raises
        ------
        InvalidInput
            ``request_ids``, ``inputs`` and ``predictions`` differ in length.
        """
        n = len(request_ids)
        if len(inputs) != n or len(predictions) != n:
            raise InvalidInput(
                f"prediction log: {n} request ids, {len(inputs)} input rows and "
                f"{len(predictions)} predictions must match"
            )
        payload = (
            model,
            version,
            role,
            request_ids,
            inputs,
            predictions,
            probabilities,
            classes,
            latency_ms,
        )
        self._add(_Entry("predictions", deployment, now_ms(), n, payload))

    def log_feedback(self, deployment: str, request_ids: list[str], labels: Sequence[Any]) -> None:
        """Buffer ground-truth ``labels`` for earlier predictions' ``request_ids``.

        Raises
        ------
        InvalidInput
            The lengths differ, a request id is not a non-empty string, or the labels do
            not form one column (mixed types).
        """
        if len(request_ids) != len(labels):
            raise InvalidInput(f"feedback: {len(request_ids)} request ids but {len(labels)} labels")
        for i, rid in enumerate(request_ids):
            if not isinstance(rid, str) or not rid:
                raise InvalidInput(f"feedback row {i}: request_id must be a string, not {rid!r}")
        try:
            column = pa.array(np.asarray(labels) if isinstance(labels, np.ndarray) else labels)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(f"feedback labels must share one type: {exc}") from None
        self._add(_Entry("feedback", deployment, now_ms(), len(request_ids), (request_ids, column)))

    def log_error(self, deployment: str, request_id: str, status: int, message: str) -> None:
        """Buffer a request that got an error answer (what monitors' ``error_rate`` counts)."""
        self._add(_Entry("errors", deployment, now_ms(), 1, (request_id, status, message[:500])))

    def _add(self, entry: _Entry) -> None:
        if entry.rows == 0:
            return
        with self._lock:
            if self._closed or self._held + entry.rows > self.max_buffer_rows:
                self.dropped += entry.rows
                return
            self._buffer.append(entry)
            self._held += entry.rows
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="loopml-prediction-log", daemon=True
                )
                self._thread.start()

    # -- flushing -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()
            self.hour_check()

    def hour_check(self, now: int | None = None) -> threading.Thread | None:
        """Once an hour has closed since the last check, call ``on_hour_closed`` for each
        deployment written, in a thread of its own (so flushes go on meanwhile); return
        that thread, or None. The background thread checks after each flush."""
        hour = _hour_of(now_ms() if now is None else now)
        if hour <= self._hour or self.on_hour_closed is None:
            return None
        self._hour = hour
        if self._hook is not None and self._hook.is_alive():
            return None  # still busy with an earlier hour; the next check covers this one
        hook, deployments = self.on_hour_closed, sorted(self._deployments)

        def run() -> None:
            for deployment in deployments:
                try:
                    hook(deployment, hour)
                except Exception as exc:  # a failed compaction must not stop the logging
                    self._report(f"{deployment}: after the hour closed: {exc}")

        self._hook = threading.Thread(target=run, name="loopml-prediction-log-hour", daemon=True)
        self._hook.start()
        return self._hook

    def flush(self) -> int:
        """Write everything buffered now; return the rows written.

        Never raises: a failed write is counted in :attr:`write_errors`, logged, and its
        rows stay buffered for the next flush.
        """
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return 0
            groups: dict[tuple[str, str, int], list[_Entry]] = {}
            for e in batch:
                groups.setdefault((e.deployment, e.kind, e.ts - e.ts % HOUR_MS), []).append(e)
            written, retry, lost = 0, [], 0
            self._deployments.update(deployment for deployment, _, _ in groups)
            for (deployment, kind, hour), entries in groups.items():
                pieces = self._convert(entries)
                converted = [e for _, part in pieces for e in part]
                lost += sum(e.rows for e in entries) - sum(e.rows for e in converted)
                if not pieces:
                    continue
                try:
                    self._write(deployment, kind, hour, pieces)
                    written += sum(e.rows for e in converted)
                except Exception as exc:  # the store failed: keep the rows for the next flush
                    self.write_errors += 1
                    retry.extend(converted)
                    self._report(f"{deployment}: writing {kind} partition failed: {exc}")
            with self._lock:
                self._buffer[:0] = retry
                self._held -= written + lost
                self.dropped += lost
                self.written += written
            return written

    def _convert(self, entries: list[_Entry]) -> list[tuple[pa.Table, list[_Entry]]]:
        """Tables of ``entries``, batch by batch only where one will not convert (dropped
        and reported: a batch Arrow cannot hold)."""
        try:
            return _tables(entries)
        except Exception:
            out = []
            for e in entries:
                try:
                    out.extend(_tables([e]))
                except Exception as exc:
                    self._report(f"{e.deployment}: {e.rows} {e.kind} rows not loggable: {exc}")
            return out

    def _report(self, message: str) -> None:
        self.last_error = message
        log.warning("prediction log: %s", message)

    def _write(
        self, deployment: str, kind: str, hour: int, pieces: list[tuple[pa.Table, list[_Entry]]]
    ) -> None:
        try:
            tables = [pa.concat_tables([t for t, _ in pieces], promote_options="permissive")]
            parts = [[e for _, part in pieces for e in part]]
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # clashing column types: one file each
            tables, parts = [t for t, _ in pieces], [part for _, part in pieces]
        rows = []
        for table, part in zip(tables, parts, strict=True):
            lo, hi = min(e.ts for e in part), max(e.ts for e in part)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            digest = self.ws.blobs.put_bytes(sink.getvalue().to_pybytes())
            rows.append(
                {
                    "deployment": deployment,
                    "kind": kind,
                    "hour": hour,
                    "digest": digest,
                    "num_rows": table.num_rows,
                    "min_ts": lo,
                    "max_ts": hi,
                    "created_at": now_ms(),
                }
            )
        with self.ws.db.write() as conn:
            conn.execute(log_partitions.insert(), rows)

    def close(self) -> None:
        """Stop the background thread and write what is buffered (idempotent)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._stop.set()
        if thread is not None:
            thread.join()
        self.flush()
        if self._hook is not None:
            self._hook.join()


__all__ = ["HOUR_MS", "TS_TYPE", "Kind", "PredictionLogger"]
