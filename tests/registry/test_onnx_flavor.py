"""The ONNX flavor: real models of each family exported at registration, checked against the
model, stored beside the native files and run back by onnxruntime."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn
from xgboost import XGBClassifier, XGBRegressor

from loopml.errors import InvalidInput, MissingDependency, NotFound
from loopml.registry import _flavors, load_model, register_model
from loopml.registry._native import register_native_flavors
from loopml.registry._onnx import OnnxClassifier, OnnxModel
from loopml.registry._package import package_info
from loopml.store import Workspace
from loopml.training import TorchClassifier, TorchRegressor

N = 160
TREES: dict[str, Any] = {"n_estimators": 8, "random_state": 0, "n_jobs": 1}


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
    return pd.DataFrame(
        {"age": rng.integers(18, 80, N), "fee": rng.gamma(2.0, 20.0, N), "visits": rng.random(N)}
    )


@pytest.fixture(scope="module")
def labels(X: pd.DataFrame) -> pd.Series:
    return (X["age"] + X["fee"] > 80).astype(int)


@pytest.fixture(scope="module")
def values(X: pd.DataFrame) -> pd.Series:
    return 0.5 * X["age"] + X["fee"] + 3 * X["visits"]


class Custom(LogisticRegression):  # type: ignore[misc]
    """A subclass: skl2onnx converts the classes it knows only."""


def _mlp(outputs: int) -> Callable[[], nn.Module]:
    return lambda: nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, outputs))


CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "logistic": lambda: LogisticRegression(max_iter=1000),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=8, random_state=0),
    "xgboost": lambda: XGBClassifier(max_depth=3, **TREES),
    "lightgbm": lambda: LGBMClassifier(min_child_samples=5, verbose=-1, **TREES),
    "torch": lambda: TorchClassifier(_mlp(2), epochs=2, random_state=0),
}
REGRESSORS: dict[str, Callable[[], Any]] = {
    "random_forest": lambda: RandomForestRegressor(max_depth=4, **TREES),
    "xgboost": lambda: XGBRegressor(max_depth=3, **TREES),
    "lightgbm": lambda: LGBMRegressor(min_child_samples=5, verbose=-1, **TREES),
    "torch": lambda: TorchRegressor(_mlp(1), epochs=2, random_state=0),
}


@pytest.mark.parametrize("family", list(CLASSIFIERS))
def test_classifiers_of_each_family_export_and_serve_alike(
    sqlite_ws: Workspace, X: pd.DataFrame, labels: pd.Series, family: str
) -> None:
    model = CLASSIFIERS[family]().fit(X, labels)
    mv = register_model(sqlite_ws, model, "m", input_example=X.head(40), onnx=True)
    onnx = load_model(sqlite_ws, mv.uri, runtime="onnx")
    native = load_model(sqlite_ws, mv.uri)
    assert onnx.runtime == "onnx" and isinstance(onnx.native, OnnxClassifier)
    assert native.runtime == "native" and not isinstance(native.native, OnnxModel)
    rows = X.tail(60)  # rows the export was not checked on
    assert (onnx.predict(rows) == model.predict(rows)).mean() >= 0.95
    assert np.allclose(onnx.predict_proba(rows), model.predict_proba(rows), atol=0.05)
    assert onnx.native.classes_.tolist() == [0, 1]
    info = onnx.metadata["onnx"]
    assert info["inputs"] == "tensor" and info["max_abs_diff"] < 1e-3
    assert {"onnx", "onnxruntime"} <= set(onnx.metadata["library_versions"])


@pytest.mark.parametrize("family", list(REGRESSORS))
def test_regressors_of_each_family_export_and_serve_alike(
    sqlite_ws: Workspace, X: pd.DataFrame, values: pd.Series, family: str
) -> None:
    model = REGRESSORS[family]().fit(X, values)
    mv = register_model(sqlite_ws, model, "m", input_example=X.head(40), onnx=True)
    onnx = load_model(sqlite_ws, mv.uri, runtime="onnx", threads=1)
    got, want = onnx.predict(X.tail(60)), model.predict(X.tail(60))
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=1e-3, atol=1e-3)
    with pytest.raises(InvalidInput, match="has no predict_proba"):
        onnx.predict_proba(X.head(2))


def test_a_pipeline_with_string_columns_gets_one_input_per_column(
    sqlite_ws: Workspace, X: pd.DataFrame, labels: pd.Series
) -> None:
    data = X.assign(plan=np.where(X["visits"] > 0.5, "pro", "basic"))
    prep = ColumnTransformer(
        [("num", "passthrough", ["age", "fee"]), ("cat", OneHotEncoder(), ["plan"])]
    )
    for final in (LogisticRegression(max_iter=1000), XGBClassifier(max_depth=3, **TREES)):
        model = Pipeline([("prep", prep), ("clf", final)]).fit(data, labels)
        mv = register_model(sqlite_ws, model, "p", input_example=data.head(40), onnx=True)
        loaded = load_model(sqlite_ws, mv.uri, runtime="onnx")
        assert loaded.metadata["onnx"]["inputs"] == "columns"
        assert loaded.metadata["onnx"]["input_names"] == ["age", "fee", "visits", "plan"]
        records = data.tail(30).to_dict(orient="records")  # checked against the signature
        assert (loaded.predict(records) == model.predict(data.tail(30))).mean() >= 0.95
    files = package_info(sqlite_ws, mv.package_digest)["files"]
    assert {"onnx/model.onnx", "preprocessing.joblib", "loopml-model.json"} <= set(files)


def test_an_array_fitted_model_takes_arrays(sqlite_ws: Workspace, X: pd.DataFrame) -> None:
    array, target = X.to_numpy(dtype=np.float64), X["fee"].to_numpy()
    model = LinearRegression().fit(array, target)
    mv = register_model(sqlite_ws, model, "a", input_example=array[:10], onnx=True)
    loaded = load_model(sqlite_ws, mv.uri, runtime="onnx")
    assert np.allclose(loaded.predict(array[:5]), model.predict(array[:5]), rtol=1e-4)


def test_an_export_that_answers_otherwise_is_refused_naming_the_row(
    sqlite_ws: Workspace,
) -> None:
    """ONNX runs in float32, where 2**24 + 1 (row 2) rounds to 2**24: y = x - 2**24 is then
    0 instead of 1."""
    x = pd.DataFrame({"x": 2.0**24 + np.array([0.0, 2.0, 1.0, 4.0, 8.0, 6.0])})
    model = LinearRegression().fit(x, x["x"] - 2.0**24)
    with pytest.raises(InvalidInput, match=r"does not reproduce.*the prediction of row 2 is 0"):
        register_model(sqlite_ws, model, "bad", input_example=x, onnx=True)
    with pytest.raises(NotFound, match="'bad'"):  # nothing was registered
        load_model(sqlite_ws, "models:/bad/1")


def test_values_beyond_float32_are_refused_naming_the_cell(
    sqlite_ws: Workspace, X: pd.DataFrame, values: pd.Series
) -> None:
    model = LinearRegression().fit(X, values)
    mv = register_model(sqlite_ws, model, "m", input_example=X.head(4), onnx=True)
    loaded = load_model(sqlite_ws, mv.uri, runtime="onnx")
    rows = X.head(4).astype({"fee": "float64"})
    rows.loc[rows.index[2], "fee"] = 1e39
    with pytest.raises(InvalidInput, match=r"column 'fee' row 2: 1e\+39 is beyond float32"):
        loaded.predict(rows)
    with pytest.raises(InvalidInput, match=r"fails on the input example.*column 'fee' row 2"):
        register_model(sqlite_ws, model, "m", input_example=rows, onnx=True)


def test_bad_requests_are_precise(sqlite_ws: Workspace, X: pd.DataFrame, labels: pd.Series) -> None:
    model = LogisticRegression(max_iter=1000).fit(X, labels)
    with pytest.raises(InvalidInput, match="onnx=True needs input_example="):
        register_model(sqlite_ws, model, "m", signature=None, onnx=True)
    with pytest.raises(InvalidInput, match="onnx must be True or False"):
        register_model(sqlite_ws, model, "m", input_example=X.head(), onnx="yes")  # type: ignore[arg-type]
    mv = register_model(sqlite_ws, model, "m", input_example=X.head())
    with pytest.raises(InvalidInput, match="has no ONNX export; register the model with onnx"):
        load_model(sqlite_ws, mv.uri, runtime="onnx")
    with pytest.raises(InvalidInput, match="runtime must be one of native, onnx"):
        load_model(sqlite_ws, mv.uri, runtime="tensorrt")
    with pytest.raises(InvalidInput, match="threads must be a positive integer"):
        load_model(sqlite_ws, mv.uri, runtime="onnx", threads=0)
    onnx_mv = register_model(sqlite_ws, model, "m", input_example=X.head(), onnx=True)
    loaded = load_model(sqlite_ws, onnx_mv.uri, runtime="onnx")
    with pytest.raises(InvalidInput, match="missing column 'fee'"):
        loaded.predict({"age": [30], "visits": [0.2]})


def test_a_model_without_a_converter_is_refused(
    sqlite_ws: Workspace, X: pd.DataFrame, labels: pd.Series
) -> None:
    model = Custom(max_iter=1000).fit(X, labels)
    with pytest.raises(InvalidInput, match=r"cannot export Custom to ONNX with skl2onnx \("):
        register_model(sqlite_ws, model, "c", input_example=X.head(), onnx=True)


def test_a_pipeline_ending_in_torch_is_refused(
    sqlite_ws: Workspace, X: pd.DataFrame, labels: pd.Series
) -> None:
    model = Pipeline([("s", StandardScaler()), ("t", CLASSIFIERS["torch"]())]).fit(X, labels)
    with pytest.raises(InvalidInput, match="Pipeline ending in a torch model"):
        register_model(sqlite_ws, model, "t", input_example=X.head(), onnx=True)


@pytest.mark.parametrize("module", ["skl2onnx", "onnxruntime"])
def test_missing_onnx_extra_names_it(
    sqlite_ws: Workspace,
    X: pd.DataFrame,
    labels: pd.Series,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
) -> None:
    model = LogisticRegression(max_iter=1000).fit(X, labels)
    mv = register_model(sqlite_ws, model, "m", input_example=X.head(), onnx=True)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependency, match=r'pip install "loopml\[onnx\]"') as err:
        register_model(sqlite_ws, model, "m", input_example=X.head(), onnx=True)
    assert err.value.extra == "onnx"
    if module == "onnxruntime":
        with pytest.raises(MissingDependency, match="onnxruntime"):
            load_model(sqlite_ws, mv.uri, runtime="onnx")


def test_metadata_records_how_to_feed_the_graph(
    sqlite_ws: Workspace, X: pd.DataFrame, labels: pd.Series
) -> None:
    model = XGBClassifier(max_depth=2, **TREES).fit(X, labels)
    mv = register_model(sqlite_ws, model, "x", input_example=X.head(20), onnx=True)
    info = package_info(sqlite_ws, mv.package_digest)
    metadata = json.loads(sqlite_ws.blobs.get_bytes(info["files"]["loopml-model.json"]))
    assert metadata["flavor"] == "xgboost"
    onnx = metadata["onnx"]
    assert onnx["file"] == "onnx/model.onnx" and onnx["kind"] == "estimator"
    assert onnx["columns"] == ["age", "fee", "visits"] and onnx["classes"] == [0, 1]
    assert model.get_booster().feature_names == ["age", "fee", "visits"]  # not changed
