"""Fuzz every operation of the server's OpenAPI description: no input may produce a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from loopml.serving import create_app
from loopml.store import Workspace
from tests.fuzzing import assert_no_server_errors

from .conftest import LiveServer


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory, frame, hgb) -> Iterator[str]:
    from loopml.registry import register_model, set_alias

    ws = Workspace.init(tmp_path_factory.mktemp("fuzz") / "ws")
    register_model(ws, hgb, "churn", input_example=frame[["a", "b", "c"]].head(5))
    set_alias(ws, "churn", "production", 1)
    with LiveServer(create_app(ws, ["churn@production"])) as server:
        yield server.url
    ws.close()


def test_no_input_gives_a_server_error(api_url: str) -> None:
    assert_no_server_errors(api_url, min_operations=8, examples=25)
    metrics = httpx.get(f"{api_url}/metrics").text
    assert 'status="200"' in metrics and 'status="422"' in metrics  # it did reach the models
