"""``POST /v1/features`` on the model server: online feature values by entity key."""

from __future__ import annotations

import pandas as pd

from loopml import data, features
from loopml.serving import create_app
from loopml.store import Workspace

from .conftest import TestClient

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def test_features_route(churn_ws: Workspace) -> None:
    rows = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "event_timestamp": [T0, T0 + pd.Timedelta(days=2), T0 + pd.Timedelta(days=1)],
            "spend": [1.0, 2.0, 3.0],
        }
    )
    data.ingest(rows, name="spend", workspace=churn_ws)
    customer = features.Entity("customer", ["customer_id"])
    view = features.FeatureView("spend_view", [customer], "spend@latest", ttl="30d")
    svc = features.FeatureService("svc", ["spend_view:spend"])
    features.apply([customer, view, svc], workspace=churn_ws)
    features.materialize(end=T0 + pd.Timedelta(days=3), workspace=churn_ws)

    app = create_app(churn_ws, ["churn@production"], logger=False)
    at = (T0 + pd.Timedelta(days=3)).isoformat()
    with TestClient(app) as client:
        body = {"features": ["spend_view:spend"], "entities": [{"customer_id": 1}], "at": at}
        got = client.post("/v1/features", json=body)
        assert got.status_code == 200, got.text
        assert got.json() == {"features": {"customer_id": [1], "spend": [2.0]}}
        by_service = client.post(
            "/v1/features",
            json={
                "features": "svc",
                "entities": [{"customer_id": 2}, {"customer_id": 9}],
                "at": at,
            },
        )
        assert by_service.json()["features"]["spend"] == [3.0, None]

        for bad, status, message in [
            ({"features": [], "entities": [{"customer_id": 1}]}, 422, "non-empty list"),
            ({"features": "svc", "entities": []}, 422, "'entities' must be"),
            ({"features": "svc", "entities": [{"customer_id": [1]}]}, 422, "entities[0]"),
            ({"features": "svc", "entities": [{"id": 1}]}, 422, "have no 'customer_id'"),
            ({"features": "nope", "entities": [{"customer_id": 1}]}, 404, "no feature service"),
            ({"features": "svc", "entities": [{"customer_id": 1}], "at": "soon"}, 422, "soon"),
            ([1, 2], 422, "send {"),
        ]:
            r = client.post("/v1/features", json=bad)
            assert r.status_code == status, (bad, r.text)
            assert message in r.json()["error"], (bad, r.text)
        plain = {"content-type": "text/plain"}
        assert client.post("/v1/features", content=b"x", headers=plain).status_code == 415
        assert client.post("/v1/features", content=b"{not json").status_code == 400
        assert "/v1/features" in client.get("/openapi.json").json()["paths"]
