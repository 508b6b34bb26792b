"""AutoML side by side: loopml.automl vs FLAML, same budget, same data, same scoring.

On scikit-learn's bundled breast_cancer, wine, digits and diabetes, each tool searches for
``--budget`` seconds (default 60) optimising the same metric (ROC AUC for binary, accuracy
for multiclass, RMSE for regression). Then the configuration each tool chose is scored by
one shared, independent cross-validation — repeated 5-fold (stratified for classifiers),
2 repeats, seed 42, folds neither tool searched on — refitting per fold loopml's whole
pipeline (preprocessing + model) and FLAML's own estimator class with its chosen config
(which carries FLAML's preprocessing), so the comparison is of the models found, not of
how each tool reports its own score.

Usage: ``python benchmarks/automl.py [--budget 60] [--datasets breast_cancer wine ...]``
(FLAML comes with ``pip install -e ".[bench]"``). Writes ``benchmarks/results/automl.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn import datasets
from sklearn.base import clone
from sklearn.metrics import accuracy_score, roc_auc_score, root_mean_squared_error
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

from loopml.store import Workspace
from loopml.training import automl

DATASETS = {
    "breast_cancer": (datasets.load_breast_cancer, "binary"),
    "wine": (datasets.load_wine, "multiclass"),
    "digits": (datasets.load_digits, "multiclass"),
    "diabetes": (datasets.load_diabetes, "regression"),
}
# task -> (loopml metric, FLAML metric, scikit-learn scorer, higher is better)
METRICS = {
    "binary": ("roc_auc", "roc_auc", "roc_auc"),
    "multiclass": ("accuracy", "accuracy", "accuracy"),
    "regression": ("rmse", "rmse", "neg_root_mean_squared_error"),
}
RESULTS = Path(__file__).parent / "results" / "automl.json"


def shared_cv_score(make: Callable[[], Any], X: pd.DataFrame, y: pd.Series, task: str) -> float:
    """The score both tools are judged by: a fresh model from ``make()`` per fold, fitted and
    scored the same way (RMSE reported positive)."""
    cls = RepeatedKFold if task == "regression" else RepeatedStratifiedKFold
    scores = []
    for fit_rows, test_rows in cls(n_splits=5, n_repeats=2, random_state=42).split(X, y):
        model = make()
        model.fit(X.iloc[fit_rows], y.iloc[fit_rows])
        X_test, y_test = X.iloc[test_rows], y.iloc[test_rows]
        if task == "binary":
            scores.append(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
        elif task == "multiclass":
            scores.append(accuracy_score(y_test, model.predict(X_test)))
        else:
            scores.append(root_mean_squared_error(y_test, model.predict(X_test)))
    return float(sum(scores) / len(scores))


def run_loopml(X: pd.DataFrame, y: pd.Series, task: str, budget: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.init(home)
        started = time.perf_counter()
        result = automl(
            X.assign(target=y), "target", time_budget=budget, metric=METRICS[task][0], workspace=ws
        )
        seconds = time.perf_counter() - started
        model = result.best.model
        ws.close()
    return {
        "seconds": round(seconds, 1),
        "trials": len(result.leaderboard),
        "best": f"{result.best_family} {result.best_params}",
        "own_score": result.best_score,
        "make": lambda: clone(model),  # the whole pipeline: preprocessing + estimator
    }


def run_flaml(X: pd.DataFrame, y: pd.Series, task: str, budget: float) -> dict[str, Any]:
    from flaml import AutoML  # the bench extra

    tool = AutoML()
    flaml_task = "regression" if task == "regression" else "classification"
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tool.fit(
            X,
            y,
            task=flaml_task,
            metric=METRICS[task][1],
            time_budget=budget,
            seed=0,
            verbose=0,
        )
    seconds = time.perf_counter() - started
    own = 1 - tool.best_loss if task != "regression" else tool.best_loss
    return {
        "seconds": round(seconds, 1),
        "trials": len(tool.config_history),
        "best": f"{tool.best_estimator} {tool.best_config}",
        "own_score": float(own),
        # FLAML's own estimator class with the chosen config (it carries FLAML's
        # preprocessing, e.g. the scaling its SGD estimator does)
        "make": lambda: type(tool.model)(task=flaml_task, **tool.best_config),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per tool and dataset")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args()
    logging.getLogger("flaml").setLevel(logging.ERROR)

    rows = []
    for name in args.datasets:
        loader, task = DATASETS[name]
        X, y = loader(return_X_y=True, as_frame=True)
        for tool, run in (("loopml", run_loopml), ("flaml", run_flaml)):
            found = run(X, y, task, args.budget)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found["cv_score"] = shared_cv_score(found.pop("make"), X, y, task)
            rows.append(
                {"dataset": name, "task": task, "metric": METRICS[task][0], "tool": tool, **found}
            )
            print(json.dumps(rows[-1]), flush=True)

    table = pd.DataFrame(rows)
    wins = 0
    print(f"\nAutoML, {args.budget:.0f} s budget each; shared repeated 5-fold CV score")
    print(f"{'dataset':<14}{'metric':<10}{'loopml':>10}{'FLAML':>10}  better")
    for name in args.datasets:
        part = table[table.dataset == name].set_index("tool")
        ours, theirs = part.loc["loopml", "cv_score"], part.loc["flaml", "cv_score"]
        lower_is_better = part.loc["loopml", "task"] == "regression"
        won = bool(ours <= theirs if lower_is_better else ours >= theirs)
        wins += won
        metric = part.loc["loopml", "metric"]
        print(f"{name:<14}{metric:<10}{ours:>10.4f}{theirs:>10.4f}  {'loopml' if won else 'FLAML'}")
    print(f"loopml >= FLAML on {wins} of {len(args.datasets)} (target: 3 of 4)")
    RESULTS.parent.mkdir(exist_ok=True)
    summary = {"budget_s": args.budget, "wins": wins, "rows": rows}
    RESULTS.write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
