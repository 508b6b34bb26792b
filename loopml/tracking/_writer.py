"""Buffered metric writing: callers append in memory, a background thread writes batches.

``log_metric`` only appends to an in-memory series under a lock. The writer thread wakes
every ``metric_flush_interval`` seconds (or as soon as ``metric_buffer_size`` points wait)
and writes each (run, key) series as one packed chunk row, updating ``latest_metrics`` in
the same transaction. If a write fails the points go back to the front of the buffer, so
the next flush retries them: nothing logged is dropped. ``close`` (called when the
workspace closes, and at interpreter exit) stops the thread after a final flush.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import UpdateBase

from loopml.errors import NotFound, StoreError
from loopml.store import MetadataDB, Node, now_ms
from loopml.store.schema import experiments, latest_metrics, metrics, run_tags, runs
from loopml.tracking._rows import (
    INSERT_PARAMS,
    INSERT_RUN,
    add_input,
    end_run,
    insert_params,
    run_exists,
    upsert_artifacts,
    upsert_tags,
)
from loopml.tracking._sink import StoredRun

if TYPE_CHECKING:
    from loopml.store import Workspace

log = logging.getLogger(__name__)

SeriesKey = tuple[str, str]  # (run_id, metric key)
_INSERT_CHUNK = metrics.insert()


class Series:
    """Points of one metric of one run: parallel lists of steps, values and timestamps."""

    __slots__ = ("steps", "timestamps", "values")

    def __init__(
        self,
        steps: list[int] | None = None,
        values: list[float] | None = None,
        timestamps: list[int] | None = None,
    ) -> None:
        self.steps: list[int] = steps if steps is not None else []
        self.values: list[float] = values if values is not None else []
        self.timestamps: list[int] = timestamps if timestamps is not None else []

    def extend(self, other: Series) -> None:
        self.steps.extend(other.steps)
        self.values.extend(other.values)
        self.timestamps.extend(other.timestamps)


def pack(series: Series) -> dict[str, object]:
    """A chunk row's packed columns (little-endian int64/float64/int64)."""
    return {
        "count": len(series.steps),
        "steps": np.asarray(series.steps, dtype="<i8").tobytes(),
        "values": np.asarray(series.values, dtype="<f8").tobytes(),
        "timestamps": np.asarray(series.timestamps, dtype="<i8").tobytes(),
    }


def _latest(run_id: str, key: str, s: Series) -> dict[str, object]:
    """The series' point with the highest step (ties: the latest timestamp)."""
    i = max(range(len(s.steps)), key=lambda j: (s.steps[j], s.timestamps[j]))
    value = s.values[i]
    return {
        "run_id": run_id,
        "key": key,
        "value": None if value != value else value,  # NaN is stored as NULL
        "step": s.steps[i],
        "timestamp": s.timestamps[i],
    }


def _newer(table: sa.Table, ex: Any) -> sa.ColumnElement[bool]:
    """Upsert guard: replace the latest value only with a later (step, timestamp)."""
    t = table.c
    return sa.or_(ex.step > t.step, sa.and_(ex.step == t.step, ex.timestamp >= t.timestamp))


def write_series(db: MetadataDB, conn: Connection, pending: Mapping[SeriesKey, Series]) -> None:
    """Append each series as one packed chunk row and move ``latest_metrics`` forward."""
    chunks = [{"run_id": r, "key": k, **pack(s)} for (r, k), s in pending.items()]
    db.execute_many(conn, _INSERT_CHUNK, chunks)
    latest = [_latest(r, k, s) for (r, k), s in pending.items()]
    upsert = db.upsert_statement(
        latest_metrics,
        keys=["run_id", "key"],
        update=["value", "step", "timestamp"],
        where=_newer,
    )
    db.execute_many(conn, upsert, latest)


class MetricWriter:
    """The per-workspace metric buffer and its background writer thread."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._interval = ws.settings.metric_flush_interval
        self._limit = ws.settings.metric_buffer_size
        self._lock = threading.Lock()  # guards the buffer
        self._flush_lock = threading.RLock()  # one write transaction at a time
        self._pending: dict[SeriesKey, Series] = {}
        self._count = 0
        self._wake = threading.Event()
        self._stop = False
        self._queue: list[tuple[UpdateBase, list[dict[str, object]]]] = []  # new runs' rows
        self._queued_runs: set[str] = set()  # runs whose row is still in the queue
        self.open_runs: dict[str, None] = {}  # runs started here and not ended yet
        self._thread = threading.Thread(target=self._loop, name="loopml-metric-writer", daemon=True)
        self._thread.start()

    # -- the hot path -----------------------------------------------------------------
    def add(self, run_id: str, key: str, value: float, step: int, timestamp: int) -> None:
        """Buffer one point."""
        with self._lock:
            series = self._pending.get((run_id, key))
            if series is None:
                series = self._pending[(run_id, key)] = Series()
            series.steps.append(step)
            series.values.append(value)
            series.timestamps.append(timestamp)
            self._count += 1
            full = self._count >= self._limit
        if full:
            self._wake.set()

    def add_series(
        self, run_id: str, key: str, steps: list[int], values: list[float], timestamps: list[int]
    ) -> None:
        """Buffer many points of one key at once."""
        with self._lock:
            series = self._pending.get((run_id, key))
            if series is None:
                series = self._pending[(run_id, key)] = Series()
            series.steps.extend(steps)
            series.values.extend(values)
            series.timestamps.extend(timestamps)
            self._count += len(steps)
            full = self._count >= self._limit
        if full:
            self._wake.set()

    def add_many(
        self,
        run_id: str,
        points: dict[str, float],
        steps: dict[str, int],
        timestamp: int,
    ) -> None:
        """Buffer one point for each of several keys, at the step ``steps`` gives each."""
        with self._lock:
            for key, value in points.items():
                series = self._pending.get((run_id, key))
                if series is None:
                    series = self._pending[(run_id, key)] = Series()
                series.steps.append(steps[key])
                series.values.append(value)
                series.timestamps.append(timestamp)
            self._count += len(points)
            full = self._count >= self._limit
        if full:
            self._wake.set()

    def add_run(self, row: dict[str, object]) -> None:
        """Queue a new run's row; this process's next write transaction inserts it."""
        with self._lock:
            self._queue.append((INSERT_RUN, [row]))
            self._queued_runs.add(str(row["id"]))
        self.open_runs[str(row["id"])] = None

    def queue_for_new_run(
        self, run_id: str, stmt: UpdateBase, rows: list[dict[str, object]]
    ) -> bool:
        """Queue ``stmt`` with ``rows`` behind the run's own insert, if that is still queued.

        While a run's row is queued no other process can see the run, so its params and
        tags can wait for the same transaction. Returns False once the run is stored.
        """
        with self._lock:
            if run_id not in self._queued_runs:
                return False
            self._queue.append((stmt, rows))
            return True

    # -- the rest of a run handle's writes (see RunSink) ----------------------------------
    def check_parent(self, parent_id: str) -> None:
        """NotFound unless the parent run exists (inserting it first if still queued)."""
        with self.write() as conn:
            if not run_exists(conn, parent_id):
                raise NotFound(f"parent run {parent_id!r} does not exist")

    def resume(self, run_id: str) -> StoredRun:
        """Set run ``run_id`` RUNNING again; what its handle needs to go on logging."""
        with self.write() as conn:
            row = conn.execute(
                sa.select(runs.c.name, runs.c.parent_id, experiments.c.name)
                .join(experiments, experiments.c.id == runs.c.experiment_id)
                .where(runs.c.id == run_id)
            ).first()
            if row is None:
                raise NotFound(f"no run with id {run_id!r}")
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(status="RUNNING", end_time=None, error=None)
            )
            steps = conn.execute(
                sa.select(latest_metrics.c.key, latest_metrics.c.step + 1).where(
                    latest_metrics.c.run_id == run_id
                )
            ).all()
        self.open_runs[run_id] = None
        return StoredRun(row[0], row[1], row[2], {k: int(v) for k, v in steps})

    def log_params(self, run_id: str, new: Mapping[str, str]) -> None:
        """Store params (Conflict for one stored with another value)."""
        rows: list[dict[str, object]] = [
            {"run_id": run_id, "key": k, "value": v} for k, v in new.items()
        ]
        if not self.queue_for_new_run(run_id, INSERT_PARAMS, rows):
            with self.write() as conn:
                insert_params(self._ws.db, conn, run_id, new)

    def set_tags(self, run_id: str, values: Mapping[str, str]) -> None:
        """Set (or overwrite) tags."""
        rows: list[dict[str, object]] = [
            {"run_id": run_id, "key": k, "value": v} for k, v in values.items()
        ]
        stmt = self._ws.db.upsert_statement(run_tags, keys=["run_id", "key"], update=["value"])
        if not self.queue_for_new_run(run_id, stmt, rows):
            with self.write() as conn:
                upsert_tags(self._ws.db, conn, run_id, values)

    def record_artifacts(self, run_id: str, files: Mapping[str, tuple[str, int]]) -> None:
        """Record artifacts whose blobs are stored already."""
        with self.write() as conn:
            upsert_artifacts(self._ws.db, conn, run_id, files)

    def add_input(self, run_id: str, dataset: Node, role: str) -> None:
        """Record a dataset the run read."""
        with self.write() as conn:
            add_input(self._ws.db, conn, run_id, dataset, role)

    def end_run(self, run_id: str, status: str, error: str | None) -> None:
        """Write the buffered points, then close the run with ``status``."""
        self.flush(then=lambda conn: end_run(self._ws.db, conn, run_id, status, error))
        self.open_runs.pop(run_id, None)

    # -- writing ----------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction that first applies the rows queued for new runs.

        If the transaction fails, the queue is kept for the next one.
        """
        with self._flush_lock:
            with self._lock:
                queue, self._queue = self._queue, []
                queued_runs, self._queued_runs = self._queued_runs, set()
            try:
                with self._ws.db.write() as conn:
                    for stmt, rows in queue:
                        self._ws.db.execute_many(conn, stmt, rows)
                    yield conn
            except BaseException:
                with self._lock:
                    self._queue[:0] = queue
                    self._queued_runs |= queued_runs
                raise

    def flush(self, then: Callable[[Connection], None] | None = None) -> None:
        """Write every buffered point now; run ``then(conn)`` in the same transaction.

        Raises StoreError if the database cannot be written; the points stay buffered.
        """
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                self._count = 0
                idle = not pending and not self._queue
            if idle and then is None:
                return
            try:
                with self.write() as conn:
                    if pending:
                        self._write(conn, pending)
                    if then is not None:
                        then(conn)
            except BaseException:
                self._requeue(pending)
                raise

    def _write(self, conn: Connection, pending: dict[SeriesKey, Series]) -> None:
        write_series(self._ws.db, conn, pending)

    def _requeue(self, pending: dict[SeriesKey, Series]) -> None:
        with self._lock:
            for key, older in pending.items():
                newer = self._pending.get(key)
                if newer is not None:
                    older.extend(newer)
                self._pending[key] = older
                self._count += len(older.steps) - (len(newer.steps) if newer else 0)

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except StoreError as exc:  # points are kept; the next round retries them
                log.warning("loopml: metric flush failed, will retry: %s", exc)

    def close(self) -> None:
        """Stop the writer thread, write everything still buffered, and end (FINISHED)
        the runs this process started and never ended, as at interpreter exit."""
        self._stop = True
        self._wake.set()
        self._thread.join()
        left = list(self.open_runs)

        def finish(conn: Connection) -> None:
            if left:
                conn.execute(
                    runs.update()
                    .where(runs.c.id.in_(left), runs.c.status == "RUNNING")
                    .values(status="FINISHED", end_time=now_ms())
                )

        self.flush(then=finish)
        self.open_runs.clear()
