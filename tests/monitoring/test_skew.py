"""Training/serving skew: served feature values (prediction log) vs point-in-time offline values."""

from __future__ import annotations

import pytest

from loopml.errors import InvalidInput
from loopml.features._online import encode_key
from loopml.features._stores import default_online_store
from loopml.monitoring import skew_report
from loopml.serving import BatchConfig, ServeConfig, create_app, deploy
from loopml.store import Workspace, now_ms
from tests.cli.test_cli import loopml
from tests.serving.conftest import TestClient
from tests.serving.test_feature_lookup import _setup

URL = "/v1/models/scorer-live/predict"


def _serve(ws: Workspace, rows: list[dict[str, object]]) -> None:
    config = ServeConfig(batching=BatchConfig(max_wait_ms=1))
    app = create_app(ws, [], deployments=["scorer-live"], config=config)
    with TestClient(app) as client:  # the log is flushed when the app stops
        for row in rows:
            assert client.post(URL, json=[row]).status_code == 200


def test_clean_then_skewed(sqlite_ws: Workspace) -> None:
    _setup(sqlite_ws)
    deploy(sqlite_ws, "scorer-live", model="scorer", features="churn_svc")
    _serve(sqlite_ws, [{"customer_id": c, "amount": 1.0} for c in (1, 2, 9)])

    clean = skew_report(sqlite_ws, "scorer-live")
    assert clean.rows == 3 and clean.skewed == []
    frame = clean.to_pandas()
    assert frame["feature"].tolist() == ["spend", "visits"]
    assert frame["rows"].tolist() == [3, 3] and frame["mismatched"].tolist() == [0, 0]
    assert frame["max_abs_diff"].tolist() == [0.0, 0.0]  # entity 9: null on both sides

    # a wrong value written online (newer than the offline row) for customer 1's spend
    store = default_online_store(sqlite_ws)
    store.write("activity_view", [(encode_key([1]), now_ms(), {"spend": 4.5, "visits": 3.0})])
    _serve(sqlite_ws, [{"customer_id": 1, "amount": 1.0}, {"customer_id": 2, "amount": 1.0}])

    skewed = skew_report(sqlite_ws, "scorer-live")
    assert skewed.rows == 5 and skewed.skewed == ["spend"]
    spend, visits = skewed.features
    assert (spend.rows, spend.mismatched, spend.mismatch_share) == (5, 1, pytest.approx(0.2))
    assert spend.max_abs_diff == pytest.approx(3.5)
    assert visits.mismatched == 0

    out = loopml("monitor", "skew", "scorer-live", cwd=sqlite_ws.home)
    assert out.returncode == 0, out.stderr
    assert "spend" in out.stdout and "20.0%" in out.stdout and "3.5" in out.stdout


def test_skew_input_errors(sqlite_ws: Workspace) -> None:
    _setup(sqlite_ws)
    deploy(sqlite_ws, "plain", model="scorer")
    with pytest.raises(InvalidInput, match="has no feature service"):
        skew_report(sqlite_ws, "plain")
    deploy(sqlite_ws, "scorer-live", model="scorer", features="churn_svc")
    with pytest.raises(InvalidInput, match="tolerance"):
        skew_report(sqlite_ws, "scorer-live", tolerance=-1)
    empty = skew_report(sqlite_ws, "scorer-live")  # nothing logged yet
    assert empty.rows == 0 and empty.skewed == []
    bad = loopml("monitor", "skew", "nope", cwd=sqlite_ws.home)
    assert bad.returncode != 0 and "nope" in bad.stderr and "Traceback" not in bad.stderr
