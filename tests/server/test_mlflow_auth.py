"""The real MLflow client against the full platform app: with auth, its token is checked
and the project roles hold on MLflow's API as on loopml's own; and what MLflow registers
is a model version loopml lists (but does not load)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from loopml import registry
from loopml.errors import InvalidInput
from loopml.server import create_app
from loopml.server._users import add_user
from loopml.store import Workspace
from loopml.tracking import get_or_create_experiment, search_runs
from tests.conftest import LiveServer


@pytest.fixture
def server(sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    get_or_create_experiment(sqlite_ws, "secret", project="vision")
    with LiveServer(create_app(sqlite_ws, auth=True)) as live:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", live.url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        yield live.url


def _as(monkeypatch: pytest.MonkeyPatch, token: str | None) -> MlflowClient:
    if token is None:
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    return MlflowClient()


def test_mlflow_clients_need_a_token_and_a_role(
    server: str, sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = add_user(sqlite_ws, "ed", roles={"default": "editor", "vision": "viewer"})
    outsider = add_user(sqlite_ws, "out", roles={"nlp": "editor"})

    with pytest.raises(MlflowException, match="missing credentials"):
        _as(monkeypatch, None).search_experiments()

    client = _as(monkeypatch, editor)
    exp = client.create_experiment("team")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "auc", 0.9)
    client.set_terminated(run.info.run_id)
    assert {e.name for e in client.search_experiments()} == {"team", "secret"}
    secret = client.get_experiment_by_name("secret")
    assert secret is not None  # a viewer reads project vision ...
    with pytest.raises(MlflowException) as refused:
        client.create_run(secret.experiment_id)  # ... but cannot write there
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert search_runs(sqlite_ws, "team")["metrics.auc"].tolist() == [0.9]

    nosy = _as(monkeypatch, outsider)
    assert nosy.search_experiments() == []
    with pytest.raises(MlflowException) as denied:
        nosy.get_run(run.info.run_id)
    assert denied.value.error_code == "PERMISSION_DENIED"


def test_a_version_registered_through_mlflow_reads_in_loopml(
    sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LiveServer(create_app(sqlite_ws)) as live:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", live.url)
        client = MlflowClient()
        run = client.create_run(client.create_experiment("mlflow-made"))
        client.log_text(run.info.run_id, "flavors: {}", "model/MLmodel")
        client.create_registered_model("legacy")
        client.create_model_version("legacy", f"runs:/{run.info.run_id}/model", run.info.run_id)
        registry.set_alias(sqlite_ws, "legacy", "production", 1)
        mv = registry.get_model_version(sqlite_ws, "models:/legacy@production")
        assert mv.flavor == "mlflow" and not mv.signature.declared
        assert mv.tags["mlflow.source"].endswith("/model")
        with pytest.raises(InvalidInput, match="registered through MLflow's API"):
            registry.load_model(sqlite_ws, "models:/legacy/1")
        assert client.get_model_version_by_alias("legacy", "production").version == "1"
