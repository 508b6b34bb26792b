"""``tune``: hyperparameter search where every trial is a tracked child run.

Strategies: ``tpe`` (Bayesian, Optuna's TPE), ``random`` and ``grid``. The Optuna study
lives in the workspace's metadata store (a ``studies.db`` beside the SQLite database, or
schema ``loopml_optuna`` of the PostgreSQL database), so a search stopped half-way continues
where it stopped when run again with the same ``study_name``. The parent run records the
leaderboard and the best parameters; the best trial's model — refit on all rows by
``train`` — is returned ready to register.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
import pandas as pd
import sqlalchemy as sa
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loopml.data import DatasetVersion, resolve
from loopml.errors import InvalidInput, LoopmlError
from loopml.store import Workspace, default_workspace
from loopml.tracking import start_run
from loopml.training._compare import better
from loopml.training._space import grid, load_space, suggest
from loopml.training._train import StopTraining, TrainResult, train

Strategy = Literal["tpe", "random", "grid"]
DEFAULT_METRIC = {
    "binary": "roc_auc",
    "multiclass": "accuracy",
    "regression": "rmse",
    "clustering": "silhouette",
    "reduction": "reconstruction_rmse",
}


@dataclass
class TuneResult:
    """What :func:`tune` found."""

    best_params: dict[str, Any]
    best_score: float
    metric: str
    leaderboard: pd.DataFrame
    best: TrainResult
    run_id: str
    study_name: str

    def register(self, name: str, *, alias: str | None = None) -> Any:
        """Register the best (refit) model; see :meth:`TrainResult.register`."""
        return self.best.register(name, alias=alias)


def _storage(ws: Workspace) -> optuna.storages.RDBStorage:
    url = sa.make_url(ws.settings.resolved_store_uri())
    if url.get_backend_name() == "sqlite":
        path = Path(ws.settings.state_dir) / "studies.db"
        return optuna.storages.RDBStorage(f"sqlite:///{path}")
    with ws.db.write() as conn:
        conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS loopml_optuna")
    return optuna.storages.RDBStorage(
        url.render_as_string(hide_password=False),
        engine_kwargs={"connect_args": {"options": "-csearch_path=loopml_optuna"}},
    )


def _sampler(strategy: str, space: Mapping[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    if strategy == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "grid":
        return optuna.samplers.GridSampler(grid(space), seed=seed)
    raise InvalidInput(f"strategy must be 'tpe', 'random' or 'grid', got {strategy!r}")


def tune(
    dataset: DatasetVersion | str | pd.DataFrame,
    target: str | None,
    *,
    model: str | Any = "hist_gb",
    search_space: Mapping[str, Any] | str | Path,
    strategy: Strategy = "tpe",
    n_trials: int = 20,
    timeout: float | None = None,
    metric: str | None = None,
    params: Mapping[str, Any] | None = None,
    split: Any = "holdout",
    drop: Sequence[str] = (),
    n_jobs: int = 1,
    pruner: bool = True,
    study_name: str | None = None,
    seed: int = 0,
    experiment: str | None = None,
    progress: bool = False,
    workspace: Workspace | None = None,
) -> TuneResult:
    """Search hyperparameters of ``model``; each trial is a child run of one parent run.

    Parameters
    ----------
    dataset, target, model, split, drop : as for :func:`loopml.training.train`.
    search_space : hyperparameters to search (mapping, YAML file or YAML text; see
        :mod:`loopml.training._space`); ``params`` are fixed ones.
    strategy : ``tpe`` (default), ``random`` or ``grid``.
    n_trials, timeout : the budget — trials in total (a resumed study counts the trials it
        already has) and/or seconds for this call.
    metric : what to optimise (default: roc_auc, accuracy, rmse or silhouette by task).
    n_jobs : trials run in parallel threads.
    pruner : stop a trial early when its score after a fold is below the median of
        earlier trials at that fold (Optuna's median pruner; with k-fold splits).
    study_name : name of the stored study; the same name resumes it.
    progress : show a progress bar with the best score so far.
    """
    ws = workspace or default_workspace()
    space = load_space(search_space)
    if n_trials < 1 or n_jobs < 1:
        raise InvalidInput("n_trials and n_jobs must be at least 1")
    dv = dataset if isinstance(dataset, pd.DataFrame) else resolve(dataset, workspace=ws)
    name = dv.name if isinstance(dv, DatasetVersion) else "default"
    experiment = experiment or name
    family = model if isinstance(model, str) else type(model).__name__
    study_name = study_name or f"{experiment}-{family}-{uuid.uuid4().hex[:8]}"
    sampler = _sampler(strategy, space, seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our runs and bar report instead

    lock = threading.Lock()
    best: dict[str, Any] = {}
    errors: list[LoopmlError] = []

    with start_run(experiment, name=f"tune-{study_name}", workspace=ws) as parent:
        if isinstance(dv, DatasetVersion):
            parent.log_input(dv)
        first = train(
            dv,
            target,
            model=model,
            params=params,
            split=split,
            drop=drop,
            seed=seed,
            experiment=experiment,
            run_name="baseline",
            parent=parent,
            refit=False,
            plots=False,
            workspace=ws,
        )
        metric = metric or DEFAULT_METRIC[first.task]
        if metric not in first.metrics:
            raise InvalidInput(
                f"metric {metric!r} is not computed for {first.task}; "
                f"choose from {', '.join(sorted(first.metrics))}"
            )
        direction: Literal["maximize", "minimize"] = (
            "maximize" if better(metric) == 1 else "minimize"
        )
        storage = _storage(ws)
        study = optuna.create_study(
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3)
            if pruner
            else optuna.pruners.NopPruner(),
            study_name=study_name,
            storage=storage,
            sampler=sampler,
            direction=direction,
            load_if_exists=True,
        )
        parent.log_params(
            {
                "model": first.estimator,
                "strategy": strategy,
                "metric": metric,
                "n_trials": n_trials,
                "study": study_name,
                "search_space": space,
            }
        )

        def objective(trial: optuna.Trial) -> float:
            trial_params = {**(params or {}), **suggest(trial, space)}

            def report(fold: int, so_far: dict[str, float]) -> None:
                if metric in so_far:
                    trial.report(so_far[metric], fold)
                    if trial.should_prune():
                        raise StopTraining(f"pruned after fold {fold}")

            try:
                result = train(
                    dv,
                    target,
                    model=model,
                    params=trial_params,
                    split=split,
                    drop=drop,
                    seed=seed,
                    experiment=experiment,
                    run_name=f"trial-{trial.number}",
                    parent=parent,
                    on_fold=report if pruner else None,
                    refit=False,
                    plots=False,
                    workspace=ws,
                )
            except StopTraining as stop:
                raise optuna.TrialPruned(str(stop)) from stop
            except LoopmlError as exc:  # e.g. a hyperparameter combination the model refuses
                errors.append(exc)
                raise
            score = result.metrics[metric]
            trial.set_user_attr("run_id", result.run_id)
            with lock:
                if not best or better(metric) * (score - best["score"]) > 0:
                    best.update(score=score, result=result, params=trial_params)
            return score

        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        remaining = max(0, n_trials - done)
        bar = Progress(
            TextColumn("tuning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            disable=not progress,
        )
        with bar:
            task = bar.add_task("", total=remaining)

            def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                shown = f"best {metric} {best['score']:.4f}" if best else ""
                bar.update(task, advance=1, description=shown)

            started = time.monotonic()
            if remaining:
                study.optimize(
                    objective,
                    n_trials=remaining,
                    timeout=timeout,
                    n_jobs=n_jobs,
                    callbacks=[on_trial],
                )
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not completed:
            raise InvalidInput(
                f"every trial failed; the first: {errors[0]}"
                if errors
                else "no trial completed within the budget"
            )
        top = study.best_trial
        top_params = {**(params or {}), **top.params}
        refit = train(  # the winner, fitted on every row, with its plots
            dv,
            target,
            model=model,
            params=top_params,
            split=split,
            drop=drop,
            seed=seed,
            experiment=experiment,
            run_name=f"refit-trial-{top.number}",
            parent=parent,
            workspace=ws,
        )
        best.update(score=refit.metrics[metric], result=refit, params=top_params)
        board = _leaderboard(study, metric)
        parent.log_dict(
            {"metric": metric, "direction": direction, "trials": board.to_dict("records")},
            "leaderboard.json",
        )
        parent.log_params({f"best.{k}": v for k, v in best["params"].items()})
        parent.log_metrics(
            {
                f"best_{metric}": best["score"],
                "trials": len(board),
                "seconds": time.monotonic() - started,
            }
        )
    storage.engine.dispose()  # Optuna's own connection pool
    return TuneResult(
        best["params"], best["score"], metric, board, best["result"], parent.id, study_name
    )


def _leaderboard(study: optuna.Study, metric: str) -> pd.DataFrame:
    rows = [
        {
            "trial": t.number,
            "state": t.state.name,
            metric: t.value,
            "run_id": t.user_attrs.get("run_id"),
            **{f"params.{k}": v for k, v in t.params.items()},
        }
        for t in study.trials
    ]
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    ascending = better(metric) == -1
    return board.sort_values(metric, ascending=ascending, na_position="last").reset_index(drop=True)
