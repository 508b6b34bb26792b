"""Each wire protocol and body format answers the same predictions as the model itself."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.registry import register_model
from loopml.serving import create_app
from loopml.store import Workspace

from .conftest import FEATURES, TestClient

ROWS = [{"a": 0.5, "b": -1.0, "c": 2.0}, {"a": -2.0, "b": -2.0, "c": 0.0}, {"a": 3, "b": 1, "c": 0}]
PREDICT = "/v1/models/churn/predict"


@pytest.fixture
def client(churn_ws: Workspace) -> TestClient:
    with TestClient(create_app(churn_ws, ["churn@production"], logger=False)) as c:
        yield c


@pytest.fixture
def expected(hgb) -> list[int]:
    return hgb.predict(pd.DataFrame(ROWS)[FEATURES].astype(float)).tolist()


def _arrow_stream(frame: pd.DataFrame) -> bytes:
    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf)
    return buf.getvalue()


def test_v1_body_formats(client: TestClient, expected: list[int]) -> None:
    frame = pd.DataFrame(ROWS).astype(float)
    columns = {k: [r[k] for r in ROWS] for k in FEATURES}
    bodies = [
        ("application/json", None, ROWS),
        ("application/json", None, columns),
        ("text/csv", frame.to_csv(index=False).encode(), None),
        ("application/vnd.apache.arrow.stream", _arrow_stream(frame), None),
        ("application/vnd.apache.parquet", _parquet(frame), None),
    ]
    for media, content, payload in bodies:
        if payload is not None:
            r = client.post(PREDICT, json=payload)
        else:
            r = client.post(PREDICT, content=content, headers={"content-type": media})
        assert r.status_code == 200, (media, r.text)
        assert r.json()["predictions"] == expected, media
    one = client.post(PREDICT, json=ROWS[0]).json()["predictions"]
    assert one == expected[:1]


def test_unreadable_table_bodies_are_400(client: TestClient) -> None:
    for media in ("application/vnd.apache.parquet", "application/vnd.apache.arrow.stream"):
        r = client.post(PREDICT, content=b"not a table", headers={"content-type": media})
        assert r.status_code == 400 and media in r.json()["error"]
    csv = b"a,b\n1,2\n"
    r = client.post(PREDICT, content=csv, headers={"content-type": "text/csv"})
    assert r.status_code == 422 and "'c'" in r.json()["error"]


def test_open_inference_protocol(client: TestClient, hgb, expected: list[int]) -> None:
    meta = client.get("/v2/models/churn").json()
    assert meta["name"] == "churn" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": n, "datatype": "FP64", "shape": [-1]} for n in FEATURES]
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/churn/ready").status_code == 200
    columns = [
        {"name": n, "shape": [3], "datatype": "FP64", "data": [float(r[n]) for r in ROWS]}
        for n in FEATURES
    ]
    r = client.post("/v2/models/churn/infer", json={"id": "x1", "inputs": columns})
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["id"] == "x1" and body["model_version"] == "1"
    assert body["outputs"][0] == {
        "name": "predict",
        "datatype": "INT64",
        "shape": [3],
        "data": expected,
    }
    tensor = {
        "name": "input-0",
        "shape": [3, 3],
        "datatype": "FP64",
        "data": [[float(r[n]) for n in FEATURES] for r in ROWS],
    }
    r = client.post(
        "/v2/models/churn/infer", json={"inputs": [tensor], "parameters": {"predict_proba": True}}
    )
    outputs = r.json()["outputs"]
    assert outputs[0]["data"] == expected
    assert outputs[1]["name"] == "predict_proba" and outputs[1]["shape"] == [3, 2]
    proba = hgb.predict_proba(pd.DataFrame(ROWS)[FEATURES].astype(float))
    assert np.allclose(np.reshape(outputs[1]["data"], (3, 2)), proba)


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ([{"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0]}], ["'a'", "shape"]),
        (
            [
                {"name": "a", "shape": [1], "datatype": "BYTES", "data": ["x"]},
                {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "c", "shape": [1], "datatype": "FP64", "data": [1.0]},
            ],
            ["'a'", "BYTES", "FP64"],
        ),
        ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}], ["'b'", "float64"]),
        ([{"name": "a", "shape": [1], "datatype": "COMPLEX", "data": [1]}], ["COMPLEX"]),
        ([{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}], ["3"]),
        ([], ["inputs"]),
        ([{"shape": [1]}], ["name"]),
    ],
)
def test_open_inference_protocol_errors(client: TestClient, inputs: list, words: list[str]) -> None:
    r = client.post("/v2/models/churn/infer", json={"inputs": inputs})
    assert r.status_code == 422, r.text
    for word in words:
        assert word in r.json()["error"]


def test_mlflow_invocations(client: TestClient, expected: list[int]) -> None:
    cols = ["c", "a", "b"]  # any column order
    split = {"columns": cols, "data": [[r[c] for c in cols] for r in ROWS]}
    bodies = [
        {"dataframe_split": split},
        {"dataframe_records": ROWS},
        {"instances": ROWS},
        {"inputs": [[r[c] for c in FEATURES] for r in ROWS]},
        {"inputs": {k: [r[k] for r in ROWS] for k in FEATURES}},
    ]
    for body in bodies:
        r = client.post("/invocations", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == {"predictions": expected}
    csv = pd.DataFrame(ROWS).to_csv(index=False).encode()
    r = client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert r.json() == {"predictions": expected}
    assert client.get("/ping").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": split, "instances": []}
        for split in [{"columns": ["a", "b", "c"], "data": [[1, 2, 3]]}]
    ]
    + [
        {"unknown": 1},
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2]]}},
        {"dataframe_split": {"columns": "abc", "data": []}},
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3]], "extra": 1}},
        {"dataframe_records": {"a": 1}},
        {"instances": []},
        {"dataframe_records": ROWS, "params": {"k": 1}},
    ],
)
def test_mlflow_bad_bodies_are_4xx(client: TestClient, body: dict) -> None:
    r = client.post("/invocations", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]


def test_string_columns_take_the_dataframe_path(sqlite_ws: Workspace, mixed_pipeline) -> None:
    example = pd.DataFrame({"a": [0.1, 2.0], "plan": ["pro", "basic"]})
    register_model(sqlite_ws, mixed_pipeline, "plans", input_example=example)
    with TestClient(create_app(sqlite_ws, ["plans"], logger=False)) as c:
        r = c.post("/v1/models/plans/predict", json=example.to_dict("records"))
        assert r.json()["predictions"] == mixed_pipeline.predict(example).tolist()
        bad = c.post("/v1/models/plans/predict", json=[{"a": 1.0, "plan": 3}])
        assert bad.status_code == 422 and "'plan'" in bad.json()["error"]


def test_array_fitted_model(sqlite_ws: Workspace, frame: pd.DataFrame) -> None:
    X = frame[FEATURES].to_numpy()
    model = LogisticRegression().fit(X, frame["y"])
    register_model(sqlite_ws, model, "arr", input_example=X[:3])
    with TestClient(create_app(sqlite_ws, ["arr/1"], logger=False)) as c:
        r = c.post("/invocations", json={"instances": X[:4].tolist()})
        assert r.json()["predictions"] == model.predict(X[:4]).tolist()
        r = c.post("/v1/models/arr/predict", json=[{"0": 1.0, "1": 2.0, "2": 3.0}])
        assert r.status_code == 200
