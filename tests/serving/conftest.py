"""Fixtures for serving tests: small registered models and a real uvicorn server on loopback."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette >= 1.x asks for httpx2; httpx still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from loopml.registry import register_model, set_alias
from loopml.store import Workspace
from tests.conftest import LiveServer

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


@pytest.fixture
def live() -> Iterator[type[LiveServer]]:
    yield LiveServer
