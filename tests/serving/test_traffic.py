"""Deployments through the server: shadow mirrors and logs both, canary/A-B route per request."""

from __future__ import annotations

import pandas as pd

from loopml.registry import register_model, set_alias
from loopml.serving import ServeConfig, create_app, deploy, read_predictions
from loopml.store import Workspace

from .conftest import FEATURES, TestClient

ROW = {"a": 0.5, "b": -1.0, "c": 2.0}


def _two_versions(ws: Workspace, frame: pd.DataFrame, hgb, flipped) -> None:
    register_model(ws, hgb, "churn", input_example=frame[FEATURES].head(5))
    register_model(ws, flipped, "churn", input_example=frame[FEATURES].head(5))
    set_alias(ws, "churn", "production", 1)


def test_shadow_answers_from_primary_and_logs_both(
    sqlite_ws: Workspace, frame: pd.DataFrame, hgb, flipped
) -> None:
    _two_versions(sqlite_ws, frame, hgb, flipped)
    deploy(sqlite_ws, "churn-live", model="churn", primary="@production", shadow=2)
    with TestClient(create_app(sqlite_ws, deployments=["churn-live"])) as c:
        for i in range(5):
            r = c.post(
                "/v1/models/churn-live/predict", json=[ROW], headers={"X-Request-Id": f"s{i}"}
            )
            assert r.status_code == 200 and r.headers["x-model-version"] == "1"
        info = c.get("/v1/models/churn-live").json()
        assert info["policy"] == "shadow" and info["versions"]["shadow"]["version"] == 2
    logged = read_predictions(sqlite_ws, "churn-live").to_pandas()
    by_role = logged.groupby("role")["version"].agg(set).to_dict()
    assert by_role == {"primary": {1}, "shadow": {2}}
    assert sorted(logged[logged.role == "shadow"].request_id) == [f"s{i}" for i in range(5)]


def test_ab_is_sticky_by_request_key(
    sqlite_ws: Workspace, frame: pd.DataFrame, hgb, flipped
) -> None:
    _two_versions(sqlite_ws, frame, hgb, flipped)
    deploy(sqlite_ws, "exp", model="churn", primary=1, ab=2, traffic=0.5, sticky_key="user")
    with TestClient(create_app(sqlite_ws, deployments=["exp"], logger=False)) as c:
        versions = {}
        for user in range(30):
            seen = {
                c.post(
                    "/v1/models/exp/predict", json=[ROW], headers={"X-Request-Key": f"u{user}"}
                ).headers["x-model-version"]
                for _ in range(3)
            }
            assert len(seen) == 1  # the same key always lands on the same version
            versions[user] = seen.pop()
        assert set(versions.values()) == {"1", "2"}


def test_canary_sends_a_share_to_the_candidate(
    sqlite_ws: Workspace, frame: pd.DataFrame, hgb, flipped
) -> None:
    _two_versions(sqlite_ws, frame, hgb, flipped)
    deploy(sqlite_ws, "can", model="churn", primary="@production", canary=2, traffic=0.3)
    with TestClient(create_app(sqlite_ws, deployments=["can"], logger=False)) as c:
        got = [
            c.post("/v1/models/can/predict", json=[ROW]).headers["x-model-version"]
            for _ in range(60)
        ]
    assert set(got) == {"1", "2"}


def test_a_changed_deployment_is_picked_up_while_serving(
    sqlite_ws: Workspace, frame: pd.DataFrame, hgb, flipped
) -> None:
    _two_versions(sqlite_ws, frame, hgb, flipped)
    deploy(sqlite_ws, "churn-live", model="churn", primary="@production")
    app = create_app(sqlite_ws, deployments=["churn-live"], config=ServeConfig(watch_interval_s=0))
    with TestClient(app) as c:
        assert c.get("/v1/models/churn-live").json()["policy"] == "single"
        deploy(sqlite_ws, "churn-live", model="churn", primary="@production", shadow=2)
        c.portal.call(app.state.pool.refresh)  # what the watcher does every interval
        info = c.get("/v1/models/churn-live").json()
        assert info["policy"] == "shadow" and info["versions"]["shadow"]["version"] == 2
        r = c.post("/v1/models/churn-live/predict", json=[ROW], headers={"X-Request-Id": "x1"})
        assert r.status_code == 200 and r.headers["x-model-version"] == "1"
        deploy(sqlite_ws, "churn-live", model="churn", primary="@production")
        c.portal.call(app.state.pool.refresh)
        assert c.get("/v1/models/churn-live").json()["policy"] == "single"
        assert app.state.pool.swaps == 0  # the primary model was kept, never reloaded
    logged = read_predictions(sqlite_ws, "churn-live").to_pandas()
    assert set(logged.role) == {"primary", "shadow"}
