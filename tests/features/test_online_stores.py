"""The online store contract, run against every implementation: SQLite and real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml import features
from loopml.errors import InvalidInput
from loopml.features import OnlineStore, RedisOnlineStore, SqliteOnlineStore
from loopml.features._online import encode_key
from loopml.store import Workspace


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        made: OnlineStore = SqliteOnlineStore(tmp_path / "online.db")
    else:
        url = request.getfixturevalue("redis_url")
        made = RedisOnlineStore(url, prefix=request.getfixturevalue("redis_prefix"))
    yield made
    made.close()


def test_write_then_read_in_key_order(store: OnlineStore) -> None:
    assert isinstance(store, OnlineStore)
    k1, k2, k3 = encode_key([1]), encode_key(["a", 2]), encode_key([3])
    written = store.write("v", [(k1, 1000, {"x": 1.5, "s": "hi"}), (k2, 2000, {"x": None})])
    assert written == 2
    assert store.read("v", [k2, k3, k1]) == [
        (2000, {"x": None}),
        None,
        (1000, {"x": 1.5, "s": "hi"}),
    ]
    assert store.read("v", []) == []
    assert store.count("v") == 2


def test_older_rows_never_replace_newer_ones(store: OnlineStore) -> None:
    key = encode_key([7])
    store.write("v", [(key, 5000, {"x": 5})])
    assert store.write("v", [(key, 4000, {"x": 4})]) == 0
    assert store.read("v", [key]) == [(5000, {"x": 5})]
    assert store.write("v", [(key, 5000, {"x": 50})]) == 1  # a replay of the same time wins
    store.write("v", [(key, 6000, {"x": 6})])
    assert store.read("v", [key]) == [(6000, {"x": 6})]


def test_views_are_separate_and_can_be_deleted(store: OnlineStore) -> None:
    key = encode_key([1])
    store.write("a", [(key, 1, {"x": "a"})])
    store.write("b", [(key, 1, {"x": "b"})])
    assert store.read("a", [key])[0] == (1, {"x": "a"})
    store.delete_view("a")
    assert store.read("a", [key]) == [None]
    assert store.read("b", [key]) == [(1, {"x": "b"})]
    assert store.count("a") == 0 and store.count("b") == 1


def test_large_batches_and_nan(store: OnlineStore) -> None:
    rows = [(encode_key([i]), i, {"x": float(i) if i % 2 else float("nan")}) for i in range(1200)]
    assert store.write("big", rows) == 1200
    got = store.read("big", [encode_key([i]) for i in range(1200)])
    assert got[3] == (3, {"x": 3.0}) and got[4] == (4, {"x": None})
    assert store.count("big") == 1200


def test_stores_are_chosen_by_settings(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    with Workspace.init(tmp_path / "a") as ws:
        default = features.open_online_store(ws)
        assert isinstance(default, SqliteOnlineStore)
        assert default.path == ws.settings.state_dir / "online.db"
        default.close()
        other = features.open_online_store(ws, f"sqlite:///{tmp_path / 'x.db'}")
        assert isinstance(other, SqliteOnlineStore) and other.path == tmp_path / "x.db"
        other.close()
        with pytest.raises(InvalidInput, match="online store 'memcached://x'"):
            features.open_online_store(ws, "memcached://x")
    with Workspace.init(
        tmp_path / "b", online_store=redis_url, online_key_prefix=redis_prefix
    ) as ws:
        chosen = features.open_online_store(ws)
        assert isinstance(chosen, RedisOnlineStore) and chosen.prefix == redis_prefix
        chosen.close()
    with pytest.raises(InvalidInput, match="online_store"):
        Workspace.init(tmp_path / "c", online_store="mysql://x")
