"""``train``: fit preprocessing + model on a dataset version, evaluate, track everything.

One call checks the inputs (before any long work), builds the default preprocessing from
the dataset's profile, fits and evaluates on the chosen split, and records params,
metrics, the dataset input, plots (PNG + JSON), feature importance, the seed and library
versions in a run. The returned result's ``model`` is a scikit-learn Pipeline — the
preprocessing travels with the model, so serving applies exactly what training applied —
and ``result.register(name)`` puts it in the registry linked to the run.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sklearn
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from loopml import registry
from loopml.data import DatasetVersion, resolve
from loopml.data._preprocessor import Preprocessor
from loopml.errors import InvalidInput
from loopml.store import Workspace, default_workspace
from loopml.tracking import Run, flush, start_run
from loopml.training._families import REDUCERS, build_estimator
from loopml.training._metrics import Task, evaluate, infer_task, sliced
from loopml.training._plots import plot_data, render_png
from loopml.training._splits import Split, make_splits

FoldCallback = Callable[[int, dict[str, float]], None]


class StopTraining(Exception):
    """Raised by an ``on_fold`` callback to stop training early (e.g. a pruned trial)."""


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    model: Pipeline | None  # None when trained with ``refit=False``
    task: Task
    metrics: dict[str, float]
    run_id: str
    dataset: str | None
    target: str | None
    input_example: pd.DataFrame = field(repr=False)
    ws: Workspace = field(repr=False)
    estimator: str = ""  # the model's class name

    def register(
        self, name: str, *, alias: str | None = None, description: str = ""
    ) -> registry.ModelVersion:
        """Register the fitted pipeline as the next version of ``name`` (linked to the run)."""
        if self.model is None:
            raise InvalidInput("this model was trained with refit=False: nothing to register")
        flush(self.ws)
        mv = registry.register_model(
            self.ws,
            self.model,
            name,
            run_id=self.run_id,
            input_example=self.input_example,
            description=description,
        )
        if alias is not None:
            mv = registry.set_alias(self.ws, name, alias, mv.version)
        return mv


def _load(
    dataset: DatasetVersion | str | pd.DataFrame | pa.Table, ws: Workspace
) -> tuple[pd.DataFrame, DatasetVersion | None]:
    if isinstance(dataset, pd.DataFrame):
        return dataset.reset_index(drop=True), None
    if isinstance(dataset, pa.Table):
        return dataset.to_pandas(), None
    dv = resolve(dataset, workspace=ws)
    return dv.to_pandas(), dv


def check_frame(frame: pd.DataFrame, target: str | None, features: Sequence[str]) -> None:
    """Refuse data training cannot use, naming the column: InvalidInput."""
    if target is not None and target not in frame.columns:
        raise InvalidInput(
            f"target column {target!r} is not in the data; columns: "
            f"{', '.join(map(str, frame.columns))}"
        )
    if target is not None and frame[target].isna().any():
        raise InvalidInput(
            f"target {target!r} has {int(frame[target].isna().sum())} missing "
            "value(s); drop or fill those rows first"
        )
    for column in features:
        values = frame[column]
        if values.isna().all():
            raise InvalidInput(f"feature {column!r} has no values (all null); drop it")
        if (
            values.dtype == object
            and not values.dropna().map(lambda v: isinstance(v, str | bool | int | float)).all()
        ):
            raise InvalidInput(
                f"feature {column!r} holds values of an unsupported type "
                f"({type(values.dropna().iloc[0]).__name__}); use numbers, "
                "strings, booleans or datetimes"
            )


def train(
    dataset: DatasetVersion | str | pd.DataFrame | pa.Table,
    target: str | None,
    *,
    model: str | Any = "hist_gb",
    params: Mapping[str, Any] | None = None,
    split: Split | str | Mapping[str, Any] = "holdout",
    task: Task | None = None,
    features: Sequence[str] | None = None,
    drop: Sequence[str] = (),
    preprocess: bool = True,
    metrics: Mapping[str, Callable[[Any, Any], float]] | None = None,
    slice_by: str | None = None,
    seed: int = 0,
    experiment: str | None = None,
    run_name: str | None = None,
    parent: Run | None = None,
    on_fold: FoldCallback | None = None,
    refit: bool = True,
    plots: bool = True,
    workspace: Workspace | None = None,
) -> TrainResult:
    """Train ``model`` to predict ``target`` from a dataset, evaluate it, and track the run.

    Parameters
    ----------
    dataset : a dataset version (``"churn@3"``) or a DataFrame / Arrow table.
    target : the column to predict; None for clustering and dimensionality reduction.
    model : a family name (``linear``, ``random_forest``, ``hist_gb``, ``xgboost``,
        ``lightgbm``, ``kmeans``, ``pca``) or any scikit-learn compatible estimator.
    params : hyperparameters set on the estimator (checked before fitting).
    split : ``holdout`` (default, 20 %), ``kfold``, ``stratified``, ``group``,
        ``timeseries``, or a :class:`Split` / dict with its options.
    task : ``binary``, ``multiclass``, ``regression``, ``clustering`` or ``reduction``
        (default: inferred; without a target, ``reduction`` for a reducer such as ``pca``).
    features, drop : the columns to use (default: all but the target) / to leave out.
    preprocess : prepend ``Preprocessor.from_profile`` (imputation, encoding, scaling...).
    metrics : extra metrics, name -> callable(y_true, y_pred).
    slice_by : a column to report metrics per value of.
    experiment : the run's experiment (default: the dataset's name, else "default").
    on_fold : called with (fold index, metrics so far) after each evaluation fold; raising
        :class:`StopTraining` ends the run KILLED (how ``tune`` prunes trials).
    refit : fit the final model on every row (False: evaluate only; ``result.model`` is
        None — how searches score trials before refitting the winner).
    plots : store evaluation plots (PNG + JSON) with the run.

    Examples
    --------
    >>> result = train("churn@3", target="churned", model="lightgbm",  # doctest: +SKIP
    ...                params={"n_estimators": 300}, split="stratified")
    >>> result.metrics["roc_auc"], result.register("churn").uri          # doctest: +SKIP
    """
    ws = workspace or default_workspace()
    frame, dv = _load(dataset, ws)
    columns = [c for c in (features or frame.columns) if c != target and c not in drop]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"feature column(s) {', '.join(map(repr, missing))} not in the data")
    check_frame(frame, target, columns)
    y = frame[target] if target is not None else None
    task = task or (_unsupervised_task(model) if y is None else infer_task(y))
    if task not in ("clustering", "reduction") and y is None:
        raise InvalidInput(f"a {task} model needs a target column")
    X = frame[columns]
    plan = Split.parse(split)
    folds = make_splits(plan, frame, y, task)
    estimator = build_estimator(model, task, params, seed)
    if task in ("binary", "multiclass") and type(estimator).__module__.startswith("xgboost"):
        _check_xgboost_labels(y)
    steps: list[tuple[str, Any]] = []
    if preprocess:
        source: Any = dv if dv is not None else _kinds(X)
        unused = [c for c in frame.columns if c not in columns and c != target]
        steps.append(("preprocess", Preprocessor.from_profile(source, target=target, drop=unused)))
    pipeline = Pipeline([*steps, ("model", estimator)])

    experiment = experiment or (dv.name if dv is not None else "default")
    with start_run(experiment, name=run_name, parent=parent, workspace=ws) as run:
        if dv is not None:
            run.log_input(dv)
        run.log_params(_run_params(pipeline, estimator, plan, task, seed, target, dv, columns))
        run.set_tags({"task": task, "model": type(estimator).__name__})
        oof: dict[str, Any] = {}
        model_fitted: Pipeline | None = None
        if task == "clustering":
            model_fitted = _fit(clone(pipeline), X, y)
            scores = _cluster_scores(model_fitted, X, metrics)
        elif task == "reduction":
            model_fitted = _fit(clone(pipeline), X, y)
            scores = _reduction_scores(model_fitted, X)
        else:
            try:
                oof = _fit_folds(pipeline, X, y, folds, task, on_fold)
            except StopTraining as stop:
                run.end("KILLED", error=f"stopped early: {stop}")
                raise
            if refit:
                model_fitted = _fit(clone(pipeline), X, y)  # refit on every row
            scores = evaluate(
                task,
                oof["y"],
                oof["pred"],
                oof.get("proba"),
                labels=oof.get("labels"),
                extra=metrics,
            )
            if plots:
                _log_plots(run, task, oof, model_fitted)
        run.log_metrics(scores)
        if slice_by is not None and task not in ("clustering", "reduction"):
            if slice_by not in frame.columns:
                raise InvalidInput(f"slice_by column {slice_by!r} is not in the data")
            segments = frame[slice_by].iloc[oof["rows"]].reset_index(drop=True)
            per_slice = sliced(
                task, oof["y"], oof["pred"], oof.get("proba"), segments, labels=oof.get("labels")
            )
            run.log_dict(
                {"column": slice_by, "rows": per_slice.to_dict("records")}, "evaluation/sliced.json"
            )
        run.log_dict(_environment(seed), "environment.json")
    return TrainResult(
        model_fitted,
        task,
        scores,
        run.id,
        dv.ref if dv else None,
        target,
        X.head(5),
        ws,
        type(estimator).__name__,
    )


def _check_xgboost_labels(y: pd.Series | None) -> None:
    labels = sorted(pd.unique(y)) if y is not None else []
    integers = y is not None and pd.api.types.is_integer_dtype(y.dtype)
    if not integers or labels != list(range(len(labels))):
        shown = ", ".join(map(str, labels[:5]))
        raise InvalidInput(
            f"xgboost needs class labels 0..{len(labels) - 1}, got {shown}; "
            "map the target to integers first, or use model='lightgbm'"
        )


def _kinds(X: pd.DataFrame) -> dict[str, str]:
    kinds = {}
    for c in X.columns:
        dtype = X[c].dtype
        if pd.api.types.is_bool_dtype(dtype):
            kinds[c] = "boolean"
        elif pd.api.types.is_numeric_dtype(dtype):
            kinds[c] = "numeric"
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            kinds[c] = "datetime"
        else:
            kinds[c] = "categorical"
    return kinds


def _fit(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series | None) -> Pipeline:
    try:
        return pipeline.fit(X, y)
    except InvalidInput:
        raise
    except (ValueError, TypeError) as exc:  # e.g. hyperparameters the library checks late
        raise InvalidInput(f"training failed: {exc}") from exc


def _fit_folds(
    pipeline: Pipeline,
    X: pd.DataFrame,
    y: pd.Series | None,
    folds: list[tuple[np.ndarray, np.ndarray]],
    task: Task,
    on_fold: FoldCallback | None = None,
) -> dict[str, Any]:
    """Out-of-fold predictions (holdout: the test rows only).

    ``on_fold(i, metrics of the folds so far)`` runs after each fold; it may raise
    :class:`StopTraining`.
    """
    test_rows = np.concatenate([test for _, test in folds])
    preds: list[Any] = []
    probas: list[np.ndarray] = []
    # every class of the whole target, so a fold that lacks one still lines up
    labels = sorted(pd.unique(y)) if y is not None and task != "regression" else None
    for train_idx, test_idx in folds:
        fitted = _fit(clone(pipeline), X.iloc[train_idx], None if y is None else y.iloc[train_idx])
        preds.append(np.asarray(fitted.predict(X.iloc[test_idx])))
        if task in ("binary", "multiclass") and hasattr(fitted, "predict_proba"):
            proba = fitted.predict_proba(X.iloc[test_idx])
            probas.append(_align(proba, list(fitted.classes_), labels or []))
        if on_fold is not None and y is not None:
            seen = np.concatenate([test for _, test in folds[: len(preds)]])
            on_fold(
                len(preds) - 1,
                evaluate(
                    task,
                    y.iloc[seen].to_numpy(),
                    np.concatenate(preds),
                    np.concatenate(probas) if probas else None,
                    labels=labels,
                ),
            )
    out: dict[str, Any] = {"rows": test_rows, "pred": np.concatenate(preds)}
    if probas:
        out["proba"], out["labels"] = np.concatenate(probas), labels
    out["y"] = None if y is None else y.iloc[test_rows].to_numpy()
    return out


def _align(proba: np.ndarray, have: list[Any], want: list[Any]) -> np.ndarray:
    """Columns of ``proba`` reordered to the label order ``want`` (missing classes: 0)."""
    if have == want:
        return proba
    out = np.zeros((len(proba), len(want)))
    for i, label in enumerate(have):
        if label in want:
            out[:, want.index(label)] = proba[:, i]
    return out


def _cluster_scores(
    fitted: Pipeline, X: pd.DataFrame, extra: Mapping[str, Callable[[Any, Any], float]] | None
) -> dict[str, float]:
    features = fitted[:-1].transform(X) if len(fitted) > 1 else X
    return evaluate("clustering", None, fitted[-1].labels_, extra=extra, X=features)


def _unsupervised_task(model: str | Any) -> Task:
    """``reduction`` for a reducer (a family of that task, or an estimator that transforms
    but does not predict), else ``clustering``."""
    if isinstance(model, str):
        return "reduction" if model in REDUCERS else "clustering"
    transforms = callable(getattr(model, "transform", None))
    return (
        "reduction"
        if transforms and not callable(getattr(model, "predict", None))
        else ("clustering")
    )


def _reduction_scores(fitted: Pipeline, X: pd.DataFrame) -> dict[str, float]:
    """How much of the (preprocessed) features the reduction keeps."""
    features = fitted[:-1].transform(X) if len(fitted) > 1 else X
    reducer = fitted[-1]
    out: dict[str, float] = {}
    ratio = getattr(reducer, "explained_variance_ratio_", None)
    if ratio is not None:
        out["explained_variance"] = float(np.sum(ratio))
    if callable(getattr(reducer, "inverse_transform", None)):
        rebuilt = np.asarray(reducer.inverse_transform(reducer.transform(features)))
        error = np.asarray(features, dtype=np.float64) - rebuilt
        out["reconstruction_rmse"] = float(np.sqrt(np.mean(error**2)))
    return out


def _log_plots(run: Run, task: Task, oof: dict[str, Any], fitted: Pipeline | None) -> None:
    data = plot_data(
        task,
        oof["y"],
        oof["pred"],
        oof.get("proba"),
        labels=oof.get("labels"),
        feature_importance=None if fitted is None else _importance(fitted),
    )
    for name, content in data.items():
        run.log_dict(content, f"plots/{name}.json")
        run.log_bytes(render_png(name, content), f"plots/{name}.png")


def _importance(fitted: Pipeline) -> dict[str, float] | None:
    model = fitted[-1]
    values = getattr(model, "feature_importances_", None)
    if values is None and getattr(model, "coef_", None) is not None:
        values = np.abs(np.atleast_2d(model.coef_)).mean(axis=0)
    if values is None:
        return None
    try:
        names = list(fitted[:-1].get_feature_names_out()) if len(fitted) > 1 else None
    except (AttributeError, ValueError):
        names = None
    names = names or list(getattr(model, "feature_names_in_", range(len(values))))
    if len(names) != len(values):
        return None
    return {str(n): float(v) for n, v in zip(names, values, strict=True)}


def _run_params(
    pipeline: Pipeline,
    estimator: Any,
    split: Split,
    task: Task,
    seed: int,
    target: str | None,
    dv: DatasetVersion | None,
    columns: Sequence[str],
) -> dict[str, Any]:
    model_params = {
        f"model.{k}": v
        for k, v in estimator.get_params(deep=False).items()
        if isinstance(v, str | int | float | bool | type(None))
    }
    return {
        "model": type(estimator).__name__,
        "task": task,
        "target": target,
        "seed": seed,
        "dataset": dv.ref if dv else "dataframe",
        "features": len(columns),
        "split": split.kind,
        "split.test_size": split.test_size,
        "split.n_splits": split.n_splits,
        "preprocess": len(pipeline) > 1,
        **model_params,
    }


def _environment(seed: int) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "seed": seed,
    }
