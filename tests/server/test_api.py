"""The platform API over HTTP: one error shape, pagination, gzip, batches applied once,
blobs checked against their address, roles on every route class, and a fuzzed spec."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
import warnings
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression
from starlette.exceptions import StarletteDeprecationWarning

from loopml import data, registry
from loopml.server import create_app
from loopml.server._users import add_user
from loopml.store import Workspace
from loopml.store.schema import datasets, models
from loopml.tracking import create_run, get_metric_history, get_run
from tests.conftest import LiveServer
from tests.fuzzing import assert_no_server_errors
from tests.pipelines import steps

with warnings.catch_warnings():  # starlette >= 1.x asks for httpx2; httpx still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


@pytest.fixture
def api(sqlite_ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_ws)) as client:
        yield client


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    error: dict[str, object] = body["error"]
    return error


def test_errors_have_one_shape(api: TestClient) -> None:
    assert _error(api.get("/api/v1/nope"), 404)["code"] == "not_found"
    assert _error(api.delete("/api/v1/experiments"), 405)["code"] == "method_not_allowed"
    bad_json = api.post("/api/v1/runs", content=b"{nope", headers={"content-type": "x"})
    assert _error(bad_json, 400)["code"] == "malformed_json"
    wrong = _error(api.post("/api/v1/runs", json={"experiment": "e", "start_time": "soon"}), 422)
    assert wrong["field"] == "start_time"
    missing = _error(api.get(f"/api/v1/runs/{uuid.uuid4().hex}"), 404)
    assert "no run" in str(missing["message"])
    page = _error(api.get("/api/v1/experiments?page_token=%%%"), 422)
    assert page["field"] == "page_token"
    size = _error(api.get("/api/v1/experiments?max_results=0"), 422)
    assert size["field"] == "max_results"


def test_gzip_bodies_and_their_limit(api: TestClient) -> None:
    body = gzip.compress(json.dumps({"name": "zipped"}).encode())
    made = api.post("/api/v1/experiments", content=body, headers={"content-encoding": "gzip"})
    assert made.status_code == 201 and made.json()["name"] == "zipped"
    bomb = gzip.compress(b" " * (70 << 20))  # 70 MB of spaces in ~70 kB
    too_big = api.post("/api/v1/experiments", content=bomb, headers={"content-encoding": "gzip"})
    assert _error(too_big, 413)["code"] == "too_large"
    broken = api.post("/api/v1/experiments", content=b"xx", headers={"content-encoding": "gzip"})
    assert _error(broken, 400)["code"] == "malformed_body"


def test_lists_are_paged(api: TestClient) -> None:
    for i in range(5):
        assert api.post("/api/v1/experiments", json={"name": f"e{i}"}).status_code == 201
    assert _error(api.post("/api/v1/experiments", json={"name": "e0"}), 409)["code"]
    names, token = [], None
    while True:
        body = api.get("/api/v1/experiments", params={"max_results": 2, "page_token": token}).json()
        names += [e["name"] for e in body["experiments"]]
        token = body["next_page_token"]
        if token is None:
            break
    assert names == [f"e{i}" for i in range(5)]


def test_a_batch_is_applied_once_and_bad_segments_are_reported(
    api: TestClient, sqlite_ws: Workspace
) -> None:
    run = create_run(sqlite_ws, "batches")
    run.log_param("lr", "0.1")
    other = create_run(sqlite_ws, "batches")
    series = {"loss": {"step": [0, 1, 2], "value": [0.3, None, 0.1], "timestamp": [1, 2, 3]}}
    batch = {
        "batch_id": uuid.uuid4().hex,
        "ops": [
            {"run_id": run.id, "params": {"lr": "0.2"}},  # params are immutable
            {"run_id": other.id, "metrics": series, "tags": {"t": "1"}},
            {"run_id": uuid.uuid4().hex, "tags": {"t": "1"}},  # no such run
        ],
    }
    first = api.post("/api/v1/batches", json=batch).json()
    assert first["applied"] == 1 and not first["duplicate"]
    assert [e["error"]["code"] for e in first["errors"]] == ["conflict", "not_found"]
    again = api.post("/api/v1/batches", json=batch).json()  # a retry after a lost answer
    assert again == {"applied": 0, "duplicate": True, "errors": []}
    history = get_metric_history(sqlite_ws, other.id, "loss")
    assert history.step.tolist() == [0, 1, 2] and history.value.isna().tolist()[1]
    assert get_run(sqlite_ws, other.id).tags == {"t": "1"}
    assert get_run(sqlite_ws, run.id).params == {"lr": "0.1"}


def test_blobs_are_checked_against_their_address(api: TestClient) -> None:
    data = b"model bytes"
    digest = hashlib.sha256(data).hexdigest()
    assert api.head(f"/api/v1/blobs/{digest}").status_code == 404
    lie = api.put(f"/api/v1/blobs/{'0' * 64}", content=data)
    assert _error(lie, 422)["field"] == "digest"
    assert api.put(f"/api/v1/blobs/{digest}", content=data).status_code == 201
    got = api.get(f"/api/v1/blobs/{digest}")
    assert got.content == data and got.headers["x-content-sha256"] == digest
    assert _error(api.get("/api/v1/blobs/xyz"), 422)["field"] == "digest"


def test_artifacts_upload_and_download(api: TestClient, sqlite_ws: Workspace) -> None:
    run = create_run(sqlite_ws, "art")
    put = api.put(f"/api/v1/runs/{run.id}/artifacts/plots/a.txt", content=b"alpha")
    assert put.status_code == 201
    listed = api.get(f"/api/v1/runs/{run.id}/artifacts").json()["artifacts"]
    assert [(a["path"], a["size"]) for a in listed] == [("plots/a.txt", 5)]
    assert api.get(f"/api/v1/runs/{run.id}/artifacts/plots/a.txt").content == b"alpha"
    assert _error(api.get(f"/api/v1/runs/{run.id}/artifacts/nope"), 404)


# -- roles ----------------------------------------------------------------------------
@pytest.fixture
def secured(sqlite_ws: Workspace) -> Iterator[tuple[TestClient, dict[str, str]]]:
    tokens = {
        "admin": add_user(sqlite_ws, "root", admin=True),
        "editor": add_user(sqlite_ws, "ed", roles={"vision": "editor"}),
        "viewer": add_user(sqlite_ws, "vi", roles={"vision": "viewer"}),
        "outsider": add_user(sqlite_ws, "out", roles={"nlp": "editor"}),
    }
    with TestClient(create_app(sqlite_ws, auth=True)) as client:
        yield client, {k: f"Bearer {v}" for k, v in tokens.items()}


def test_every_route_class_needs_a_token_and_the_right_role(
    secured: tuple[TestClient, dict[str, str]],
) -> None:
    api, auth = secured
    new_exp = {"name": "cats", "project": "vision"}

    def as_(who: str | None, method: str, path: str, **kw: object) -> httpx.Response:
        headers = {"authorization": auth[who]} if who else {}
        return api.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]

    assert _error(as_(None, "GET", "/api/v1/experiments"), 401)["code"] == "unauthorized"
    assert _error(as_("viewer", "POST", "/api/v1/experiments", json=new_exp), 403)
    assert as_("editor", "POST", "/api/v1/experiments", json=new_exp).status_code == 201
    run = as_("editor", "POST", "/api/v1/runs", json={"experiment": "cats"}).json()
    run_path = f"/api/v1/runs/{run['run_id']}"
    points = {"metrics": [{"key": "acc", "value": 0.5, "step": 0}]}
    write_routes = [
        ("POST", f"{run_path}/metrics", {"json": points}),
        ("POST", f"{run_path}/params", {"json": {"params": {"a": 1}}}),
        ("POST", f"{run_path}/tags", {"json": {"tags": {"a": 1}}}),
        ("PATCH", run_path, {"json": {"status": "FINISHED"}}),
        ("PUT", f"{run_path}/artifacts/x.txt", {"content": b"x"}),
    ]
    read_routes = [
        ("GET", run_path),
        ("GET", f"{run_path}/metrics/acc"),
        ("GET", f"{run_path}/artifacts"),
        ("GET", "/api/v1/experiments/cats"),
    ]
    for method, path, kw in write_routes:
        assert _error(as_(None, method, path, **kw), 401)
        assert _error(as_("viewer", method, path, **kw), 403)["code"] == "forbidden"
        assert _error(as_("outsider", method, path, **kw), 403)
        assert as_("editor", method, path, **kw).status_code < 300, path
    for method, path in read_routes:
        assert _error(as_(None, method, path), 401)
        assert _error(as_("outsider", method, path), 403)
        assert as_("viewer", method, path).status_code == 200, path
    # nobody sees a project they have no role in
    assert [
        e["name"] for e in as_("outsider", "GET", "/api/v1/experiments").json()["experiments"]
    ] == []
    assert as_("outsider", "GET", "/api/v1/runs").json()["runs"] == []
    assert len(as_("viewer", "GET", "/api/v1/runs").json()["runs"]) == 1
    segment = {"ops": [{"run_id": run["run_id"], "tags": {"via": "batch"}}]}
    refused = as_("viewer", "POST", "/api/v1/batches", json=segment).json()
    assert refused["errors"][0]["error"]["code"] == "forbidden"
    assert as_("editor", "POST", "/api/v1/batches", json=segment).json()["applied"] == 1
    audit = as_("admin", "GET", "/api/v1/audit", params={"user": "ed"}).json()["entries"]
    assert {e["method"] for e in audit} >= {"POST", "PATCH", "PUT"}
    assert _error(as_("editor", "GET", "/api/v1/audit"), 403)


# -- fuzz -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ws = Workspace.init(tmp_path_factory.mktemp("fuzz") / "ws")
    run = create_run(ws, "fuzzed")
    run.log_metric("m", 1.0)
    run.flush()
    steps.arithmetic.run({"n": 3}, workspace=ws)  # a pipeline run with its steps
    with LiveServer(create_app(ws)) as server:
        yield server.url
    ws.close()


def test_no_input_gives_a_server_error(live_url: str) -> None:
    paths = httpx.get(f"{live_url}/openapi.json").json()["paths"]
    assert {"/api/v1/pipelines/runs", "/api/v1/pipelines/runs/{id}"} <= set(paths)
    assert_no_server_errors(live_url, min_operations=15, examples=20)


def test_models_and_datasets_follow_their_project(
    secured: tuple[TestClient, dict[str, str]], sqlite_ws: Workspace
) -> None:
    api, auth = secured
    X = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    model = LogisticRegression().fit(X, (X.a > 9).astype(int))
    registry.register_model(sqlite_ws, model, "cats", input_example=X.head(3))
    data.ingest(X, name="pets", workspace=sqlite_ws)
    with sqlite_ws.db.write() as conn:  # both belong to project vision
        conn.execute(sa.update(models).values(project="vision"))
        conn.execute(sa.update(datasets).values(project="vision"))

    def as_(who: str, method: str, path: str, **kw: object) -> httpx.Response:
        return api.request(method, path, headers={"authorization": auth[who]}, **kw)  # type: ignore[arg-type]

    alias = ("PUT", "/api/v1/models/cats/aliases/production", {"json": {"version": 1}})
    reads = [
        "/api/v1/models/cats",
        "/api/v1/models/cats/versions/1",
        "/api/v1/datasets/pets/versions/1",
    ]
    for path in reads:
        assert as_("viewer", "GET", path).status_code == 200, path
        assert _error(as_("outsider", "GET", path), 403)["code"] == "forbidden"
    assert _error(as_("viewer", *alias[:2], **alias[2]), 403)
    assert as_("editor", *alias[:2], **alias[2]).status_code == 200
    lineage = as_("outsider", "GET", "/api/v1/lineage", params={"uri": "models:/cats@production"})
    assert _error(lineage, 403)
    assert as_("outsider", "GET", "/api/v1/models").json()["models"] == []
    assert as_("outsider", "GET", "/api/v1/datasets").json()["datasets"] == []
    assert [m["name"] for m in as_("viewer", "GET", "/api/v1/models").json()["models"]] == ["cats"]
