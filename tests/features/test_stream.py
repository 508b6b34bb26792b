"""Streaming ingestion from real brokers: Redis Streams and NATS JetStream on this machine.

The restart tests run the consumer as a real ``loopml features ingest-stream`` process,
SIGKILL it mid-stream, start it again, and count: every event is online once and in the
offline dataset once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from loopml import data, features
from loopml.errors import InvalidInput
from loopml.features import SqliteOnlineStore
from loopml.features._stream import event_json
from loopml.store import Workspace
from tests.features.conftest import CUSTOMER, T0

N_EVENTS = 1500


def setup_view(home: Path) -> None:
    """A workspace with dataset ``clicks`` (one seed row) and view ``clicks`` over it."""
    with Workspace.init(home) as ws:
        seed = pd.DataFrame(
            {"customer_id": [-1], "event_timestamp": [T0], "amount": [0.0], "n": [0]}
        )
        data.ingest(seed, name="clicks", workspace=ws)
        view = features.FeatureView("clicks", [CUSTOMER], "clicks@latest", ttl="1d")
        features.apply([CUSTOMER, view], workspace=ws)


def event(i: int) -> dict[str, object]:
    ts = T0 + pd.Timedelta(seconds=i)
    return {"customer_id": i, "event_timestamp": ts.isoformat(), "amount": i / 2, "n": i}


def consumer(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loopml",
            "-w",
            str(home),
            "features",
            "ingest-stream",
            "clicks",
            "--batch-rows",
            "300",
            "--flush-interval",
            "0.5",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def online_count(home: Path) -> int:
    path = home / ".loopml" / "online.db"
    if not path.exists():
        return 0
    store = SqliteOnlineStore(path)
    try:
        return store.count("clicks")
    finally:
        store.close()


def kill_midway_and_restart(
    home: Path, produce: Callable[[], None], args: list[str]
) -> tuple[int, pd.DataFrame]:
    producer = threading.Thread(target=produce)
    first = consumer(home, *args)
    assert first.stdout is not None
    assert "consuming" in first.stdout.readline()  # up; it joins the group right after
    time.sleep(1.0)
    producer.start()  # ~3 s of events, so the kill lands mid-stream
    deadline = time.monotonic() + 90
    while online_count(home) < N_EVENTS // 3:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the consumer made no progress"
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    killed_at = online_count(home)
    assert killed_at < N_EVENTS  # it died mid-stream
    producer.join()
    second = consumer(home, *args, "--idle-exit", "3")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    with Workspace.open(home) as ws:
        offline = data.resolve("clicks@latest", workspace=ws).to_pandas()
    return online_count(home), offline


def check_counts(online: int, offline: pd.DataFrame) -> None:
    assert online == N_EVENTS
    events = offline[offline.customer_id >= 0]
    assert len(events) == N_EVENTS  # nothing lost ...
    assert events.customer_id.nunique() == N_EVENTS  # ... nothing twice
    assert sorted(events.customer_id) == list(range(N_EVENTS))
    row = events.set_index("customer_id").loc[42]
    assert row.amount == 21.0 and row.n == 42
    assert row.event_timestamp == T0 + pd.Timedelta(seconds=42)


def test_redis_stream_restart_loses_and_duplicates_nothing(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    import redis

    home = tmp_path / "ws"
    setup_view(home)
    stream = f"{redis_prefix}clicks"
    client = redis.Redis.from_url(redis_url)

    def produce() -> None:
        for start in range(0, N_EVENTS, 50):
            pipe = client.pipeline()
            for i in range(start, min(start + 50, N_EVENTS)):
                pipe.xadd(stream, {"data": event_json(event(i))})
            pipe.execute()
            time.sleep(0.1)

    online, offline = kill_midway_and_restart(home, produce, ["--stream", stream])
    check_counts(online, offline)
    assert client.xpending(stream, "loopml-clicks")["pending"] == 0
    client.close()


def test_nats_jetstream_restart_loses_and_duplicates_nothing(tmp_path: Path, nats_url: str) -> None:
    import nats

    home = tmp_path / "ws"
    setup_view(home)
    name = f"LOOPMLTEST{uuid.uuid4().hex[:8].upper()}"
    subject = f"{name.lower()}.clicks"

    async def create() -> None:
        nc = await nats.connect(nats_url)
        await nc.jetstream().add_stream(name=name, subjects=[subject])
        await nc.close()

    async def publish() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        for start in range(0, N_EVENTS, 50):
            await asyncio.gather(
                *(
                    js.publish(subject, event_json(event(i)))
                    for i in range(start, min(start + 50, N_EVENTS))
                )
            )
            await asyncio.sleep(0.1)
        await nc.close()

    async def delete() -> None:
        nc = await nats.connect(nats_url)
        await nc.jetstream().delete_stream(name)
        await nc.close()

    asyncio.run(create())
    try:
        args = [
            "--broker",
            "nats",
            "--stream",
            name,
            "--subject",
            subject,
            "--ack-wait",
            "2",
            "--url",
            nats_url,
        ]
        online, offline = kill_midway_and_restart(home, lambda: asyncio.run(publish()), args)
        check_counts(online, offline)
    finally:
        asyncio.run(delete())


def test_ingestor_rejects_bad_events_and_skips_rows_it_has(fs_ws: Workspace) -> None:
    from loopml.features._ingest import Ingestor

    store = SqliteOnlineStore(fs_ws.settings.state_dir / "stream.db")
    ing = Ingestor(fs_ws, "spend_stats", store, batch_rows=10, flush_interval=60)
    good = {"customer_id": 500, "event_timestamp": 1_700_000_000_000, "spend": 1.0, "visits": 2}
    wrong_type = {**good, "customer_id": 501, "visits": "many"}
    ing.add(
        [event_json(good), b"not json", b"[1]", event_json({"customer_id": 1}), event_json(good)],
        [0] * 5,
    )
    ing.add([event_json(wrong_type)], [0])
    assert "event field 'visits' is 'many'" in ing.stats.last_error
    ing.add([event_json({"customer_id": 1})], [0])
    assert ing.stats.events == 2 and ing.stats.rejected == 5
    assert "has no 'event_timestamp'" in ing.stats.last_error
    assert not ing.due()  # 2 of 10 buffered, interval not reached
    assert ing.flush() == 1  # the same event twice is one row
    ing.add([event_json(good)], [0])
    assert ing.flush() == 0 and ing.stats.duplicates_skipped == 2
    latest = data.resolve("spend@latest", workspace=fs_ws).to_pandas()
    assert (latest.customer_id == 500).sum() == 1
    assert latest.loc[latest.customer_id == 500, "plan"].isna().all()  # not in the events
    assert store.read("spend_stats", ["[500]"])[0] == (
        1_700_000_000_000,
        {"spend": 1.0, "visits": 2},
    )
    store.close()

    sql_view = features.FeatureView(
        "sql_view", [CUSTOMER], "select * from {spend@1}", features=["spend"]
    )
    features.apply([sql_view], workspace=fs_ws)
    with pytest.raises(InvalidInput, match="its source is SQL"):
        Ingestor(fs_ws, "sql_view", store)
    with pytest.raises(InvalidInput, match="broker must be 'redis' or 'nats'"):
        features.ingest_stream("spend_stats", broker="kafka", stream="x", workspace=fs_ws)
