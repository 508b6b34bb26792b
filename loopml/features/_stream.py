"""``ingest_stream``: consume Redis Streams or NATS JetStream into a feature view.

Redis: a consumer group (created at the stream's start if missing); the consumer first
re-reads its own pending entries (delivered before a crash, never acknowledged), then new
ones; ``XACK`` follows the offline flush that holds them, which follows their online
write. The freshness of an event is measured from its stream id (the server's clock at
``XADD``). NATS: a durable pull consumer on a JetStream stream; messages are acknowledged
after the same flush, and ones not acknowledged within ``ack_wait`` are re-sent. See
:mod:`loopml.features._ingest` for why a restart loses and duplicates nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from loopml.errors import InvalidInput, MissingDependency, StoreError
from loopml.features._ingest import Ingestor, IngestStats
from loopml.features._online import OnlineStore
from loopml.features._stores import default_online_store
from loopml.store import Workspace, default_workspace

Report = Callable[[IngestStats], None]
T = TypeVar("T")


@dataclass(frozen=True)
class StopWhen:
    """When a consumer stops: after ``max_events``, after ``idle`` seconds without an
    event, or when ``event`` is set (each optional; all unset: run until stopped)."""

    max_events: int | None = None
    idle: float | None = None
    event: threading.Event | None = None

    def __call__(self, ingestor: Ingestor, last_event: float) -> bool:
        if self.event is not None and self.event.is_set():
            return True
        if self.max_events is not None and ingestor.stats.events >= self.max_events:
            return True
        return self.idle is not None and time.monotonic() - last_event >= self.idle


class _Flusher(Generic[T]):
    """Offline flushes in a background thread, one at a time, so online writes go on
    meanwhile; the acknowledgement tokens of a flush come back once it has committed."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="loopml-flush")
        self._inflight: tuple[Future[int], list[T]] | None = None
        self.unacked: list[T] = []

    @property
    def busy(self) -> bool:
        """Whether a flush is running."""
        return self._inflight is not None and not self._inflight[0].done()

    def done(self) -> list[T]:
        """The tokens of a finished flush (raising its error, if any), else ``[]``."""
        if self._inflight is None or not self._inflight[0].done():
            return []
        future, tokens = self._inflight
        self._inflight = None
        future.result()
        return tokens

    def maybe_start(self) -> None:
        """Start a flush if one is due (or only rejected events wait) and none runs."""
        due = self.ingestor.due() or (self.unacked and not self.ingestor.buffered)
        if self._inflight is None and due:
            events, tokens, self.unacked = self.ingestor.take(), self.unacked, []
            self._inflight = (self._pool.submit(self.ingestor.write_offline, events), tokens)

    def drain(self) -> list[T]:
        """Wait for the running flush, then flush the rest; every token left to ack."""
        tokens: list[T] = []
        if self._inflight is not None:
            self._inflight[0].result()
            tokens += self._inflight[1]
            self._inflight = None
        self.ingestor.flush()
        tokens += self.unacked
        self.unacked = []
        return tokens

    def close(self) -> None:
        """Stop the worker thread."""
        self._pool.shutdown(wait=True)


def _redis(
    ingestor: Ingestor,
    url: str,
    stream: str,
    group: str,
    consumer: str,
    stop: StopWhen,
    count: int,
    report: Report | None,
) -> None:
    try:
        import redis
    except ModuleNotFoundError as exc:
        raise MissingDependency("redis", "redis") from exc
    client: Any = redis.Redis.from_url(url)
    flusher: _Flusher[bytes] = _Flusher(ingestor)
    try:
        try:
            client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        cursor = "0"  # own pending entries first, then new ones
        last_event = time.monotonic()
        while not stop(ingestor, last_event):
            block = None if cursor == "0" else 100
            reply = client.xreadgroup(group, consumer, {stream: cursor}, count=count, block=block)
            entries = reply[0][1] if reply else []
            if cursor != ">":
                cursor = entries[-1][0] if entries else ">"
            if entries:
                last_event = time.monotonic()
                payloads = [fields.get(b"data", b"") for _, fields in entries]
                produced = [int(entry_id.split(b"-")[0]) for entry_id, _ in entries]
                ingestor.add(payloads, produced)
                flusher.unacked += [entry_id for entry_id, _ in entries]
            acked = flusher.done()
            if acked:
                client.xack(stream, group, *acked)
                if report is not None:
                    report(ingestor.stats)
            flusher.maybe_start()
        rest = flusher.drain()
        if rest:
            client.xack(stream, group, *rest)
    except redis.RedisError as exc:
        raise StoreError(f"Redis stream {stream!r} at {url}: {exc}") from exc
    finally:
        flusher.close()
        client.close()


async def _nats(
    ingestor: Ingestor,
    url: str,
    stream: str,
    subject: str,
    durable: str,
    stop: StopWhen,
    count: int,
    ack_wait: float,
    report: Report | None,
) -> None:
    try:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    except ModuleNotFoundError as exc:
        raise MissingDependency("nats-py", "nats") from exc
    try:
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    except Exception as exc:
        raise StoreError(f"cannot connect to NATS at {url}: {exc}") from exc
    flusher: _Flusher[Any] = _Flusher(ingestor)

    async def ack(msgs: list[Any]) -> None:
        for m in msgs:
            await m.ack()
        await nc.flush()

    try:
        js = nc.jetstream()
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait,
            max_ack_pending=-1,
        )
        try:
            sub = await js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
        except nats.js.errors.NotFoundError as exc:
            raise InvalidInput(f"NATS JetStream has no stream {stream!r}: {exc}") from None
        last_event = time.monotonic()
        while not stop(ingestor, last_event):
            try:
                msgs = await sub.fetch(count, timeout=0.1)
            except (nats.errors.TimeoutError, TimeoutError):
                msgs = []
            if msgs:
                last_event = time.monotonic()
                produced = [int(m.metadata.timestamp.timestamp() * 1000) for m in msgs]
                ingestor.add([m.data for m in msgs], produced)
                flusher.unacked += msgs
            acked = flusher.done()
            if acked:
                await ack(acked)
                if report is not None:
                    report(ingestor.stats)
            flusher.maybe_start()
        await ack(await asyncio.get_running_loop().run_in_executor(None, flusher.drain))
    finally:
        flusher.close()
        await nc.close()


def ingest_stream(
    view: str,
    *,
    broker: str = "redis",
    url: str | None = None,
    stream: str,
    subject: str | None = None,
    group: str | None = None,
    consumer: str = "loopml",
    batch_rows: int = 5_000,
    flush_interval: float = 1.0,
    ack_wait: float = 30.0,
    max_events: int | None = None,
    idle_exit: float | None = None,
    stop_event: threading.Event | None = None,
    store: OnlineStore | None = None,
    report: Report | None = None,
    workspace: Workspace | None = None,
) -> IngestStats:
    """Consume events of feature view ``view`` from a broker until told to stop.

    Parameters
    ----------
    view : the feature view (its source must be a dataset reference).
    broker : ``"redis"`` (Redis Streams) or ``"nats"`` (NATS JetStream).
    url : the broker (default ``redis://127.0.0.1:6379/0`` / ``nats://127.0.0.1:4222``).
    stream : the Redis stream key, or the JetStream stream name.
    subject : the NATS subject to consume (default: ``stream``).
    group : the Redis consumer group / NATS durable consumer (default ``loopml-<view>``).
    consumer : the consumer's name within a Redis group (keep it across restarts).
    batch_rows, flush_interval : when buffered events go to the offline store.
    ack_wait : NATS seconds before an unacknowledged message is re-sent.
    max_events, idle_exit, stop_event : when to stop (default: never).
    report : called with the running stats after each flush.

    Each event is a JSON object (a Redis entry's ``data`` field; a NATS message body).
    """
    ws = workspace or default_workspace()
    if broker not in ("redis", "nats"):
        raise InvalidInput(f"broker must be 'redis' or 'nats', got {broker!r}")
    if not isinstance(stream, str) or not stream:
        raise InvalidInput("give the stream to consume")
    count = 1_000
    ingestor = Ingestor(
        ws,
        view,
        store if store is not None else default_online_store(ws),
        batch_rows=batch_rows,
        flush_interval=flush_interval,
    )
    stop = StopWhen(max_events, idle_exit, stop_event)
    name = group or f"loopml-{view}"
    if broker == "redis":
        _redis(
            ingestor, url or "redis://127.0.0.1:6379/0", stream, name, consumer, stop, count, report
        )
    else:
        asyncio.run(
            _nats(
                ingestor,
                url or "nats://127.0.0.1:4222",
                stream,
                subject or stream,
                name,
                stop,
                count,
                ack_wait,
                report,
            )
        )
    return ingestor.stats


def event_json(row: dict[str, Any]) -> bytes:
    """An event's JSON bytes (datetimes as ISO text), for producers."""
    return json.dumps(row, default=lambda v: v.isoformat()).encode()
