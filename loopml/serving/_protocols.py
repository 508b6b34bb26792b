"""The wire protocols besides loopml's own: Open Inference (KServe V2) and MLflow's.

Each ``parse_*`` returns what :meth:`InputSchema.prepare` reads plus whether class
probabilities were asked for; each ``render_*`` builds the response body.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loopml.errors import InvalidInput
from loopml.registry import Signature
from loopml.serving._codec import (
    CSV,
    JSON,
    Parsed,
    UnsupportedMediaType,
    columns_frame,
    loads,
    read_table,
    split_table,
    to_list,
)

# -- Open Inference Protocol (KServe V2) -----------------------------------------------------
_V2_TYPES = {
    "BOOL": "b",
    "UINT8": "u",
    "UINT16": "u",
    "UINT32": "u",
    "UINT64": "u",
    "INT8": "i",
    "INT16": "i",
    "INT32": "i",
    "INT64": "i",
    "FP16": "f",
    "FP32": "f",
    "FP64": "f",
    "BYTES": "O",
}
_ACCEPTS = {"b": "b", "i": "iu", "u": "iu", "f": "fiu", "M": "O", "O": "Obiuf"}
PROBA = "predict_proba"


def v2_datatype(dtype: str) -> str:
    """The V2 tensor datatype for a signature dtype name."""
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        return "BYTES"
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return ("UINT" if kind == "u" else "INT") + str(8 * np.dtype(dtype).itemsize)
    if kind == "f":
        return f"FP{8 * np.dtype(dtype).itemsize}"
    return "BYTES"


def _kind(dtype: str) -> str:
    try:
        return np.dtype(dtype).kind
    except TypeError:
        return "O"


def v2_metadata(name: str, versions: list[int], signature: Signature) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the model's name, versions and typed inputs and outputs."""
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": "loopml",
        "inputs": [
            {"name": c.name, "datatype": v2_datatype(c.dtype), "shape": [-1]}
            for c in signature.inputs
        ],
        "outputs": [
            {"name": c.name, "datatype": v2_datatype(c.dtype), "shape": [-1]}
            for c in signature.outputs
        ],
    }


def _flatten(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidInput(f"{what}.data must be a list")
    if not any(isinstance(v, list) for v in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            flat.append(v)
        else:
            stack.pop()
    return flat


def _tensor(spec: Any, i: int) -> tuple[str, list[int], str, list[Any]]:
    what = f"inputs[{i}]"
    if not isinstance(spec, dict):
        raise InvalidInput(f"{what} must be an object with name, shape, datatype and data")
    name, shape, datatype = spec.get("name"), spec.get("shape"), spec.get("datatype")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{what}.name must be a non-empty string")
    what = f"input {name!r}"
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise InvalidInput(f"{what}: shape must be a list of non-negative integers, not {shape!r}")
    if datatype not in _V2_TYPES:
        raise InvalidInput(f"{what}: datatype {datatype!r} is not one of {', '.join(_V2_TYPES)}")
    flat = _flatten(spec.get("data"), what)
    if math.prod(shape) != len(flat):
        raise InvalidInput(
            f"{what}: shape {shape} holds {math.prod(shape)} values, data has {len(flat)}"
        )
    return name, shape, datatype, flat


def parse_v2(body: bytes, media: str, signature: Signature) -> tuple[Parsed, bool, str | None]:
    """A V2 ``infer`` body as model input, whether probabilities are wanted, and its ``id``.

    Each input tensor is one column named after a signature input (shape ``[n]`` or
    ``[n, 1]``); a single ``[n, k]`` tensor under another name holds whole rows, its
    columns in signature order. ``parameters.predict_proba`` or an output named
    ``predict_proba`` asks for probabilities.
    """
    if media != JSON:
        raise UnsupportedMediaType(f"the infer endpoint takes {JSON}, not {media!r}")
    data = loads(body)
    if not isinstance(data, dict):
        raise InvalidInput("the infer body must be a JSON object with 'inputs'")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    request_id = data.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    proba = _wants_proba(data)
    tensors = [_tensor(spec, i) for i, spec in enumerate(inputs)]
    specs = {c.name: c.dtype for c in signature.inputs}
    if len(tensors) == 1 and tensors[0][0] not in specs and len(tensors[0][1]) == 2:
        name, shape, _, flat = tensors[0]
        if shape[1] != len(specs):
            raise InvalidInput(
                f"input {name!r}: shape {shape} has {shape[1]} columns; the model takes "
                f"{len(specs)} ({', '.join(specs)})"
            )
        width = shape[1]
        rows = [flat[r * width : (r + 1) * width] for r in range(shape[0])]
        return (list(specs), rows), proba, request_id
    columns: dict[str, list[Any]] = {}
    for name, shape, datatype, flat in tensors:
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise InvalidInput(
                f"input {name!r}: a column tensor has shape [n] or [n, 1], not {shape}"
            )
        if name in columns:
            raise InvalidInput(f"input {name!r} is given twice")
        expected = specs.get(name)
        if expected is not None and _V2_TYPES[datatype] not in _ACCEPTS.get(_kind(expected), "O"):
            raise InvalidInput(
                f"input {name!r} has datatype {datatype}, expected {v2_datatype(expected)} "
                f"({expected})"
            )
        columns[name] = flat
    return columns_frame(columns), proba, request_id


def _wants_proba(data: dict[str, Any]) -> bool:
    params = data.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidInput("'parameters' must be an object")
    outputs = data.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        raise InvalidInput("'outputs' must be a list")
    named = {o.get("name") for o in outputs or [] if isinstance(o, dict)}
    return bool((params or {}).get(PROBA) is True or PROBA in named)


def v2_tensor(name: str, values: Any) -> dict[str, Any]:
    """One output tensor."""
    array = np.asarray(values)
    kind = array.dtype.kind
    datatype = "BYTES" if kind not in "biuf" else v2_datatype(str(array.dtype))
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "data": to_list(array.reshape(-1)),
    }


def render_v2(
    name: str, version: int, request_id: str, predictions: Any, probabilities: Any | None
) -> dict[str, Any]:
    """A V2 ``infer`` response."""
    outputs = [v2_tensor("predict", predictions)]
    if probabilities is not None:
        outputs.append(v2_tensor(PROBA, probabilities))
    return {"model_name": name, "model_version": str(version), "id": request_id, "outputs": outputs}


# -- MLflow scoring protocol -------------------------------------------------------------------
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_mlflow(body: bytes, media: str, names: list[str]) -> Parsed:
    """An MLflow ``/invocations`` body: ``dataframe_split``, ``dataframe_records``,
    ``instances`` or ``inputs`` JSON, or CSV. ``names`` are the signature's columns (for
    ``instances`` given as plain rows)."""
    if media == CSV:
        return read_table(body, media)
    if media != JSON:
        raise UnsupportedMediaType(
            f"/invocations takes {JSON} or {CSV}, not {media!r} (as MLflow's server does)"
        )
    data = loads(body)
    if not isinstance(data, dict):
        raise InvalidInput(f"the body must be a JSON object with one of {', '.join(MLFLOW_KEYS)}")
    given = [k for k in MLFLOW_KEYS if k in data]
    unknown = sorted(set(data) - {*MLFLOW_KEYS, "params"})
    if len(given) != 1 or unknown:
        raise InvalidInput(
            f"the body must have exactly one of {', '.join(MLFLOW_KEYS)} (and optionally params); "
            f"got keys {sorted(data)}"
        )
    if data.get("params"):
        raise InvalidInput("params are not supported by this model")
    key = given[0]
    payload = data[key]
    if key == "dataframe_split":
        return split_table(payload)
    if key == "dataframe_records":
        if not isinstance(payload, list):
            raise InvalidInput("dataframe_records must be a list of record objects")
        return payload
    if isinstance(payload, dict):
        lists = [isinstance(v, list) for v in payload.values()]
        return columns_frame(payload) if payload and all(lists) else [payload]
    if not isinstance(payload, list) or not payload:
        raise InvalidInput(f"{key} must be a non-empty list of records or rows, or columns")
    if all(isinstance(row, list) for row in payload):
        return names, payload
    return payload
