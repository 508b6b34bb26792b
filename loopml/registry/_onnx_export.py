"""Exporting a model to ONNX at registration, checked against the model itself.

scikit-learn estimators and Pipelines go through skl2onnx; XGBoost and LightGBM models (alone
or ending a Pipeline) through onnxmltools' converters, registered with skl2onnx so that one
call converts a whole Pipeline; loopml's torch estimators through :func:`torch.onnx.export`.
The exported graph is then run by onnxruntime on the input example and its answers compared
with the native model's: labels must be equal, probabilities and values within
``RTOL``/``ATOL``. A model that does not convert, or converts to a graph that answers
otherwise, raises :class:`~loopml.errors.InvalidInput` naming the converter's error or the
first row and output that differ.
"""

from __future__ import annotations

import copy
import importlib
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput, MissingDependency
from loopml.registry._onnx import (
    ONNX_DIR,
    ONNX_FILE,
    OnnxClassifier,
    column_kind,
    load_onnx,
    require,
)
from loopml.registry._signature import Signature

RTOL, ATOL = 1e-3, 1e-4
TORCH_OPSET = 18
# the opsets skl2onnx and onnxmltools both write (their newest ai.onnx.ml differ)
ESTIMATOR_OPSET = {"": 17, "ai.onnx.ml": 3}
Array = np.ndarray[Any, np.dtype[Any]]

# (library, class, onnxmltools module, converter function) registered with skl2onnx
_BOOSTERS = (
    ("xgboost", "XGBClassifier", "onnxmltools.convert.xgboost.operator_converters.XGBoost",
     "convert_xgboost"),
    ("xgboost", "XGBRegressor", "onnxmltools.convert.xgboost.operator_converters.XGBoost",
     "convert_xgboost"),
    ("lightgbm", "LGBMClassifier", "onnxmltools.convert.lightgbm.operator_converters.LightGbm",
     "convert_lightgbm"),
    ("lightgbm", "LGBMRegressor", "onnxmltools.convert.lightgbm.operator_converters.LightGbm",
     "convert_lightgbm"),
)  # fmt: skip
_registered = False


def _fix_hist_gradient_boosting() -> None:
    """Work around skl2onnx 1.20 writing a Python ``False`` into an integer attribute for
    each leaf of a HistGradientBoosting tree (onnx rejects it: "Expected an int, got a
    boolean"): the leaf's missing-value flag is passed on as an int."""
    trees: Any = importlib.import_module("skl2onnx.common.tree_ensemble")
    add_node = trees.add_node
    if getattr(add_node, "_loopml_fixed", False):
        return

    def fixed(*args: Any, **kwargs: Any) -> Any:
        flag = kwargs.get("nodes_missing_value_tracks_true")
        if isinstance(flag, bool | np.bool_ | np.integer):
            kwargs["nodes_missing_value_tracks_true"] = int(flag)
        return add_node(*args, **kwargs)

    fixed._loopml_fixed = True  # type: ignore[attr-defined]
    trees.add_node = fixed


def _register_boosters(skl2onnx: Any) -> None:
    """Teach skl2onnx the XGBoost and LightGBM scikit-learn models (each library optional)."""
    global _registered
    if _registered:
        return
    _fix_hist_gradient_boosting()
    shapes = importlib.import_module("skl2onnx.common.shape_calculator")
    for library, name, module, function in _BOOSTERS:
        try:
            cls = getattr(importlib.import_module(library), name)
        except ImportError:
            continue
        converter = getattr(require(module), function)
        classifier = name.endswith("Classifier")
        skl2onnx.update_registered_converter(
            cls,
            f"loopml_{library}_{name}",
            shapes.calculate_linear_classifier_output_shapes
            if classifier
            else shapes.calculate_linear_regressor_output_shapes,
            converter,
            options={"nocl": [True, False], "zipmap": [True, False, "columns"]}
            if classifier
            else None,
        )
    _registered = True


def _layout(signature: Signature) -> tuple[str, list[str]]:
    kinds = [column_kind(c.dtype) for c in signature.inputs]
    return ("tensor" if all(k != "string" for k in kinds) else "columns"), kinds


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def _without_xgboost_names(model: Any) -> Any:
    """``model``, or a copy whose XGBoost booster has no feature names: onnxmltools reads
    the trees' splits by position (``f0``, ``f1``...), which is how the columns are fed."""
    final = _final_estimator(model)
    if type(final).__module__.partition(".")[0] != "xgboost":
        return model
    model = copy.deepcopy(model)
    _final_estimator(model).get_booster().feature_names = None
    return model


def _convert_estimator(model: Any, signature: Signature, layout: str, kinds: list[str]) -> Any:
    skl2onnx = require("skl2onnx")
    require("onnxmltools")
    _register_boosters(skl2onnx)
    types = importlib.import_module("skl2onnx.common.data_types")
    n = len(signature.inputs)
    if layout == "tensor":
        initial = [("X", types.FloatTensorType([None, n]))]
    else:
        by_kind = {
            "float": types.FloatTensorType,
            "int": types.Int64TensorType,
            "string": types.StringTensorType,
        }
        initial = [
            (c.name, by_kind[k]([None, 1])) for c, k in zip(signature.inputs, kinds, strict=True)
        ]
    model = _without_xgboost_names(model)
    final = _final_estimator(model)
    options = {id(final): {"zipmap": False}} if hasattr(final, "classes_") else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # converters warn about their own opset choices
            return skl2onnx.convert_sklearn(
                model, initial_types=initial, options=options, target_opset=ESTIMATOR_OPSET
            )
    except Exception as exc:  # any converter failure: say which model and why
        raise InvalidInput(
            f"cannot export {type(model).__name__} to ONNX with skl2onnx ({_first_line(exc)}); "
            "register it without onnx=True"
        ) from exc


def _export_estimator(model: Any, signature: Signature, folder: Path) -> dict[str, Any]:
    layout, kinds = _layout(signature)
    onx = _convert_estimator(model, signature, layout, kinds)
    (folder / ONNX_FILE).write_bytes(onx.SerializeToString())
    outputs = [o.name for o in onx.graph.output]
    final = _final_estimator(model)
    info: dict[str, Any] = {
        "kind": "estimator",
        "inputs": layout,
        "input_names": [i.name for i in onx.graph.input],
        "label": outputs[0],
        "probabilities": outputs[1] if len(outputs) > 1 else None,
    }
    classes = getattr(final, "classes_", None)
    if classes is not None:
        info["classes"] = np.asarray(classes).tolist()
    if layout == "columns":
        info["column_kinds"] = kinds
    return info


def _export_torch(model: Any, signature: Signature, folder: Path) -> dict[str, Any]:
    try:
        torch = importlib.import_module("torch")
    except ImportError as exc:
        raise MissingDependency("torch", "torch") from exc
    require("onnxscript")  # torch.onnx's exporter
    module = model.module_
    shape = tuple(model.input_shape_)
    n = int(np.prod(shape))

    class Flat(torch.nn.Module):  # type: ignore[misc,name-defined]
        """The module taking flat rows, as loopml feeds them."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: Any) -> Any:
            return self.inner(x.reshape(x.shape[0], *shape))

    was_training = module.training
    module.eval()
    example = torch.zeros(2, n)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it logs each optional torchvision op it skips
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter reports its own internals
            program = torch.onnx.export(
                Flat(),
                (example,),
                input_names=["X"],
                output_names=["output"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                opset_version=TORCH_OPSET,
                dynamo=True,
                verbose=False,
            )
            program.save(str(folder / ONNX_FILE))
    except Exception as exc:  # any exporter failure: name the module
        raise InvalidInput(
            f"cannot export {type(module).__name__} with torch.onnx ({_first_line(exc)}); "
            "register it without onnx=True"
        ) from exc
    finally:
        module.train(was_training)
        quiet.setLevel(level)
    classes = getattr(model, "classes_", None)
    info: dict[str, Any] = {"kind": "torch", "inputs": "tensor", "input_names": ["X"]}
    info["output"] = "output"
    if classes is not None:
        info["classes"] = np.asarray(classes).tolist()
    return info


def _compare(what: str, expected: Any, got: Any, exact: bool) -> float:
    """The largest absolute difference; raises at the first row that differs."""
    want, have = np.asarray(expected), np.asarray(got)
    if want.shape != have.shape:
        have = have.reshape(want.shape) if have.size == want.size else have
    if want.shape != have.shape:
        raise InvalidInput(
            f"the ONNX export gives {what} of shape {have.shape}, the model {want.shape}"
        )
    if exact or not np.issubdtype(want.dtype, np.number):
        bad = want.astype(str) != have.astype(str)
        diff = 0.0
    else:
        w, h = want.astype(np.float64), have.astype(np.float64)
        bad = ~np.isclose(h, w, rtol=RTOL, atol=ATOL)
        diff = float(np.max(np.abs(h - w))) if w.size else 0.0
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise InvalidInput(
            f"the ONNX export does not reproduce the model on the input example: {what} of "
            f"row {row} is {_row(have, row)}, the model's is {_row(want, row)} (tolerance "
            f"rtol={RTOL}, atol={ATOL}); register it without onnx=True"
        )
    return diff


def _row(values: Array, row: int) -> str:
    value: Any = values[row]
    return repr(value.tolist() if isinstance(value, np.ndarray | np.generic) else value)


def check_export(model: Any, frame: pd.DataFrame, folder: Path, info: dict[str, Any]) -> float:
    """Run the export in ``folder`` on ``frame`` and compare with ``model``; return the
    largest absolute difference of probabilities or values.

    Raises
    ------
    InvalidInput
        A label differs, or a probability or value is outside the tolerance.
    """
    onnx_model = load_onnx(folder / ONNX_FILE, info, threads=1)
    X: Any = frame.to_numpy() if info.get("ndarray") else frame
    try:
        got = onnx_model.predict(X)
    except Exception as exc:  # onnxruntime's errors: the graph does not run on the example
        raise InvalidInput(
            f"the ONNX export fails on the input example ({_first_line(exc)}); "
            "register it without onnx=True"
        ) from exc
    expected = model.predict(X)
    classifier = info.get("classes") is not None
    diff = _compare("the prediction", expected, got, exact=classifier)
    proba = getattr(model, "predict_proba", None)
    if isinstance(onnx_model, OnnxClassifier) and callable(proba):
        got_proba = onnx_model.predict_proba(X)
        diff = max(diff, _compare("the probabilities", proba(X), got_proba, exact=False))
    return diff


def export_onnx(
    model: Any, flavor: str, signature: Signature, example: Any, folder: Path
) -> dict[str, Any]:
    """Write ``onnx/model.onnx`` of ``model`` into package folder ``folder``, check it on
    ``example`` and return the ``"onnx"`` metadata.

    Raises
    ------
    InvalidInput
        The model does not convert, or its export answers otherwise on ``example``.
    MissingDependency
        The ``onnx`` extra (or torch, for a torch model) is not installed.
    """
    onnx = require("onnx")
    ort = require("onnxruntime")
    frame = signature.validate(example)
    (folder / ONNX_DIR).mkdir()
    if flavor == "keras":
        raise InvalidInput(
            "ONNX export of Keras models is not supported; register it without onnx=True "
            "(it is served natively, on the keras flavor)"
        )
    if flavor == "torch":
        info = _export_torch(model, signature, folder)
    elif flavor == "pipeline" and getattr(_final_estimator(model), "_loopml_torch", False):
        raise InvalidInput(
            "cannot export a Pipeline ending in a torch model to ONNX; register the torch "
            "model alone, or without onnx=True"
        )
    else:
        info = _export_estimator(model, signature, folder)
    info["file"] = ONNX_FILE
    info["columns"] = [c.name for c in signature.inputs]
    info["ndarray"] = signature.input_type == "ndarray"
    info["max_abs_diff"] = check_export(model, frame, folder, info)
    info["onnx_version"] = str(onnx.__version__)
    info["onnxruntime_version"] = str(ort.__version__)
    return info


__all__ = ["ATOL", "RTOL", "check_export", "export_onnx"]
