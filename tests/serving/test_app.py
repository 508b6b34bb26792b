"""The server app over Starlette's TestClient: health, errors, auth, metrics, logging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from loopml.errors import InvalidInput, NotFound
from loopml.registry import register_model
from loopml.serving import BatchConfig, ServeConfig, create_app, read_errors, read_predictions
from loopml.store import Workspace

from .conftest import FEATURES, TestClient

ROW = {"a": 0.5, "b": -1.0, "c": 2.0}
PREDICT = "/v1/models/churn/predict"


@pytest.fixture
def client(churn_ws: Workspace) -> TestClient:
    app = create_app(churn_ws, ["churn@production"], logger=False)
    with TestClient(app) as c:
        yield c


def test_health_ready_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.post(PREDICT, json=[ROW]).status_code == 200
    text = client.get("/metrics").text
    assert 'loopml_requests_total{endpoint="churn",status="200"} 1.0' in text
    assert (
        'loopml_model_version_info{endpoint="churn",model="churn",role="primary",version="1"}'
        in text
    )
    assert "loopml_batch_rows_count" in text
    assert "loopml_prediction_log_dropped_rows 0.0" in text


def test_answer_carries_request_id_and_version(client: TestClient) -> None:
    r = client.post(PREDICT, json=[ROW], headers={"X-Request-Id": "req-1"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "req-1"
    assert r.headers["x-model-version"] == "1"
    assert r.json()["request_id"] == "req-1"
    generated = client.post(PREDICT, json=[ROW]).headers["x-request-id"]
    assert generated and generated != client.post(PREDICT, json=[ROW]).headers["x-request-id"]


def test_predictions_match_the_model(client: TestClient, churn_ws: Workspace, hgb) -> None:
    rows = [ROW, {"a": -2.0, "b": -2.0, "c": 0.0}]
    body = client.post(PREDICT + "?proba=true", json=rows).json()
    frame = pd.DataFrame(rows)[FEATURES]
    assert body["predictions"] == hgb.predict(frame).tolist()
    assert np.allclose(body["probabilities"], hgb.predict_proba(frame))
    assert body["classes"] == [0, 1]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ([{"a": 1.0, "c": 2.0}], 422, ["'b'", "float64"]),  # missing field
        ([{**ROW, "zip": 1}], 422, ["'zip'"]),  # extra field
        ([{**ROW, "b": "high"}], 422, ["'b'", "float64", "'high'"]),  # mistyped field
        ([{**ROW, "b": True}], 422, ["'b'", "float64"]),  # a boolean is not a number
        ([], 422, ["no rows"]),
        ([1, 2], 422, ["record 0"]),
        ("text", 422, ["str"]),
        ({"a": [1.0], "b": 2.0, "c": [1.0]}, 422, ["mixes"]),
        ({"a": [1.0, 2.0], "b": [1.0], "c": [1.0, 2.0]}, 422, ["lengths"]),
    ],
)
def test_bad_input_is_422_naming_the_field(
    client: TestClient, body: object, status: int, words: list[str]
) -> None:
    r = client.post(PREDICT, json=body)
    assert r.status_code == status, r.text
    for word in words:
        assert word in r.json()["error"]


def test_broken_json_wrong_type_big_body_unknown_model(churn_ws: Workspace) -> None:
    config = ServeConfig(max_body_mb=0.001)
    with TestClient(create_app(churn_ws, ["churn@production"], config=config, logger=False)) as c:
        r = c.post(PREDICT, content=b'[{"a": 1', headers={"content-type": "application/json"})
        assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
        r = c.post(PREDICT, content=b"<a/>", headers={"content-type": "application/xml"})
        assert r.status_code == 415 and "application/xml" in r.json()["error"]
        r = c.post(PREDICT, content=b"[" + b"1," * 2000 + b"1]")
        assert r.status_code == 413
        r = c.post("/v1/models/nope/predict", json=[ROW])
        assert r.status_code == 404 and "churn" in r.json()["error"]
        assert c.get("/v1/models/nope").status_code == 404
        r = c.post(PREDICT, content=b"\xff\xfe\xfa", headers={"content-type": "application/json"})
        assert r.status_code == 400
        r = c.post(PREDICT, content=b"[" * 100_0 + b"]" * 100_0)
        assert r.status_code in (400, 413)


def test_proba_of_a_regressor_is_422(sqlite_ws: Workspace, frame: pd.DataFrame) -> None:
    reg = LinearRegression().fit(frame[FEATURES], frame["a"])
    register_model(sqlite_ws, reg, "price", input_example=frame[FEATURES].head(3))
    with TestClient(create_app(sqlite_ws, ["price/1"], logger=False)) as c:
        assert c.post("/v1/models/price/predict", json=[ROW]).status_code == 200
        r = c.post("/v1/models/price/predict?proba=1", json=[ROW])
        assert r.status_code == 422 and "predict_proba" in r.json()["error"]


def test_bearer_token(churn_ws: Workspace) -> None:
    app = create_app(
        churn_ws, ["churn@production"], config=ServeConfig(token="s3cret"), logger=False
    )
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200  # probes stay open
        r = c.post(PREDICT, json=[ROW])
        assert r.status_code == 401 and "missing" in r.json()["error"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        wrong = c.post(PREDICT, json=[ROW], headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong" in wrong.json()["error"]
        assert c.get("/metrics").status_code == 401
        ok = c.post(PREDICT, json=[ROW], headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_building_the_app_checks_its_arguments(churn_ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="nothing to serve"):
        create_app(churn_ws, [])
    with pytest.raises(NotFound, match="nope"):
        create_app(churn_ws, ["nope@production"])
    with pytest.raises(NotFound, match="staging"):
        create_app(churn_ws, ["churn@staging"])
    with pytest.raises(InvalidInput, match="malformed"):
        create_app(churn_ws, ["churn@"])
    with pytest.raises(InvalidInput, match="two endpoints"):
        create_app(churn_ws, ["churn@production", "churn/1"])
    with pytest.raises(InvalidInput, match="max_batch_size"):
        ServeConfig(batching=BatchConfig(max_batch_size=0))
    with pytest.raises(InvalidInput, match="timeout_s"):
        ServeConfig(timeout_s=0)


def test_predictions_and_feedback_are_logged(churn_ws: Workspace) -> None:
    with TestClient(create_app(churn_ws, ["churn@production"])) as c:
        r = c.post(PREDICT, json=[ROW, ROW], headers={"X-Request-Id": "r-1"})
        assert r.status_code == 200
        fb = c.post(
            "/v1/feedback",
            json={"deployment": "churn", "feedback": [{"request_id": "r-1", "label": 1}]},
        )
        assert fb.status_code == 202, fb.text
        bad = c.post("/v1/feedback", json={"deployment": "churn", "feedback": [{"label": 1}]})
        assert bad.status_code == 422 and "request_id" in bad.json()["error"]
        assert c.post("/v1/feedback", json={"deployment": "x", "feedback": []}).status_code == 404
        wrong = c.post(PREDICT, json=[{"a": "x"}], headers={"X-Request-Id": "r-2"})
        assert wrong.status_code == 422
    table = read_predictions(churn_ws, "churn").to_pandas()  # the app flushed on shutdown
    assert table["request_id"].tolist() == ["r-1", "r-1"]
    assert set(table["role"]) == {"primary"} and set(table["version"]) == {1}
    errors = read_errors(churn_ws, "churn").to_pylist()  # what monitors' error_rate counts
    assert [(e["request_id"], e["status"]) for e in errors] == [("r-2", 422)]


def test_several_models_in_one_server(churn_ws: Workspace, flipped) -> None:
    register_model(churn_ws, flipped, "other", input_example=pd.DataFrame([ROW]))
    with TestClient(create_app(churn_ws, ["churn@production", "models:/other"], logger=False)) as c:
        a = c.post(PREDICT, json=[ROW]).json()["predictions"]
        b = c.post("/v1/models/other/predict", json=[ROW]).json()["predictions"]
        assert a != b
        names = [m["name"] for m in c.get("/v1/models").json()["models"]]
        assert names == ["churn", "other"]
        r = c.post("/invocations", json={"dataframe_records": [ROW]})
        assert r.status_code == 422 and "?model=" in r.json()["error"]
        ok = c.post("/invocations?model=other", json={"dataframe_records": [ROW]})
        assert ok.json()["predictions"] == b


def test_prediction_routes_skip_the_router_only_without_auth(churn_ws: Workspace) -> None:
    row = {"a": 0.5, "b": -1.0, "c": 2.0}
    plain = create_app(churn_ws, ["churn@production"], logger=False)
    guarded = create_app(
        churn_ws, ["churn@production"], config=ServeConfig(token="s3cret"), logger=False
    )
    assert plain.direct and not guarded.direct  # auth middleware must see every request
    with TestClient(plain) as c:
        assert c.post("/v1/models/churn/predict", json=[row]).status_code == 200
        assert c.post("/v2/models/nope/infer", json={}).status_code == 404
        assert c.post("/v1/models/a/b/predict", json=[row]).status_code == 404  # not a route
        split = {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}}
        assert c.post("/invocations", json=split).json()["predictions"] == [
            c.post("/v1/models/churn/predict", json=[row]).json()["predictions"][0]
        ]
    with TestClient(guarded) as c:
        assert c.post("/v1/models/churn/predict", json=[row]).status_code == 401
