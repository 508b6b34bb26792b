"""The keras flavor: a Keras 3 model saved in Keras's own ``.keras`` format.

A Keras 3 model (``keras.Model``, ``keras.Sequential``, functional models) is found by its
class's module (``keras``), without importing keras. The package holds ``model.keras``
(``model.save``: architecture, weights, compile state; no pickle) and ``flavor.json``
(backend, keras version, input width, feature names). The format does not depend on the
backend, so a model trained with one backend loads with another; when keras is not
imported yet, loading picks the torch backend (``KERAS_BACKEND`` overrides it), the one
loopml's ``torch`` extra installs.

Loading gives a :class:`LoadedKerasModel`: ``predict`` returns the model's outputs (one
value per row for a single output unit, else one column per unit), from a DataFrame of the
training columns or a 2-D array, computed without Keras's progress bar. keras is optional;
a missing one raises :class:`~loopml.errors.MissingDependency` naming the ``keras`` extra.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from sklearn.base import BaseEstimator

from loopml.errors import InvalidInput, MissingDependency
from loopml.registry._torch import as_rows

FLAVOR_FILE = "flavor.json"
MODEL_FILE = "model.keras"
Array = np.ndarray[Any, np.dtype[Any]]
_COPY_WARNING = "__array__ implementation doesn't accept a copy keyword"


def require_keras() -> Any:
    """The ``keras`` module (torch backend unless ``KERAS_BACKEND`` says otherwise), or
    MissingDependency naming the ``keras`` extra."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        return importlib.import_module("keras")
    except ImportError as exc:
        raise MissingDependency("keras", "keras") from exc


@contextlib.contextmanager
def _numpy_copy_quiet() -> Iterator[None]:
    """keras's torch backend hands numpy tensors whose ``__array__`` lacks numpy 2's
    ``copy=`` keyword; numpy warns and converts them correctly. Silence just that."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _COPY_WARNING, DeprecationWarning)
        yield


def _outputs(model: Any, rows: Array) -> Array:
    with _numpy_copy_quiet():
        out = np.asarray(model.predict(rows, verbose=0))
    return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


def _width(model: Any) -> int | None:
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int):
        return shape[1]
    return None


class LoadedKerasModel(BaseEstimator):  # type: ignore[misc]
    """A saved Keras model read back; it only predicts (``fit`` raises).

    Parameters
    ----------
    model : the ``keras.Model``.
    feature_names : the columns, in order, when it was registered with a DataFrame.
    """

    _loopml_keras = True

    def __init__(self, model: Any, feature_names: Sequence[str] | None = None) -> None:
        self.model = model
        self.feature_names = feature_names

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X: Any, y: Any = None) -> NoReturn:
        """Refuse: a model read back from a package only predicts.

        Raises
        ------
        InvalidInput
            Always; fit the Keras model itself instead.
        """
        raise InvalidInput(
            "LoadedKerasModel is a Keras model read from a package and only predicts; "
            "fit a keras.Model instead"
        )

    def predict(self, X: Any) -> Array:
        """The model's outputs for each row of ``X`` (a DataFrame or 2-D array)."""
        rows = as_rows(X, _width(self.model), self.feature_names, "keras model")
        return _outputs(self.model, rows)


class KerasFlavor:
    """Keras 3 models as ``model.keras`` files (see the module docstring)."""

    name = "keras"
    filename = MODEL_FILE

    def can_save(self, model: object) -> bool:
        """True for Keras 3 models and their loaded forms; keras is not imported."""
        if getattr(type(model), "_loopml_keras", False) is True:
            return True
        module = type(model).__module__.partition(".")[0]
        return (
            module == "keras"
            and callable(getattr(model, "save", None))
            and callable(getattr(model, "predict", None))
        )

    def example_output(self, model: object, X: Any) -> Array:
        """What the model answers for ``X`` (for the signature), without a progress bar."""
        if isinstance(model, LoadedKerasModel):
            return model.predict(X)
        return _outputs(model, as_rows(X, _width(model), None, type(model).__name__))

    def save(self, model: object, path: Path) -> None:
        """Write ``model.keras`` and ``flavor.json`` into ``path``.

        Raises
        ------
        InvalidInput
            The model is not built (it has never seen data), so it cannot be saved.
        MissingDependency
            keras is not installed.
        """
        keras = require_keras()
        inner: Any = model
        names: Sequence[str] | None = None
        if isinstance(model, LoadedKerasModel):
            inner, names = model.model, model.feature_names
        if not getattr(inner, "built", True):
            raise InvalidInput(
                f"{type(inner).__name__} is not built; fit it (or call it on data) before saving"
            )
        try:
            with _numpy_copy_quiet():
                inner.save(str(path / self.filename))
        except Exception as exc:  # keras raises its own errors for unsavable models
            raise InvalidInput(f"keras cannot save {type(inner).__name__}: {exc}") from exc
        info = {
            "keras_version": str(keras.__version__),
            "backend": str(keras.backend.backend()),
            "feature_names": None if names is None else [str(n) for n in names],
        }
        (path / FLAVOR_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")

    def load(self, path: Path) -> object:
        """Read ``model.keras`` back behind the prediction API.

        Raises
        ------
        MissingDependency
            keras is not installed.
        """
        keras = require_keras()
        info: dict[str, Any] = json.loads((path / FLAVOR_FILE).read_text(encoding="utf-8"))
        with _numpy_copy_quiet():
            model = keras.saving.load_model(str(path / self.filename), compile=False)
        return LoadedKerasModel(model, info.get("feature_names"))


__all__ = ["KerasFlavor", "LoadedKerasModel", "require_keras"]
