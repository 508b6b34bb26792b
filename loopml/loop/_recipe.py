"""The champion's recipe: how the model in production was made, read back from its run.

``train`` records the model class, every scalar hyperparameter (``model.*``), the target,
the split and the seed as run params, and lineage links the run to the dataset version it
read. That is enough to train the same kind of model again on newer data. When the run is
a trial of ``tune``, its parent run holds the search space, strategy, metric and number of
trials, so the search itself can be run again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from loopml import registry, tracking
from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.store import Node, Workspace, upstream
from loopml.training import FAMILIES, Task, build_estimator


@dataclass(frozen=True)
class Recipe:
    """What retraining needs: the family (or estimator class), its params, data and target."""

    model: str  # a family name of ``loopml.training``
    params: dict[str, Any]
    dataset: str  # the dataset *name*; retraining reads its newest version
    trained_on: str  # the exact version the champion read, e.g. ``churn@1``
    target: str
    task: str
    split: dict[str, Any]
    seed: int
    search: dict[str, Any] | None = None  # space, strategy, metric, n_trials of its tune run


def param_value(text: str) -> Any:
    """A param as logged (``str(value)``) back to a Python value."""
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def _family_of(class_name: str, task: str) -> str:
    for family in FAMILIES:
        try:
            estimator = build_estimator(family, cast(Task, task), None, 0)
        except LoopmlError:  # a family without this task, or whose library is missing
            continue
        if type(estimator).__name__ == class_name:
            return family
    raise InvalidInput(
        f"the champion is a {class_name}, which is not one of loopml's families "
        f"({', '.join(FAMILIES)}); retrain it with automl instead"
    )


def champion_recipe(ws: Workspace, mv: registry.ModelVersion) -> Recipe:
    """The recipe of model version ``mv``, from its run's params and lineage.

    Raises
    ------
    NotFound
        The version has no run, or the run read no dataset version.
    InvalidInput
        The run was not made by ``loopml.train`` (no target or model class recorded).
    """
    if mv.run_id is None:
        raise NotFound(f"{mv.uri} was registered without a run: its recipe is unknown")
    run = tracking.get_run(ws, mv.run_id)
    params = run.params
    missing = [k for k in ("model", "task", "target") if k not in params]
    if missing:
        raise InvalidInput(
            f"run {run.id} of {mv.uri} lacks {', '.join(missing)}: it was not made by "
            "loopml.train, so it cannot be retrained from its recipe"
        )
    datasets = [
        e.src.id
        for e in upstream(ws.db, Node("run", run.id), max_depth=1)
        if e.src.kind == "dataset_version"
    ]
    if not datasets:
        raise NotFound(f"run {run.id} of {mv.uri} has no input dataset version in its lineage")
    trained_on = datasets[0]
    split: dict[str, Any] = {"kind": params.get("split", "holdout")}
    if split["kind"] == "holdout":
        split["test_size"] = param_value(params.get("split.test_size", "0.2"))
    else:
        split["n_splits"] = param_value(params.get("split.n_splits", "5"))
    task = params["task"]
    search = None
    if run.parent_id is not None:
        parent = tracking.get_run(ws, run.parent_id).params
        if "search_space" in parent:
            search = {
                "space": json.loads(parent["search_space"]),
                "strategy": parent.get("strategy", "tpe"),
                "metric": parent.get("metric"),
                "n_trials": int(param_value(parent.get("n_trials", "20"))),
            }
    return Recipe(
        model=_family_of(params["model"], task),
        params={
            k.removeprefix("model."): param_value(v)
            for k, v in params.items()
            if k.startswith("model.")
        },
        dataset=trained_on.rsplit("@", 1)[0],
        trained_on=trained_on,
        target=params["target"],
        task=task,
        split=split,
        seed=int(param_value(params.get("seed", "0"))),
        search=search,
    )
