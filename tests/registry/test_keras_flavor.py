"""The keras flavor: Keras 3 models (torch backend) saved as ``.keras`` files and read back,
here and in a fresh process, and served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput, MissingDependency
from loopml.registry import _flavors, flavor_for, load_model, register_model
from loopml.registry._keras import LoadedKerasModel, require_keras
from loopml.registry._native import register_native_flavors
from loopml.serving import create_app
from loopml.store import Workspace
from tests.serving.conftest import TestClient

keras = require_keras()  # the torch backend, chosen before keras is first imported


@pytest.fixture(autouse=True)
def _flavor_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_flavors, "_flavors", {"sklearn": _flavors.SklearnFlavor()})
    register_native_flavors()
    yield


@pytest.fixture(scope="module")
def X() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(64, 3)), columns=["a", "b", "c"])


def _direct(model: Any, X: pd.DataFrame) -> Any:
    """The Keras model's own answer (numpy 2 warns about keras's torch tensors; see
    loopml.registry._keras)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return model.predict(X.to_numpy(), verbose=0)[:, 0]


@pytest.fixture(scope="module")
def binary(X: pd.DataFrame) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(X.to_numpy(), (X["a"] > 0).to_numpy(dtype="float32"), epochs=2, verbose=0)
    return model


def test_a_sequential_model_round_trips(sqlite_ws: Workspace, X: pd.DataFrame, binary: Any) -> None:
    assert flavor_for(binary).name == "keras"
    mv = register_model(sqlite_ws, binary, "k", input_example=X.head())
    assert mv.flavor == "keras" and [c.name for c in mv.signature.outputs] == ["prediction"]
    loaded = load_model(sqlite_ws, mv.uri)
    assert isinstance(loaded.native, LoadedKerasModel)
    expected = _direct(binary, X)
    assert np.allclose(loaded.predict(X), expected, atol=1e-6)
    records = X.head(2)[["c", "b", "a"]].to_dict(orient="records")  # columns by name
    assert np.allclose(loaded.predict(records), expected[:2], atol=1e-6)
    with pytest.raises(InvalidInput, match="missing column 'b'"):
        loaded.predict({"a": [1.0], "c": [2.0]})
    again = register_model(sqlite_ws, loaded.native, "k", input_example=X.head())
    assert np.allclose(load_model(sqlite_ws, again.uri).predict(X), expected, atol=1e-6)
    with pytest.raises(InvalidInput, match="only predicts"):
        loaded.native.fit(X)


def test_a_functional_softmax_model_gives_a_column_per_unit(
    sqlite_ws: Workspace, X: pd.DataFrame
) -> None:
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, outputs)
    mv = register_model(sqlite_ws, model, "f", input_example=X.head())
    got = load_model(sqlite_ws, mv.uri).predict(X)
    assert got.shape == (len(X), 3) and np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert [c.name for c in mv.signature.outputs] == ["0", "1", "2"]


def test_a_fresh_process_loads_it_on_the_torch_backend(
    sqlite_ws: Workspace, X: pd.DataFrame, binary: Any, tmp_path: Path
) -> None:
    mv = register_model(sqlite_ws, binary, "k", input_example=X.head())
    X.to_parquet(tmp_path / "x.parquet")
    code = """
import json, sys
import pandas as pd
from loopml.registry import load_model
from loopml.store import Workspace
model = load_model(Workspace.open(sys.argv[1]), sys.argv[2])  # imports keras first
import keras
rows = pd.read_parquet(sys.argv[3])
print(json.dumps([keras.backend.backend(), model.predict(rows).tolist()]))
"""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(sqlite_ws.home), mv.uri, str(tmp_path / "x.parquet")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    backend, predictions = json.loads(out.stdout.strip().splitlines()[-1])
    assert backend == "torch"
    assert np.allclose(predictions, _direct(binary, X), atol=1e-6)


def test_served_over_http(sqlite_ws: Workspace, X: pd.DataFrame, binary: Any) -> None:
    register_model(sqlite_ws, binary, "k", input_example=X.head())
    with TestClient(create_app(sqlite_ws, ["k/1"], logger=False)) as client:
        body = client.post("/v1/models/k/predict", json=X.head(2).to_dict(orient="records"))
    assert body.status_code == 200, body.text
    expected = _direct(binary, X.head(2))
    assert np.allclose(body.json()["predictions"], expected, atol=1e-6)


def test_onnx_and_a_missing_keras_are_precise(
    sqlite_ws: Workspace, X: pd.DataFrame, binary: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidInput, match="ONNX export of Keras models is not supported"):
        register_model(sqlite_ws, binary, "k", input_example=X.head(), onnx=True)
    mv = register_model(sqlite_ws, binary, "k", input_example=X.head())
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(MissingDependency, match=r'pip install "loopml\[keras\]"'):
        load_model(sqlite_ws, mv.uri)
