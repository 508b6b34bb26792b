"""Model packages and loading: round trips, checked input, the cache, damaged blobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline

from loopml.errors import CorruptBlob, InvalidInput
from loopml.registry import get_model_version, load_model, register_model, set_alias
from loopml.store import Workspace

FEATURES = ["age", "income", "plan"]


def _cache(ws: Workspace) -> Path:
    return ws.settings.state_dir / "cache" / "packages"


def test_round_trip_predicts_like_the_estimator(
    ws: Workspace, pipeline: Pipeline, churn: pd.DataFrame
) -> None:
    X = churn[FEATURES]
    mv = register_model(ws, pipeline, "churn", input_example=X.head(5))
    mv = set_alias(ws, "churn", "production", mv.version)
    model = load_model(ws, "models:/churn@production")
    assert model.model_version == mv and model.signature == mv.signature
    assert isinstance(model.native, Pipeline)
    np.testing.assert_array_equal(model.predict(X), pipeline.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), pipeline.predict_proba(X))
    records = X.head(2).to_dict(orient="records")
    np.testing.assert_array_equal(model.predict(records), pipeline.predict(X.head(2)))
    extra = churn.assign(noise=1.0)[["noise", "plan", "income", "age"]]  # extra + reordered
    np.testing.assert_array_equal(model.predict(extra), pipeline.predict(X))


def test_package_metadata(ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame) -> None:
    mv = register_model(ws, clf, "churn", input_example=churn[["age", "income"]].head(2))
    model = load_model(ws, mv)
    meta = model.metadata
    assert meta["format_version"] == 1 and meta["flavor"] == "sklearn"
    assert meta["predict_proba"] is True
    assert meta["signature"] == mv.signature.to_dict()
    assert {"python", "loopml", "sklearn", "numpy", "pandas"} <= set(meta["library_versions"])
    assert meta["created_at"].endswith("+00:00")
    assert sorted(p.name for p in model.path.iterdir()) == ["loopml-model.json", "model.joblib"]
    assert model.path == _cache(ws) / mv.package_digest


def test_input_is_checked_before_predicting(
    ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame
) -> None:
    register_model(ws, clf, "churn", input_example=churn[["age", "income"]].head(2))
    model = load_model(ws, "churn")
    with pytest.raises(InvalidInput, match=r"^models:/churn/1: .*missing column 'age'"):
        model.predict({"income": [1.0]})
    with pytest.raises(InvalidInput, match="row 0 value 'old'"):
        model.predict({"age": ["old"], "income": [1.0]})
    as_floats = {"age": [30.0, 61.0], "income": [1000, 2000]}  # int<->float, lossless
    expected = clf.predict(pd.DataFrame({"age": [30, 61], "income": [1000.0, 2000.0]}))
    np.testing.assert_array_equal(model.predict(as_floats), expected)


def test_array_models_are_fed_arrays(ws: Workspace) -> None:
    X = np.arange(20.0).reshape(10, 2)
    reg = LinearRegression().fit(X, X @ [1.0, 2.0])
    register_model(ws, reg, "price", input_example=X[:3])
    model = load_model(ws, "models:/price")
    assert model.signature.input_type == "ndarray"
    np.testing.assert_allclose(model.predict(X), reg.predict(X))
    np.testing.assert_allclose(model.predict([[1, 2]]), reg.predict(np.array([[1.0, 2.0]])))
    with pytest.raises(InvalidInput, match="has no predict_proba"):
        model.predict_proba(X)


def test_the_cache_is_reused(ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame) -> None:
    mv = register_model(ws, clf, "churn", input_example=churn[["age", "income"]].head(2))
    first = load_model(ws, mv.uri)
    shutil.rmtree(ws.blobs.root)  # once materialised, the package no longer needs the store
    again = load_model(ws, mv.uri)
    assert again.path == first.path
    assert [p.name for p in _cache(ws).iterdir()] == [mv.package_digest]


def test_a_damaged_package_blob_raises_corrupt_blob(
    ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame
) -> None:
    mv = register_model(ws, clf, "churn", input_example=churn[["age", "income"]].head(2))
    manifest = json.loads(ws.blobs.get_bytes(mv.package_digest))
    Path(ws.blobs.path(manifest["model.joblib"])).write_bytes(b"not the model you saved")
    shutil.rmtree(ws.settings.state_dir / "cache", ignore_errors=True)
    with pytest.raises(CorruptBlob, match=manifest["model.joblib"]):
        load_model(ws, get_model_version(ws, "churn").uri)
    assert list(_cache(ws).iterdir()) == []  # no partial package left behind
