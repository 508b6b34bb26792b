"""``loopml train``: fit, evaluate and track a model on a dataset version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from loopml.cli._common import console, number, open_workspace, table
from loopml.errors import InvalidInput


def _value(text: str) -> Any:
    """A --param value: YAML scalars (numbers, booleans, null), else the string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _params(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise InvalidInput(f"--param {pair!r}: expected NAME=VALUE, e.g. max_depth=6")
        out[key.strip()] = _value(value)
    return out


def _config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: cannot read the config ({exc})") from exc
    if not isinstance(loaded, dict):
        raise InvalidInput(f"{path}: the config must be a mapping of train() options")
    return loaded


def train(
    ctx: typer.Context,
    dataset: str = typer.Argument(None, help="Dataset version, e.g. churn@3."),
    target: str = typer.Option(None, "--target", "-t", help="Column to predict."),
    model: str = typer.Option(
        None, "--model", "-m", help="linear, random_forest, hist_gb, xgboost, lightgbm, kmeans."
    ),
    param: list[str] = typer.Option(None, "--param", "-p", help="Hyperparameter NAME=VALUE."),
    split: str = typer.Option(None, help="holdout, kfold, stratified, group or timeseries."),
    slice_by: str = typer.Option(None, help="Also report metrics per value of this column."),
    experiment: str = typer.Option(None, help="Experiment name (default: the dataset's)."),
    register: str = typer.Option(None, help="Register the model under this name."),
    alias: str = typer.Option(None, help="With --register: point this alias at it."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML file of train() options."),
) -> None:
    """Train a model on a dataset version: metrics, plots and the run id; optionally register."""
    from loopml.training import train as run_training  # scikit-learn loads only when training

    options = _config(config)
    given = {
        "dataset": dataset,
        "target": target,
        "model": model,
        "split": split,
        "slice_by": slice_by,
        "experiment": experiment,
    }
    options.update({k: v for k, v in given.items() if v is not None})
    if param:
        options["params"] = {**options.get("params", {}), **_params(param)}
    if "dataset" not in options:
        raise InvalidInput("give a dataset version (argument or `dataset:` in --config)")
    ws = open_workspace(ctx)
    with console.status(f"training on {options['dataset']} ..."):
        result = run_training(
            options.pop("dataset"), options.pop("target", None), workspace=ws, **options
        )
    t = table("metric", "value", title=f"{result.task} · run {result.run_id[:8]}")
    for key, value in sorted(result.metrics.items()):
        t.add_row(key, number(value))
    console.print(t)
    console.print(f"run id: {result.run_id}")
    if register:
        mv = result.register(register, alias=alias)
        console.print(f"registered {mv.uri}" + (f" as {register}@{alias}" if alias else ""))


def tune(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="Dataset version, e.g. churn@3."),
    target: str = typer.Option(None, "--target", "-t", help="Column to predict."),
    model: str = typer.Option("hist_gb", "--model", "-m", help="Model family."),
    space: Path = typer.Option(..., "--space", "-s", help="Search space YAML file."),
    strategy: str = typer.Option("tpe", help="tpe, random or grid."),
    n_trials: int = typer.Option(20, "--trials", "-n", help="Trials in total for the study."),
    timeout: float = typer.Option(None, help="Stop starting trials after this many seconds."),
    metric: str = typer.Option(None, help="Metric to optimise (default by task)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Fixed hyperparameter."),
    split: str = typer.Option("holdout", help="holdout, kfold, stratified, group, timeseries."),
    n_jobs: int = typer.Option(1, help="Trials in parallel."),
    study: str = typer.Option(None, help="Study name; the same name resumes a search."),
    register: str = typer.Option(None, help="Register the best model under this name."),
    alias: str = typer.Option(None, help="With --register: point this alias at it."),
) -> None:
    """Search hyperparameters (a child run per trial); print the leaderboard."""
    from loopml.training import tune as run_tuning  # scikit-learn loads only when tuning

    ws = open_workspace(ctx)
    result = run_tuning(
        dataset,
        target,
        model=model,
        search_space=space,
        strategy=strategy,  # type: ignore[arg-type]
        n_trials=n_trials,
        timeout=timeout,
        metric=metric,
        params=_params(param or []),
        split=split,
        n_jobs=n_jobs,
        study_name=study,
        progress=True,
        workspace=ws,
    )
    board = result.leaderboard.head(10)
    t = table(
        *(str(c) for c in board.columns if c != "run_id"),
        "run",
        title=f"best {result.metric} {result.best_score:.4f} · study {result.study_name}",
    )
    for rec in board.to_dict("records"):
        cells = [number(v) for k, v in rec.items() if k != "run_id"]
        t.add_row(*cells, str(rec.get("run_id") or "-")[:8])
    console.print(t)
    console.print(f"best params: {result.best_params}")
    console.print(f"parent run id: {result.run_id}")
    if register:
        mv = result.register(register, alias=alias)
        console.print(f"registered {mv.uri}" + (f" as {register}@{alias}" if alias else ""))


def automl(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="Dataset version, e.g. churn@3."),
    target: str = typer.Option(..., "--target", "-t", help="Column to predict."),
    budget: float = typer.Option(60.0, "--budget", "-b", help="Seconds to search."),
    metric: str = typer.Option(None, help="Metric to optimise (default by task)."),
    family: list[str] = typer.Option(
        None, "--family", "-f", help="Search only these families (repeatable)."
    ),
    max_trials: int = typer.Option(None, help="Stop after this many trials."),
    register: str = typer.Option(None, help="Register the best model under this name."),
    alias: str = typer.Option(None, help="With --register: point this alias at it."),
) -> None:
    """Search model families and their hyperparameters within a time budget."""
    from loopml.training import automl as run_automl  # scikit-learn loads only when searching

    ws = open_workspace(ctx)
    result = run_automl(
        dataset,
        target,
        time_budget=budget,
        metric=metric,
        families=family or None,
        max_trials=max_trials,
        progress=True,
        workspace=ws,
    )
    board = result.leaderboard.head(15)
    t = table(
        "family",
        "trial",
        "state",
        result.metric,
        "seconds",
        "run",
        title=f"{result.task}: best {result.metric} {result.best_score:.4f} ({result.best_family})",
    )
    for rec in board.to_dict("records"):
        cells = [rec["family"], rec["trial"], rec["state"], rec[result.metric], rec["seconds"]]
        t.add_row(*(number(v) for v in cells), str(rec.get("run_id") or "-")[:8])
    console.print(t)
    console.print(f"best: {result.best_family} {result.best_params}")
    console.print(f"automl run id: {result.run_id} · best model's run id: {result.best.run_id}")
    if register:
        mv = result.register(register, alias=alias)
        console.print(f"registered {mv.uri}" + (f" as {register}@{alias}" if alias else ""))
