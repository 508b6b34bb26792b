"""The wire protocols besides loopml's own: Open Inference (KServe V2) and MLflow's.

Each ``parse_*`` returns what :meth:`InputSchema.prepare` reads (``parse_v2`` in a
:class:`V2Request`, with the outputs asked for); each ``render_*`` builds the response body.
The V2 binary tensor extension's byte layout is in :mod:`loopml.serving._v2binary`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from loopml.errors import InvalidInput
from loopml.registry import Signature
from loopml.serving import _v2binary as v2binary
from loopml.serving._codec import (
    CSV,
    JSON,
    BadRequest,
    Parsed,
    UnsupportedMediaType,
    columns_frame,
    loads,
    read_table,
    split_table,
    to_list,
)
from loopml.serving._v2binary import BinaryReader, decode

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
PREDICT = "predict"
OUTPUTS = (PREDICT, PROBA)


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


def v2_metadata(
    name: str, versions: list[int], signature: Signature, proba: bool = False
) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the model's name, versions, typed inputs, and the outputs
    ``infer`` answers (``predict``, and ``predict_proba`` for a classifier)."""
    columns = signature.outputs
    types = {v2_datatype(c.dtype) for c in columns}
    outputs = [
        {
            "name": PREDICT,
            "datatype": types.pop() if len(types) == 1 else "BYTES",
            "shape": [-1] if len(columns) <= 1 else [-1, len(columns)],
        }
    ]
    if proba:
        outputs.append({"name": PROBA, "datatype": "FP64", "shape": [-1, -1]})
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": "loopml",
        "inputs": [
            {"name": c.name, "datatype": v2_datatype(c.dtype), "shape": [-1]}
            for c in signature.inputs
        ],
        "outputs": outputs,
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


def _tensor(
    spec: Any, i: int, reader: BinaryReader | None
) -> tuple[str, list[int], str, list[Any]]:
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
    size = _binary_size(spec, what)
    if size is not None:
        if "data" in spec:
            raise InvalidInput(f"{what}: give either data or parameters.binary_data_size, not both")
        if reader is None:
            raise BadRequest(
                f"{what} has parameters.binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        return name, shape, datatype, decode(reader.take(what, size), datatype, shape, what)
    flat = _flatten(spec.get("data"), what)
    if math.prod(shape) != len(flat):
        raise InvalidInput(
            f"{what}: shape {shape} holds {math.prod(shape)} values, data has {len(flat)}"
        )
    return name, shape, datatype, flat


def _parameters(spec: dict[str, Any], what: str) -> dict[str, Any]:
    params = spec.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidInput(f"{what}: parameters must be an object")
    return params


def _binary_size(spec: dict[str, Any], what: str) -> int | None:
    size = _parameters(spec, what).get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(
            f"{what}: parameters.binary_data_size must be a non-negative integer, not {size!r}"
        )
    return size


def _flag(params: dict[str, Any], key: str, what: str) -> bool | None:
    value = params.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"{what}parameters.{key} must be true or false, not {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class V2Request:
    """A parsed V2 ``infer`` request.

    Attributes
    ----------
    parsed : the model input, as :meth:`InputSchema.prepare` reads it.
    proba : whether class probabilities are wanted.
    id : the request's ``id``, if given.
    outputs : the output tensors to answer, in order (``predict``, ``predict_proba``).
    binary : the outputs to answer as binary data.
    """

    parsed: Parsed
    proba: bool
    id: str | None
    outputs: tuple[str, ...] = (PREDICT,)
    binary: frozenset[str] = frozenset()


def parse_v2(
    body: bytes, media: str, signature: Signature, header_length: str | None = None
) -> V2Request:
    """A V2 ``infer`` body as model input, the outputs it asks for, and its ``id``.

    Each input tensor is one column named after a signature input (shape ``[n]`` or
    ``[n, 1]``); a single ``[n, k]`` tensor under another name holds whole rows, its
    columns in signature order. ``parameters.predict_proba`` or an output named
    ``predict_proba`` asks for probabilities. ``header_length`` is the
    ``Inference-Header-Content-Length`` header of the binary tensor extension: the JSON
    header is then that many bytes, and inputs with ``parameters.binary_data_size`` take
    their values from the bytes after it.

    Raises
    ------
    BadRequest
        Malformed JSON, or binary data that does not add up to the body.
    InvalidInput
        A tensor's shape, datatype, data or binary size is wrong (the message names it).
    """
    reader = None
    if header_length is not None:
        size = v2binary.header_length(header_length, len(body))
        reader = BinaryReader(memoryview(body)[size:])
        body = body[:size]
    elif media != JSON:
        raise UnsupportedMediaType(
            f"the infer endpoint takes {JSON} (or the binary tensor extension, with an "
            f"Inference-Header-Content-Length header), not {media!r}"
        )
    data = loads(body)
    if not isinstance(data, dict):
        raise InvalidInput("the infer body must be a JSON object with 'inputs'")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    request_id = data.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    outputs, binary = _outputs(data)
    tensors = [_tensor(spec, i, reader) for i, spec in enumerate(inputs)]
    if reader is not None:
        reader.finish()
    request = functools.partial(
        V2Request, proba=PROBA in outputs, id=request_id, outputs=outputs, binary=binary
    )
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
        return request((list(specs), rows))
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
    return request(columns_frame(columns))


def _outputs(data: dict[str, Any]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The outputs a request asks for, in order, and which of them are binary.

    Without ``outputs``, ``predict`` is answered (and ``predict_proba`` when
    ``parameters.predict_proba`` is true); ``parameters.binary_data_output`` makes every
    output binary unless the output's own ``parameters.binary_data`` says otherwise.
    """
    params = _parameters(data, "the request")
    all_binary = bool(_flag(params, "binary_data_output", ""))
    requested = data.get("outputs")
    if requested is not None and not isinstance(requested, list):
        raise InvalidInput("'outputs' must be a list")
    names: list[str] = []
    binary = set()
    for i, spec in enumerate(requested or []):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidInput(f"outputs[{i}] must be an object with a name")
        name = spec["name"]
        if name not in OUTPUTS:
            raise InvalidInput(
                f"outputs[{i}]: {name!r} is not an output of this model; it has "
                f"{', '.join(OUTPUTS)}"
            )
        if name in names:
            raise InvalidInput(f"output {name!r} is requested twice")
        own = _flag(_parameters(spec, f"outputs[{i}]"), "binary_data", f"outputs[{i}].")
        names.append(name)
        if own or (own is None and all_binary):
            binary.add(name)
    if not names:
        names.append(PREDICT)
        if all_binary:
            binary.add(PREDICT)
    if _flag(params, PROBA, "") and PROBA not in names:
        names.append(PROBA)
        if all_binary:
            binary.add(PROBA)
    return tuple(names), frozenset(binary)


def v2_tensor(name: str, values: Any, binary: bool = False) -> tuple[dict[str, Any], bytes]:
    """One output tensor: its JSON, and its raw bytes when ``binary`` (else ``b""``)."""
    array = np.asarray(values)
    if binary:
        datatype, raw = v2binary.encode(array)
        tensor = {
            "name": name,
            "datatype": datatype,
            "shape": list(array.shape),
            "parameters": {"binary_data_size": len(raw)},
        }
        return tensor, raw
    kind = array.dtype.kind
    datatype = "BYTES" if kind not in "biuf" else v2_datatype(str(array.dtype))
    tensor = {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "data": to_list(array.reshape(-1)),
    }
    return tensor, b""


def render_v2(
    name: str,
    version: int,
    request_id: str,
    predictions: Any,
    probabilities: Any | None,
    request: V2Request | None = None,
) -> tuple[dict[str, Any], list[bytes]]:
    """A V2 ``infer`` response: the JSON header and the binary outputs' bytes, in order
    (an empty list when every output is JSON)."""
    wanted = request.outputs if request is not None else (PREDICT, PROBA)
    binary = request.binary if request is not None else frozenset()
    values = {PREDICT: predictions, PROBA: probabilities}
    outputs, chunks = [], []
    for output in wanted:
        if values[output] is None:
            continue
        tensor, raw = v2_tensor(output, values[output], output in binary)
        outputs.append(tensor)
        if output in binary:
            chunks.append(raw)
    header = {
        "model_name": name,
        "model_version": str(version),
        "id": request_id,
        "outputs": outputs,
    }
    return header, chunks


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
