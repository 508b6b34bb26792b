"""A small KServe V2 (Open Inference Protocol) conformance set: the shapes a V2 client reads
from server and model metadata, health and readiness, ``infer``, and errors."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from loopml.serving import create_app
from loopml.store import Workspace

from .conftest import FEATURES, TestClient

DATATYPES = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
}  # fmt: skip


@pytest.fixture
def client(churn_ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(churn_ws, ["churn@production"], logger=False)) as c:
        yield c


def _tensor_metadata(t: dict) -> None:
    assert set(t) == {"name", "datatype", "shape"}
    assert isinstance(t["name"], str) and t["datatype"] in DATATYPES
    assert all(isinstance(d, int) for d in t["shape"])


def test_server_metadata_health_and_readiness(client: TestClient) -> None:
    meta = client.get("/v2")
    assert meta.status_code == 200
    body = meta.json()
    assert body["name"] == "loopml" and isinstance(body["version"], str)
    assert isinstance(body["extensions"], list)
    assert "binary_tensor_data" in body["extensions"]
    live = client.get("/v2/health/live")
    assert live.status_code == 200 and live.json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}


def test_model_metadata_and_readiness(client: TestClient) -> None:
    r = client.get("/v2/models/churn")
    assert r.status_code == 200
    meta = r.json()
    assert meta["name"] == "churn" and meta["versions"] == ["1"]
    assert isinstance(meta["platform"], str)
    for t in meta["inputs"] + meta["outputs"]:
        _tensor_metadata(t)
    assert [t["name"] for t in meta["inputs"]] == FEATURES
    ready = client.get("/v2/models/churn/ready")
    assert ready.status_code == 200 and ready.json() == {"name": "churn", "ready": True}


def test_infer_response_names_the_metadata_outputs(client: TestClient) -> None:
    outputs = {t["name"]: t for t in client.get("/v2/models/churn").json()["outputs"]}
    inputs = [{"name": n, "shape": [2], "datatype": "FP64", "data": [1.0, -1.0]} for n in FEATURES]
    wanted = [{"name": name} for name in outputs]
    r = client.post(
        "/v2/models/churn/infer", json={"id": "q7", "inputs": inputs, "outputs": wanted}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "churn" and body["model_version"] == "1"
    assert body["id"] == "q7"
    assert [o["name"] for o in body["outputs"]] == list(outputs)
    for o in body["outputs"]:
        assert set(o) == {"name", "datatype", "shape", "data"}
        assert o["datatype"] == outputs[o["name"]]["datatype"]
        assert len(o["shape"]) == len(outputs[o["name"]]["shape"])
        assert math.prod(o["shape"]) == len(o["data"])
    only = client.post(
        "/v2/models/churn/infer", json={"inputs": inputs, "outputs": [{"name": "predict_proba"}]}
    )
    assert [o["name"] for o in only.json()["outputs"]] == ["predict_proba"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "word"),
    [
        ("GET", "/v2/models/nope", {}, 404, "'nope'"),
        ("GET", "/v2/models/nope/ready", {}, 404, "'nope'"),
        ("POST", "/v2/models/nope/infer", {"json": {"inputs": []}}, 404, "'nope'"),
        ("POST", "/v2/models/churn/infer", {"content": b"{not json"}, 400, "malformed JSON"),
        ("POST", "/v2/models/churn/infer", {"json": {"inputs": []}}, 422, "inputs"),
        ("POST", "/v2/models/churn/infer", {"json": [1, 2]}, 422, "JSON object"),
        (
            "POST",
            "/v2/models/churn/infer",
            {"content": b"a,b,c\n1,2,3\n", "headers": {"content-type": "text/csv"}},
            415,
            "text/csv",
        ),
    ],
)
def test_errors_have_the_v2_error_shape(
    client: TestClient, method: str, path: str, kwargs: dict, status: int, word: str
) -> None:
    r = client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and word in body["error"]


def test_versioned_routes(client: TestClient) -> None:
    meta = client.get("/v2/models/churn/versions/1")
    assert meta.status_code == 200 and meta.json()["versions"] == ["1"]
    assert client.get("/v2/models/churn/versions/1/ready").json()["ready"] is True
    inputs = [{"name": n, "shape": [1], "datatype": "FP64", "data": [1.0]} for n in FEATURES]
    r = client.post("/v2/models/churn/versions/1/infer", json={"inputs": inputs})
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    for method, path in [
        ("GET", "/v2/models/churn/versions/7"),
        ("GET", "/v2/models/churn/versions/7/ready"),
        ("POST", "/v2/models/churn/versions/7/infer"),
    ]:
        r = client.request(method, path, json={"inputs": inputs})
        assert r.status_code == 404, (path, r.text)
        assert "version '7'" in r.json()["error"] and "serves 1" in r.json()["error"]
