"""``automl``: search across model families within a time budget.

Every family first trains with its defaults; the rest of the budget goes to Bayesian
search (Optuna TPE, one study per family, ask-and-tell) over each family's default search
space, spending more trials on the families that score best so far (a 3:2:1 cycle over the
top three). On small data each fit uses one thread (faster than several at that size).
Trials are child runs scored by cross-validation without a refit; a trial
slower than the time left is not started, and bad trials are pruned after a fold. The
winner is trained once more, on every row, with its plots, ready to register.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import optuna
import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from threadpoolctl import threadpool_limits

from loopml.data import DatasetVersion, resolve
from loopml.errors import InvalidInput, LoopmlError
from loopml.store import Workspace, default_workspace
from loopml.tracking import Run, start_run
from loopml.training._compare import better
from loopml.training._metrics import infer_task
from loopml.training._space import load_space, suggest
from loopml.training._train import StopTraining, TrainResult, train
from loopml.training._tune import DEFAULT_METRIC

_LOG = {"log": True}
SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "linear": {"C": {"type": "float", "low": 1e-3, "high": 1e3, **_LOG}},
    "linear.regression": {"alpha": {"type": "float", "low": 1e-3, "high": 1e3, **_LOG}},
    "hist_gb": {
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, **_LOG},
        "max_iter": {"type": "int", "low": 50, "high": 500, **_LOG},
        "max_leaf_nodes": {"type": "int", "low": 4, "high": 128, **_LOG},
        "min_samples_leaf": {"type": "int", "low": 2, "high": 100, **_LOG},
        "l2_regularization": {"type": "float", "low": 1e-6, "high": 10.0, **_LOG},
    },
    "lightgbm": {
        "n_estimators": {"type": "int", "low": 50, "high": 1000, **_LOG},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, **_LOG},
        "num_leaves": {"type": "int", "low": 4, "high": 128, **_LOG},
        "min_child_samples": {"type": "int", "low": 2, "high": 50, **_LOG},
        "colsample_bytree": {"type": "float", "low": 0.3, "high": 1.0},
        "reg_lambda": {"type": "float", "low": 1e-3, "high": 10.0, **_LOG},
    },
    "xgboost": {
        "n_estimators": {"type": "int", "low": 50, "high": 1000, **_LOG},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, **_LOG},
        "max_depth": {"type": "int", "low": 2, "high": 10},
        "min_child_weight": {"type": "float", "low": 0.01, "high": 20.0, **_LOG},
        "subsample": {"type": "float", "low": 0.5, "high": 1.0},
        "colsample_bytree": {"type": "float", "low": 0.3, "high": 1.0},
        "reg_lambda": {"type": "float", "low": 1e-3, "high": 10.0, **_LOG},
    },
    "random_forest": {
        "n_estimators": {"type": "int", "low": 50, "high": 500, **_LOG},
        "max_features": {"type": "float", "low": 0.1, "high": 1.0},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20, **_LOG},
    },
}
DEFAULT_FAMILIES = ("linear", "lightgbm", "xgboost", "hist_gb", "random_forest")  # cheap first
_THREADED = ("lightgbm", "xgboost", "random_forest")  # families with an n_jobs parameter
_SMALL = 50_000  # rows below which one thread per fit beats several (less overhead)
_LIBRARY = {"lightgbm": "lightgbm", "xgboost": "xgboost"}
_CYCLE = (0, 1, 0, 2, 0, 1)  # ranks of the families that get the next trials


@dataclass
class AutoMLResult:
    """What :func:`automl` found."""

    task: str
    metric: str
    best_family: str
    best_params: dict[str, Any]
    best_score: float
    leaderboard: pd.DataFrame
    best: TrainResult
    run_id: str

    def register(self, name: str, *, alias: str | None = None) -> Any:
        """Register the best (refit) model; see :meth:`TrainResult.register`."""
        return self.best.register(name, alias=alias)


@dataclass
class _Family:
    name: str
    space: dict[str, Any]
    study: optuna.Study
    best: float | None = None
    best_params: dict[str, Any] | None = None
    seconds: float = 0.0
    trials: int = 0

    def mean_seconds(self) -> float:
        return self.seconds / max(self.trials, 1)


def default_space(family: str, task: str) -> dict[str, Any]:
    """The search space ``automl`` uses for ``family`` on ``task``."""
    key = f"{family}.{task}" if f"{family}.{task}" in SPACES else family
    if key not in SPACES:
        raise InvalidInput(f"no default search space for family {family!r}")
    return load_space(SPACES[key])


def automl(
    dataset: DatasetVersion | str | pd.DataFrame,
    target: str,
    *,
    time_budget: float = 60.0,
    metric: str | None = None,
    families: Sequence[str] | None = None,
    split: Any = None,
    drop: Sequence[str] = (),
    max_trials: int | None = None,
    seed: int = 0,
    experiment: str | None = None,
    progress: bool = False,
    workspace: Workspace | None = None,
) -> AutoMLResult:
    """Find a good model for ``target`` within ``time_budget`` seconds.

    Parameters
    ----------
    dataset : a dataset version (``"churn@3"``) or a DataFrame.
    target : the column to predict (the task is inferred from it).
    time_budget : seconds for the search; the final refit of the winner comes after it.
    metric : what to optimise (default: roc_auc, accuracy or rmse by task).
    families : model families to search (default: linear, hist_gb, lightgbm, xgboost,
        random_forest — those whose library is installed).
    split : how trials are scored (default: 5-fold, stratified for classifiers; a 20 %
        holdout above 50,000 rows).
    drop : columns not to use as features (ids, timestamps...).
    max_trials : stop after this many trials even if time is left.

    Examples
    --------
    >>> result = automl("churn@3", target="churned", time_budget=120)  # doctest: +SKIP
    >>> result.leaderboard.head(), result.register("churn").uri       # doctest: +SKIP
    """
    if not time_budget > 0:
        raise InvalidInput(f"time_budget must be a positive number of seconds, got {time_budget}")
    if max_trials is not None and max_trials < 1:
        raise InvalidInput("max_trials must be at least 1")
    ws = workspace or default_workspace()
    dv = dataset if isinstance(dataset, pd.DataFrame) else resolve(dataset, workspace=ws)
    frame = dv if isinstance(dv, pd.DataFrame) else dv.to_pandas()
    if target not in frame.columns:
        raise InvalidInput(
            f"target column {target!r} is not in the data; columns: {', '.join(frame.columns)}"
        )
    task = infer_task(frame[target].dropna())
    if task == "clustering":
        raise InvalidInput("automl needs a supervised target")
    metric = metric or DEFAULT_METRIC[task]
    split = split or _default_split(task, len(frame))
    names = _families(families)
    direction: Literal["maximize", "minimize"] = "maximize" if better(metric) == 1 else "minimize"
    experiment = experiment or (dv.name if isinstance(dv, DatasetVersion) else "default")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + time_budget

    threads = 1 if len(frame) < _SMALL else None
    fixed = {name: {"n_jobs": threads or -1} for name in _THREADED}
    with threadpool_limits(threads), start_run(experiment, name="automl", workspace=ws) as parent:
        if isinstance(dv, DatasetVersion):
            parent.log_input(dv)
        parent.log_params(
            {"task": task, "metric": metric, "time_budget": time_budget, "families": names}
        )
        state = {
            name: _Family(
                name,
                default_space(name, task),
                optuna.create_study(
                    direction=direction,
                    sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
                    pruner=optuna.pruners.MedianPruner(n_startup_trials=3),
                ),
            )
            for name in names
        }

        def run_trial(family: _Family, params: dict[str, Any], trial: Any = None) -> None:
            def report(fold: int, so_far: dict[str, float]) -> None:
                if trial is not None and metric in so_far:
                    trial.report(so_far[metric], fold)
                    if trial.should_prune():
                        raise StopTraining(f"pruned after fold {fold}")

            started = time.monotonic()
            row: dict[str, Any] = {"family": family.name, "trial": family.trials}
            try:
                result = train(
                    dv,
                    target,
                    model=family.name,
                    params={**fixed.get(family.name, {}), **params},
                    split=split,
                    drop=drop,
                    task=task,
                    seed=seed,
                    experiment=experiment,
                    run_name=f"{family.name}-{family.trials}",
                    parent=parent,
                    on_fold=report,
                    refit=False,
                    plots=False,
                    workspace=ws,
                )
            except StopTraining:
                row.update(state="PRUNED", score=None, run_id=None)
                if trial is not None:
                    family.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            except LoopmlError as exc:
                row.update(state="FAIL", score=None, run_id=None, error=str(exc))
                if trial is not None:
                    family.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                score = result.metrics[metric]
                row.update(state="COMPLETE", score=score, run_id=result.run_id)
                if trial is not None:
                    family.study.tell(trial, score)
                if family.best is None or better(metric) * (score - family.best) > 0:
                    family.best, family.best_params = score, params
            seconds = time.monotonic() - started
            family.seconds += seconds
            family.trials += 1
            rows.append({**row, "seconds": round(seconds, 3), "params": params})

        bar = Progress(
            TextColumn("automl"),
            BarColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            disable=not progress,
        )
        with bar:
            shown = bar.add_task("", total=time_budget)

            def tick() -> None:
                top = _ranked(state.values(), metric)
                best = f"best {metric} {top[0].best:.4f} ({top[0].name})" if top else ""
                spent = time_budget - max(0.0, deadline - time.monotonic())
                bar.update(shown, completed=spent, description=best)

            for family in state.values():  # every family once, with its defaults
                if (
                    len(rows) == max_trials
                    or time.monotonic() + _refit_cost(state, metric) >= deadline
                ):
                    break
                run_trial(family, {})
                tick()
            turn = 0
            while len(rows) != max_trials:
                ranked = _ranked(state.values(), metric)
                if not ranked:
                    break
                left = deadline - time.monotonic() - _refit_cost(state, metric)
                candidates = [f for f in ranked if f.mean_seconds() < left]
                if not candidates:
                    break
                family = candidates[min(_CYCLE[turn % len(_CYCLE)], len(candidates) - 1)]
                turn += 1
                trial = family.study.ask()
                run_trial(family, suggest(trial, family.space), trial)
                tick()

        winners = _ranked(state.values(), metric)
        if not winners:
            errors = [r["error"] for r in rows if r.get("error")]
            raise InvalidInput(
                f"no model could be trained; the first error: {errors[0]}"
                if errors
                else f"the time budget of {time_budget} s ran out before any trial completed"
            )
        winner = winners[0]
        assert winner.best is not None and winner.best_params is not None
        best = train(
            dv,
            target,
            model=winner.name,
            params={**fixed.get(winner.name, {}), **winner.best_params},
            split=split,
            drop=drop,
            task=task,
            seed=seed,
            experiment=experiment,
            run_name=f"best-{winner.name}",
            parent=parent,
            workspace=ws,
        )
        board = _leaderboard(rows, metric)
        _log_summary(parent, board, winner.name, winner.best_params, winner.best, metric)
    return AutoMLResult(
        task,
        metric,
        winner.name,
        winner.best_params,
        winner.best,
        board,
        best,
        parent.id,
    )


def _refit_cost(state: Mapping[str, _Family], metric: str) -> float:
    """Seconds to keep for the final run of the leader: its folds again, a fit on every
    row (about one more fold) and its plots."""
    ranked = _ranked(state.values(), metric)
    return 1.3 * ranked[0].mean_seconds() + 1.0 if ranked else 0.0


def _default_split(task: str, rows: int) -> dict[str, Any]:
    if rows > 50_000:
        return {"kind": "holdout", "test_size": 0.2}
    return {"kind": "stratified" if task != "regression" else "kfold", "n_splits": 5}


def _families(families: Sequence[str] | None) -> list[str]:
    if families is None:
        return [f for f in DEFAULT_FAMILIES if _installed(f)]
    unknown = [f for f in families if f not in DEFAULT_FAMILIES]
    if unknown or not families:
        raise InvalidInput(
            f"automl families must be among {', '.join(DEFAULT_FAMILIES)}; "
            f"got {', '.join(map(repr, unknown or families)) or 'none'}"
        )
    return list(dict.fromkeys(families))


def _installed(family: str) -> bool:
    library = _LIBRARY.get(family)
    return library is None or importlib.util.find_spec(library) is not None


def _ranked(families: Any, metric: str) -> list[_Family]:
    scored = [f for f in families if f.best is not None]
    return sorted(scored, key=lambda f: -better(metric) * f.best)


def _leaderboard(rows: list[dict[str, Any]], metric: str) -> pd.DataFrame:
    board = pd.DataFrame(rows).rename(columns={"score": metric})
    if "error" not in board.columns:
        board["error"] = None
    board = board.sort_values(metric, ascending=better(metric) == -1, na_position="last")
    return board.reset_index(drop=True)


def _log_summary(
    parent: Run,
    board: pd.DataFrame,
    family: str,
    params: Mapping[str, Any],
    score: float,
    metric: str,
) -> None:
    records = board.astype(object).where(board.notna(), None).to_dict("records")
    parent.log_dict({"metric": metric, "trials": records}, "leaderboard.json")
    parent.log_params({"best.family": family, **{f"best.{k}": v for k, v in params.items()}})
    scored = board.dropna(subset=[metric]).groupby("family")[metric]
    per_family: Mapping[str, float] = (
        scored.max() if better(metric) == 1 else scored.min()
    ).to_dict()
    parent.log_metrics(
        {
            f"best_{metric}": score,
            "trials": len(board),
            **{f"best_{metric}.{f}": float(v) for f, v in per_family.items()},
        }
    )
