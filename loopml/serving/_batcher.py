"""Adaptive micro-batching: concurrent requests to one model become one ``predict`` call.

Each served model version has one :class:`Batcher` with one executor thread, so
inference never runs on the event loop and a model is never called from two threads.
While that thread runs a batch, new requests queue up; when it is free, everything
queued (up to ``max_batch_size`` rows) goes in the next batch. A batch waits for more
requests only when more are known to be on their way (requests that have arrived but are
still being read and parsed: :meth:`Arrivals.expect`), and never longer than
``max_wait_s`` or half the measured batch latency — so an idle server adds no wait at all.
While requests queue (the last batch had several), the batcher first yields to the event
loop once, so requests that have already reached the server join the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from loopml.serving._codec import ModelInput

_EWMA = 0.2  # weight of the newest batch latency in the running average


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """How requests are batched.

    Parameters
    ----------
    enabled : off runs each request alone (still off the event loop, one at a time).
    max_batch_size : a batch closes at this many rows.
    max_wait_ms : the longest a batch waits for more requests (only while more are arriving).
    """

    enabled: bool = True
    max_batch_size: int = 64
    max_wait_ms: float = 2.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request's share of a batch result."""

    predictions: Any
    probabilities: Any | None
    classes: list[Any] | None


@dataclass(slots=True)
class BatchResult:
    """What the model returned for a whole batch (rows in request order)."""

    predictions: Any
    probabilities: Any | None = None
    classes: list[Any] | None = None


@dataclass(slots=True, eq=False)
class _Item:
    data: ModelInput
    rows: int
    proba: bool
    request_id: str
    future: asyncio.Future[Outcome]


@dataclass(slots=True)
class Arrivals:
    """Requests for an endpoint that have arrived but not yet reached a batcher."""

    count: int = 0
    signals: list[asyncio.Event] = field(default_factory=list)

    def expect(self) -> None:
        """A request has arrived; its input is being read."""
        self.count += 1

    def arrived(self) -> None:
        """An expected request was queued, or failed before it was."""
        self.count -= 1
        for signal in self.signals:
            signal.set()


Execute = Callable[[list[ModelInput], bool, list[str], list[int]], BatchResult]


class Batcher:
    """Coalesces requests to one model version into batches run on one thread.

    Parameters
    ----------
    execute : runs one batch: ``(inputs, want_proba, request_ids, rows) -> BatchResult``;
        called on the batcher's own thread.
    config : batching settings.
    arrivals : the endpoint's arrival counter (see :class:`Arrivals`).
    name : thread name prefix.
    on_batch : called on the event loop with (rows, seconds) after each batch.
    initializer : run once on the executor thread (e.g. to cap native thread pools).
    """

    def __init__(
        self,
        execute: Execute,
        config: BatchConfig,
        arrivals: Arrivals,
        *,
        name: str = "loopml-model",
        on_batch: Callable[[int, float], None] | None = None,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self._execute = execute
        self._max_rows = config.max_batch_size if config.enabled else 1
        self._max_wait = config.max_wait_ms / 1000 if config.enabled else 0.0
        self._arrivals = arrivals
        self._on_batch = on_batch
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name, initializer=initializer)
        self._pending: deque[_Item] = deque()
        self._signal = asyncio.Event()
        self._closing = False
        self._latency = 0.0
        self.batches = 0
        arrivals.signals.append(self._signal)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(
        self, data: ModelInput, rows: int, proba: bool, request_id: str, *, expected: bool = True
    ) -> asyncio.Future[Outcome]:
        """Queue one request's input; the future resolves to its :class:`Outcome`.

        ``expected`` says the request was counted by :meth:`Arrivals.expect`.
        """
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(data, rows, proba, request_id, future))
        if expected:
            self._arrivals.arrived()
        else:
            self._signal.set()
        return future

    async def aclose(self) -> None:
        """Finish every queued request, then stop the thread."""
        self._closing = True
        self._signal.set()
        await self._task
        with contextlib.suppress(ValueError):
            self._arrivals.signals.remove(self._signal)
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)

    # -- the loop --------------------------------------------------------------------------
    _busy = False

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._signal.clear()
                await self._signal.wait()
                continue
            if self._busy:  # requests are queueing: let the loop read what has reached it
                await asyncio.sleep(0)
            batch, rows = self._take([], 0)
            self._busy = rows > 1 or bool(self._pending)
            wait = min(self._max_wait, self._latency / 2)
            if rows < self._max_rows and wait > 0 and self._arrivals.count > 0:
                batch, rows = await self._gather(batch, rows, wait)
            await self._run_batch(batch, rows)

    def _take(self, batch: list[_Item], rows: int) -> tuple[list[_Item], int]:
        pending = self._pending
        while pending and (not batch or rows + pending[0].rows <= self._max_rows):
            item = pending.popleft()
            batch.append(item)
            rows += item.rows
        return batch, rows

    async def _gather(self, batch: list[_Item], rows: int, wait: float) -> tuple[list[_Item], int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while rows < self._max_rows and self._arrivals.count > 0 and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._signal.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._signal.wait()
            except TimeoutError:
                break
            batch, rows = self._take(batch, rows)
            if self._pending:  # the next item does not fit
                break
        return batch, rows

    async def _run_batch(self, batch: list[_Item], rows: int) -> None:
        loop = asyncio.get_running_loop()
        live = [item for item in batch if not item.future.done()]  # drop timed-out requests
        if not live:
            return
        start = time.perf_counter()
        try:
            result = await loop.run_in_executor(self._pool, self._call, live)
        except Exception as exc:
            if len(live) == 1:
                _fail(live[0], exc)
            else:  # find the culprit: one request's input must not fail the others
                for item in live:
                    await self._run_batch([item], item.rows)
            return
        elapsed = time.perf_counter() - start
        self._latency = (
            elapsed if not self.batches else (1 - _EWMA) * self._latency + (_EWMA * elapsed)
        )
        self.batches += 1
        _deliver(live, result)
        if self._on_batch is not None:
            self._on_batch(rows, elapsed)

    def _call(self, items: list[_Item]) -> BatchResult:
        return self._execute(
            [i.data for i in items],
            any(i.proba for i in items),
            [i.request_id for i in items],
            [i.rows for i in items],
        )


def _fail(item: _Item, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)


def _deliver(items: list[_Item], result: BatchResult) -> None:
    start = 0
    for item in items:
        end = start + item.rows
        proba = None
        if item.proba and result.probabilities is not None:
            proba = result.probabilities[start:end]
        if not item.future.done():
            item.future.set_result(
                Outcome(
                    result.predictions[start:end],
                    proba,
                    result.classes if proba is not None else None,
                )
            )
        start = end
