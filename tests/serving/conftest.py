"""Fixtures for serving tests: small registered models and a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import uvicorn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette >= 1.x asks for httpx2; httpx still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from loopml.registry import register_model, set_alias
from loopml.store import Workspace

FEATURES = ["a", "b", "c"]
__all__ = ["FEATURES", "LiveServer", "TestClient"]


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    """200 rows of three float features and a 0/1 target."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=FEATURES)
    return X.assign(y=(X["a"] + 0.5 * X["b"] > 0).astype(int))


@pytest.fixture(scope="session")
def hgb(frame: pd.DataFrame) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(
        frame[FEATURES], frame["y"]
    )


@pytest.fixture(scope="session")
def flipped(frame: pd.DataFrame) -> LogisticRegression:
    """A second model of the same signature that predicts the opposite class."""
    return LogisticRegression().fit(frame[FEATURES], 1 - frame["y"])


@pytest.fixture(scope="session")
def mixed_pipeline(frame: pd.DataFrame) -> Pipeline:
    """A pipeline over a float and a string column (no numpy fast path)."""
    data = frame.assign(plan=np.where(frame["c"] > 0, "pro", "basic"))
    prep = ColumnTransformer([("num", "passthrough", ["a"]), ("cat", OneHotEncoder(), ["plan"])])
    return Pipeline([("prep", prep), ("lr", LogisticRegression())]).fit(
        data[["a", "plan"]], data["y"]
    )


@pytest.fixture
def churn_ws(
    sqlite_ws: Workspace, frame: pd.DataFrame, hgb: HistGradientBoostingClassifier
) -> Workspace:
    """A workspace with model ``churn`` version 1 as ``churn@production``."""
    register_model(sqlite_ws, hgb, "churn", input_example=frame[FEATURES].head(5))
    set_alias(sqlite_ws, "churn", "production", 1)
    return sqlite_ws


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """A uvicorn server for ``app`` on a free loopback port, in a thread."""

    def __init__(self, app: Starlette) -> None:
        self.port = free_port()
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
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def live() -> Iterator[type[LiveServer]]:
    yield LiveServer
