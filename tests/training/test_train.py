"""``train``: fit, evaluate, track and register, and the bad inputs it refuses up front."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml import data, registry
from loopml.errors import InvalidInput
from loopml.store import Node, Workspace, upstream
from loopml.tracking import get_run, list_artifacts
from loopml.training import Split, train


@pytest.fixture
def churn(sqlite_ws: Workspace) -> data.DatasetVersion:
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "age": rng.integers(18, 80, n),
            "plan": rng.choice(["basic", "pro", "max"], n),
            "fee": rng.gamma(2.0, 20.0, n),
            "region": rng.choice(["north", "south"], n),
        }
    )
    frame["churned"] = (frame.fee > 40) ^ (rng.random(n) < 0.1)
    return data.ingest(frame, name="churn", workspace=sqlite_ws)


def test_train_tracks_and_registers(sqlite_ws: Workspace, churn: data.DatasetVersion) -> None:
    result = train(
        churn,
        "churned",
        model="random_forest",
        params={"n_estimators": 30},
        slice_by="region",
        workspace=sqlite_ws,
    )
    assert result.task == "binary"
    assert 0.7 < result.metrics["roc_auc"] <= 1.0 and "f1" in result.metrics
    run = get_run(sqlite_ws, result.run_id)
    assert run.status == "FINISHED" and run.experiment == "churn"
    assert (
        run.params["model"] == "RandomForestClassifier" and run.params["model.n_estimators"] == "30"
    )
    assert run.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    paths = set(list_artifacts(sqlite_ws, result.run_id).path)
    assert {
        "plots/roc_curve.png",
        "plots/confusion_matrix.json",
        "evaluation/sliced.json",
        "environment.json",
    } <= paths
    mv = result.register("churn", alias="production")
    loaded = registry.load_model(sqlite_ws, "models:/churn@production")
    raw = churn.to_pandas().drop(columns=["churned"]).head(10)
    np.testing.assert_array_equal(loaded.predict(raw), result.model.predict(raw))
    chain = {str(e.src) for e in upstream(sqlite_ws.db, Node("model_version", "churn/1"))}
    assert "dataset_version:churn@1" in chain and f"run:{result.run_id}" in chain
    assert mv.version == 1


@pytest.mark.parametrize("split", ["kfold", "stratified", {"kind": "holdout", "test_size": 0.3}])
def test_splits_and_estimators(
    sqlite_ws: Workspace, churn: data.DatasetVersion, split: str | dict[str, object]
) -> None:
    result = train(
        churn, "churned", model=LogisticRegression(C=0.5), split=split, workspace=sqlite_ws
    )
    assert "accuracy" in result.metrics


def test_regression_and_clustering(sqlite_ws: Workspace, churn: data.DatasetVersion) -> None:
    reg = train(churn, "fee", model="hist_gb", params={"max_iter": 20}, workspace=sqlite_ws)
    assert reg.task == "regression" and {"rmse", "mae", "r2"} <= set(reg.metrics)
    frame = churn.to_pandas()[["age", "fee"]]
    clusters = train(frame, None, model="kmeans", params={"n_clusters": 3}, workspace=sqlite_ws)
    assert clusters.task == "clustering" and "silhouette" in clusters.metrics


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda f: f, {"target": "nope"}, "target column 'nope'"),
        (lambda f: f.assign(churned=True), {}, "one class"),
        (lambda f: f.assign(empty=None), {}, "feature 'empty' has no values"),
        (
            lambda f: pd.concat([f[f.churned].head(6), f[~f.churned].head(2)]),
            {"split": Split("stratified", n_splits=5)},
            "at least 5 rows",
        ),
        (
            lambda f: f,
            {"params": {"n_estimatorz": 3}, "model": "random_forest"},
            "no hyperparameter",
        ),
        (
            lambda f: f,
            {"params": {"n_estimators": -1}, "model": "random_forest"},
            "invalid hyperparameters",
        ),
        (lambda f: f, {"model": "no_such_family"}, "unknown model family"),
        (lambda f: f.assign(blob=[[1]] * len(f)), {}, "unsupported type"),
    ],
)
def test_bad_input_is_refused_before_training(
    sqlite_ws: Workspace,
    churn: data.DatasetVersion,
    change: object,
    kwargs: dict[str, object],
    message: str,
) -> None:
    frame = change(churn.to_pandas())  # type: ignore[operator]
    options: dict[str, object] = {"target": "churned", **kwargs}
    with pytest.raises(InvalidInput, match=message):
        train(frame, workspace=sqlite_ws, **options)  # type: ignore[arg-type]


def test_native_families_round_trip_through_the_registry(
    sqlite_ws: Workspace, churn: data.DatasetVersion
) -> None:
    light = train(
        churn, "churned", model="lightgbm", params={"n_estimators": 20}, workspace=sqlite_ws
    )
    mv = light.register("churn-lgbm")
    assert mv.flavor == "pipeline"
    raw = churn.to_pandas().drop(columns=["churned"]).head(20)
    loaded = registry.load_model(sqlite_ws, mv.uri)
    np.testing.assert_allclose(loaded.predict_proba(raw), light.model.predict_proba(raw))
    frame = churn.to_pandas().assign(churned=lambda f: f.churned.astype(int))
    xgb = train(frame, "churned", model="xgboost", params={"n_estimators": 20}, workspace=sqlite_ws)
    assert registry.load_model(sqlite_ws, xgb.register("churn-xgb").uri).predict(raw).shape == (20,)
    with pytest.raises(InvalidInput, match="xgboost needs class labels"):
        train(churn, "churned", model="xgboost", workspace=sqlite_ws)


def test_dimensionality_reduction_is_trained_tracked_and_served(sqlite_ws: Workspace) -> None:
    from sklearn.datasets import load_wine

    from loopml.registry import load_model
    from loopml.tracking import get_run

    X = load_wine(as_frame=True).frame.drop(columns="target")
    result = train(X, None, model="pca", params={"n_components": 3}, workspace=sqlite_ws)
    assert result.task == "reduction"
    assert 0 < result.metrics["explained_variance"] <= 1
    assert result.metrics["reconstruction_rmse"] > 0
    assert get_run(sqlite_ws, result.run_id).tags["task"] == "reduction"
    mv = result.register("wine-pca")
    embedded = load_model(sqlite_ws, mv.uri).predict(X.head(4))
    assert embedded.shape == (4, 3)
    np.testing.assert_allclose(embedded, result.model.transform(X.head(4)))  # type: ignore[union-attr]
    more = train(X, None, model="pca", params={"n_components": 8}, workspace=sqlite_ws)
    assert more.metrics["explained_variance"] > result.metrics["explained_variance"]
    with pytest.raises(InvalidInput, match=r"pca.*does not do binary"):
        train(X.assign(y=[0, 1] * 89), "y", model="pca", workspace=sqlite_ws)
