"""The ``onnx`` flavor: a model exported to ONNX beside its native files, run by onnxruntime.

``register_model(..., onnx=True)`` writes ``onnx/model.onnx`` into the package next to what
the native flavor wrote, and records in ``loopml-model.json`` (key ``"onnx"``) how to feed
it and read its outputs. The export is made by :mod:`loopml.registry._onnx_export`;
this module only runs it: :class:`OnnxModel` is a predict-only model with the scikit-learn
prediction API (``predict``, ``predict_proba`` for classifiers, ``classes_``) over an
``onnxruntime.InferenceSession``.

Two input layouts are recorded (``"inputs"``):

- ``"tensor"``: one float32 input ``X`` of shape ``(rows, columns)``, the signature's
  columns in order (every column numeric or boolean);
- ``"columns"``: one ``(rows, 1)`` input per signature column, named after it, as float32,
  int64 or string (a Pipeline whose ColumnTransformer encodes string columns).

Two output layouts (``"kind"``): ``"estimator"`` (a label output and, for a classifier, a
probabilities output, as skl2onnx and onnxmltools write them) and ``"torch"`` (the module's
raw outputs, turned into labels, probabilities or values by the torch flavor's own code).

onnxruntime is optional; a missing one raises :class:`~loopml.errors.MissingDependency`
naming the ``onnx`` extra.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput, MissingDependency
from loopml.registry._torch import as_rows, to_proba, to_values

ONNX_DIR = "onnx"
ONNX_FILE = f"{ONNX_DIR}/model.onnx"
EXTRA = "onnx"
Array = np.ndarray[Any, np.dtype[Any]]


def require(module: str) -> Any:
    """Import ``module`` of the ``onnx`` extra, or raise MissingDependency naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module, EXTRA) from exc


def column_kind(dtype: str) -> str:
    """How a signature column of ``dtype`` is fed in the ``columns`` layout:
    ``float``, ``int`` or ``string``."""
    if dtype.startswith(("int", "uint")):
        return "int"
    if dtype.startswith("float") or dtype == "bool":
        return "float"
    return "string"


def feeds(X: Any, info: dict[str, Any]) -> dict[str, Array]:
    """The onnxruntime inputs for rows ``X`` (a DataFrame of the signature's columns, or a
    2-D array of them in order), laid out as ``info`` records."""
    names: list[str] = info["columns"]
    if info["inputs"] == "tensor":
        if info["kind"] == "torch":
            return {info["input_names"][0]: as_rows(X, len(names), None, "onnx model")}
        values = X.to_numpy() if isinstance(X, pd.DataFrame) else np.asarray(X)
        return {info["input_names"][0]: _float32(values, names)}
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X), columns=names)
    out: dict[str, Array] = {}
    for name, kind in zip(names, info["column_kinds"], strict=True):
        column = frame[name].to_numpy()
        if kind == "int":
            out[name] = column.astype(np.int64).reshape(-1, 1)
        elif kind == "float":
            out[name] = _float32(column.reshape(-1, 1), [name])
        else:
            out[name] = np.asarray([str(v) for v in column], dtype=object).reshape(-1, 1)
    return out


def _float32(values: Array, names: list[str]) -> Array:
    """``values`` as float32 (what the exported graphs compute in).

    Raises
    ------
    InvalidInput
        A finite value is beyond float32's range; the message names its column and row.
    """
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(values, dtype=np.float32)
    if values.dtype.kind == "f" and not np.isfinite(out).all():
        overflow = np.isinf(out) & np.isfinite(values)
        if overflow.any():
            row, col = (int(i) for i in np.argwhere(overflow)[0])
            raise InvalidInput(
                f"column {names[col]!r} row {row}: {values[row, col].item()!r} is beyond float32's "
                "range, which the ONNX runtime computes in"
            )
    return out


class OnnxModel:
    """An exported regressor (or the base of :class:`OnnxClassifier`) run by onnxruntime,
    behind the scikit-learn prediction API.

    Parameters
    ----------
    path : the ``model.onnx`` file.
    info : the package's ``"onnx"`` metadata (layouts, output names, classes).
    threads : onnxruntime's intra-op threads (None: its default, every core).

    Raises
    ------
    MissingDependency
        onnxruntime is not installed.
    InvalidInput
        The file is not a model onnxruntime can run.
    """

    def __init__(self, path: Path, info: dict[str, Any], threads: int | None = None) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own error types
            raise InvalidInput(f"onnxruntime cannot load {path}: {exc}") from exc
        self.info = info
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, kind={self.info['kind']!r})"

    def _run(self, X: Any, output: str) -> Array:
        result: Array = self.session.run([output], feeds(X, self.info))[0]
        return result

    def raw(self, X: Any) -> list[Array]:
        """Every output of the ONNX graph for rows ``X``, in the graph's order."""
        names = [o.name for o in self.session.get_outputs()]
        result: list[Array] = self.session.run(names, feeds(X, self.info))
        return result

    def predict(self, X: Any) -> Array:
        """The value of each row of ``X`` (a DataFrame of the signature's columns or a 2-D
        array of them in order)."""
        if self.info["kind"] == "torch":
            return to_values(self._run(X, self.info["output"]).astype(np.float64))
        values = self._run(X, self.info["label"])
        return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


class OnnxClassifier(OnnxModel):
    """An exported classifier run by onnxruntime: ``predict``, ``predict_proba``, ``classes_``.

    Parameters are those of :class:`OnnxModel`; ``info["classes"]`` lists the classes.
    """

    def __init__(self, path: Path, info: dict[str, Any], threads: int | None = None) -> None:
        super().__init__(path, info, threads)
        self._classes: Array = np.asarray(info["classes"])

    @property
    def classes_(self) -> Array:
        """The class labels, in the order of the ``predict_proba`` columns."""
        return self._classes

    def predict_proba(self, X: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Probability of each class (columns in ``classes_`` order) for each row of ``X``."""
        if self.info["kind"] == "torch":
            out = self._run(X, self.info["output"]).astype(np.float64)
            return to_proba(out, len(self._classes))
        return np.asarray(self._run(X, self.info["probabilities"]), dtype=np.float64)

    def predict(self, X: Any) -> Array:
        """The class of each row of ``X``."""
        if self.info["kind"] == "torch":
            labels: Array = self._classes[np.argmax(self.predict_proba(X), axis=1)]
            return labels
        label = self._run(X, self.info["label"]).reshape(-1)
        return label.astype(self._classes.dtype) if label.dtype == object else label


def load_onnx(path: Path, info: dict[str, Any], threads: int | None = None) -> OnnxModel:
    """The :class:`OnnxClassifier` or :class:`OnnxModel` (regressor) of ``info``."""
    if info.get("classes") is not None:
        return OnnxClassifier(path, info, threads)
    return OnnxModel(path, info, threads)


__all__ = [
    "ONNX_DIR",
    "ONNX_FILE",
    "OnnxClassifier",
    "OnnxModel",
    "column_kind",
    "feeds",
    "load_onnx",
    "require",
]
