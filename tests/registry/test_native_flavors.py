"""Native flavors: XGBoost, LightGBM and Pipelines ending in one, through the registry."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier, XGBRegressor

from loopml.data._preprocessor import Preprocessor
from loopml.errors import InvalidInput, MissingDependency
from loopml.registry import (
    LoadedModel,
    Signature,
    _flavors,
    flavor_for,
    load_model,
    register_model,
)
from loopml.registry._native import (
    LoadedLGBMClassifier,
    LoadedLGBMRegressor,
    register_native_flavors,
)
from loopml.store import Workspace

N = 120
XGB: dict[str, Any] = {"n_estimators": 8, "max_depth": 3, "random_state": 0, "n_jobs": 1}
LGBM: dict[str, Any] = {
    "n_estimators": 8,
    "min_child_samples": 5,
    "random_state": 0,
    "n_jobs": 1,
    "verbose": -1,
}


@pytest.fixture(autouse=True)
def _native_flavors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry's flavor table as after ``register_native_flavors``, restored afterwards."""
    monkeypatch.setattr(_flavors, "_flavors", {"sklearn": _flavors.SklearnFlavor()})
    register_native_flavors()


@pytest.fixture(scope="module")
def X() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"age": rng.integers(18, 80, N), "fee": rng.gamma(2.0, 20.0, N), "visits": rng.random(N)}
    )


@pytest.fixture(scope="module")
def mixed() -> pd.DataFrame:
    """Numeric, categorical, boolean and datetime columns, with a few missing values."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, N).astype(float),
            "fee": rng.gamma(2.0, 20.0, N),
            "plan": rng.choice(["basic", "pro", "max"], N),
            "paperless": rng.random(N) < 0.5,
            "joined": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, N), "D"),
        }
    )
    frame.loc[::17, "age"] = np.nan
    return frame


KINDS = {
    "age": "numeric",
    "fee": "numeric",
    "plan": "categorical",
    "paperless": "boolean",
    "joined": "datetime",
}


def _binary(X: pd.DataFrame) -> Any:
    return ((X.fee > 40) ^ (X.age > 50)).astype(int).to_numpy()


def _labels(X: pd.DataFrame) -> Any:
    """Three string classes."""
    return np.where(X.fee > 50, "high", np.where(X.age > 45, "old", "other"))


def _round_trip(ws: Workspace, model: Any, X: pd.DataFrame, name: str = "m") -> LoadedModel:
    """Register ``model``, load it back, and check it predicts like ``model`` (labels and
    regression values exactly, probabilities to 1e-6)."""
    mv = register_model(ws, model, name, input_example=X.head())
    loaded = load_model(ws, mv.uri)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    else:
        with pytest.raises(InvalidInput, match="has no predict_proba"):
            loaded.predict_proba(X)
    return loaded


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _flavor_json(loaded: LoadedModel, sub: str = "") -> dict[str, Any]:
    info: dict[str, Any] = json.loads((loaded.path / sub / "flavor.json").read_text())
    return info


@pytest.mark.parametrize("target", [_binary, lambda X: (X.fee // 30).clip(0, 2).to_numpy()])
def test_xgboost_classifier_round_trip(
    sqlite_ws: Workspace, X: pd.DataFrame, target: Callable[[pd.DataFrame], Any]
) -> None:
    model = XGBClassifier(**XGB, missing=-1.0).fit(X, target(X))
    loaded = _round_trip(sqlite_ws, model, X)
    assert type(loaded.native) is XGBClassifier
    assert loaded.metadata["flavor"] == "xgboost"
    assert _files(loaded.path) == {"loopml-model.json", "flavor.json", "model.ubj"}
    info = _flavor_json(loaded)
    assert info["class"] == "XGBClassifier" and info["missing"] == "-1.0"
    assert info["classes_"] == model.classes_.tolist()
    assert loaded.native.missing == -1.0 and loaded.native.n_estimators == 8
    assert list(loaded.native.feature_names_in_) == list(X.columns)


def test_xgboost_regressor_round_trip(sqlite_ws: Workspace, X: pd.DataFrame) -> None:
    model = XGBRegressor(**XGB).fit(X, X.fee * 2 + X.visits)
    loaded = _round_trip(sqlite_ws, model, X)
    assert type(loaded.native) is XGBRegressor and loaded.metadata["flavor"] == "xgboost"
    assert _files(loaded.path) == {"loopml-model.json", "flavor.json", "model.ubj"}
    info = _flavor_json(loaded)
    assert info["missing"] == "nan" and "classes_" not in info


@pytest.mark.parametrize("target", [_binary, _labels], ids=["binary", "multiclass-strings"])
def test_lightgbm_classifier_round_trip(
    sqlite_ws: Workspace, X: pd.DataFrame, target: Callable[[pd.DataFrame], Any]
) -> None:
    model = LGBMClassifier(**LGBM).fit(X, target(X))
    loaded = _round_trip(sqlite_ws, model, X)
    assert isinstance(loaded.native, LoadedLGBMClassifier)
    assert loaded.metadata["flavor"] == "lightgbm"
    assert _files(loaded.path) == {"loopml-model.json", "flavor.json", "model.txt"}
    np.testing.assert_array_equal(loaded.native.classes_, model.classes_)
    np.testing.assert_array_equal(loaded.native.feature_names_in_, model.feature_names_in_)
    assert _flavor_json(loaded)["objective"] == model.objective_


def test_lightgbm_regressor_round_trip(sqlite_ws: Workspace, X: pd.DataFrame) -> None:
    model = LGBMRegressor(**LGBM).fit(X, X.fee * 2 + X.visits)
    loaded = _round_trip(sqlite_ws, model, X)
    assert isinstance(loaded.native, LoadedLGBMRegressor)
    assert _files(loaded.path) == {"loopml-model.json", "flavor.json", "model.txt"}
    assert _flavor_json(loaded)["class"] == "LGBMRegressor"


def test_lightgbm_on_arrays_and_saved_again(sqlite_ws: Workspace, X: pd.DataFrame) -> None:
    A = X.to_numpy()
    model = LGBMClassifier(**LGBM).fit(A, _labels(X))
    loaded = _round_trip(sqlite_ws, model, pd.DataFrame(A))
    assert not hasattr(loaded.native, "feature_names_in_")
    assert loaded.native.n_features_in_ == 3
    again = _round_trip(sqlite_ws, loaded.native, pd.DataFrame(A), name="again")
    assert again.metadata["flavor"] == "lightgbm"
    np.testing.assert_array_equal(again.predict(A), model.predict(A))
    with pytest.raises(InvalidInput, match="only predicts"):
        loaded.native.fit(A, _labels(X))


@pytest.mark.parametrize("final", [XGBClassifier(**XGB), LGBMClassifier(**LGBM)])
def test_pipeline_round_trip(sqlite_ws: Workspace, mixed: pd.DataFrame, final: Any) -> None:
    pipe = Pipeline([("prep", Preprocessor.from_profile(KINDS)), ("model", final)])
    pipe.fit(mixed, _binary(mixed.fillna(0)))
    loaded = _round_trip(sqlite_ws, pipe, mixed)
    assert isinstance(loaded.native, Pipeline) and loaded.metadata["flavor"] == "pipeline"
    assert [name for name, _ in loaded.native.steps] == ["prep", "model"]
    native = {XGBClassifier: "model.ubj", LGBMClassifier: "model.txt"}[type(final)]
    assert _files(loaded.path) == {
        "loopml-model.json",
        "flavor.json",
        "preprocessing.joblib",
        "final_estimator/flavor.json",
        f"final_estimator/{native}",
    }
    info = _flavor_json(loaded)
    assert info["steps"] == ["prep", "model"]
    assert info["final_flavor"] == flavor_for(final).name


def test_pipeline_ending_in_sklearn_stays_sklearn(
    sqlite_ws: Workspace, mixed: pd.DataFrame
) -> None:
    pipe = Pipeline([("prep", Preprocessor.from_profile(KINDS)), ("lr", LogisticRegression())])
    pipe.fit(mixed, _binary(mixed.fillna(0)))
    loaded = _round_trip(sqlite_ws, pipe, mixed)
    assert loaded.metadata["flavor"] == "sklearn"
    assert _files(loaded.path) == {"loopml-model.json", "model.joblib"}


def test_flavor_choice_and_idempotent_registration() -> None:
    register_native_flavors()
    assert list(_flavors._flavors) == [
        "sklearn",
        "xgboost",
        "lightgbm",
        "pipeline",
        "torch",
        "keras",
    ]
    assert flavor_for(XGBRegressor()).name == "xgboost"
    assert flavor_for(LGBMRegressor()).name == "lightgbm"
    assert flavor_for(Pipeline([("m", XGBClassifier())])).name == "pipeline"
    assert flavor_for(LogisticRegression()).name == "sklearn"
    # a custom objective cannot be rebuilt from the native file: left to joblib
    assert flavor_for(XGBRegressor(objective=lambda y, p: (y, p))).name == "sklearn"


def test_unfitted_models_are_refused(sqlite_ws: Workspace, X: pd.DataFrame) -> None:
    signature = Signature.infer(X.head(), np.zeros(5))
    for model in (XGBRegressor(), LGBMClassifier()):
        with pytest.raises(InvalidInput, match=f"{type(model).__name__} is not fitted"):
            register_model(sqlite_ws, model, "m", signature=signature)


@pytest.mark.parametrize(
    ("make", "module"),
    [
        (lambda X: XGBClassifier(**XGB).fit(X, _binary(X)), "xgboost"),
        (lambda X: LGBMRegressor(**LGBM).fit(X, X.fee), "lightgbm"),
        (lambda X: Pipeline([("m", XGBRegressor(**XGB))]).fit(X, X.fee), "xgboost"),
    ],
    ids=["xgboost", "lightgbm", "pipeline"],
)
def test_missing_library_names_the_extra(
    sqlite_ws: Workspace,
    X: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    make: Callable[[pd.DataFrame], Any],
    module: str,
) -> None:
    mv = register_model(sqlite_ws, make(X), "m", input_example=X.head())
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependency, match=rf'pip install "loopml\[{module}\]"') as err:
        load_model(sqlite_ws, mv.uri)
    assert (err.value.module, err.value.extra) == (module, module)
