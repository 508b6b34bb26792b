"""``ServeConfig(runtime="onnx")`` (``loopml serve --runtime onnx``): the same endpoints answer
from the model's ONNX export, run by onnxruntime."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from loopml.errors import InvalidInput
from loopml.registry import load_model, register_model
from loopml.serving import ServeConfig, create_app
from loopml.serving._pool import numpy_estimator
from loopml.store import Workspace

from .conftest import FEATURES, TestClient

ROWS = [{"a": 0.5, "b": -1.0, "c": 2.0}, {"a": -2.0, "b": -2.0, "c": 0.0}]


@pytest.fixture
def onnx_ws(
    sqlite_ws: Workspace, frame: pd.DataFrame, hgb: HistGradientBoostingClassifier
) -> Workspace:
    register_model(sqlite_ws, hgb, "churn", input_example=frame[FEATURES].head(50), onnx=True)
    return sqlite_ws


def test_onnx_runtime_answers_like_the_model(
    onnx_ws: Workspace, hgb: HistGradientBoostingClassifier
) -> None:
    app = create_app(onnx_ws, ["churn/1"], config=ServeConfig(runtime="onnx"), logger=False)
    with TestClient(app) as client:
        body = client.post("/v1/models/churn/predict?proba=true", json=ROWS).json()
        expected = hgb.predict(pd.DataFrame(ROWS)[FEATURES])
        assert body["predictions"] == expected.tolist()
        assert np.allclose(body["probabilities"], hgb.predict_proba(pd.DataFrame(ROWS)), atol=1e-4)
        assert body["classes"] == [0, 1]
        split = {"dataframe_split": {"columns": FEATURES, "data": [[0.5, -1.0, 2.0]]}}
        assert client.post("/invocations", json=split).json()["predictions"] == [expected[0]]
        bad = client.post("/v1/models/churn/predict", json=[{"a": 1.0, "b": "x", "c": 1.0}])
        assert bad.status_code == 422 and "'b'" in bad.text


def test_bad_runtime_and_a_model_without_export_are_refused(
    sqlite_ws: Workspace, frame: pd.DataFrame, hgb: HistGradientBoostingClassifier
) -> None:
    with pytest.raises(InvalidInput, match="runtime must be one of native, onnx"):
        ServeConfig(runtime="tvm")
    register_model(sqlite_ws, hgb, "plain", input_example=frame[FEATURES].head(5))
    app = create_app(sqlite_ws, ["plain/1"], config=ServeConfig(runtime="onnx"), logger=False)
    with pytest.raises(InvalidInput, match="no ONNX export"), TestClient(app):
        pass


def test_a_tensor_export_is_fed_arrays(onnx_ws: Workspace, frame: pd.DataFrame) -> None:
    """No DataFrame per batch: the export takes the signature's columns as one array."""
    loaded = load_model(onnx_ws, "churn/1", runtime="onnx")
    assert numpy_estimator(loaded, FEATURES, fast=True) is loaded.native
    assert numpy_estimator(loaded, FEATURES, fast=False) is None
    array = frame[FEATURES].head(4).to_numpy()
    assert loaded.native.predict(array).tolist() == loaded.predict(frame.head(4)).tolist()
