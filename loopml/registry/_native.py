"""Native model flavors: XGBoost and LightGBM models in their own file formats, and Pipelines
that end in one.

A model saved here does not depend on pickle compatibility of its library: an XGBoost model
is written as ``model.ubj`` (the library's UBJSON format), a LightGBM model as its booster's
text model ``model.txt``, each beside a small ``flavor.json`` that says how to rebuild the
scikit-learn face of the model. A scikit-learn ``Pipeline`` whose final step is such a model
keeps the steps before it in ``preprocessing.joblib`` and the final estimator, in its native
format, in the subfolder ``final_estimator/``.

xgboost and lightgbm are optional: they are imported only when a model is loaded, and a
missing one raises :class:`~loopml.errors.MissingDependency` naming the extra to install.
The registry registers them on first need (``loopml.registry._flavors``).
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import joblib
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from loopml.errors import InvalidInput, MissingDependency, NotFound
from loopml.registry._flavors import Flavor, register_flavor
from loopml.registry._keras import KerasFlavor
from loopml.registry._torch import TorchFlavor

FLAVOR_FILE = "flavor.json"
_XGB_CLASSES = ("XGBClassifier", "XGBRegressor")
_LGBM_CLASSES = ("LGBMClassifier", "LGBMRegressor")


def _require(module: str) -> Any:
    """Import optional library ``module``, or raise MissingDependency naming its extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module, module) from exc


def _from_library(model: object, library: str, classes: Sequence[str]) -> bool:
    """Whether ``model`` is one of ``library``'s ``classes``, decided without importing it.

    Models with a custom (callable) objective are declined: their predictions cannot be
    rebuilt from the native file alone.
    """
    kind = type(model)
    return (
        kind.__module__.partition(".")[0] == library
        and kind.__name__ in classes
        and not callable(getattr(model, "objective", None))
    )


def _check_fitted(model: object) -> None:
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise InvalidInput(f"{type(model).__name__} is not fitted; fit it before saving") from None


def _json_list(values: Any, what: str) -> list[Any]:
    """``values`` (e.g. ``classes_``) as a JSON-ready list of plain Python values."""
    items: list[Any] = np.asarray(values).tolist()
    try:
        json.dumps(items, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} {items!r} cannot be stored as JSON") from None
    return items


def _write_info(path: Path, info: dict[str, Any]) -> None:
    text = json.dumps(info, indent=2, allow_nan=False)
    (path / FLAVOR_FILE).write_text(text, encoding="utf-8")


def _read_info(path: Path, expected: Sequence[str]) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((path / FLAVOR_FILE).read_text(encoding="utf-8"))
    if info.get("class") not in expected:
        raise InvalidInput(
            f"{path / FLAVOR_FILE} names class {info.get('class')!r}; "
            f"expected one of {', '.join(expected)}"
        )
    return info


def _library_version(library: str) -> str | None:
    version = getattr(sys.modules.get(library), "__version__", None)
    return version if isinstance(version, str) else None


class XGBoostFlavor:
    """``XGBClassifier`` and ``XGBRegressor`` in XGBoost's own format.

    Files: ``model.ubj`` (``save_model``) and ``flavor.json`` with the wrapper class, the
    classifier's ``classes_``, and the scalar constructor parameters (``missing`` as a string
    such as ``"nan"``, so that non-finite values survive JSON). Non-scalar parameters
    (callbacks, lists of metrics) only matter when training and are not kept.
    """

    name = "xgboost"
    filename = "model.ubj"

    def can_save(self, model: object) -> bool:
        """True for the scikit-learn API models of xgboost; xgboost is not imported."""
        return _from_library(model, "xgboost", _XGB_CLASSES)

    def save(self, model: object, path: Path) -> None:
        """Write ``model.ubj`` and ``flavor.json`` into ``path``.

        Raises
        ------
        InvalidInput
            The model is not fitted.
        """
        _check_fitted(model)
        xgb_model: Any = model
        params = xgb_model.get_params()
        info: dict[str, Any] = {
            "class": type(model).__name__,
            "library_version": _library_version("xgboost"),
            "missing": str(float(params.pop("missing"))),
            "params": {k: v for k, v in params.items() if _is_scalar(v)},
        }
        if hasattr(model, "classes_"):
            info["classes_"] = _json_list(xgb_model.classes_, "classes_")
        xgb_model.save_model(str(path / self.filename))
        _write_info(path, info)

    def load(self, path: Path) -> object:
        """Rebuild the wrapper class of ``flavor.json`` and ``load_model`` ``model.ubj``.

        Raises
        ------
        MissingDependency
            xgboost is not installed.
        InvalidInput
            ``flavor.json`` names a class this flavor does not handle.
        """
        xgboost = _require("xgboost")
        info = _read_info(path, _XGB_CLASSES)
        model: Any = getattr(xgboost, info["class"])(
            **info["params"], missing=float(info["missing"])
        )
        model.load_model(str(path / self.filename))
        return model


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, bool | int | str)


class _BoosterModel(BaseEstimator):  # type: ignore[misc]
    """A fitted LightGBM booster behind the scikit-learn prediction API.

    It only predicts: ``fit`` raises. It is an estimator so that it can end a ``Pipeline``.
    """

    def __init__(self, booster: Any, feature_names: Sequence[str] | None = None) -> None:
        self.booster = booster
        self.feature_names = feature_names

    @property
    def feature_names_in_(self) -> np.ndarray[Any, np.dtype[Any]]:
        """Names of the training columns; absent when the model was fit on an array."""
        if self.feature_names is None:
            raise AttributeError(f"{type(self).__name__} was fit without feature names")
        return np.asarray(self.feature_names, dtype=object)

    @property
    def n_features_in_(self) -> int:
        """Number of input columns."""
        return int(self.booster.num_feature())

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X: Any, y: Any = None) -> NoReturn:
        """Refuse: a model read back from a package only predicts.

        Raises
        ------
        InvalidInput
            Always; fit a ``lightgbm`` estimator instead.
        """
        raise InvalidInput(
            f"{type(self).__name__} is a LightGBM model read from a package and only predicts; "
            "fit a lightgbm.LGBMClassifier or LGBMRegressor instead"
        )

    def predict(self, X: Any) -> Any:
        """The booster's prediction for each row of ``X`` (a DataFrame or 2-D array)."""
        return self.booster.predict(X)


class LoadedLGBMRegressor(RegressorMixin, _BoosterModel):  # type: ignore[misc]
    """A saved ``LGBMRegressor`` read back: ``predict`` as the original's.

    Parameters
    ----------
    booster : the ``lightgbm.Booster``.
    feature_names : the training column names, if it was fit on a DataFrame.
    """


class LoadedLGBMClassifier(ClassifierMixin, _BoosterModel):  # type: ignore[misc]
    """A saved ``LGBMClassifier`` read back: ``predict`` and ``predict_proba`` as the original's.

    Parameters
    ----------
    booster : the ``lightgbm.Booster``.
    classes : the original's ``classes_``, in order.
    feature_names : the training column names, if it was fit on a DataFrame.
    """

    def __init__(
        self, booster: Any, classes: Sequence[Any], feature_names: Sequence[str] | None = None
    ) -> None:
        super().__init__(booster, feature_names)
        self.classes = classes

    @property
    def classes_(self) -> np.ndarray[Any, np.dtype[Any]]:
        """The class labels, in the order of the ``predict_proba`` columns."""
        return np.asarray(self.classes)

    def predict_proba(self, X: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Probability of each class (columns in ``classes_`` order) for each row of ``X``."""
        proba = np.asarray(self.booster.predict(X), dtype=np.float64)
        return np.column_stack((1.0 - proba, proba)) if proba.ndim == 1 else proba

    def predict(self, X: Any) -> Any:
        """The most probable class of each row of ``X``."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class LightGBMFlavor:
    """``LGBMClassifier`` and ``LGBMRegressor`` as LightGBM's text model.

    Files: ``model.txt`` (``booster_.save_model``; with early stopping, the best iteration
    only, which is what the estimator predicts with) and ``flavor.json`` with the class,
    ``classes_``, the objective and the training column names. Loading gives a
    :class:`LoadedLGBMClassifier` or :class:`LoadedLGBMRegressor`, which such a flavor saves
    again in the same way.
    """

    name = "lightgbm"
    filename = "model.txt"

    def can_save(self, model: object) -> bool:
        """True for lightgbm's scikit-learn models and their loaded forms; no import."""
        return isinstance(model, _BoosterModel) or _from_library(model, "lightgbm", _LGBM_CLASSES)

    def save(self, model: object, path: Path) -> None:
        """Write ``model.txt`` and ``flavor.json`` into ``path``.

        Raises
        ------
        InvalidInput
            The model is not fitted, or its ``classes_`` are not JSON values.
        """
        _check_fitted(model)
        lgbm: Any = model
        if isinstance(model, _BoosterModel):
            booster, objective = model.booster, model.booster.params.get("objective")
        else:
            booster, objective = lgbm.booster_, lgbm.objective_
        names = getattr(model, "feature_names_in_", None)
        info: dict[str, Any] = {
            "class": "LGBMClassifier" if hasattr(model, "classes_") else "LGBMRegressor",
            "library_version": _library_version("lightgbm"),
            "objective": objective,
            "feature_names_in_": None if names is None else _json_list(names, "feature names"),
        }
        if hasattr(model, "classes_"):
            info["classes_"] = _json_list(lgbm.classes_, "classes_")
        booster.save_model(str(path / self.filename))
        _write_info(path, info)

    def load(self, path: Path) -> object:
        """Read ``model.txt`` into a ``lightgbm.Booster`` behind the original's predict API.

        Raises
        ------
        MissingDependency
            lightgbm is not installed.
        InvalidInput
            ``flavor.json`` names a class this flavor does not handle.
        """
        lightgbm = _require("lightgbm")
        info = _read_info(path, _LGBM_CLASSES)
        booster = lightgbm.Booster(model_file=str(path / self.filename))
        names = info.get("feature_names_in_")
        if info["class"] == "LGBMClassifier":
            return LoadedLGBMClassifier(booster, info["classes_"], names)
        return LoadedLGBMRegressor(booster, names)


class PipelineFlavor:
    """A scikit-learn ``Pipeline`` whose final step has a native flavor.

    Files: ``preprocessing.joblib`` (the Pipeline with its final step set to
    ``"passthrough"``, so the other steps and the Pipeline's own parameters are kept),
    ``final_estimator/`` (the final step, written by its flavor) and ``flavor.json`` (step
    names and that flavor's name). A Pipeline ending in anything else is left to the
    scikit-learn flavor.

    Parameters
    ----------
    final_flavors : the flavors a final step may have; by default XGBoost and LightGBM.
    """

    name = "pipeline"
    filename = "preprocessing.joblib"
    folder = "final_estimator"

    def __init__(self, final_flavors: Sequence[Flavor] | None = None) -> None:
        self.final_flavors: tuple[Flavor, ...] = (
            (XGBoostFlavor(), LightGBMFlavor(), TorchFlavor())
            if final_flavors is None
            else tuple(final_flavors)
        )

    def _final_flavor(self, model: object) -> Flavor | None:
        if not isinstance(model, Pipeline) or not model.steps:
            return None
        final = model.steps[-1][1]
        return next((f for f in self.final_flavors if f.can_save(final)), None)

    def can_save(self, model: object) -> bool:
        """True for a ``Pipeline`` whose final step one of ``final_flavors`` can save."""
        return self._final_flavor(model) is not None

    def save(self, model: object, path: Path) -> None:
        """Write ``preprocessing.joblib``, ``final_estimator/`` and ``flavor.json``.

        Raises
        ------
        InvalidInput
            ``model`` is not a Pipeline ending in a model of ``final_flavors``.
        """
        flavor = self._final_flavor(model)
        if flavor is None or not isinstance(model, Pipeline):
            raise InvalidInput(
                f"flavor {self.name!r} saves a Pipeline ending in a model of flavor "
                f"{', '.join(f.name for f in self.final_flavors)}; got {type(model).__name__}"
            )
        names = [str(name) for name, _ in model.steps]
        params = model.get_params(deep=False)
        params["steps"] = [*model.steps[:-1], (names[-1], "passthrough")]
        joblib.dump(Pipeline(**params), path / self.filename)
        (path / self.folder).mkdir()
        flavor.save(model.steps[-1][1], path / self.folder)
        _write_info(path, {"class": "Pipeline", "steps": names, "final_flavor": flavor.name})

    def load(self, path: Path) -> object:
        """Rebuild the Pipeline: its saved steps, then the final step read by its flavor.

        Raises
        ------
        NotFound
            ``flavor.json`` names a final flavor not among ``final_flavors``.
        MissingDependency
            The final step's library is not installed.
        """
        info = _read_info(path, ("Pipeline",))
        known = {f.name: f for f in self.final_flavors}
        flavor = known.get(info["final_flavor"])
        if flavor is None:
            raise NotFound(
                f"{path / FLAVOR_FILE}: no final-step flavor {info['final_flavor']!r}; "
                f"known: {', '.join(sorted(known))}"
            )
        final = flavor.load(path / self.folder)
        pipeline: Pipeline = joblib.load(path / self.filename)
        pipeline.steps[-1] = (pipeline.steps[-1][0], final)
        return pipeline


def register_native_flavors() -> None:
    """Register the xgboost, lightgbm, pipeline, torch and keras flavors with the registry.

    They are registered after the built-in scikit-learn flavor, which would also claim
    these models (they have ``fit`` and ``predict``), so they are tried before it.
    Calling it again re-registers the same five and changes nothing further.

    Examples
    --------
    >>> register_native_flavors()
    >>> from loopml.registry import flavor_for
    >>> flavor_for(xgboost.XGBClassifier()).name  # doctest: +SKIP
    'xgboost'
    """
    for flavor in (
        XGBoostFlavor(),
        LightGBMFlavor(),
        PipelineFlavor(),
        TorchFlavor(),
        KerasFlavor(),
    ):
        register_flavor(flavor)


__all__ = [
    "LightGBMFlavor",
    "LoadedLGBMClassifier",
    "LoadedLGBMRegressor",
    "PipelineFlavor",
    "XGBoostFlavor",
    "register_native_flavors",
]
