"""Tracking against a loopml server: the background sender behind run handles.

Run handles append to an ordered queue of per-run *segments* (a run's creation, params,
tags, metric series, artifacts, inputs, end). One background thread sends the queue in
batches to ``POST /api/v1/batches``; each batch carries an id the server records in the
same transaction as its rows, so a batch retried after a lost answer is applied once.
While the server is down the sender retries with exponential backoff and keeps every
point; closing the workspace (at interpreter exit, and on SIGTERM, which is turned into
a normal exit) sends what is left.
"""

from __future__ import annotations

import itertools
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from loopml.errors import InvalidInput, LoopmlError, NotFound, StoreError
from loopml.store import Node, now_ms
from loopml.store.remote import RemoteClient, new_batch_id
from loopml.tracking._sink import StoredRun

if TYPE_CHECKING:
    from loopml.store import Workspace

log = logging.getLogger(__name__)
MAX_POINTS = 50_000  # per request
_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class _Segment:
    """Consecutive writes to one run, sent as one item of a batch."""

    run_id: str
    create: dict[str, object] | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[list[Any]]] = field(default_factory=dict)  # key: [steps, values, ts]
    artifacts: dict[str, tuple[str, int]] = field(default_factory=dict)
    inputs: list[dict[str, str]] = field(default_factory=list)
    end: dict[str, object] | None = None

    def size(self) -> int:
        """Metric points held."""
        return sum(len(steps) for steps, _, _ in self.metrics.values())

    def split(self, points: int) -> _Segment:
        """Move everything but the end and all but ``points`` metric points into a new
        segment to send first; this one keeps the rest."""
        head = _Segment(self.run_id, self.create, self.params, self.tags)
        head.artifacts, head.inputs = self.artifacts, self.inputs
        self.create, self.params, self.tags, self.artifacts, self.inputs = None, {}, {}, {}, []
        for key, columns in list(self.metrics.items()):
            if points <= 0:
                break
            n = min(points, len(columns[0]))
            head.metrics[key] = [c[:n] for c in columns]
            rest = [c[n:] for c in columns]
            if rest[0]:
                self.metrics[key] = rest
            else:
                del self.metrics[key]
            points -= n
        return head

    def series(self, key: str) -> list[list[Any]]:
        found = self.metrics.get(key)
        if found is None:
            found = self.metrics[key] = [[], [], []]
        return found

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"run_id": self.run_id}
        if self.create is not None:
            body["create"] = self.create
        for name in ("params", "tags", "inputs"):
            if getattr(self, name):
                body[name] = getattr(self, name)
        if self.metrics:
            body["metrics"] = {
                k: {"step": s, "value": v, "timestamp": t} for k, (s, v, t) in self.metrics.items()
            }
        if self.artifacts:
            body["artifacts"] = {
                p: {"digest": d, "size": n} for p, (d, n) in self.artifacts.items()
            }
        if self.end is not None:
            body["end"] = self.end
        return body


class RemoteSender:
    """The run sink of a workspace that is a loopml server (see :class:`RunSink`)."""

    def __init__(self, ws: Workspace) -> None:
        assert ws.remote is not None
        self._client: RemoteClient = ws.remote
        self._experiment = ws.settings.project
        self._interval = ws.settings.metric_flush_interval
        self._limit = min(ws.settings.metric_buffer_size, MAX_POINTS)
        self._cond = threading.Condition()
        self._queue: list[_Segment] = []
        self._open: dict[str, _Segment] = {}  # the segment a run's next write joins
        self._points = 0
        self._queued = 0  # segments queued so far, ...
        self._sent = 0  # ... and sent (or given up on)
        self._stop = False
        self._flushing = 0  # callers waiting in flush()
        self._give_up_at = float("inf")
        self.last_error: str | None = None
        self.open_runs: dict[str, None] = {}
        self._thread = threading.Thread(target=self._loop, name="loopml-remote-sender", daemon=True)
        self._thread.start()
        _exit_on_sigterm()

    # -- queueing ---------------------------------------------------------------------
    def _segment(self, run_id: str) -> _Segment:
        seg = self._open.get(run_id)
        if seg is None:
            seg = self._open[run_id] = _Segment(run_id)
            self._queue.append(seg)
            self._queued += 1
        return seg

    def _added(self, n: int) -> None:
        self._points += n
        if self._points >= self._limit:
            self._cond.notify_all()

    def add(self, run_id: str, key: str, value: float, step: int, timestamp: int) -> None:
        with self._cond:
            s = self._segment(run_id).series(key)
            s[0].append(step)
            s[1].append(value)
            s[2].append(timestamp)
            self._added(1)

    def add_series(
        self, run_id: str, key: str, steps: list[int], values: list[float], timestamps: list[int]
    ) -> None:
        with self._cond:
            s = self._segment(run_id).series(key)
            s[0].extend(steps)
            s[1].extend(values)
            s[2].extend(timestamps)
            self._added(len(steps))

    def add_many(
        self, run_id: str, points: dict[str, float], steps: dict[str, int], timestamp: int
    ) -> None:
        with self._cond:
            seg = self._segment(run_id)
            for key, value in points.items():
                s = seg.series(key)
                s[0].append(steps[key])
                s[1].append(value)
                s[2].append(timestamp)
            self._added(len(points))

    def add_run(self, row: dict[str, object]) -> None:
        run_id = str(row["id"])
        create = {k: v for k, v in row.items() if k not in ("id", "status")}
        with self._cond:
            self._segment(run_id).create = create
        self.open_runs[run_id] = None

    def check_parent(self, parent_id: str) -> None:
        if parent_id in self.open_runs:
            return
        try:
            self._client.get(f"/api/v1/runs/{quote(parent_id, safe='')}")
        except (NotFound, InvalidInput):
            raise NotFound(f"parent run {parent_id!r} does not exist") from None

    def resume(self, run_id: str) -> StoredRun:
        self.flush()
        found = self._client.request(
            "PATCH", f"/api/v1/runs/{run_id}", json={"status": "RUNNING"}
        ).json()
        body = self._client.get(f"/api/v1/runs/{run_id}")
        self.open_runs[run_id] = None
        steps = {k: int(v) + 1 for k, v in (body.get("metric_steps") or {}).items()}
        return StoredRun(
            found["name"], found["parent_run_id"], found["experiment"], steps, body["params"]
        )

    def log_params(self, run_id: str, new: Mapping[str, str]) -> None:
        with self._cond:
            self._segment(run_id).params.update(new)

    def set_tags(self, run_id: str, values: Mapping[str, str]) -> None:
        with self._cond:
            self._segment(run_id).tags.update(values)

    def record_artifacts(self, run_id: str, files: Mapping[str, tuple[str, int]]) -> None:
        with self._cond:
            self._segment(run_id).artifacts.update(files)

    def add_input(self, run_id: str, dataset: Node, role: str) -> None:
        with self._cond:
            self._segment(run_id).inputs.append({"dataset": dataset.id, "role": role})

    def end_run(self, run_id: str, status: str, error: str | None) -> None:
        with self._cond:
            self._segment(run_id).end = {"status": status, "error": error, "end_time": now_ms()}
            del self._open[run_id]
            self._cond.notify_all()
        self.open_runs.pop(run_id, None)

    # -- sending ----------------------------------------------------------------------
    def flush(self, timeout: float = 60.0) -> None:
        """Block until everything queued so far reached the server.

        Raises StoreError if the server cannot be reached within ``timeout`` seconds; the
        points stay queued and the sender keeps retrying.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._queued
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._sent < target:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise StoreError(
                            f"loopml server {self._client.url} did not take the logged data "
                            f"within {timeout:.0f} s ({self.last_error}); it stays queued and "
                            "is retried"
                        )
                    self._cond.wait(min(left, 0.5))
            finally:
                self._flushing -= 1

    def _take(self) -> tuple[list[_Segment], int]:
        """Queued segments for one request, and how many of them left the queue: whole
        segments up to ~MAX_POINTS points, or the first part of one that is larger alone
        (its rest stays first in line)."""
        taken: list[_Segment] = []
        points = whole = 0
        while self._queue:
            seg = self._queue[0]
            size = seg.size()
            if taken and points + size > MAX_POINTS:
                break
            if self._open.get(seg.run_id) is seg:
                del self._open[seg.run_id]  # later writes to the run start a new segment
            if size > MAX_POINTS:
                taken.append(seg.split(MAX_POINTS))
                points += MAX_POINTS
                break
            taken.append(self._queue.pop(0))
            points += size
            whole += 1
        self._points = max(0, self._points - points)
        return taken, whole

    def _loop(self) -> None:
        """Send at most once per ``metric_flush_interval``, sooner when the buffer is full,
        a caller waits in :meth:`flush` or the workspace closes."""
        last = -float("inf")
        while True:
            with self._cond:
                while True:
                    if self._stop and not self._queue:
                        return
                    urgent = self._stop or self._flushing or self._points >= self._limit
                    wait = last + self._interval - time.monotonic()
                    if self._queue and (urgent or wait <= 0):
                        break
                    self._cond.wait(wait if self._queue and wait > 0 else self._interval)
                segments, n = self._take()
            last = time.monotonic()
            self._send([s.to_json() for s in segments])
            with self._cond:
                self._sent += n
                self._cond.notify_all()

    def _send(self, ops: list[dict[str, object]]) -> None:
        body = json.dumps({"batch_id": new_batch_id(), "ops": ops}).encode()
        headers = {"Content-Type": "application/json"}
        for attempt in itertools.count():
            try:
                answer = self._client.request(
                    "POST", "/api/v1/batches", content=body, headers=headers
                )
            except StoreError as exc:  # unreachable or 5xx: wait, then send the same batch
                self.last_error = str(exc)
                if time.monotonic() > self._give_up_at:
                    log.error("loopml: giving up on %d queued run segment(s): %s", len(ops), exc)
                    return
                time.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                continue
            except LoopmlError as exc:  # the server refused the batch as a whole
                self.last_error = str(exc)
                log.error("loopml: the server refused %d run segment(s): %s", len(ops), exc)
                return
            self.last_error = None
            for problem in answer.json().get("errors", []):
                log.warning("loopml: run %s: %s", problem["run_id"], problem["error"]["message"])
            return

    def close(self, timeout: float = 120.0) -> None:
        """Send everything left (retrying up to ``timeout`` s), ending the runs this process
        started and never ended FINISHED, as a local workspace does at exit."""
        for run_id in list(self.open_runs):
            self.end_run(run_id, "FINISHED", None)
        with self._cond:
            self._stop = True
            self._give_up_at = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join()


def _exit_on_sigterm() -> None:
    """Make SIGTERM a normal exit (atexit handlers run, so the queue is sent), unless the
    program handles SIGTERM itself."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


__all__ = ["RemoteSender"]
