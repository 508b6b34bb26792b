"""Executors: where step attempts run, behind one small protocol.

``process`` (the default) is a pool of spawned worker processes, ``thread`` a thread pool in
this process (quick to start; for tests and I/O-bound steps), ``ray`` a Ray task per step
(:mod:`loopml.pipelines._ray`). Every executor returns a ``concurrent.futures.Future``.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from loopml.errors import InvalidInput
from loopml.pipelines._ray import RayExecutor
from loopml.pipelines._worker import StepCall, execute, init_worker
from loopml.store import Workspace


class Executor(Protocol):
    """Runs step attempts. ``enforces_timeouts``: whether a timed-out attempt is stopped
    where it runs (else the runner gives up on it and the attempt runs on unobserved)."""

    name: str
    enforces_timeouts: bool

    def start(self, ws: Workspace) -> None:
        """Get ready to run steps of a pipeline in workspace ``ws``."""

    def submit(self, call: StepCall) -> Future[Any]:
        """Start one attempt; the future's result is the step's wire value."""

    def cancel(self, future: Future[Any]) -> None:
        """Stop an attempt if it can be stopped (best effort)."""

    def close(self) -> None:
        """Release workers."""


def _workers(max_workers: int | None) -> int:
    if max_workers is not None and (type(max_workers) is not int or max_workers < 1):
        raise InvalidInput(f"max_workers must be a positive integer, got {max_workers!r}")
    return max_workers or os.cpu_count() or 1


class ThreadExecutor:
    """Steps run in threads of this process."""

    name = "thread"
    enforces_timeouts = False

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = _workers(max_workers)
        self._pool: ThreadPoolExecutor | None = None
        self._ws: Workspace | None = None

    def start(self, ws: Workspace) -> None:
        self._ws = ws
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="loopml-step")

    def submit(self, call: StepCall) -> Future[Any]:
        if self._pool is None:
            raise InvalidInput("ThreadExecutor.submit before start")
        return self._pool.submit(execute, call, self._ws)

    def cancel(self, future: Future[Any]) -> None:
        future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class ProcessExecutor:
    """Steps run in a pool of worker processes (spawned, so a script that defines steps
    must guard its top level with ``if __name__ == "__main__":``)."""

    name = "process"
    enforces_timeouts = True

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = _workers(max_workers)
        self._pool: ProcessPoolExecutor | None = None
        self._ws: Workspace | None = None

    def start(self, ws: Workspace) -> None:
        if self._pool is None or self._ws is not ws:
            self.close()
            self._ws = ws
            self._pool = ProcessPoolExecutor(
                self.max_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(ws.settings,),
            )

    def submit(self, call: StepCall) -> Future[Any]:
        if self._pool is None or self._ws is None:
            raise InvalidInput("ProcessExecutor.submit before start")
        try:
            return self._pool.submit(execute, call)
        except BrokenProcessPool:  # a worker died (e.g. killed): start a fresh pool
            ws, self._pool = self._ws, None
            self.start(ws)
            assert self._pool is not None
            return self._pool.submit(execute, call)

    def cancel(self, future: Future[Any]) -> None:
        future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def get_executor(executor: str | Executor, max_workers: int | None = None) -> Executor:
    """An executor by name (``process``, ``thread``, ``ray``) or the one given."""
    if not isinstance(executor, str):
        return executor
    if executor == "process":
        return ProcessExecutor(max_workers)
    if executor == "thread":
        return ThreadExecutor(max_workers)
    if executor == "ray":
        return RayExecutor(max_workers)
    raise InvalidInput(f"executor must be 'process', 'thread' or 'ray', got {executor!r}")
