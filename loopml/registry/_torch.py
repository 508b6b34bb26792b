"""The torch flavor: a fitted torch estimator saved as a ``torch.export`` program.

A model this flavor saves is found by duck typing, not by import (the registry sits below
``loopml.training``): it carries the class attribute ``_loopml_torch = True`` and the fitted
attributes ``module_`` (an ``nn.Module``), ``input_shape_``, ``n_features_in_``, and, for a
classifier, ``classes_``. The package holds

- ``model.pt2``: the module exported with :func:`torch.export.export` (batch dimension
  dynamic) and written with :func:`torch.export.save` — the graph and the weights, so
  loading needs neither pickle nor the user's Python class;
- ``flavor.json``: task, ``classes_``, ``input_shape``, feature names and the torch version.

Loading gives a :class:`LoadedTorchClassifier` or :class:`LoadedTorchRegressor`: predict-only
scikit-learn estimators that the flavor saves again in the same way. TorchScript
(``torch.jit``) is deprecated in torch 2.13, hence ``torch.export``.

The helpers that turn rows into tensors and outputs into predictions live here so that the
training estimators and the loaded models predict with the very same code. torch is
imported only when a model is saved, loaded or run; a missing torch raises
:class:`~loopml.errors.MissingDependency` naming the ``torch`` extra.
"""

from __future__ import annotations

import importlib
import io
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from loopml.errors import InvalidInput, MissingDependency

FLAVOR_FILE = "flavor.json"
PROGRAM_FILE = "model.pt2"
PREDICT_BATCH = 4096
Array = np.ndarray[Any, np.dtype[Any]]


def require_torch() -> Any:
    """The ``torch`` module, or MissingDependency naming the ``torch`` extra."""
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise MissingDependency("torch", "torch") from exc


def as_rows(
    X: Any, n_features: int | None, feature_names: Sequence[str] | None, who: str
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """``X`` (a DataFrame or 2-D array) as a finite float32 matrix, columns in training order.

    Raises
    ------
    InvalidInput
        A training column is missing, a column is not numeric, the width is wrong, or a
        value is NaN or infinite; the message names the column and row.
    """
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        if feature_names is not None:
            missing = [c for c in feature_names if c not in names]
            if missing:
                raise InvalidInput(f"{who}: column(s) {', '.join(map(repr, missing))} are missing")
            X = X[list(feature_names)]
            names = list(feature_names)
        for name, dtype in zip(names, X.dtypes, strict=True):
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                raise InvalidInput(
                    f"{who}: column {name!r} is {dtype}; torch models take numeric columns "
                    "(encode it first, e.g. with train(..., preprocess=True))"
                )
        values = X.to_numpy(dtype=np.float32, na_value=np.nan)
    else:
        names = None
        try:
            values = np.asarray(X, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{who}: X must be numeric: {exc}") from None
        if values.ndim != 2:
            raise InvalidInput(f"{who}: X must be 2-D (rows x features), got shape {values.shape}")
    if n_features is not None and values.shape[1] != n_features:
        raise InvalidInput(
            f"{who}: X has {values.shape[1]} feature(s), the model takes {n_features}"
        )
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        column = names[col] if names is not None else f"#{col}"
        raise InvalidInput(
            f"{who}: column {column!r} has {int(bad[:, col].sum())} NaN or infinite value(s) "
            f"(first at row {row}); impute them first"
        )
    # torch shares the memory of the array it wraps and refuses read-only ones
    out: np.ndarray[Any, np.dtype[np.float32]] = values if values.flags.writeable else values.copy()
    return out


def check_input_shape(input_shape: Any, n_features: int, who: str) -> tuple[int, ...]:
    """``input_shape`` as a tuple whose product is ``n_features`` (default: ``(n_features,)``).

    Raises
    ------
    InvalidInput
        It is not a sequence of positive ints, or does not hold exactly ``n_features`` values.
    """
    if input_shape is None:
        return (n_features,)
    shape = (input_shape,) if isinstance(input_shape, int) else input_shape
    if (
        not isinstance(shape, Sequence)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise InvalidInput(
            f"{who}: input_shape must be a tuple of positive ints such as (1, 8, 8), "
            f"got {input_shape!r}"
        )
    if int(np.prod(shape)) != n_features:
        raise InvalidInput(
            f"{who}: input_shape {tuple(shape)} holds {int(np.prod(shape))} values per row, "
            f"but X has {n_features} feature(s)"
        )
    return tuple(shape)


def predict_device(device: object, who: str) -> str:
    """The torch device a model predicts on for ``device``: ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` or ``"auto"`` (CUDA when available).

    When CUDA is asked for and not available, prediction falls back to the CPU with one
    :class:`RuntimeWarning` naming the model (training, by contrast, refuses: see
    ``loopml.training``), so a job configured for a GPU node still runs on a CPU one.

    Raises
    ------
    InvalidInput
        ``device`` is not one of those names.
    """
    if device == "cpu":
        return "cpu"
    kind, _, index = device.partition(":") if isinstance(device, str) else ("", "", "")
    if device != "auto" and (kind != "cuda" or (index and not index.isdigit())):
        raise InvalidInput(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', not {device!r}")
    torch = require_torch()
    if torch.cuda.is_available():
        return "cuda" if device == "auto" else str(device)
    if device != "auto":
        warnings.warn(
            f"{who}: device={device!r} but CUDA is not available (torch {torch.__version__}, "
            "torch.cuda.is_available() is False); predicting on the CPU instead",
            RuntimeWarning,
            stacklevel=3,
        )
    return "cpu"


def forward(
    fn: Callable[[Any], Any],
    rows: np.ndarray[Any, Any],
    input_shape: Sequence[int],
    device: str = "cpu",
) -> Array:
    """``fn`` applied in batches to ``rows`` reshaped to ``(n, *input_shape)`` on
    ``device``; the outputs come back to the CPU."""
    torch = require_torch()
    outputs = []
    with torch.no_grad():
        for start in range(0, max(len(rows), 1), PREDICT_BATCH):
            batch = torch.from_numpy(rows[start : start + PREDICT_BATCH])
            if device != "cpu":
                batch = batch.to(device)
            out = fn(batch.reshape(len(batch), *input_shape))
            outputs.append(out.detach().cpu().to(torch.float64).numpy())
    return np.concatenate(outputs) if outputs else np.empty((0,))


def to_proba(outputs: Array, n_classes: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Class probabilities from logits: sigmoid of one column (binary) or softmax."""
    logits = outputs.reshape(len(outputs), -1)
    if logits.shape[1] == 1 and n_classes == 2:
        p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return np.column_stack((1.0 - p, p))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba: np.ndarray[Any, np.dtype[np.float64]] = shifted / shifted.sum(axis=1, keepdims=True)
    return proba


def to_values(outputs: Array) -> Array:
    """Regression outputs: one value per row, or one column per target."""
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return outputs[:, 0]
    return outputs


class _LoadedTorchModel(BaseEstimator):  # type: ignore[misc]
    """A torch model read back from a package; it only predicts (``fit`` raises)."""

    _loopml_torch = True

    def __init__(
        self,
        program: Any,
        input_shape: Sequence[int],
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self.program = program
        self.input_shape = input_shape
        self.feature_names = feature_names

    @property
    def device(self) -> str:
        """The torch device it predicts on (``"cpu"`` unless :meth:`to_device` moved it)."""
        return str(getattr(self, "_device", "cpu"))

    def to_device(self, device: str) -> None:
        """Predict on ``device`` from now on (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``;
        CUDA asked for without CUDA falls back to the CPU with a warning)."""
        resolved = predict_device(device, type(self).__name__)
        module = self.module_
        if resolved != "cpu":
            module = module.to(resolved)
        self._module, self._device = module, resolved

    @property
    def module_(self) -> Any:
        """The exported program as a callable module (built once: that costs milliseconds)."""
        module = getattr(self, "_module", None)
        if module is None:
            module = self._module = self.program.module()
        return module

    @property
    def input_shape_(self) -> tuple[int, ...]:
        """Shape of one example as the module takes it."""
        return tuple(self.input_shape)

    @property
    def n_features_in_(self) -> int:
        """Number of input columns."""
        return int(np.prod(self.input_shape))

    @property
    def feature_names_in_(self) -> np.ndarray[Any, np.dtype[Any]]:
        """Names of the training columns; absent when the model was fit on an array."""
        if self.feature_names is None:
            raise AttributeError(f"{type(self).__name__} was fit without feature names")
        return np.asarray(self.feature_names, dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X: Any, y: Any = None) -> NoReturn:
        """Refuse: a model read back from a package only predicts.

        Raises
        ------
        InvalidInput
            Always; fit a ``TorchClassifier`` or ``TorchRegressor`` instead.
        """
        raise InvalidInput(
            f"{type(self).__name__} is a torch model read from a package and only predicts; "
            "fit a loopml.training.TorchClassifier or TorchRegressor instead"
        )

    def _outputs(self, X: Any) -> Array:
        who = type(self).__name__
        rows = as_rows(X, self.n_features_in_, self.feature_names, who)
        return forward(self.module_, rows, self.input_shape_, self.device)


class LoadedTorchRegressor(RegressorMixin, _LoadedTorchModel):  # type: ignore[misc]
    """A saved ``TorchRegressor`` read back: ``predict`` as the original's.

    Parameters
    ----------
    program : the ``torch.export.ExportedProgram``.
    input_shape : the shape one row is reshaped to.
    feature_names : the training column names, if it was fit on a DataFrame.
    """

    def predict(self, X: Any) -> Array:
        """The module's output for each row of ``X`` (a DataFrame or 2-D array)."""
        return to_values(self._outputs(X))


class LoadedTorchClassifier(ClassifierMixin, _LoadedTorchModel):  # type: ignore[misc]
    """A saved ``TorchClassifier`` read back: ``predict`` and ``predict_proba`` as the original's.

    Parameters
    ----------
    program : the ``torch.export.ExportedProgram``.
    classes : the original's ``classes_``, in order.
    input_shape : the shape one row is reshaped to.
    feature_names : the training column names, if it was fit on a DataFrame.
    """

    def __init__(
        self,
        program: Any,
        classes: Sequence[Any],
        input_shape: Sequence[int],
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(program, input_shape, feature_names)
        self.classes = classes

    @property
    def classes_(self) -> np.ndarray[Any, np.dtype[Any]]:
        """The class labels, in the order of the ``predict_proba`` columns."""
        return np.asarray(self.classes)

    def predict_proba(self, X: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Probability of each class (columns in ``classes_`` order) for each row of ``X``."""
        return to_proba(self._outputs(X), len(self.classes))

    def predict(self, X: Any) -> Array:
        """The most probable class of each row of ``X``."""
        proba = self.predict_proba(X)
        labels: Array = self.classes_[np.argmax(proba, axis=1)]
        return labels


def _export(model: Any, torch: Any) -> Any:
    """The fitted module as an ExportedProgram with a dynamic batch dimension, checked to
    give the module's own outputs on batches of other sizes."""
    program = getattr(model, "program", None)
    if program is not None:  # a loaded model: already exported
        return program
    module = model.module_
    shape = tuple(model.input_shape_)
    was_training = module.training
    module.eval()
    gen = torch.Generator().manual_seed(0)
    try:
        example = torch.randn(3, *shape, generator=gen)
        batch = torch.export.Dim("batch")
        with warnings.catch_warnings():
            # torch.export reports its own internals (e.g. nn.LSTM's flat weights) as
            # warnings; correctness is checked below against the eager module instead
            warnings.simplefilter("ignore")
            try:
                program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
            except Exception as exc:  # any failure of user code: name the model
                raise InvalidInput(
                    f"cannot export {type(module).__name__} with torch.export "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                    "its forward must take one tensor of shape (batch, *input_shape)"
                ) from exc
        check = torch.randn(5, *shape, generator=gen)
        with torch.no_grad():
            expected, got = module(check), program.module()(check)
        if not torch.allclose(expected, got, rtol=1e-4, atol=1e-5):
            raise InvalidInput(
                f"the exported {type(module).__name__} does not reproduce the module's outputs; "
                "its forward must not depend on Python state other than its input"
            )
    finally:
        module.train(was_training)
    return program


class TorchFlavor:
    """Torch estimators (``TorchClassifier``, ``TorchRegressor``) as ``torch.export`` programs.

    Files: ``model.pt2`` and ``flavor.json`` (see the module docstring). Loading needs torch
    but not the Python class of the user's module.
    """

    name = "torch"
    filename = PROGRAM_FILE

    def can_save(self, model: object) -> bool:
        """True for objects marked ``_loopml_torch``; torch is not imported."""
        return getattr(type(model), "_loopml_torch", False) is True

    def save(self, model: object, path: Path) -> None:
        """Write ``model.pt2`` and ``flavor.json`` into ``path``.

        Raises
        ------
        InvalidInput
            The model is not fitted, its module cannot be exported, or its classes are not
            JSON values.
        MissingDependency
            torch is not installed.
        """
        if not hasattr(model, "module_") or not hasattr(model, "input_shape_"):
            raise InvalidInput(f"{type(model).__name__} is not fitted; fit it before saving")
        torch = require_torch()
        fitted: Any = model
        program = _export(fitted, torch)
        names = getattr(model, "feature_names_in_", None)
        classes = getattr(model, "classes_", None)
        info: dict[str, Any] = {
            "task": "regression" if classes is None else "classification",
            "input_shape": list(fitted.input_shape_),
            "feature_names_in_": None if names is None else [str(n) for n in names],
            "torch_version": str(torch.__version__),
        }
        if classes is not None:
            info["classes_"] = np.asarray(classes).tolist()
        try:
            text = json.dumps(info, indent=2, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"classes_ {info.get('classes_')!r} cannot be stored as JSON"
            ) from None
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        (path / self.filename).write_bytes(buffer.getvalue())
        (path / FLAVOR_FILE).write_text(text, encoding="utf-8")

    def load(self, path: Path) -> object:
        """Read ``model.pt2`` back behind the scikit-learn prediction API.

        Raises
        ------
        MissingDependency
            torch is not installed.
        InvalidInput
            ``flavor.json`` names a task this flavor does not handle.
        """
        torch = require_torch()
        info: dict[str, Any] = json.loads((path / FLAVOR_FILE).read_text(encoding="utf-8"))
        program = torch.export.load(str(path / self.filename))
        shape, names = info["input_shape"], info.get("feature_names_in_")
        if info.get("task") == "classification":
            return LoadedTorchClassifier(program, info["classes_"], shape, names)
        if info.get("task") == "regression":
            return LoadedTorchRegressor(program, shape, names)
        raise InvalidInput(
            f"{path / FLAVOR_FILE} names task {info.get('task')!r}; "
            "expected classification or regression"
        )


__all__ = [
    "LoadedTorchClassifier",
    "LoadedTorchRegressor",
    "TorchFlavor",
    "as_rows",
    "check_input_shape",
    "forward",
    "predict_device",
    "require_torch",
    "to_proba",
    "to_values",
]
