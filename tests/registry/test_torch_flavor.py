"""The torch flavor: torch estimators saved as ``torch.export`` programs and read back,
alone and at the end of a Pipeline, in this process and in a fresh one."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from loopml.errors import InvalidInput, MissingDependency
from loopml.registry import _flavors, flavor_for, load_model, register_model
from loopml.registry._native import register_native_flavors
from loopml.registry._torch import LoadedTorchClassifier, LoadedTorchRegressor, TorchFlavor
from loopml.store import Workspace
from loopml.training import TorchClassifier, TorchRegressor


@pytest.fixture(autouse=True)
def _flavor_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The flavor table as after ``register_native_flavors``, restored afterwards; one
    torch thread."""
    monkeypatch.setattr(_flavors, "_flavors", {"sklearn": _flavors.SklearnFlavor()})
    register_native_flavors()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Images(nn.Module):
    """A small CNN over 1x4x4 images; defined here, so a load without pickle of this class
    is what a fresh process proves."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(torch.relu(self.conv(x)).flatten(1))
        return out


@pytest.fixture(scope="module")
def images() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(120, 16)), columns=[f"p{i}" for i in range(16)])
    y = np.array(["a", "b", "c"])[np.argmax(X[["p0", "p5", "p10"]].to_numpy(), axis=1)]
    return X, y


@pytest.fixture(scope="module")
def cnn(images: tuple[pd.DataFrame, np.ndarray[Any, Any]]) -> TorchClassifier:
    X, y = images
    clf = TorchClassifier(Images, epochs=5, input_shape=(1, 4, 4), random_state=0)
    return clf.fit(X, y)


def test_a_classifier_round_trips_in_this_process(
    ws: Workspace, cnn: TorchClassifier, images: tuple[pd.DataFrame, Any]
) -> None:
    X, _ = images
    assert flavor_for(cnn).name == "torch"
    mv = register_model(ws, cnn, "cnn", input_example=X.head())
    assert mv.flavor == "torch"
    loaded = load_model(ws, mv.uri)
    native = loaded.native
    assert isinstance(native, LoadedTorchClassifier)
    assert list(native.classes_) == ["a", "b", "c"]
    assert list(native.feature_names_in_) == list(X.columns)
    np.testing.assert_array_equal(loaded.predict(X), cnn.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), cnn.predict_proba(X), rtol=1e-5, atol=1e-7)
    info = json.loads((loaded.path / "flavor.json").read_text())
    assert info["input_shape"] == [1, 4, 4]
    assert info["torch_version"] == torch.__version__
    assert (loaded.path / "model.pt2").is_file()
    assert not list(loaded.path.glob("*.joblib")) and not list(loaded.path.glob("*.pkl"))
    with pytest.raises(InvalidInput, match="only predicts"):
        native.fit(X, None)
    with pytest.raises(InvalidInput, match="'p3'"):
        loaded.predict(X.drop(columns="p3"))


def test_a_fresh_process_loads_without_the_module_class(
    sqlite_ws: Workspace, cnn: TorchClassifier, images: tuple[pd.DataFrame, Any], tmp_path: Path
) -> None:
    X, _ = images
    register_model(sqlite_ws, cnn, "cnn", input_example=X.head())
    X.to_parquet(tmp_path / "X.parquet")
    code = (
        "import sys, numpy as np, pandas as pd\n"
        "from loopml.store import Workspace\n"
        "from loopml.registry import load_model\n"
        f"ws = Workspace.open({str(sqlite_ws.settings.home)!r})\n"
        "model = load_model(ws, 'models:/cnn/1')\n"
        f"X = pd.read_parquet({str(tmp_path / 'X.parquet')!r})\n"
        f"np.save({str(tmp_path / 'proba.npy')!r}, model.predict_proba(X))\n"
        "assert not [m for m in sys.modules if m.partition('.')[0] == 'tests']\n"
        "ws.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    proba = np.load(tmp_path / "proba.npy")
    np.testing.assert_allclose(proba, cnn.predict_proba(X), rtol=1e-5, atol=1e-7)


def test_an_lstm_regressor_fit_on_an_array_round_trips(sqlite_ws: Workspace) -> None:
    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(2, 8, batch_first=True)
            self.head = nn.Linear(8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            head: torch.Tensor = self.head(out[:, -1])
            return head

    X = np.random.default_rng(1).normal(size=(80, 12))
    reg = TorchRegressor(Seq, epochs=3, input_shape=(6, 2), random_state=0).fit(X, X.mean(axis=1))
    mv = register_model(sqlite_ws, reg, "seq", input_example=X[:5])
    loaded = load_model(sqlite_ws, mv.uri)
    assert isinstance(loaded.native, LoadedTorchRegressor)
    np.testing.assert_allclose(loaded.predict(X), reg.predict(X), rtol=1e-5, atol=1e-6)
    assert loaded.predict(X[:1]).shape == (1,)  # a batch of one row works too
    again = register_model(sqlite_ws, loaded.native, "seq", input_example=X[:5])
    assert again.flavor == "torch"
    np.testing.assert_allclose(load_model(sqlite_ws, again.uri).predict(X), reg.predict(X))


def test_a_pipeline_ending_in_a_torch_model_saves_it_natively(sqlite_ws: Workspace) -> None:
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.normal(50, 10, 100), "b": rng.normal(size=100)})
    y = X["a"] / 10 - X["b"]
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    pipe = Pipeline(
        [("scale", StandardScaler()), ("net", TorchRegressor(net, epochs=5, random_state=0))]
    )
    pipe.set_output(transform="pandas").fit(X, y)
    mv = register_model(sqlite_ws, pipe, "pipe", input_example=X.head())
    assert mv.flavor == "pipeline"
    loaded = load_model(sqlite_ws, mv.uri)
    assert (loaded.path / "final_estimator" / "model.pt2").is_file()
    assert isinstance(loaded.native[-1], LoadedTorchRegressor)
    np.testing.assert_allclose(loaded.predict(X), pipe.predict(X), rtol=1e-5, atol=1e-6)


def test_models_that_cannot_be_saved_are_refused(sqlite_ws: Workspace, tmp_path: Path) -> None:
    unfitted = TorchClassifier(nn.Linear(3, 2))
    with pytest.raises(InvalidInput, match="not fitted"):
        register_model(sqlite_ws, unfitted, "m", input_example=np.zeros((2, 3)))

    class Branchy(nn.Module):  # Python control flow on data: not exportable as one graph
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.lin(x)
            return out if float(x.sum()) > 0 else -out

    X = np.random.default_rng(0).normal(size=(20, 3))
    branchy = TorchClassifier(Branchy, epochs=1).fit(X, np.arange(20) % 2)
    with pytest.raises(InvalidInput, match="cannot export Branchy"):
        TorchFlavor().save(branchy, tmp_path)


def test_a_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(MissingDependency, match=r"loopml\[torch\]"):
        TorchFlavor().load(tmp_path)
