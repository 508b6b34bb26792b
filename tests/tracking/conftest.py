"""Tracking is a store contract: every test here runs on SQLite, on PostgreSQL and as a
client of a loopml server (see ``any_ws`` in tests/conftest.py)."""

from __future__ import annotations

import pytest

from loopml.store import Workspace


@pytest.fixture
def ws(any_ws: Workspace) -> Workspace:
    return any_ws
