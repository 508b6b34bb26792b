"""``tune``: child runs per trial, leaderboard, resumable studies, strategies, bad spaces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml import data
from loopml.errors import InvalidInput
from loopml.store import Workspace
from loopml.tracking import get_run, search_runs
from loopml.training import tune


@pytest.fixture
def churn(ws: Workspace) -> data.DatasetVersion:
    rng = np.random.default_rng(1)
    n = 240
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "fee": rng.gamma(2.0, 20.0, n),
            "plan": rng.choice(["basic", "pro"], n),
        }
    )
    frame["churned"] = (frame.fee > 40) ^ (rng.random(n) < 0.1)
    return data.ingest(frame, name="churn", workspace=ws)


SPACE = """
max_depth: {type: int, low: 2, high: 6}
min_samples_leaf: [1, 5, 20]
"""


def test_tpe_search_tracks_trials_and_resumes(ws: Workspace, churn: data.DatasetVersion) -> None:
    result = tune(
        churn,
        "churned",
        model="random_forest",
        search_space=SPACE,
        params={"n_estimators": 20},
        n_trials=4,
        study_name="s1",
        workspace=ws,
    )
    assert result.metric == "roc_auc" and len(result.leaderboard) == 4
    assert result.best_score == result.leaderboard["roc_auc"].max()
    parent = get_run(ws, result.run_id)
    assert parent.metrics["best_roc_auc"] == pytest.approx(result.best_score)
    assert "best.max_depth" in parent.params
    children = search_runs(ws, "churn", f"attributes.parent_run_id = '{result.run_id}'")
    assert len(children) == 6  # a baseline, four trials and the refit of the best
    assert result.study_name == "s1"
    again = tune(
        churn,
        "churned",
        model="random_forest",
        search_space=SPACE,
        params={"n_estimators": 20},
        n_trials=6,
        study_name="s1",
        workspace=ws,
    )
    assert len(again.leaderboard) == 6  # resumed: two more trials
    mv = again.register("churn")
    assert mv.run_id == again.best.run_id


def test_grid_and_random(sqlite_ws: Workspace) -> None:
    frame = pd.DataFrame({"x": np.arange(80) % 7, "y": (np.arange(80) % 3 == 0)})
    result = tune(
        frame,
        "y",
        model="linear",
        search_space={"C": [0.1, 1.0, 10.0]},
        strategy="grid",
        n_trials=3,
        metric="accuracy",
        workspace=sqlite_ws,
    )
    assert sorted(result.leaderboard["params.C"]) == [0.1, 1.0, 10.0]
    rnd = tune(
        frame,
        "y",
        model="linear",
        search_space={"C": {"type": "float", "low": 0.01, "high": 10, "log": True}},
        strategy="random",
        n_trials=2,
        workspace=sqlite_ws,
    )
    assert len(rnd.leaderboard) == 2


@pytest.mark.parametrize(
    ("space", "kwargs", "message"),
    [
        ({}, {}, "non-empty"),
        ({"C": {"type": "float", "low": 1, "high": 0}}, {}, "low < high"),
        ({"C": {"type": "float", "low": 0.1, "high": 1}}, {"strategy": "grid"}, "lists of choices"),
        ({"C": [1.0]}, {"strategy": "bayes"}, "strategy"),
        ({"C": [1.0]}, {"metric": "rmse"}, "not computed"),
        ({"C": {"type": "int", "low": 1, "high": 3, "foo": 1}}, {}, "unknown field"),
    ],
)
def test_bad_searches(
    sqlite_ws: Workspace, space: dict[str, object], kwargs: dict[str, object], message: str
) -> None:
    frame = pd.DataFrame({"x": np.arange(40) % 5, "y": np.arange(40) % 2 == 0})
    with pytest.raises(InvalidInput, match=message):
        tune(
            frame,
            "y",
            model="linear",
            search_space=space,
            n_trials=1,
            workspace=sqlite_ws,
            **kwargs,
        )  # type: ignore[arg-type]


def test_bad_trials_are_pruned_after_a_fold(sqlite_ws: Workspace) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=300), "noise": rng.normal(size=300)})
    frame["y"] = frame.x > 0.5  # imbalanced: a near-constant model predicts the majority
    # C tiny -> a near-constant model, pruned at its first fold against good earlier trials
    space = {"C": [10.0, 5.0, 1.0, 1e-6]}
    result = tune(
        frame,
        "y",
        model="linear",
        search_space=space,
        strategy="grid",
        seed=5,  # the grid order puts C=1e-6 last, after the pruner's 3 startup trials
        n_trials=4,
        split="kfold",
        metric="accuracy",
        workspace=sqlite_ws,
    )
    board = result.leaderboard.set_index("params.C")
    assert board.loc[1e-6, "trial"] == 3, "grid order changed: pick a seed that runs 1e-6 last"
    assert board.loc[1e-6, "state"] == "PRUNED"
    assert (board.drop(index=1e-6)["state"] == "COMPLETE").all()
    killed = search_runs(sqlite_ws, "default", "attributes.status = 'KILLED'")
    assert len(killed) == 1
