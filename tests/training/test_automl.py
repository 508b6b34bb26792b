"""``automl``: families searched in a budget, a leaderboard of child runs, the refit winner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from loopml import data
from loopml.errors import InvalidInput
from loopml.registry import load_model
from loopml.store import Workspace
from loopml.tracking import get_run, list_artifacts, search_runs
from loopml.training import automl, default_space


@pytest.fixture
def churn(ws: Workspace) -> data.DatasetVersion:
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "fee": rng.gamma(2.0, 20.0, n),
            "plan": rng.choice(["basic", "pro", "max"], n),
        }
    )
    frame["churned"] = (frame.fee > 40) ^ (rng.random(n) < 0.1)
    return data.ingest(frame, name="churn", workspace=ws)


def test_searches_families_and_refits_the_best(ws: Workspace, churn: data.DatasetVersion) -> None:
    result = automl(
        churn,
        "churned",
        time_budget=60,
        families=["linear", "hist_gb"],
        max_trials=6,
        workspace=ws,
    )
    board = result.leaderboard
    assert result.task == "binary" and result.metric == "roc_auc"
    assert len(board) == 6 and set(board.family) == {"linear", "hist_gb"}
    assert board.roc_auc.iloc[0] == pytest.approx(result.best_score)
    assert result.best_family == board.family.iloc[0]
    # every trial is a child run; the winner is trained once more with its plots
    children = search_runs(ws, "churn", f"attributes.parent_run_id = '{result.run_id}'")
    assert len(children) == 7
    assert result.best.metrics["roc_auc"] == pytest.approx(result.best_score)
    assert list_artifacts(ws, result.best.run_id).path.str.startswith("plots/").any()
    parent = get_run(ws, result.run_id)
    assert parent.params["best.family"] == result.best_family
    assert parent.metrics["best_roc_auc"] == pytest.approx(result.best_score)
    assert "leaderboard.json" in set(list_artifacts(ws, result.run_id).path)
    mv = result.register("churn")
    frame = churn.to_pandas().drop(columns="churned").head(5)
    np.testing.assert_array_equal(
        load_model(ws, mv.uri).predict(frame),
        result.best.model.predict(frame),  # type: ignore[union-attr]
    )


def test_regression_is_inferred_and_the_budget_bounds_the_search(sqlite_ws: Workspace) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    result = automl(
        X.assign(target=y),
        "target",
        time_budget=3,
        families=["linear", "lightgbm"],
        workspace=sqlite_ws,
    )
    assert result.task == "regression" and result.metric == "rmse"
    assert result.leaderboard.rmse.is_monotonic_increasing or result.leaderboard.rmse.isna().any()
    assert result.best_score == result.leaderboard.rmse.min()


def test_default_spaces_are_valid_for_each_family() -> None:
    for family in ("linear", "hist_gb", "lightgbm", "xgboost", "random_forest"):
        assert default_space(family, "binary")
    assert "alpha" in default_space("linear", "regression")


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pd.DataFrame({"x": range(20), "y": [0, 1] * 10}), {"target": "z"}, "'z' is not in"),
        (pd.DataFrame({"x": range(20), "y": [0, 1] * 10}), {"time_budget": 0}, "time_budget"),
        (pd.DataFrame({"x": range(20), "y": [0, 1] * 10}), {"families": ["svm"]}, "svm"),
        (pd.DataFrame({"x": range(20), "y": [1] * 20}), {}, "one class"),
        (pd.DataFrame({"x": [None] * 20, "y": [0, 1] * 10}), {}, "all null"),
    ],
)
def test_bad_input_is_refused_before_searching(
    sqlite_ws: Workspace, frame: pd.DataFrame, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"target": "y", "time_budget": 5, **kwargs}
    with pytest.raises(InvalidInput, match=message):
        automl(frame, workspace=sqlite_ws, **args)  # type: ignore[arg-type]
