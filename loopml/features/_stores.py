"""Choosing the online store from a URI or the workspace's settings."""

from __future__ import annotations

from loopml.errors import InvalidInput
from loopml.features._online import OnlineStore, SqliteOnlineStore
from loopml.features._redis import RedisOnlineStore
from loopml.store import Workspace


def open_online_store(
    ws: Workspace, uri: str | None = None, *, prefix: str | None = None
) -> OnlineStore:
    """The online store ``uri`` names (default: the workspace's ``online_store`` setting)."""
    uri = uri or ws.settings.online_store
    if uri == "sqlite":
        return SqliteOnlineStore(ws.settings.state_dir / "online.db")
    if uri.startswith("sqlite:///"):
        return SqliteOnlineStore(uri.removeprefix("sqlite:///"))
    if uri.startswith(("redis://", "rediss://")):
        key_prefix = ws.settings.online_key_prefix if prefix is None else prefix
        return RedisOnlineStore(uri, prefix=key_prefix)
    raise InvalidInput(
        f"online store {uri!r}: use 'sqlite', 'sqlite:///path/online.db' or 'redis://host:port/db'"
    )


def default_online_store(ws: Workspace) -> OnlineStore:
    """The workspace's one online store from its settings (made on first use)."""
    return ws.component(open_online_store)
