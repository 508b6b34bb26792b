"""Shared fixtures: a fresh workspace on SQLite, and the same on the machine's PostgreSQL.

The ``ws`` fixture runs each test twice, once per metadata store. PostgreSQL comes from
``LOOPML_TEST_POSTGRES_URL`` (default: the machine's server, database ``test``); each test
session works in a database of its own, created and dropped here. Under ``CI=true`` an
unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

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


@pytest.fixture
def sqlite_ws(tmp_path: Path) -> Iterator[Workspace]:
    """A fresh workspace on the default embedded store (SQLite + local blobs)."""
    workspace = Workspace.init(tmp_path / "ws")
    yield workspace
    workspace.close()
