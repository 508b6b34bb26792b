"""The runner: walks a built DAG, launching each call once its inputs are ready.

Per call: compute the cache key; on a hit reuse the stored output (recorded as a cache
hit); otherwise submit attempts to the executor, retrying with backoff, giving up on an
attempt past its timeout, calling ``on_failure`` after the last one. Calls downstream of a
failed one are SKIPPED; independent branches go on. Each call gets a child tracking run of
the pipeline's run, and lineage edges from its inputs to its output.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from loopml import tracking
from loopml.errors import LoopmlError
from loopml.pipelines import _records as records
from loopml.pipelines import _values as values
from loopml.pipelines._cache import cache_key
from loopml.pipelines._executors import Executor
from loopml.pipelines._graph import Call, Graph, substitute
from loopml.pipelines._worker import StepCall, StepTimeout
from loopml.store import Node, Workspace, add_edge, now_ms

GRACE = 5.0  # seconds past a timeout before the runner gives up on a self-timing executor


@dataclass(frozen=True)
class StepEvent:
    """What the runner reports as it goes: ``status`` is running, retrying, finished,
    cached, reused, failed or skipped."""

    node: str
    status: str
    attempt: int = 0
    seconds: float | None = None
    error: str | None = None


EventHook = Callable[[StepEvent], None]


@dataclass
class _Attempt:
    node: str
    started: float
    deadline: float | None


class Runner:
    """Runs one pipeline run's graph to the end; see the module docstring."""

    def __init__(
        self,
        ws: Workspace,
        run_id: str,
        tracking_run: tracking.Run,
        graph: Graph,
        executor: Executor,
        *,
        cache: bool = True,
        reuse: dict[str, tuple[str, str]] | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        self.ws = ws
        self.run_id = run_id
        self.parent = tracking_run
        self.graph = graph
        self.executor = executor
        self.cache = cache
        self.on_event = on_event
        self.state = {n: "PENDING" for n in graph.calls}
        self.outputs: dict[str, tuple[str, str]] = {}
        self.wire: dict[str, Any] = {}
        self.attempts = dict.fromkeys(graph.calls, 0)
        self.not_before: dict[str, float] = {}
        self.step_runs: dict[str, tracking.Run] = {}
        self.keys: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        for node, out in (reuse or {}).items():
            if node in self.state:
                self.state[node] = "FINISHED"
                self.outputs[node] = out
                self._emit(StepEvent(node, "reused"))

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> str:
        """Run every call; return FINISHED, or FAILED if any call failed."""
        running: dict[cf.Future[Any], _Attempt] = {}
        self.executor.start(self.ws)
        while True:
            now = time.monotonic()
            for node, call in self.graph.calls.items():
                if self.state[node] != "PENDING" or self.not_before.get(node, 0) > now:
                    continue
                ups = [self.state[u] for u in call.upstream]
                if any(s in ("FAILED", "SKIPPED") for s in ups):
                    self._skip(node)
                elif all(s == "FINISHED" for s in ups):
                    attempt = self._launch(call)
                    if attempt is not None:
                        running[attempt[0]] = attempt[1]
            if not running and not any(s == "PENDING" for s in self.state.values()):
                break
            done, _ = cf.wait(
                running, timeout=self._wait_time(running), return_when=cf.FIRST_COMPLETED
            )
            for future in done:
                self._finish(running.pop(future), future)
            now = time.monotonic()
            for future, att in list(running.items()):
                if att.deadline is not None and now > att.deadline:
                    running.pop(future)
                    self.executor.cancel(future)
                    timeout = self.graph.calls[att.node].step.options.timeout
                    self._failed_attempt(
                        att.node, StepTimeout(f"step {att.node!r} timed out after {timeout:g} s")
                    )
        return "FAILED" if any(s != "FINISHED" for s in self.state.values()) else "FINISHED"

    def _wait_time(self, running: dict[cf.Future[Any], _Attempt]) -> float | None:
        now = time.monotonic()
        times = [t for n, t in self.not_before.items() if self.state[n] == "PENDING"]
        times += [a.deadline for a in running.values() if a.deadline is not None]
        if not times:
            return None if running else 0.0
        return max(0.0, min(times) - now)

    # -- one call ---------------------------------------------------------------------
    def _launch(self, call: Call) -> tuple[cf.Future[Any], _Attempt] | None:
        node, step = call.node, call.step
        if node not in self.keys:
            digests = {u: self.outputs[u][1] for u in call.upstream}
            try:
                self.keys[node] = cache_key(step, call.args, call.kwargs, digests)
            except LoopmlError as exc:  # e.g. a declared dependency that is gone
                with self._write() as conn:
                    records.save_step(
                        self.ws, conn, self.run_id, node, step=step.name, status="RUNNING"
                    )
                self.attempts[node] = step.options.retries + 1
                self._failed_attempt(node, exc)
                return None
            if self.cache and step.options.cache:
                hit = records.cached_output(self.ws, self.keys[node])
                if hit is not None:
                    self._cached(call, hit)
                    return None
        self.attempts[node] += 1
        self.state[node] = "RUNNING"
        attempt = self.attempts[node]
        child = self._child_run(call, cache_hit=False) if attempt == 1 else None
        with self._write() as conn:  # also inserts the queued step run and its tags
            if child is not None:
                records.save_step(
                    self.ws,
                    conn,
                    self.run_id,
                    node,
                    step=step.name,
                    status="RUNNING",
                    cache_key=self.keys[node],
                    cache_hit=False,
                    attempts=1,
                    run_id=child.id,
                    started_at=now_ms(),
                    ended_at=None,
                    error=None,
                    output_kind=None,
                    output_digest=None,
                )
            else:
                records.update_step(conn, self.run_id, node, status="RUNNING", attempts=attempt)
        known = {u: self._wire(u) for u in call.upstream}
        opts = step.options
        sent = StepCall(
            node=node,
            module=step.module,
            qualname=step.qualname,
            file=step.file,
            args=substitute(call.args, known),
            kwargs=substitute(call.kwargs, known),
            timeout=opts.timeout,
            cpus=opts.cpus,
            memory=opts.memory,
            gpus=opts.gpus,
            fn=step.fn,
        )
        started = time.monotonic()
        deadline = None
        if opts.timeout is not None:
            deadline = started + opts.timeout + (GRACE if self.executor.enforces_timeouts else 0)
        self._emit(StepEvent(node, "running", attempt))
        try:
            future = self.executor.submit(sent)
        except Exception as exc:  # e.g. an argument that cannot be sent to a worker
            self._failed_attempt(node, exc)
            return None
        return future, _Attempt(node, started, deadline)

    def _wire(self, node: str) -> Any:
        if node not in self.wire:
            kind, digest = self.outputs[node]
            self.wire[node] = values.load(self.ws, kind, digest)
        return self.wire[node]

    def _write(self) -> AbstractContextManager[Connection]:
        """A write transaction that first inserts the step runs queued by ``_child_run``."""
        return self.ws.component(tracking.MetricWriter).write()

    def _child_run(self, call: Call, *, cache_hit: bool) -> tracking.Run:
        """The step's tracking run: queued, so the next :meth:`_write` inserts it."""
        run = tracking.start_run(
            self.parent.experiment.name,
            call.node,
            parent=self.parent.id,
            workspace=self.ws,
            tags={
                "loopml.step": call.step.name,
                "loopml.pipeline_run": self.run_id,
                "loopml.cache_hit": str(cache_hit).lower(),
            },
        )
        self.step_runs[call.node] = run
        return run

    def _finish(self, att: _Attempt, future: cf.Future[Any]) -> None:
        try:
            result = future.result()
            kind, digest = values.store(self.ws, att.node, result)
        except BaseException as exc:  # the step's own error, re-raised from the worker
            if isinstance(exc, KeyboardInterrupt | SystemExit) and not future.done():
                raise
            self._failed_attempt(att.node, exc)
            return
        seconds = time.monotonic() - att.started
        self.wire[att.node] = result
        self.outputs[att.node] = (kind, digest)
        self.state[att.node] = "FINISHED"
        call = self.graph.calls[att.node]
        run = self.step_runs[att.node]
        run.log_metrics({"duration_s": seconds, "attempts": self.attempts[att.node]})
        with self._write() as conn:
            records.update_step(
                conn,
                self.run_id,
                att.node,
                status="FINISHED",
                output_kind=kind,
                output_digest=digest,
                ended_at=now_ms(),
                error=None,
            )
            self._lineage(conn, call, run.id, kind, digest, result)
        run.end("FINISHED")
        self._emit(StepEvent(att.node, "finished", self.attempts[att.node], seconds))

    def _cached(self, call: Call, hit: tuple[str, str]) -> None:
        node = call.node
        kind, digest = hit
        run = self._child_run(call, cache_hit=True)
        stamp = now_ms()
        self.outputs[node] = hit
        self.state[node] = "FINISHED"
        with self._write() as conn:
            records.save_step(
                self.ws,
                conn,
                self.run_id,
                node,
                step=call.step.name,
                status="FINISHED",
                cache_key=self.keys[node],
                cache_hit=True,
                attempts=0,
                run_id=run.id,
                output_kind=kind,
                output_digest=digest,
                started_at=stamp,
                ended_at=stamp,
                error=None,
            )
            self._lineage(conn, call, run.id, kind, digest, self._wire(node))
        run.end("FINISHED")
        self._emit(StepEvent(node, "cached", 0, 0.0))

    def _failed_attempt(self, node: str, exc: BaseException) -> None:
        opts = self.graph.calls[node].step.options
        attempt = self.attempts[node]
        text = "".join(traceback.format_exception(exc))
        if attempt <= opts.retries and attempt > 0:
            self.state[node] = "PENDING"
            self.not_before[node] = time.monotonic() + opts.delay(attempt + 1)
            with self._write() as conn:
                records.update_step(conn, self.run_id, node, status="PENDING", error=text)
            self._emit(StepEvent(node, "retrying", attempt, error=str(exc)))
            return
        self.state[node] = "FAILED"
        self.errors[node] = text
        if opts.on_failure is not None:
            try:
                opts.on_failure(node, exc)
            except Exception as hook_exc:  # a broken hook must not hide the step's error
                text += f"\non_failure hook raised: {hook_exc!r}"
        with self._write() as conn:
            records.update_step(
                conn, self.run_id, node, status="FAILED", error=text, ended_at=now_ms()
            )
        run = self.step_runs.get(node)
        if run is not None:
            run.log_metrics({"attempts": attempt})
            run.end("FAILED", error=text)
        self._emit(StepEvent(node, "failed", attempt, error=f"{type(exc).__name__}: {exc}"))

    def _skip(self, node: str) -> None:
        self.state[node] = "SKIPPED"
        call = self.graph.calls[node]
        with self._write() as conn:
            records.save_step(
                self.ws,
                conn,
                self.run_id,
                node,
                step=call.step.name,
                status="SKIPPED",
                attempts=0,
                error="an upstream step failed",
            )
        self._emit(StepEvent(node, "skipped"))

    def _lineage(
        self, conn: Connection, call: Call, run_id: str, kind: str, digest: str, result: Any
    ) -> None:
        run_node = Node("run", run_id)
        inputs = []
        for up in call.upstream:
            up_kind, up_digest = self.outputs[up]
            inputs.append(_output_node(up_kind, up_digest, self._wire(up)))
        for src in inputs:
            for node in src:
                add_edge(self.ws.db, conn, node, run_node, "input")
        for node in _output_node(kind, digest, result):
            add_edge(self.ws.db, conn, run_node, node, "produced")

    def _emit(self, event: StepEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)


def _output_node(kind: str, digest: str, wire: Any) -> list[Node]:
    """Lineage nodes for a stored output: the loopml objects it references, else the blob."""
    refs = values.refs_in(wire)
    if refs:
        return [r.lineage_node for r in refs]
    return [Node("step_output", digest)]
