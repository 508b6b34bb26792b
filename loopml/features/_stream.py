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
from dataclasses import dataclass
from typing import Any

from loopml.errors import InvalidInput, MissingDependency, StoreError
from loopml.features._ingest import Ingestor, IngestStats
from loopml.features._online import OnlineStore
from loopml.features._stores import default_online_store
from loopml.store import Workspace, default_workspace

Report = Callable[[IngestStats], None]


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
    try:
        try:
            client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        unacked: list[bytes] = []
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
                unacked += [entry_id for entry_id, _ in entries]
            if ingestor.due() or (unacked and not ingestor.buffered):
                ingestor.flush()
                client.xack(stream, group, *unacked)
                unacked = []
                if report is not None:
                    report(ingestor.stats)
        ingestor.flush()
        if unacked:
            client.xack(stream, group, *unacked)
    except redis.RedisError as exc:
        raise StoreError(f"Redis stream {stream!r} at {url}: {exc}") from exc
    finally:
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
        unacked: list[Any] = []
        last_event = time.monotonic()
        while not stop(ingestor, last_event):
            try:
                msgs = await sub.fetch(count, timeout=0.1)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                msgs = []
            if msgs:
                last_event = time.monotonic()
                produced = [int(m.metadata.timestamp.timestamp() * 1000) for m in msgs]
                ingestor.add([m.data for m in msgs], produced)
                unacked += msgs
            if ingestor.due() or (unacked and not ingestor.buffered):
                ingestor.flush()
                for m in unacked:
                    await m.ack()
                await nc.flush()
                unacked = []
                if report is not None:
                    report(ingestor.stats)
        ingestor.flush()
        for m in unacked:
            await m.ack()
        await nc.flush()
    finally:
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
