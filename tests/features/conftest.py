"""Feature-store fixtures: small time-stamped data, registered definitions, and the
machine's Redis (127.0.0.1:6379) and NATS (127.0.0.1:4222) with per-test key prefixes and
stream names. Under ``CI=true`` an unreachable Redis or NATS fails the test instead of
skipping it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from loopml import data, features
from loopml.store import Workspace

REDIS_URL = os.environ.get("LOOPML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("LOOPML_TEST_NATS_URL", "nats://127.0.0.1:4222")
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def unreachable(what: str, detail: object) -> None:
    """Fail under CI, else skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is unreachable under CI: {detail}")
    pytest.skip(f"{what} is unreachable: {detail}")


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis, checked to answer."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unreachable(f"Redis at {REDIS_URL}", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix; every key under it is deleted afterwards."""
    import redis

    prefix = f"loopml-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*", 1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def nats_url() -> str:
    """The machine's NATS server (JetStream on), checked to accept a connection."""
    host, port = NATS_URL.removeprefix("nats://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        unreachable(f"NATS at {NATS_URL}", exc)
    return NATS_URL


def feature_rows(n_entities: int = 20, per_entity: int = 15, seed: int = 0) -> pd.DataFrame:
    """Rows of (customer_id, event_timestamp, spend, visits, plan) at random hours (no two
    rows of one customer at the same time: which of two such rows wins is unspecified)."""
    rng = np.random.default_rng(seed)
    n = n_entities * per_entity
    hours = np.concatenate([rng.permutation(60 * 24)[:per_entity] for _ in range(n_entities)])
    return pd.DataFrame(
        {
            "customer_id": np.repeat(np.arange(n_entities, dtype=np.int64), per_entity),
            "event_timestamp": T0 + pd.to_timedelta(hours, unit="h"),
            "spend": rng.normal(100, 20, n).round(2),
            "visits": rng.integers(0, 10, n).astype(np.int64),
            "plan": rng.choice(["basic", "pro"], n),
        }
    )


def entity_rows(n: int = 400, n_entities: int = 22, seed: int = 1) -> pd.DataFrame:
    """Entity rows (some for customers without features) with a label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, n_entities, n).astype(np.int64),
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 70 * 24, n), unit="h"),
            "label": rng.integers(0, 2, n),
        }
    )


CUSTOMER = features.Entity("customer", ["customer_id"])


def spend_view(ttl: object = "7d", source: str = "spend@latest") -> features.FeatureView:
    return features.FeatureView(
        "spend_stats",
        [CUSTOMER],
        source,
        ttl=ttl,  # type: ignore[arg-type]
        features=["spend", "visits"],
        owner="growth",
        tags={"team": "growth"},
    )


@pytest.fixture
def fs_ws(sqlite_ws: Workspace) -> Workspace:
    """A SQLite workspace with dataset ``spend`` and view ``spend_stats`` (ttl 7d) applied."""
    data.ingest(feature_rows(), name="spend", workspace=sqlite_ws)
    features.apply([CUSTOMER, spend_view()], workspace=sqlite_ws)
    return sqlite_ws
