"""The registry, dataset and operations routes of the platform API, through a real server:
the public Python API of a remote workspace (``Workspace.open(tracking_uri=...)``) gives
the same objects as the server's own workspace, and bad requests get the one error shape."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml import data, monitoring, registry, serving, settings
from loopml.errors import InvalidInput, NotFound
from loopml.loop import Policy, history, run_once
from loopml.registry import SklearnFlavor
from loopml.registry._package import store_package
from loopml.server import create_app
from loopml.server._ops_routes import record_json
from loopml.store import Workspace
from loopml.store.remote import HttpBlobStore
from tests.conftest import LiveServer
from tests.monitoring._deployed import customers, deployed, log_traffic

FEATURES = ["age", "income"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Forty customers: an int and a float feature and a 0/1 target."""
    rng = np.random.default_rng(0)
    age = rng.integers(18, 80, 40)
    income = rng.normal(1000, 150, 40).round(2)
    return pd.DataFrame({"age": age, "income": income, "churned": (age > 45).astype(int)})


@pytest.fixture(scope="module")
def clf(frame: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(frame[FEATURES], frame["churned"])


@pytest.fixture
def server(ws: Workspace) -> Iterator[LiveServer]:
    """The platform server over ``ws`` (SQLite or PostgreSQL) on a loopback port."""
    with LiveServer(create_app(ws)) as live:
        yield live


@pytest.fixture
def client(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A remote workspace of ``server``, without a folder of its own (caches go to the
    user cache folder, here under tmp_path)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # no workspace folder, even if a stray loopml.toml sits above tmp_path
    monkeypatch.setattr(settings, "find_workspace", lambda start=None: None)
    remote = Workspace.open(tracking_uri=server.url)
    assert remote.home is None and isinstance(remote.blobs, HttpBlobStore)
    yield remote
    remote.close()


def _error(response: httpx.Response, status: int, code: str, field: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    message: str = error["message"]
    return message


# -- models -------------------------------------------------------------------------------------
def test_a_model_registered_remotely_loads_and_predicts_like_a_local_one(
    ws: Workspace, client: Workspace, clf: LogisticRegression, frame: pd.DataFrame, tmp_path: Path
) -> None:
    X = frame[FEATURES]
    mv = loopml.register_model(
        clf, "churn", input_example=X.head(5), tags={"team": "risk"}, workspace=client
    )
    assert mv == registry.get_model_version(ws, "models:/churn/1")
    assert (mv.version, mv.flavor, mv.tags) == (1, "sklearn", {"team": "risk"})
    with pytest.raises(InvalidInput, match="metadata database"):
        client.db  # noqa: B018 - nothing reaches the server's database but through the API

    loopml.set_alias("churn", "production", 1, workspace=client)
    remote = loopml.load_model("models:/churn@production", workspace=client)
    local = loopml.load_model("models:/churn@production", workspace=ws)
    assert remote.model_version == local.model_version
    np.testing.assert_array_equal(remote.predict(X), local.predict(X))
    np.testing.assert_array_equal(remote.predict_proba(X), clf.predict_proba(X))
    assert (tmp_path / "cache" / "loopml" / "packages" / mv.package_digest).is_dir()
    with pytest.raises(InvalidInput, match="income"):
        remote.predict(X.drop(columns="income"))  # the signature travelled with the version


def test_versions_aliases_tags_and_descriptions_round_trip(
    ws: Workspace, client: Workspace, clf: LogisticRegression, frame: pd.DataFrame
) -> None:
    for _ in range(3):
        registry.register_model(client, clf, "churn", input_example=frame[FEATURES].head(3))
    registry.set_alias(client, "churn", "production", 2)
    registry.set_model_tag(client, "churn", "owner", "risk-team")
    registry.set_model_tag(client, "churn", "stage", "tested", version=2)
    registry.set_description(client, "churn", "predicts churn")
    registry.set_description(client, "churn", "second try", version=2)

    assert registry.list_versions(client, "churn") == registry.list_versions(ws, "churn")
    assert registry.list_models(client) == registry.list_models(ws)
    second = registry.get_model_version(client, "models:/churn@production")
    assert (second.version, second.aliases, second.tags) == (
        2,
        ("production",),
        {"stage": "tested"},
    )
    assert second.description == "second try"
    assert registry.get_model_version(client, "churn@latest").version == 3
    assert registry.get_model_version(client, "churn", 1).version == 1
    (model,) = registry.list_models(client)
    assert (model.description, model.tags, model.aliases) == (
        "predicts churn",
        {"owner": "risk-team"},
        {"production": 2},
    )

    registry.delete_alias(client, "churn", "production")
    with pytest.raises(NotFound, match="no alias 'production'"):
        registry.get_model_version(ws, "models:/churn@production")
    with pytest.raises(NotFound, match="no version 9"):
        registry.set_alias(client, "churn", "production", 9)
    with pytest.raises(NotFound, match="no registered model named 'nope'"):
        registry.get_model_version(client, "models:/nope/1")
    with pytest.raises(InvalidInput, match="reserved"):
        registry.set_alias(client, "churn", "latest", 1)


def test_model_lists_page_and_show_package_details(
    ws: Workspace,
    server: LiveServer,
    client: Workspace,
    clf: LogisticRegression,
    frame: pd.DataFrame,
) -> None:
    for name in ("a-model", "b-model", "c-model"):
        registry.register_model(client, clf, name, input_example=frame[FEATURES].head(3))
    first = httpx.get(f"{server.url}/api/v1/models", params={"max_results": 2}).json()
    assert [m["name"] for m in first["models"]] == ["a-model", "b-model"]
    rest = httpx.get(
        f"{server.url}/api/v1/models",
        params={"max_results": 2, "page_token": first["next_page_token"]},
    ).json()
    assert ([m["name"] for m in rest["models"]], rest["next_page_token"]) == (["c-model"], None)

    shown = httpx.get(f"{server.url}/api/v1/models/b-model/versions/latest").json()
    assert shown["signature"]["inputs"] == [
        {"name": "age", "dtype": "int64"},
        {"name": "income", "dtype": "float64"},
    ]
    assert shown["package"]["digest"] == shown["package_digest"]
    assert shown["package"]["metadata"]["flavor"] == "sklearn"
    assert "loopml-model.json" in shown["package"]["files"]
    model = httpx.get(f"{server.url}/api/v1/models/b-model").json()
    assert [v["version"] for v in model["versions"]] == [1]
    resolved = httpx.get(f"{server.url}/api/v1/resolve", params={"uri": "models:/c-model/1"})
    assert resolved.json()["uri"] == "models:/c-model/1"


def test_posted_versions_must_name_a_whole_matching_package(
    ws: Workspace,
    server: LiveServer,
    client: Workspace,
    clf: LogisticRegression,
    frame: pd.DataFrame,
) -> None:
    signature = registry.Signature.infer(
        frame[FEATURES].head(3), clf.predict(frame[FEATURES].head(3))
    )
    digest, _ = store_package(client, clf, SklearnFlavor(), signature)  # blobs go to the server
    url = f"{server.url}/api/v1/models/churn/versions"
    body: dict[str, Any] = {
        "package_digest": digest,
        "flavor": "sklearn",
        "signature": signature.to_dict(),
    }
    missing = httpx.post(url, json={**body, "package_digest": "0" * 64})
    assert "not in" in _error(missing, 404, "not_found")
    other = httpx.post(url, json={**body, "flavor": "pytorch"})
    assert "holds a 'sklearn' model" in _error(other, 422, "invalid_input")
    changed = {**signature.to_dict(), "input_type": "ndarray"}
    assert "another signature" in _error(
        httpx.post(url, json={**body, "signature": changed}), 422, "invalid_input"
    )
    _error(httpx.post(url, json={**body, "signature": {"x": 1}}), 422, "invalid_input", "signature")
    _error(httpx.post(url, json={**body, "run_id": "f" * 32}), 404, "not_found")
    with pytest.raises(NotFound):
        registry.get_model_version(ws, "churn")  # nothing was registered by the refusals
    created = httpx.post(url, json={**body, "tags": {"via": "rest"}})
    assert created.status_code == 201 and created.json()["tags"] == {"via": "rest"}
    loaded = registry.load_model(ws, "models:/churn/1")
    np.testing.assert_array_equal(loaded.predict(frame[FEATURES]), clf.predict(frame[FEATURES]))


# -- datasets -----------------------------------------------------------------------------------
def test_a_dataset_ingested_remotely_is_the_same_version_as_a_local_one(
    ws: Workspace, client: Workspace, frame: pd.DataFrame, tmp_path: Path
) -> None:
    csv = tmp_path / "customers.csv"
    frame.to_csv(csv, index=False)
    dv = data.ingest(csv, name="churn", workspace=client)
    assert dv == data.resolve("churn@1", workspace=ws)
    assert (dv.ref, dv.num_rows, dv.column_names) == ("churn@1", 40, ["age", "income", "churned"])
    with Workspace.init(tmp_path / "local") as alone:  # the same CSV ingested locally
        assert data.ingest(csv, name="churn", workspace=alone).content_hash == dv.content_hash

    back = data.resolve("churn@1", workspace=client).to_pandas()
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    pd.testing.assert_frame_equal(back, data.resolve("churn@1", workspace=ws).to_pandas())
    assert data.ingest(frame, name="churn", workspace=client).version == 1  # identical data

    data.ingest(frame.head(10), name="churn", workspace=client)
    data.set_alias("churn", "clean", 1, workspace=client)
    assert data.resolve("churn@clean", workspace=client).version == 1
    assert data.resolve("churn@latest", workspace=client).num_rows == 10
    grown = data.append("churn@2", frame.tail(5), workspace=client)
    assert (grown.version, grown.num_rows) == (3, 15)
    assert data.list_versions("churn", workspace=client) == data.list_versions(
        "churn", workspace=ws
    )
    pd.testing.assert_frame_equal(
        data.list_datasets(workspace=client), data.list_datasets(workspace=ws)
    )
    with pytest.raises(NotFound, match="no alias 'gone'"):
        data.resolve("churn@gone", workspace=client)
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        data.list_versions("nope", workspace=client)


def test_dataset_routes_show_profile_and_stream_parquet(
    ws: Workspace, server: LiveServer, client: Workspace, frame: pd.DataFrame
) -> None:
    dv = data.ingest(frame, name="churn", workspace=client)
    base = f"{server.url}/api/v1/datasets/churn/versions"
    shown = httpx.get(f"{base}/latest").json()
    assert (shown["ref"], shown["num_rows"], shown["digest"]) == ("churn@1", 40, dv.digest)
    assert [c["name"] for c in shown["columns"]] == ["age", "income", "churned"]
    profile = httpx.get(f"{base}/1/profile").json()
    assert profile == dv.profile and profile["columns"]["age"]["count"] == 40
    parquet = httpx.get(f"{base}/1/parquet")
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(parquet.content)).equals(dv.to_arrow())
    listed = httpx.get(f"{server.url}/api/v1/datasets").json()
    assert [d["name"] for d in listed["datasets"]] == ["churn"]


def test_posted_dataset_versions_are_read_back_not_trusted(
    ws: Workspace, server: LiveServer, client: Workspace, frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "part.parquet"
    frame.to_parquet(path)
    digest = client.blobs.put_file(path)
    url = f"{server.url}/api/v1/datasets/churn/versions"
    lie = httpx.post(url, json={"digest": digest, "num_rows": 41})
    assert "holds 40 rows, not 41" in _error(lie, 422, "invalid_input")
    wrong = httpx.post(url, json={"digest": digest, "content_hash": "0" * 64})
    assert "hashing to" in _error(wrong, 422, "invalid_input")
    junk = client.blobs.put_bytes(b"not parquet at all")
    _error(httpx.post(url, json={"digest": junk}), 422, "invalid_input")
    _error(httpx.post(url, json={"digest": "1" * 64}), 404, "not_found")
    _error(httpx.post(url, json={"digest": "xyz"}), 422, "invalid_input", "digest")
    _error(httpx.post(url, json={"digest": digest, "derived_from": ["nope@1"]}), 404, "not_found")
    with pytest.raises(NotFound):
        data.list_versions("churn", workspace=ws)
    created = httpx.post(url, json={"digest": digest, "source": {"type": "upload"}})
    assert created.status_code == 201
    dv = data.resolve("churn@1", workspace=ws)
    assert (dv.num_rows, dv.source, dv.digest) == (40, {"type": "upload"}, digest)


# -- lineage and errors -------------------------------------------------------------------------
def test_lineage_of_a_remote_model_walks_back_to_its_data(
    ws: Workspace, client: Workspace, clf: LogisticRegression, frame: pd.DataFrame, tmp_path: Path
) -> None:
    csv = tmp_path / "customers.csv"
    frame.to_csv(csv, index=False)
    dv = data.ingest(csv, name="churn", workspace=client)
    with loopml.start_run("churn", workspace=client) as run:
        run.log_input(dv)
        mv = loopml.register_model(clf, "churn", run=run, input_example=frame[FEATURES].head(3))
    loopml.set_alias("churn", "production", mv.version, workspace=client)
    edges = loopml.lineage("models:/churn@production", workspace=client)
    assert edges == loopml.lineage("models:/churn@production", workspace=ws)
    assert [str(e) for e in edges] == [
        f"run:{run.id} --produced--> model_version:churn/1",
        f"dataset_version:churn@1 --training--> run:{run.id}",
        f"source:{csv} --ingested_from--> dataset_version:churn@1",
    ]
    with pytest.raises(NotFound, match="no alias 'staging'"):
        loopml.lineage("models:/churn@staging", workspace=client)


def test_bad_requests_get_one_error_shape(
    ws: Workspace,
    server: LiveServer,
    client: Workspace,
    clf: LogisticRegression,
    frame: pd.DataFrame,
) -> None:
    registry.register_model(client, clf, "churn", input_example=frame[FEATURES].head(3))
    api = f"{server.url}/api/v1"
    assert "registered models: 'churn'" in _error(httpx.get(f"{api}/models/nope"), 404, "not_found")
    _error(httpx.get(f"{api}/models/churn/versions/0"), 422, "invalid_input", "version")
    _error(httpx.get(f"{api}/models/churn/versions/-2"), 422, "invalid_input", "version")
    _error(httpx.get(f"{api}/models/churn/versions/7"), 404, "not_found")
    _error(httpx.get(f"{api}/models/a@b/versions/1"), 422, "invalid_input", "name")
    alias = f"{api}/models/churn/aliases/production"
    _error(httpx.put(alias, content=b'{"version": 1'), 400, "malformed_json")
    _error(httpx.put(alias, json={"version": "one"}), 422, "invalid_input", "version")
    _error(httpx.put(alias, json={"version": 1, "extra": 1}), 422, "invalid_input", "extra")
    _error(httpx.put(alias, json={"version": 5}), 404, "not_found")
    _error(
        httpx.put(f"{api}/models/churn/aliases/3", json={"version": 1}),
        422,
        "invalid_input",
        "alias",
    )
    _error(httpx.delete(alias), 404, "not_found")
    tags = f"{api}/models/churn/tags"
    _error(httpx.post(tags, json={"tags": {"k": 1}}), 422, "invalid_input", "tags.k")
    _error(httpx.post(tags, json={"tags": {"k": "a\x00b"}}), 422, "invalid_input", "tags.k")
    described = httpx.patch(f"{api}/models/churn", json={"description": "\x00"})
    _error(described, 422, "invalid_input", "description")
    _error(httpx.get(f"{api}/lineage"), 422, "invalid_input", "uri")
    _error(
        httpx.get(f"{api}/resolve", params={"uri": "models:/churn/x"}), 422, "invalid_input", "uri"
    )
    _error(
        httpx.get(f"{api}/models", params={"page_token": "junk"}),
        422,
        "invalid_input",
        "page_token",
    )
    _error(httpx.get(f"{api}/datasets/nope/versions/1"), 404, "not_found")
    _error(httpx.get(f"{api}/datasets/churn/versions/0"), 422, "invalid_input", "version")
    _error(httpx.get(f"{api}/datasets/-x/versions/1"), 422, "invalid_input", "name")
    spec = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"put", "delete", "get"} <= set(spec["/api/v1/models/{name}/aliases/{alias}"])
    assert "post" in spec["/api/v1/datasets/{name}/versions"]


# -- operations ---------------------------------------------------------------------------------
def test_operations_lists_show_deployments_monitors_alerts_and_decisions(
    ws: Workspace, server: LiveServer
) -> None:
    deployed(ws)
    log_traffic(ws, customers(120, seed=2), "a")
    monitoring.create_monitor(ws, "churn-rows", "churn", rules=["rows > 0"])
    monitoring.create_monitor(ws, "churn-quiet", "churn", rules=["rows < 1"])
    monitoring.check_monitor(ws, "churn-rows")
    decision = run_once(ws, Policy("churn", monitor="churn-quiet"))
    assert decision.decision == "skipped"

    def listed(path: str, key: str, **params: Any) -> list[Any]:
        body = httpx.get(f"{server.url}/api/v1{path}", params=params).json()
        assert body["next_page_token"] is None
        items: list[Any] = body[key]
        return items

    assert listed("/deployments", "deployments") == record_json(serving.list_deployments(ws))
    assert [m["name"] for m in listed("/monitors", "monitors")] == ["churn-quiet", "churn-rows"]
    assert listed("/monitors", "monitors", deployment="other") == []
    (report,) = listed("/monitors/churn-rows/reports", "reports")
    assert report == record_json(monitoring.list_reports(ws, "churn-rows")[0])
    (alert,) = listed("/alerts", "alerts")
    assert (alert["source"], alert["rule"], alert["state"]) == ("churn-rows", "rows > 0", "firing")
    assert listed("/alerts", "alerts", state="resolved") == []
    (made,) = listed("/loop/decisions", "decisions", deployment="churn")
    assert made == record_json(history(ws, "churn")[0])
    page = httpx.get(f"{server.url}/api/v1/monitors", params={"max_results": 1}).json()
    assert len(page["monitors"]) == 1 and page["next_page_token"] is not None
    _error(httpx.get(f"{server.url}/api/v1/monitors/nope/reports"), 404, "not_found")
    _error(
        httpx.get(f"{server.url}/api/v1/alerts", params={"state": "x"}),
        422,
        "invalid_input",
        "state",
    )
