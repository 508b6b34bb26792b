"""``device=`` for torch models at prediction (``load_model``, ``predict_file``): CUDA when
present, else the CPU with one clear RuntimeWarning; other models refuse a GPU device."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from loopml.errors import InvalidInput
from loopml.registry import _flavors, load_model, register_model
from loopml.registry._native import register_native_flavors
from loopml.serving import predict_file
from loopml.store import Workspace
from loopml.training import TorchClassifier

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.fixture(autouse=True)
def _flavor_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_flavors, "_flavors", {"sklearn": _flavors.SklearnFlavor()})
    register_native_flavors()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def X() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])


@pytest.fixture(scope="module")
def y(X: pd.DataFrame) -> pd.Series:
    return (X["a"] > X["b"]).astype(int)


def _torch(X: pd.DataFrame, y: pd.Series) -> TorchClassifier:
    net = lambda: nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))  # noqa: E731
    return TorchClassifier(net, epochs=2, random_state=0).fit(X, y)


@NO_CUDA
def test_cuda_without_cuda_falls_back_to_the_cpu_with_one_warning(
    sqlite_ws: Workspace, X: pd.DataFrame, y: pd.Series
) -> None:
    mv = register_model(sqlite_ws, _torch(X, y), "t", input_example=X.head())
    expected = load_model(sqlite_ws, mv.uri).predict_proba(X)
    with pytest.warns(RuntimeWarning, match=r"device='cuda' but CUDA is not available") as seen:
        loaded = load_model(sqlite_ws, mv.uri, device="cuda")
    assert len(seen) == 1 and "predicting on the CPU instead" in str(seen[0].message)
    assert loaded.native.device == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # predicting warns no further
        assert np.allclose(loaded.predict_proba(X), expected)
        auto = load_model(sqlite_ws, mv.uri, device="auto")  # auto: silently the CPU
    assert auto.native.device == "cpu"


@NO_CUDA
def test_a_pipeline_ending_in_torch_and_batch_prediction_fall_back_too(
    sqlite_ws: Workspace, X: pd.DataFrame, y: pd.Series, tmp_path: Path
) -> None:
    model = Pipeline([("s", StandardScaler()), ("t", _torch(X, y))]).fit(X, y)
    mv = register_model(sqlite_ws, model, "p", input_example=X.head())
    with pytest.warns(RuntimeWarning, match="cuda:0"):
        assert load_model(sqlite_ws, mv.uri, device="cuda:0").native.steps[-1][1].device == "cpu"
    X.to_parquet(tmp_path / "in.parquet")
    with pytest.warns(RuntimeWarning, match="CUDA is not available") as seen:
        result = predict_file(
            sqlite_ws, mv.uri, tmp_path / "in.parquet", tmp_path / "out.parquet", device="cuda"
        )
    assert len(seen) == 1 and result.rows == len(X)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["prediction"].tolist() == model.predict(X).tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_when_present_predicts_on_it(
    sqlite_ws: Workspace, X: pd.DataFrame, y: pd.Series
) -> None:
    mv = register_model(sqlite_ws, _torch(X, y), "t", input_example=X.head())
    loaded = load_model(sqlite_ws, mv.uri, device="cuda")
    assert loaded.native.device == "cuda"
    expected = load_model(sqlite_ws, mv.uri).predict_proba(X)
    assert np.allclose(loaded.predict_proba(X), expected, atol=1e-5)


def test_bad_devices_and_gpu_for_other_models_are_refused(
    sqlite_ws: Workspace, X: pd.DataFrame, y: pd.Series
) -> None:
    mv = register_model(sqlite_ws, _torch(X, y), "t", input_example=X.head())
    for bad in ("tpu", "cuda:x", "", 3):
        with pytest.raises(InvalidInput, match="device must be 'cpu', 'cuda', 'cuda:N' or 'auto'"):
            load_model(sqlite_ws, mv.uri, device=bad)  # type: ignore[arg-type]
    lr = register_model(sqlite_ws, LogisticRegression().fit(X, y), "lr", input_example=X.head())
    with pytest.raises(InvalidInput, match="applies to torch models; this is a LogisticRegression"):
        load_model(sqlite_ws, lr.uri, device="cuda")
    assert load_model(sqlite_ws, lr.uri, device="auto").predict(X.head(2)).shape == (2,)
    onnx = register_model(sqlite_ws, _torch(X, y), "o", input_example=X.head(), onnx=True)
    with pytest.raises(InvalidInput, match="run by onnxruntime on the CPU"):
        load_model(sqlite_ws, onnx.uri, runtime="onnx", device="cuda")
