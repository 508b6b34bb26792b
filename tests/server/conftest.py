"""Fixtures for the server tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette

from loopml.server._mlflow import mlflow_routes
from loopml.store import Workspace
from tests.conftest import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser


# -- the MLflow-compatible API (test_mlflow_client.py) -----------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    """The MLflow client decides whether to send usage telemetry when it is first imported
    (before any test runs): switch that off before the test modules import it."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def mlflow_server(ws: Workspace) -> Iterator[LiveServer]:
    """A real uvicorn server of MLflow's REST API over ``ws``, on a free loopback port."""
    with LiveServer(Starlette(routes=mlflow_routes(ws))) as server:
        yield server


# -- end of the MLflow-compatible API's fixtures ----------------------------------------------


# -- the web UI's browser tests ---------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium for a module's browser tests (see tests/server/browser.py). Not
    one per session: Playwright's sync API holds an event loop in the main thread while
    it runs, and later tests that call asyncio.run() would fail."""
    from tests.server.browser import launch

    yield from launch()
