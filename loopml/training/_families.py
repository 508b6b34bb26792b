"""Model families by name: ``train(model="xgboost")`` builds the estimator for the task."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from sklearn.base import clone

from loopml.errors import InvalidInput, MissingDependency
from loopml.training._metrics import Task

# family -> task -> (module, class, default params)
_FAMILIES: dict[str, dict[str, tuple[str, str, dict[str, Any]]]] = {
    "linear": {
        "binary": ("sklearn.linear_model", "LogisticRegression", {"max_iter": 2000}),
        "multiclass": ("sklearn.linear_model", "LogisticRegression", {"max_iter": 2000}),
        "regression": ("sklearn.linear_model", "Ridge", {}),
    },
    "random_forest": {
        "binary": ("sklearn.ensemble", "RandomForestClassifier", {"n_estimators": 200}),
        "multiclass": ("sklearn.ensemble", "RandomForestClassifier", {"n_estimators": 200}),
        "regression": ("sklearn.ensemble", "RandomForestRegressor", {"n_estimators": 200}),
    },
    "hist_gb": {
        "binary": ("sklearn.ensemble", "HistGradientBoostingClassifier", {}),
        "multiclass": ("sklearn.ensemble", "HistGradientBoostingClassifier", {}),
        "regression": ("sklearn.ensemble", "HistGradientBoostingRegressor", {}),
    },
    "xgboost": {
        "binary": ("xgboost", "XGBClassifier", {"n_estimators": 200, "verbosity": 0}),
        "multiclass": ("xgboost", "XGBClassifier", {"n_estimators": 200, "verbosity": 0}),
        "regression": ("xgboost", "XGBRegressor", {"n_estimators": 200, "verbosity": 0}),
    },
    "lightgbm": {
        "binary": ("lightgbm", "LGBMClassifier", {"n_estimators": 200, "verbose": -1}),
        "multiclass": ("lightgbm", "LGBMClassifier", {"n_estimators": 200, "verbose": -1}),
        "regression": ("lightgbm", "LGBMRegressor", {"n_estimators": 200, "verbose": -1}),
    },
    "kmeans": {"clustering": ("sklearn.cluster", "KMeans", {"n_clusters": 8, "n_init": "auto"})},
    "pca": {"reduction": ("sklearn.decomposition", "PCA", {"n_components": 2})},
}
FAMILIES = tuple(_FAMILIES)
REDUCERS = tuple(name for name, tasks in _FAMILIES.items() if "reduction" in tasks)


def build_estimator(
    model: str | Any, task: Task, params: Mapping[str, Any] | None, seed: int
) -> Any:
    """The estimator for ``model`` (a family name or an estimator) with ``params`` set.

    Invalid hyperparameters raise InvalidInput before any fitting starts.
    """
    if isinstance(model, str):
        family = _FAMILIES.get(model)
        if family is None:
            raise InvalidInput(
                f"unknown model family {model!r}; known: {', '.join(FAMILIES)}, "
                "or pass a scikit-learn compatible estimator"
            )
        if task not in family:
            raise InvalidInput(
                f"model family {model!r} does not do {task}; for {task} use "
                f"{', '.join(f for f, t in _FAMILIES.items() if task in t)}"
            )
        module_name, class_name, defaults = family[task]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise MissingDependency(module_name, module_name) from exc
        cls: Callable[..., Any] = getattr(module, class_name)
        estimator = cls(**defaults)
    elif callable(getattr(model, "fit", None)) and callable(getattr(model, "get_params", None)):
        estimator = clone(model)
    else:
        raise InvalidInput(
            f"model must be a family name or an estimator with fit/get_params, "
            f"got {type(model).__name__}"
        )
    known = estimator.get_params()
    if "random_state" in known and known["random_state"] is None:
        estimator.set_params(random_state=seed)
    unknown = [k for k in (params or {}) if k not in known]
    if unknown:
        raise InvalidInput(
            f"{type(estimator).__name__} has no hyperparameter(s) {', '.join(map(repr, unknown))}"
        )
    estimator.set_params(**(params or {}))
    if hasattr(estimator, "_parameter_constraints"):  # scikit-learn estimators check params
        try:
            estimator._validate_params()
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"invalid hyperparameters for {type(estimator).__name__}: {exc}"
            ) from exc
    return estimator
