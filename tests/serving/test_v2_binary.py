"""The Open Inference Protocol as the real ``tritonclient`` speaks it: the binary tensor data
extension on and off, every datatype, and malformed binary bodies answered 4xx."""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from tritonclient.utils import InferenceServerException

from loopml.registry import register_model, set_alias
from loopml.serving import create_app
from loopml.store import Workspace

from .conftest import FEATURES, LiveServer

ROWS = np.array([[0.5, -1.0, 2.0], [-2.0, -2.0, 0.0], [3.0, 1.0, 0.0], [0.1, 0.2, 0.3]])
TYPED = pd.DataFrame(
    {
        "x": [0.5, -1.5, 2.0, -0.2, 1.1, -3.0],
        "n": np.array([1, 5, -3, 0, 7, 2], dtype="int64"),
        "u": np.array([1, 2, 3, 250, 9, 0], dtype="uint8"),
        "flag": [True, False, True, False, True, False],
        "plan": ["pro", "basic", "pro", "free", "basic", "pro"],
    }
)
LABELS = ["yes", "no", "yes", "no", "yes", "no"]


def _typed_model() -> Pipeline:
    prep = ColumnTransformer(
        [("num", "passthrough", ["x", "n", "u", "flag"]), ("cat", OneHotEncoder(), ["plan"])]
    )
    return Pipeline([("prep", prep), ("lr", LogisticRegression())]).fit(TYPED, LABELS)


@pytest.fixture
def server(churn_ws: Workspace) -> Iterator[LiveServer]:
    """``churn`` (three FP64 features, a classifier) and ``typed`` (float, int, uint8, bool
    and string inputs; string labels) on a live uvicorn server."""
    register_model(churn_ws, _typed_model(), "typed", input_example=TYPED)
    set_alias(churn_ws, "typed", "production", 1)
    app = create_app(churn_ws, ["churn@production", "typed@production"], logger=False)
    with LiveServer(app) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    yield c
    c.close()


def _column(name: str, values: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_columns_and_outputs(client, hgb, binary: bool) -> None:
    inputs = [_column(n, ROWS[:, i].copy(), "FP64", binary) for i, n in enumerate(FEATURES)]
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer("churn", inputs, outputs=outputs, request_id="r-1", model_version="1")
    frame = pd.DataFrame(ROWS, columns=FEATURES)
    assert result.as_numpy("predict").tolist() == hgb.predict(frame).tolist()
    assert np.allclose(result.as_numpy("predict_proba"), hgb.predict_proba(frame))
    response = result.get_response()
    assert response["id"] == "r-1" and response["model_version"] == "1"
    assert [o["name"] for o in response["outputs"]] == ["predict", "predict_proba"]
    assert all(("parameters" in o) is binary for o in response["outputs"])


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_row_tensor_fp32_default_outputs(client, hgb, binary: bool) -> None:
    rows = ROWS.astype(np.float32)
    result = client.infer("churn", [_column("input-0", rows, "FP32", binary)])
    expected = hgb.predict(pd.DataFrame(rows.astype(float), columns=FEATURES))
    assert result.as_numpy("predict").tolist() == expected.tolist()
    # no outputs named: tritonclient asks for binary_data_output, so predict comes back binary
    assert result.get_output("predict")["parameters"]["binary_data_size"] == 8 * len(rows)


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_every_input_datatype_and_bytes_out(client, binary: bool) -> None:
    inputs = [
        _column("x", TYPED["x"].to_numpy(np.float32), "FP32", binary),
        _column("n", TYPED["n"].to_numpy(np.int32), "INT32", binary),
        _column("u", TYPED["u"].to_numpy(np.uint8), "UINT8", binary),
        _column("flag", TYPED["flag"].to_numpy(bool), "BOOL", binary),
        _column("plan", TYPED["plan"].to_numpy(object), "BYTES", binary),
    ]
    outputs = [triton.InferRequestedOutput("predict", binary_data=binary)]
    result = client.infer("typed", inputs, outputs=outputs)
    predicted = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
    assert result.get_output("predict")["datatype"] == "BYTES"
    assert predicted == _typed_expected()


def _typed_expected() -> list[str]:
    model = _typed_model()
    frame = TYPED.assign(x=TYPED["x"].astype(np.float32).astype(float))
    return [str(v) for v in model.predict(frame)]


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [
        ("INT8", np.int8),
        ("INT16", np.int16),
        ("INT64", np.int64),
        ("UINT16", np.uint16),
        ("UINT32", np.uint32),
        ("UINT64", np.uint64),
    ],
)
def test_integer_widths_decode(client, datatype: str, dtype: type) -> None:
    values = TYPED.assign(n=TYPED["n"].abs())
    inputs = [
        _column("x", values["x"].to_numpy(np.float64), "FP64", True),
        _column("n", values["n"].to_numpy(dtype), datatype, True),
        _column("u", values["u"].to_numpy(np.uint8), "UINT8", True),
        _column("flag", values["flag"].to_numpy(bool), "BOOL", True),
        _column("plan", values["plan"].to_numpy(object), "BYTES", True),
    ]
    result = client.infer("typed", inputs)
    assert len(result.as_numpy("predict")) == len(TYPED)


def test_tritonclient_health_metadata_and_errors(client) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("churn") and client.is_model_ready("churn", "1")
    assert not client.is_model_ready("churn", "9")
    meta = client.get_server_metadata()
    assert meta["name"] == "loopml" and "binary_tensor_data" in meta["extensions"]
    model = client.get_model_metadata("churn")
    assert [i["name"] for i in model["inputs"]] == FEATURES
    assert [o["name"] for o in model["outputs"]] == ["predict", "predict_proba"]
    bad = [_column("a", np.ones(3), "FP64", True)]
    with pytest.raises(InferenceServerException, match="'b'"):
        client.infer("churn", bad)
    with pytest.raises(InferenceServerException, match="no model or deployment 'nope'"):
        client.infer("nope", bad)


def test_compressed_request_bodies(client, hgb) -> None:
    inputs = [_column(n, ROWS[:, i].copy(), "FP64", True) for i, n in enumerate(FEATURES)]
    for algorithm in ("gzip", "deflate"):
        result = client.infer("churn", inputs, request_compression_algorithm=algorithm)
        frame = pd.DataFrame(ROWS, columns=FEATURES)
        assert result.as_numpy("predict").tolist() == hgb.predict(frame).tolist()


# -- malformed binary bodies: a precise 4xx in the V2 error shape, never a 500 -----------
def _body(header: dict, *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + b"".join(chunks), {"Inference-Header-Content-Length": str(len(head))}


def _fp64(name: str, values: list[float], size: int | None = None) -> dict:
    raw = np.asarray(values, "<f8").tobytes()
    params = {"binary_data_size": len(raw) if size is None else size}
    return {"name": name, "shape": [len(values)], "datatype": "FP64", "parameters": params}


def _bytes(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


THREE = b"".join(np.asarray([1.0, 2.0], "<f8").tobytes() for _ in FEATURES)
GOOD = [_fp64(n, [1.0, 2.0]) for n in FEATURES]


def _malformed() -> list[tuple[str, bytes, dict[str, str], int, list[str]]]:
    cases = []
    body, headers = _body({"inputs": GOOD}, THREE)
    cases.append(
        (
            "header past the body",
            body,
            {**headers, "Inference-Header-Content-Length": str(len(body) + 1)},
            400,
            ["Inference-Header-Content-Length", "body"],
        )
    )
    cases.append(
        ("header not a number", body, {"Inference-Header-Content-Length": "ten"}, 400, ["'ten'"])
    )
    cases.append(
        (
            "header cuts the JSON",
            body,
            {"Inference-Header-Content-Length": "7"},
            400,
            ["malformed JSON"],
        )
    )
    short = [_fp64("a", [1.0, 2.0], 8), *GOOD[1:]]
    body, headers = _body({"inputs": short}, THREE[:8], THREE[16:])
    cases.append(
        ("size not shape x dtype", body, headers, 422, ["'a'", "binary_data_size is 8", "16"])
    )
    body, headers = _body({"inputs": GOOD}, THREE[:-8])
    cases.append(("sizes past the data", body, headers, 400, ["'c'", "left"]))
    body, headers = _body({"inputs": GOOD}, THREE, b"junk")
    cases.append(("trailing bytes", body, headers, 400, ["4 bytes"]))
    odd = [{**GOOD[0], "datatype": "COMPLEX64"}, *GOOD[1:]]
    body, headers = _body({"inputs": odd}, THREE)
    cases.append(("unknown datatype", body, headers, 422, ["COMPLEX64"]))
    body, headers = _body({"inputs": [{**GOOD[0], "datatype": "BF16"}, *GOOD[1:]]}, THREE)
    cases.append(("BF16 unsupported", body, headers, 422, ["BF16"]))
    strings = {
        "name": "a",
        "shape": [2],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": 9},
    }
    body, headers = _body({"inputs": [strings]}, struct.pack("<I", 50) + b"hello")
    cases.append(("BYTES length past its data", body, headers, 422, ["element 0", "50"]))
    body, headers = _body({"inputs": [{**strings, "parameters": {"binary_data_size": 2}}]}, b"ab")
    cases.append(("BYTES prefix truncated", body, headers, 422, ["length prefix"]))
    raw = _bytes(b"\xff\xfe")
    body, headers = _body(
        {"inputs": [{**strings, "shape": [1], "parameters": {"binary_data_size": len(raw)}}]}, raw
    )
    cases.append(("BYTES not UTF-8", body, headers, 422, ["UTF-8"]))
    raw = _bytes(b"x", b"y", b"z")
    body, headers = _body(
        {"inputs": [{**strings, "parameters": {"binary_data_size": len(raw)}}]}, raw
    )
    cases.append(("BYTES count not shape", body, headers, 422, ["[2]", "3"]))
    body = json.dumps({"inputs": GOOD}).encode()
    cases.append(("binary size without header", body, {}, 400, ["Inference-Header-Content-Length"]))
    both = [{**GOOD[0], "data": [1.0, 2.0]}, *GOOD[1:]]
    body, headers = _body({"inputs": both}, THREE)
    cases.append(("data and binary both", body, headers, 422, ["not both"]))
    neg = [_fp64("a", [1.0, 2.0], -1), *GOOD[1:]]
    body, headers = _body({"inputs": neg}, THREE)
    cases.append(("negative size", body, headers, 422, ["non-negative"]))
    body, headers = _body({"inputs": GOOD, "outputs": [{"name": "logits"}]}, THREE)
    cases.append(("unknown output", body, headers, 422, ["'logits'", "predict_proba"]))
    body, headers = _body({"inputs": GOOD, "parameters": {"binary_data_output": "yes"}}, THREE)
    cases.append(("binary_data_output not bool", body, headers, 422, ["binary_data_output"]))
    body, headers = _body({"inputs": GOOD}, THREE)
    cases.append(("bad gzip", body, {**headers, "Content-Encoding": "gzip"}, 400, ["gzip"]))
    cases.append(("unknown encoding", body, {**headers, "Content-Encoding": "br"}, 400, ["'br'"]))
    return cases


def test_malformed_binary_bodies_are_4xx(server: LiveServer) -> None:
    url = f"{server.url}/v2/models/churn/infer"
    with httpx.Client(timeout=30) as http:
        for label, body, headers, status, words in _malformed():
            r = http.post(url, content=body, headers=headers)
            assert r.status_code == status, (label, r.status_code, r.text)
            error = r.json()["error"]
            assert isinstance(error, str)
            for word in words:
                assert word in error, (label, error)
        body, headers = _body({"inputs": GOOD}, THREE)
        packed = gzip.compress(body)
        ok = http.post(url, content=packed, headers={**headers, "Content-Encoding": "gzip"})
        assert ok.status_code == 200, ok.text


def test_binary_response_layout(server: LiveServer, hgb) -> None:
    """The answer's header names the JSON size; each binary output's bytes follow in order."""
    body, headers = _body(
        {
            "inputs": GOOD,
            "outputs": [
                {"name": "predict_proba", "parameters": {"binary_data": True}},
                {"name": "predict", "parameters": {"binary_data": False}},
            ],
        },
        THREE,
    )
    r = httpx.post(f"{server.url}/v2/models/churn/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    size = int(r.headers["inference-header-content-length"])
    head = json.loads(r.content[:size])
    proba, predict = head["outputs"]
    assert proba["name"] == "predict_proba" and proba["datatype"] == "FP64"
    assert proba["parameters"]["binary_data_size"] == len(r.content) - size == 2 * 2 * 8
    values = np.frombuffer(r.content[size:], "<f8").reshape(proba["shape"])
    frame = pd.DataFrame([[1.0] * 3, [2.0] * 3], columns=FEATURES)
    assert np.allclose(values, hgb.predict_proba(frame))
    assert predict["data"] == hgb.predict(frame).tolist()
