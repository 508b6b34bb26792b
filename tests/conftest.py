"""Shared fixtures: a fresh workspace on SQLite, and the same on the machine's PostgreSQL.

The ``ws`` fixture runs each test twice, once per metadata store. ``any_ws`` adds a third
way in, the store contract's: a client of a real loopml server (uvicorn on loopback)
whose own workspace is on PostgreSQL; ``db_ws`` is the workspace that holds the database
(the server's, for a client). PostgreSQL comes from
``LOOPML_TEST_POSTGRES_URL`` (default: the machine's server, database ``test``); each test
session works in a database of its own, created and dropped here. Under ``CI=true`` an
unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn

from loopml.store import Workspace
from loopml.store.schema import metadata

POSTGRES_URL = os.environ.get(
    "LOOPML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's LOOPML_* variables or workspace."""
    for key in list(os.environ):
        if key.startswith("LOOPML_") and key != "LOOPML_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session."""
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"loopml_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable under CI: {exc}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A fresh, open workspace whose metadata DB is SQLite or PostgreSQL."""
    home = tmp_path / "ws"
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        _empty_postgres(url)
        workspace = Workspace.init(home, store_uri=url)
    else:
        workspace = Workspace.init(home)
    yield workspace
    workspace.close()


class LiveServer:
    """A uvicorn server for ``app`` on a free loopback port, in a thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_BACKING: dict[int, Workspace] = {}  # id(client workspace) -> the server's workspace


@pytest.fixture(params=["sqlite", "postgres", "http"])
def any_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on SQLite, on PostgreSQL, or a client of a loopml server over PostgreSQL."""
    if request.param != "http":
        yield request.getfixturevalue(f"_{request.param}_ws")
        return
    from loopml.server import create_app

    url = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    server_ws = Workspace.init(tmp_path / "server", store_uri=url)
    with LiveServer(create_app(server_ws)) as live:
        client = Workspace.open(tracking_uri=live.url)
        _BACKING[id(client)] = server_ws
        yield client
        client.close()
        del _BACKING[id(client)]
    server_ws.close()


@pytest.fixture
def db_ws(any_ws: Workspace) -> Workspace:
    """The workspace holding ``any_ws``'s database (the server's one for a client)."""
    return _BACKING.get(id(any_ws), any_ws)


@pytest.fixture
def _postgres_ws(postgres_url: str, tmp_path: Path) -> Iterator[Workspace]:
    _empty_postgres(postgres_url)
    workspace = Workspace.init(tmp_path / "pg-ws", store_uri=postgres_url)
    yield workspace
    workspace.close()


@pytest.fixture
def _sqlite_ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "sqlite-ws")
    yield workspace
    workspace.close()


@pytest.fixture
def sqlite_ws(tmp_path: Path) -> Iterator[Workspace]:
    """A fresh workspace on the default embedded store (SQLite + local blobs)."""
    workspace = Workspace.init(tmp_path / "ws")
    yield workspace
    workspace.close()
