"""MLflow's REST API over a loopml workspace, driven by the real, unmodified MLflow client
against a live server on loopback, and checked from loopml's side of the same store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.artifacts
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.rest_utils import MlflowHostCreds, http_request
from sklearn.linear_model import LogisticRegression

import loopml.tracking as tracking
from loopml.errors import LoopmlError
from loopml.registry import list_models, load_model, register_model
from loopml.server import _mlflow, _mlflow_artifacts, _mlflow_registry, _mlflow_tracking
from loopml.store import Workspace
from loopml.store.schema import model_versions
from tests.conftest import LiveServer

pytestmark = [
    # MLflow warns that stages (get_latest_versions) are deprecated: loopml has none anyway
    pytest.mark.filterwarnings("ignore:.*get_latest_versions.*deprecated:FutureWarning"),
]


@pytest.fixture
def client(mlflow_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """The MLflow client pointed at the server by ``MLFLOW_TRACKING_URI``, as users do it;
    no retries (a server error fails at once) and no active experiment or run left over."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):  # set_experiment sets them
        monkeypatch.setenv(name, "")  # so that the teardown restores what was there before
        monkeypatch.delenv(name)
    yield MlflowClient()
    while mlflow.active_run() is not None:
        mlflow.end_run()


def _code(exc: pytest.ExceptionInfo[MlflowException]) -> str:
    return str(exc.value.error_code)


# -- the fluent API ---------------------------------------------------------------------------
def test_fluent_run_is_a_loopml_run(client: MlflowClient, ws: Workspace) -> None:
    exp_id = mlflow.set_experiment("churn").experiment_id
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("depth", 5)
        mlflow.log_params({"model": "xgb", "lr": 0.1})
        mlflow.log_metric("auc", 0.8, step=0)
        mlflow.log_metric("auc", 0.9, step=1)
        mlflow.log_metrics({"loss": 0.25, "nan": float("nan")})
        mlflow.set_tag("team", "ml")
        mlflow.set_tags({"stage": "dev"})
    run_id = run.info.run_id

    seen = client.get_run(run_id)
    assert seen.info.status == "FINISHED" and seen.info.end_time >= seen.info.start_time
    assert seen.info.experiment_id == exp_id and seen.info.run_name == "first"
    assert seen.info.artifact_uri == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts"
    assert seen.data.params == {"depth": "5", "model": "xgb", "lr": "0.1"}
    assert seen.data.metrics["auc"] == 0.9 and seen.data.metrics["loss"] == 0.25
    assert np.isnan(seen.data.metrics["nan"])
    assert seen.data.tags["team"] == "ml" and seen.data.tags["mlflow.runName"] == "first"
    assert seen.data.tags["mlflow.user"] == seen.info.user_id != ""
    history = client.get_metric_history(run_id, "auc")
    assert [(m.step, m.value) for m in history] == [(0, 0.8), (1, 0.9)]
    assert client.get_metric_history(run_id, "never-logged") == []

    record = tracking.get_run(ws, run_id)
    assert (record.experiment, record.name, record.status) == ("churn", "first", "FINISHED")
    assert record.params == {"depth": "5", "model": "xgb", "lr": "0.1"}
    assert record.metrics["auc"] == 0.9 and record.tags["stage"] == "dev"
    assert tracking.get_metric_history(ws, run_id, "auc")["value"].tolist() == [0.8, 0.9]
    found = tracking.search_runs(ws, "churn", "params.model = 'xgb' AND metrics.auc > 0.85")
    assert found["run_id"].tolist() == [run_id]


def test_nested_runs_are_loopml_children(client: MlflowClient, ws: Workspace) -> None:
    mlflow.set_experiment("tuning")
    with mlflow.start_run() as parent, mlflow.start_run(nested=True) as child:
        mlflow.log_metric("score", 1.0)
    assert tracking.get_run(ws, child.info.run_id).parent_id == parent.info.run_id
    assert client.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    children = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list"
    )
    assert [r.info.run_id for r in children] == [child.info.run_id]


def test_failed_block_ends_the_run_failed(client: MlflowClient, ws: Workspace) -> None:
    mlflow.set_experiment("failing")
    with pytest.raises(ZeroDivisionError), mlflow.start_run() as run:
        1 / 0  # noqa: B018
    assert tracking.get_run(ws, run.info.run_id).status == "FAILED"


# -- experiments ------------------------------------------------------------------------------
def test_experiments(client: MlflowClient, ws: Workspace) -> None:
    ids = [client.create_experiment(f"exp-{i}") for i in range(5)]
    client.create_experiment("other")
    assert client.get_experiment(ids[0]).name == "exp-0"
    assert client.get_experiment(ids[0]).lifecycle_stage == "active"
    assert client.get_experiment_by_name("exp-3").experiment_id == ids[3]
    assert client.get_experiment_by_name("missing") is None

    page = client.search_experiments(filter_string="name LIKE 'exp-%'", max_results=2)
    names, token = [e.name for e in page], page.token
    while token:
        page = client.search_experiments(
            filter_string="name LIKE 'exp-%'", max_results=2, page_token=token
        )
        names, token = names + [e.name for e in page], page.token
    assert sorted(names) == [f"exp-{i}" for i in range(5)] and len(names) == 5
    ordered = client.search_experiments(order_by=["name DESC"], filter_string="name != 'x'")
    assert [e.name for e in ordered][:2] == ["other", "exp-4"]
    assert [e.name for e in client.search_experiments(filter_string="name = 'other'")] == ["other"]
    assert {exp.name for exp, _ in tracking.list_experiments(ws)} >= {"other", "exp-0"}

    with pytest.raises(MlflowException) as exc:
        client.create_experiment("exp-0")
    assert _code(exc) == "RESOURCE_ALREADY_EXISTS"
    for refused in (
        lambda: client.rename_experiment(ids[0], "new-name"),
        lambda: client.delete_experiment(ids[0]),
        lambda: client.set_experiment_tag(ids[0], "k", "v"),
    ):
        with pytest.raises(MlflowException) as exc:
            refused()
        assert _code(exc) == "NOT_IMPLEMENTED" and "loopml" in str(exc.value)
    with pytest.raises(MlflowException) as exc:
        client.get_experiment("123456")
    assert _code(exc) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        client.search_experiments(filter_string="name LIKE")
    assert _code(exc) == "INVALID_PARAMETER_VALUE"


def test_default_experiment_is_loopmls_default(client: MlflowClient, ws: Workspace) -> None:
    with mlflow.start_run() as run:  # no experiment set: MLflow's experiment "0"
        mlflow.log_param("p", 1)
    assert tracking.get_run(ws, run.info.run_id).experiment == "default"
    assert client.get_experiment("0").name == "default"


# -- runs through MlflowClient ----------------------------------------------------------------
def test_client_run_lifecycle(client: MlflowClient, ws: Workspace) -> None:
    exp_id = client.create_experiment("lifecycle")
    run = client.create_run(
        exp_id, start_time=1_700_000_000_000, tags={"mlflow.user": "ada", "k": "v"}, run_name="r1"
    )
    run_id = run.info.run_id
    assert (run.info.status, run.info.start_time, run.info.user_id) == (
        "RUNNING",
        1_700_000_000_000,
        "ada",
    )
    client.log_batch(
        run_id,
        metrics=[Metric("m", float(i), 1_700_000_000_000 + i, i) for i in range(5)],
        params=[Param("a", "1"), Param("b", "2")],
        tags=[RunTag("t", "x"), RunTag("mlflow.runName", "renamed")],
    )
    client.log_param(run_id, "a", "1")  # the same value again is fine
    with pytest.raises(MlflowException) as exc:
        client.log_param(run_id, "a", "2")
    assert _code(exc) == "INVALID_PARAMETER_VALUE" and "immutable" in str(exc.value)
    client.delete_tag(run_id, "k")
    with pytest.raises(MlflowException) as exc:
        client.delete_tag(run_id, "k")
    assert _code(exc) == "RESOURCE_DOES_NOT_EXIST"
    client.update_run(run_id, status="KILLED", name="final")
    seen = client.get_run(run_id)
    assert seen.info.status == "KILLED" and seen.info.end_time is not None
    assert seen.info.run_name == "final" == seen.data.tags["mlflow.runName"]
    assert "k" not in seen.data.tags and seen.data.tags["t"] == "x"
    assert [m.value for m in client.get_metric_history(run_id, "m")] == [0.0, 1.0, 2.0, 3.0, 4.0]

    record = tracking.get_run(ws, run_id)
    assert (record.name, record.status, record.params) == ("final", "KILLED", {"a": "1", "b": "2"})
    with pytest.raises(MlflowException) as exc:
        client.delete_run(run_id)
    assert _code(exc) == "NOT_IMPLEMENTED"
    with pytest.raises(MlflowException) as exc:
        client.set_terminated(run_id, status="SCHEDULED")
    assert _code(exc) == "INVALID_PARAMETER_VALUE"


def test_unknown_run_is_resource_does_not_exist(client: MlflowClient) -> None:
    missing = "0" * 32
    for call in (
        lambda: client.get_run(missing),
        lambda: client.log_metric(missing, "m", 1.0),
        lambda: client.log_param(missing, "p", "v"),
        lambda: client.set_terminated(missing),
        lambda: client.get_metric_history(missing, "m"),
        lambda: client.list_artifacts(missing),
    ):
        with pytest.raises(MlflowException) as exc:
            call()
        assert _code(exc) == "RESOURCE_DOES_NOT_EXIST"


def test_error_statuses_are_mlflows(client: MlflowClient, mlflow_server: LiveServer) -> None:
    creds = MlflowHostCreds(mlflow_server.url)
    cases = [
        ("GET", "/api/2.0/mlflow/runs/get", {"params": {"run_id": "f" * 32}}, 404),
        ("POST", "/api/2.0/mlflow/runs/search", {"json": {"filter": "metrics.x >"}}, 400),
        ("POST", "/api/2.0/mlflow/runs/create", {"data": b"{not json"}, 400),
        ("POST", "/api/2.0/mlflow/runs/log-metric", {"json": {"run_id": 3}}, 400),
        ("GET", "/api/2.0/mlflow/no/such/endpoint", {}, 404),
        ("POST", "/ajax-api/2.0/mlflow/experiments/search", {"json": {}}, 200),
    ]
    for method, path, kwargs, status in cases:
        response = http_request(creds, path, method, max_retries=0, **kwargs)
        assert response.status_code == status, (path, response.text)
        if status != 200:
            assert set(response.json()) == {"error_code", "message"}
    missing = http_request(creds, "/api/2.0/mlflow/no/such", "GET", max_retries=0).json()
    assert missing["error_code"] == "ENDPOINT_NOT_FOUND"


def _junk(run_id: str) -> list[dict[str, Any]]:
    """Request bodies of wrong types, values the database cannot hold, bad grammar..."""
    return [
        {},
        {"run_id": 5, "name": ["x"], "experiment_id": "abc", "key": {"a": 1}, "version": []},
        {k: "\x00" for k in ("run_id", "name", "experiment_id", "experiment_name", "key")}
        | {k: "\ud800" for k in ("value", "alias", "version", "source", "filter")},
        {"max_results": "-1", "page_token": "zzz", "filter": "(((", "order_by": ["? ?"]},
        {"version": "²", "experiment_id": "9" * 30, "run_id": run_id, "max_results": "9" * 5000},
        {"run_id": run_id, "metrics": [{"key": 1}], "params": "x", "tags": [1]},
        {"run_id": run_id, "metrics": [{"key": "k", "value": "abc", "timestamp": "x"}]},
        {"run_id": run_id, "status": "WRONG", "view_type": 99, "end_time": -5, "key": "k" * 300},
        {"name": "a/b@c", "source": f"runs:/{run_id}/../..", "tags": [{"key": "", "value": ""}]},
        {"name": "m", "source": "models:/x/99999999999", "alias": "latest", "version": "0"},
        {"run_id": run_id, "key": "mlflow.parentRunId", "value": run_id, "experiment_ids": ["x"]},
        {"filter": "name = 'x' AND tags.a LIKE 3", "order_by": "name SIDEWAYS"},
        {"filter": "metrics.a > 1e999 AND attributes.start_time > '2024-13-45'"},
    ]


def test_bad_input_is_never_a_server_error(mlflow_server: LiveServer, ws: Workspace) -> None:
    run = tracking.create_run(ws, "junk", "target")
    run.log_text("x", "a/b.txt")
    endpoints = [
        *_mlflow_tracking.HANDLERS,
        *_mlflow_registry.HANDLERS,
        *_mlflow_artifacts.HANDLERS,
        *_mlflow.LOGGED_MODELS,
    ]
    with httpx.Client(base_url=mlflow_server.url, timeout=30) as http:
        for path, method, _ in endpoints:
            url = "/api/2.0/mlflow" + path.replace("{model_id}", "m-1")
            for body in _junk(run.id):
                if method == "GET":
                    query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
                    query = {k: v for k, v in query.items() if "\ud800" not in v}
                    response = http.get(url, params=query)
                else:
                    response = http.request(method, url, content=json.dumps(body))
                assert response.status_code < 500 or response.status_code == 501, (url, body)
                assert response.status_code == 200 or "error_code" in response.json()
        proxy = "/api/2.0/mlflow-artifacts/artifacts"
        artifact = f"{proxy}/1/{run.id}/artifacts"
        for path in ["x", "9" * 40 + "/a/artifacts/x", "/%2e%2e/x", "/a/b.txt/c", "/a"]:
            for method in ("GET", "PUT", "DELETE"):  # "/a" is a folder, "/a/b.txt" a file
                url = artifact + path if path[0] == "/" else f"{proxy}/{path}"
                response = http.request(method, url, content=b"data")
                assert 400 <= response.status_code < 500 or response.status_code == 501, url
                assert "error_code" in response.json()


# -- search -----------------------------------------------------------------------------------
@pytest.fixture
def searchable(client: MlflowClient) -> dict[str, str]:
    """Five runs in experiment ``search``: name -> run id."""
    exp_id = client.create_experiment("search")
    ids = {}
    for i, (model, team, status) in enumerate(
        [("xgb", "a", "FINISHED"), ("rf", "b", "FINISHED"), ("xgb", "b", "FAILED"),
         ("XGBoost", "a", "FINISHED"), ("lr", "c", "RUNNING")]
    ):  # fmt: skip
        run = client.create_run(exp_id, run_name=f"r{i}", start_time=1_000 + i, tags={"team": team})
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("acc", i / 10, 0, 0)],
            params=[Param("model", model)],
        )
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status=status)
        ids[f"r{i}"] = run.info.run_id
    return ids


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("metrics.acc > 0.25", ["r4", "r3"]),
        ("params.model = 'xgb'", ["r2", "r0"]),
        ("params.model ILIKE 'xg%'", ["r3", "r2", "r0"]),
        ("params.model LIKE 'xg%'", ["r2", "r0"]),
        ("tags.team != 'a'", ["r4", "r2", "r1"]),
        ("attributes.status = 'FINISHED'", ["r3", "r1", "r0"]),
        ("status != 'FINISHED' AND metrics.acc >= 0.2", ["r4", "r2"]),
        ("attributes.run_name = 'r1'", ["r1"]),
        ("run_name LIKE 'r%' and params.model = 'rf'", ["r1"]),
        ("tags.mlflow.runName = 'r3'", ["r3"]),
        ("attributes.start_time >= 1003", ["r4", "r3"]),
        ("params.model IN ('rf', 'lr')", ["r4", "r1"]),
    ],
)
def test_search_runs_filters(
    client: MlflowClient, searchable: dict[str, str], filter_string: str, expected: list[str]
) -> None:
    exp_id = client.get_experiment_by_name("search").experiment_id
    found = client.search_runs([exp_id], filter_string)
    by_id = {v: k for k, v in searchable.items()}
    assert [by_id[r.info.run_id] for r in found] == expected


def test_search_runs_order_pages_and_frame(
    client: MlflowClient, searchable: dict[str, str]
) -> None:
    exp_id = client.get_experiment_by_name("search").experiment_id
    by_id = {v: k for k, v in searchable.items()}
    ordered = client.search_runs([exp_id], order_by=["metrics.acc DESC"])
    assert [by_id[r.info.run_id] for r in ordered] == ["r4", "r3", "r2", "r1", "r0"]
    by_name = client.search_runs([exp_id], order_by=["attributes.run_name ASC"])
    assert [by_id[r.info.run_id] for r in by_name] == ["r0", "r1", "r2", "r3", "r4"]
    ids = client.search_runs([exp_id], run_view_type=3, order_by=["params.model"])
    assert [by_id[r.info.run_id] for r in ids][:3] == ["r3", "r4", "r1"]  # XGBoost, lr, rf

    page = client.search_runs([exp_id], max_results=2, order_by=["start_time ASC"])
    seen = [r.info.run_id for r in page]
    while page.token:
        page = client.search_runs(
            [exp_id], max_results=2, order_by=["start_time ASC"], page_token=page.token
        )
        seen += [r.info.run_id for r in page]
    assert [by_id[i] for i in seen] == ["r0", "r1", "r2", "r3", "r4"]

    mlflow.set_experiment(experiment_id=exp_id)
    frame = mlflow.search_runs(filter_string="metrics.acc < 0.15")
    assert isinstance(frame, pd.DataFrame)
    assert sorted(frame["run_id"]) == sorted([searchable["r0"], searchable["r1"]])
    assert {"metrics.acc", "params.model", "tags.team", "status"} <= set(frame.columns)


@pytest.mark.parametrize(
    "bad",
    [
        "metrics.acc >",
        "metrics.acc > 'high'",
        "params.model = 'x' AND",
        "attributes.artifact_uri = 'x'",
        "foo.bar = 1",
        "metrics.acc = 1; DROP TABLE runs",
        "params.model LIKE 3",
    ],
)
def test_malformed_filter_is_invalid_parameter_value(
    client: MlflowClient, searchable: dict[str, str], bad: str
) -> None:
    exp_id = client.get_experiment_by_name("search").experiment_id
    with pytest.raises(MlflowException) as exc:
        client.search_runs([exp_id], bad)
    assert _code(exc) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as exc:
        client.search_runs([exp_id], order_by=["metrics.acc SIDEWAYS"])
    assert _code(exc) == "INVALID_PARAMETER_VALUE"


# -- artifacts --------------------------------------------------------------------------------
def test_artifacts_round_trip(client: MlflowClient, ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    big = tmp_path / "weights.bin"
    big.write_bytes(rng.bytes(3 * 1024 * 1024 + 17))  # several chunks each way
    notes = tmp_path / "notes.md"
    notes.write_text("# hello\n")
    mlflow.set_experiment("artifacts")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(big))
        mlflow.log_artifact(str(notes), artifact_path="docs")
        mlflow.log_text("some text", "docs/deep/readme.txt")
        mlflow.log_dict({"lr": 0.1}, "config.json")
    run_id = run.info.run_id

    top = client.list_artifacts(run_id)
    assert [(f.path, f.is_dir) for f in top] == [
        ("config.json", False),
        ("docs", True),
        ("weights.bin", False),
    ]
    assert next(f.file_size for f in top if f.path == "weights.bin") == big.stat().st_size
    assert [f.path for f in client.list_artifacts(run_id, "docs")] == ["docs/deep", "docs/notes.md"]
    assert client.list_artifacts(run_id, "config.json") == []

    out = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "all")))
    assert (out / "weights.bin").read_bytes() == big.read_bytes()
    assert (out / "docs" / "deep" / "readme.txt").read_text() == "some text"
    assert json.loads((out / "config.json").read_text()) == {"lr": 0.1}
    one = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="docs/notes.md", dst_path=str(tmp_path / "one")
    )
    assert Path(one).read_text() == "# hello\n"
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/docs/deep/readme.txt") == "some text"

    stored = tracking.list_artifacts(ws, run_id).set_index("path")
    assert stored.loc["weights.bin", "digest"] == hashlib.sha256(big.read_bytes()).hexdigest()
    assert stored.loc["docs/notes.md", "size"] == len("# hello\n")
    with pytest.raises(MlflowException):
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="missing.txt", dst_path=str(tmp_path / "none")
        )


def test_loopml_run_reads_in_mlflow(client: MlflowClient, ws: Workspace, tmp_path: Path) -> None:
    with tracking.start_run("made-by-loopml", "native", workspace=ws) as run:
        run.log_params({"alpha": 0.5})
        run.log_batch("loss", np.linspace(1.0, 0.0, 30_000))
        run.set_tag("origin", "loopml")
        run.log_text("from loopml", "report.txt")
    seen = client.get_run(run.id)
    assert seen.info.run_name == "native" and seen.info.status == "FINISHED"
    assert seen.data.params == {"alpha": "0.5"} and seen.data.tags["origin"] == "loopml"
    assert seen.data.metrics["loss"] == 0.0
    history = client.get_metric_history(run.id, "loss")  # more points than one page
    assert len(history) == 30_000 and [m.step for m in history[:3]] == [0, 1, 2]
    assert history[-1].value == 0.0
    exp_id = client.get_experiment_by_name("made-by-loopml").experiment_id
    assert [r.info.run_id for r in client.search_runs([exp_id], "params.alpha = '0.5'")] == [run.id]
    assert mlflow.artifacts.load_text(f"runs:/{run.id}/report.txt") == "from loopml"


# -- the model registry -----------------------------------------------------------------------
MLMODEL = "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"


@pytest.fixture
def logged_model(client: MlflowClient) -> str:
    """A finished run holding an MLflow model folder ``model/``; its id."""
    mlflow.set_experiment("models")
    with mlflow.start_run() as run:
        mlflow.log_text(MLMODEL, "model/MLmodel")
        mlflow.log_text("pretend pickle", "model/model.pkl")
        mlflow.log_text("unrelated", "plots/roc.txt")
    return str(run.info.run_id)


def test_register_model_from_a_run(
    client: MlflowClient, ws: Workspace, logged_model: str, tmp_path: Path
) -> None:
    mv = mlflow.register_model(f"runs:/{logged_model}/model", "churn")
    assert (mv.name, mv.version, mv.run_id, mv.status) == ("churn", "1", logged_model, "READY")
    assert mv.source.endswith(f"/{logged_model}/artifacts/model")
    client.set_registered_model_alias("churn", "production", "1")
    by_alias = client.get_model_version_by_alias("churn", "production")
    assert by_alias.version == "1" and by_alias.aliases == ["production"]
    model = client.get_registered_model("churn")
    assert model.aliases == {"production": "1"}
    assert [v.version for v in model.latest_versions] == ["1"]
    assert mlflow.register_model(f"runs:/{logged_model}/model", "churn").version == "2"
    assert [v.version for v in client.get_latest_versions("churn")] == ["2"]

    files = Path(
        mlflow.artifacts.download_artifacts(
            "models:/churn@production", dst_path=str(tmp_path / "dl")
        )
    )
    assert (files / "MLmodel").read_text() == MLMODEL and not (files / "plots").exists()
    assert client.get_model_version_download_uri("churn", "1").startswith("mlflow-artifacts:/")

    assert [m.name for m in list_models(ws)] == ["churn"]
    assert list_models(ws)[0].aliases == {"production": 1}
    with ws.db.read() as conn:
        row = conn.execute(sa.select(model_versions).where(model_versions.c.version == 1)).one()
    assert (row.flavor, row.run_id) == ("mlflow", logged_model)
    with pytest.raises(LoopmlError):  # loopml has no MLflow flavor: a clear error, no traceback
        load_model(ws, "models:/churn@production")


def test_registry_api(client: MlflowClient, logged_model: str) -> None:
    client.create_registered_model("fraud", tags={"team": "risk"}, description="first")
    client.create_registered_model("fraud-2")
    with pytest.raises(MlflowException) as exc:
        client.create_registered_model("fraud")
    assert _code(exc) == "RESOURCE_ALREADY_EXISTS"
    client.create_model_version("fraud", f"runs:/{logged_model}/model", run_id=logged_model)
    client.update_registered_model("fraud", description="second")
    client.update_model_version("fraud", "1", description="v1")
    client.set_registered_model_tag("fraud", "owner", "ada")
    client.set_model_version_tag("fraud", "1", "validated", "yes")
    client.delete_registered_model_tag("fraud", "team")
    model = client.get_registered_model("fraud")
    assert (model.description, model.tags) == ("second", {"owner": "ada"})
    version = client.get_model_version("fraud", "1")
    assert (version.description, version.tags) == ("v1", {"validated": "yes"})
    client.delete_model_version_tag("fraud", "1", "validated")
    assert client.get_model_version("fraud", "1").tags == {}

    assert [m.name for m in client.search_registered_models("name LIKE 'fraud%'")] == [
        "fraud",
        "fraud-2",
    ]
    assert [m.name for m in client.search_registered_models("tags.owner = 'ada'")] == ["fraud"]
    found = client.search_model_versions(f"run_id = '{logged_model}'")
    assert [(v.name, v.version) for v in found] == [("fraud", "1")]
    assert client.search_model_versions("name = 'fraud-2'") == []

    client.set_registered_model_alias("fraud", "champion", "1")
    client.delete_registered_model_alias("fraud", "champion")
    for call, code in [
        (lambda: client.get_model_version_by_alias("fraud", "champion"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda: client.get_model_version("fraud", "7"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda: client.get_registered_model("nope"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda: client.set_registered_model_alias("fraud", "123", "1"), "INVALID_PARAMETER_VALUE"),
        (lambda: client.delete_registered_model("fraud"), "NOT_IMPLEMENTED"),
        (lambda: client.delete_model_version("fraud", "1"), "NOT_IMPLEMENTED"),
        (lambda: client.rename_registered_model("fraud", "x"), "NOT_IMPLEMENTED"),
        (
            lambda: client.create_model_version("fraud", f"runs:/{logged_model}/nothing-here"),
            "INVALID_PARAMETER_VALUE",
        ),
        (lambda: client.create_model_version("fraud", "/local/path"), "INVALID_PARAMETER_VALUE"),
        (lambda: client.search_model_versions("flavor = 'x'"), "INVALID_PARAMETER_VALUE"),
    ]:
        with pytest.raises(MlflowException) as exc:
            call()
        assert _code(exc) == code
    client.delete_registered_model("fraud-2")  # no versions yet: deletable
    assert [m.name for m in client.search_registered_models()] == ["fraud"]


def test_loopml_version_reads_in_mlflow(
    client: MlflowClient, ws: Workspace, tmp_path: Path
) -> None:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    register_model(ws, model, "native", input_example=X)
    version = client.get_model_version("native", "1")
    assert version.source.startswith("mlflow-artifacts:/packages/")
    files = Path(
        mlflow.artifacts.download_artifacts("models:/native/1", dst_path=str(tmp_path / "dl"))
    )
    assert sorted(p.name for p in files.iterdir()) == ["loopml-model.json", "model.joblib"]
    copy = client.create_model_version("native", "models:/native/1")
    assert load_model(ws, f"models:/native/{copy.version}").predict(X).tolist() == [0, 0, 1, 1]
