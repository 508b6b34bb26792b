"""A deployment with a feature service: requests carry entity keys, the server looks up the rest."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from loopml import data, features
from loopml.errors import InvalidInput, NotFound
from loopml.registry import register_model, set_alias
from loopml.serving import BatchConfig, ServeConfig, create_app, deploy, read_predictions
from loopml.store import Workspace
from tests.cli.test_cli import loopml
from tests.features.conftest import redis_prefix, redis_url

from .conftest import TestClient

__all__ = ["redis_prefix", "redis_url"]  # fixtures

INPUTS = ["spend", "visits", "amount"]  # amount is a request field, the others are features


def _model() -> Pipeline:
    """spend + 10 visits + 100 amount exactly; a missing value counts as 0."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(50, 3)), columns=INPUTS)
    y = X["spend"] + 10 * X["visits"] + 100 * X["amount"]
    imputer = SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True)
    return Pipeline([("fill", imputer), ("lr", LinearRegression())]).fit(X, y)


def _setup(ws: Workspace) -> None:
    now = pd.Timestamp.now(tz="UTC").floor("s")
    rows = pd.DataFrame(
        {
            "customer_id": [1, 2, 2],
            "event_timestamp": [now - pd.Timedelta(hours=h) for h in (1, 3, 2)],
            "spend": [1.0, 5.0, 2.0],
            "visits": [3.0, 9.0, 4.0],
        }
    )
    data.ingest(rows, name="activity", workspace=ws)
    customer = features.Entity("customer", ["customer_id"])
    view = features.FeatureView("activity_view", [customer], "activity@latest", ttl="7d")
    svc = features.FeatureService("churn_svc", ["activity_view:spend", "activity_view:visits"])
    features.apply([customer, view, svc], workspace=ws)
    features.materialize(end=now + pd.Timedelta(seconds=1), workspace=ws)
    register_model(
        ws, _model(), "scorer", input_example=pd.DataFrame([[1.0, 2.0, 3.0]], columns=INPUTS)
    )
    set_alias(ws, "scorer", "production", 1)


def _serve_and_check(ws: Workspace) -> None:
    # a long wait lets concurrent requests share a micro-batch; sequential ones are alone
    config = ServeConfig(batching=BatchConfig(max_wait_ms=1))
    app = create_app(ws, [], deployments=["scorer-live"], config=config)
    with TestClient(app) as client:
        url = "/v1/models/scorer-live/predict"
        got = client.post(url, json=[{"customer_id": 1, "amount": 0.5}])
        assert got.status_code == 200, got.text
        assert got.json()["predictions"] == pytest.approx([1.0 + 30.0 + 50.0])
        # columns, several entities in one request, one unknown (null features -> imputed 0)
        many = {"customer_id": [2, 9], "amount": [0.0, 1.0]}
        got = client.post(url, json=many)
        assert got.status_code == 200, got.text
        assert got.json()["predictions"] == pytest.approx([2.0 + 40.0, 100.0])

        for bad, message in [
            ([{"amount": 1.0}], "no entity key 'customer_id'"),
            ([{"customer_id": 1}], "no request field 'amount'"),
            ([{"customer_id": 1, "amount": 1.0, "spend": 3.0}], "unexpected field(s) 'spend'"),
            ([], "no rows"),
            ([3], "record 0 is a int"),
        ]:
            r = client.post(url, json=bad)
            assert r.status_code == 422, (bad, r.text)
            assert message in r.json()["error"], (bad, r.text)
        v2 = {
            "inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]} for c in INPUTS]
        }
        r = client.post("/v2/models/scorer-live/infer", json=v2)
        assert r.status_code == 422 and "entity key 'customer_id'" in r.text, r.text

    table = read_predictions(ws, "scorer-live").to_pandas()
    assert table["input.customer_id"].tolist() == [1, 2, 9]
    assert table["input.amount"].tolist() == [0.5, 0.0, 1.0]
    spend = table["input.spend"].tolist()
    assert spend[:2] == [1.0, 2.0] and pd.isna(spend[2])  # the log shows the model's null
    assert table["input.visits"].tolist()[:2] == [3.0, 4.0]


def test_deployment_looks_up_features(sqlite_ws: Workspace) -> None:
    _setup(sqlite_ws)
    d = deploy(sqlite_ws, "scorer-live", model="scorer", features="churn_svc")
    assert d.features == "churn_svc"
    _serve_and_check(sqlite_ws)


def test_one_lookup_per_micro_batch(sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent requests batched together are looked up with one read per view."""
    from loopml.features import SqliteOnlineStore

    _setup(sqlite_ws)
    deploy(sqlite_ws, "scorer-live", model="scorer", features="churn_svc")
    reads: list[int] = []
    original = SqliteOnlineStore.read

    def counting(self: SqliteOnlineStore, view: str, keys: list[str]) -> list[object]:
        reads.append(len(keys))
        return original(self, view, keys)

    monkeypatch.setattr(SqliteOnlineStore, "read", counting)
    config = ServeConfig(batching=BatchConfig(max_batch_size=8, max_wait_ms=2000))
    app = create_app(sqlite_ws, [], deployments=["scorer-live"], config=config, logger=False)
    body = {"customer_id": 1, "amount": 0.0}
    with TestClient(app) as client, ThreadPoolExecutor(8) as pool:
        url = "/v1/models/scorer-live/predict"
        answers = list(pool.map(lambda _: client.post(url, json=body), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert sum(reads) == 8  # every request's key read once
    assert len(reads) < 8  # and several requests shared a read


def test_deploy_validates_features(sqlite_ws: Workspace) -> None:
    _setup(sqlite_ws)
    with pytest.raises(NotFound, match="nope"):
        deploy(sqlite_ws, "scorer-live", model="scorer", features="nope")
    with pytest.raises(InvalidInput, match="feature service name"):
        deploy(sqlite_ws, "scorer-live", model="scorer", features="")  # type: ignore[arg-type]


def test_cli_deploy_features(sqlite_ws: Workspace) -> None:
    _setup(sqlite_ws)
    args = ["deploy", "create", "scorer-live", "-m", "scorer", "--features", "churn_svc"]
    out = loopml(*args, cwd=sqlite_ws.home)
    assert out.returncode == 0, out.stderr
    assert "features from service churn_svc" in out.stdout
    bad = loopml(*args[:-1], "nope", cwd=sqlite_ws.home)
    assert bad.returncode != 0 and "nope" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_lookup_on_redis(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    ws = Workspace.init(tmp_path / "ws", online_store=redis_url, online_key_prefix=redis_prefix)
    try:
        _setup(ws)
        deploy(ws, "scorer-live", model="scorer", features="churn_svc")
        _serve_and_check(ws)
    finally:
        ws.close()
