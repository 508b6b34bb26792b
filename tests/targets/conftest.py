"""Fixtures for deployment-target tests: a workspace with a registered churn model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.registry import ModelVersion, register_model, set_alias
from loopml.store import Workspace


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    return X.assign(y=(X["a"] - X["b"] > 0).astype(int))


@pytest.fixture(scope="session")
def model(frame: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(frame[["a", "b", "c"]], frame["y"])


@pytest.fixture
def churn(sqlite_ws: Workspace, frame: pd.DataFrame, model: LogisticRegression) -> ModelVersion:
    """``Churn_Model`` version 2 (with an ONNX export) as ``Churn_Model@production``."""
    example = frame[["a", "b", "c"]].head(20)
    register_model(sqlite_ws, model, "Churn_Model", input_example=example)
    mv = register_model(sqlite_ws, model, "Churn_Model", input_example=example, onnx=True)
    set_alias(sqlite_ws, "Churn_Model", "production", mv.version)
    return mv
