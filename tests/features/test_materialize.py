"""materialize (full, incremental by watermark) and get_online_features (TTL respected)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from loopml import data, features
from loopml.errors import InvalidInput, NotFound
from loopml.features import OnlineStore, RedisOnlineStore, SqliteOnlineStore
from loopml.store import Workspace
from tests.features.conftest import CUSTOMER, T0, feature_rows, spend_view


@pytest.fixture(params=["sqlite", "redis"])
def online(request: pytest.FixtureRequest, fs_ws: Workspace) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        made: OnlineStore = SqliteOnlineStore(fs_ws.settings.state_dir / "online-test.db")
    else:
        made = RedisOnlineStore(
            request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix")
        )
    yield made
    made.close()


def latest_before(rows: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """Each customer's newest row before ``end``."""
    before = rows[rows["event_timestamp"] < end].sort_values("event_timestamp")
    return before.groupby("customer_id").tail(1).set_index("customer_id")


def fresh_spend(rows: pd.DataFrame, at: pd.Timestamp, ttl_days: int = 7) -> np.ndarray:
    """Each customer's newest spend before ``at``, NaN where older than the TTL."""
    want = latest_before(rows, at)
    stale = want["event_timestamp"] < at - pd.Timedelta(days=ttl_days)
    return want["spend"].where(~stale).to_numpy(dtype=float)


def test_full_then_incremental(fs_ws: Workspace, online: OnlineStore) -> None:
    rows = feature_rows()
    mid, end = T0 + pd.Timedelta(days=30), T0 + pd.Timedelta(days=61)
    (first,) = features.materialize(end=mid, store=online, workspace=fs_ws)
    assert (
        first.start is None and first.rows == rows[rows.event_timestamp < mid].customer_id.nunique()
    )
    feats = ["spend_stats:spend", "spend_stats:visits"]
    ids = list(range(22))
    got = features.get_online_features(
        [{"customer_id": i} for i in ids], feats, at=mid, store=online, workspace=fs_ws
    )
    want = latest_before(rows, mid)
    fresh = want["event_timestamp"] >= mid - pd.Timedelta(days=7)
    for i in ids:
        value = got.loc[i, "spend"]
        if i in want.index and fresh[i]:
            assert value == want.loc[i, "spend"] and got.loc[i, "visits"] == want.loc[i, "visits"]
        else:  # never seen, or older than the 7-day TTL at `mid`
            assert value is None or np.isnan(value)
    assert got["customer_id"].tolist() == ids

    # incremental: starts at the watermark, writes only what changed since
    (second,) = features.materialize(end=end, store=online, workspace=fs_ws)
    assert second.start == mid.to_pydatetime()
    changed = rows[(rows.event_timestamp >= mid) & (rows.event_timestamp < end)]
    assert second.rows == changed.customer_id.nunique()
    (third,) = features.materialize(end=end, store=online, workspace=fs_ws)
    assert third.rows == 0
    want = latest_before(rows, end)
    got = features.get_online_features(
        {"customer_id": list(want.index)}, feats, at=end, store=online, workspace=fs_ws
    )
    expected = fresh_spend(rows, end)
    assert np.isnan(expected).sum() > 2  # some are past the TTL at `end`
    assert np.allclose(got["spend"].astype(float), expected, equal_nan=True)

    # an old window again does not roll values back
    features.materialize(T0, mid, store=online, workspace=fs_ws)
    again = features.get_online_features(
        {"customer_id": list(want.index)}, feats, at=end, store=online, workspace=fs_ws
    )
    assert np.allclose(again["spend"].astype(float), expected, equal_nan=True)
    # at a time before a stored value, the value is not returned (it did not exist yet)
    early = features.get_online_features(
        [{"customer_id": int(want.index[3])}], feats, at=T0, store=online, workspace=fs_ws
    )
    assert early.loc[0, "spend"] is None or np.isnan(early.loc[0, "spend"])


def test_new_view_version_rematerializes_and_new_data_is_picked_up(fs_ws: Workspace) -> None:
    end = T0 + pd.Timedelta(days=61)
    features.materialize(end=end, workspace=fs_ws)
    assert features.materialize(end=end, workspace=fs_ws)[0].rows == 0
    extra = pd.DataFrame(
        {
            "customer_id": [99],
            "event_timestamp": [end - pd.Timedelta(hours=1)],
            "spend": [1.0],
            "visits": [1],
            "plan": ["pro"],
        }
    )
    data.append("spend@latest", extra, workspace=fs_ws)
    assert features.materialize(T0, end, workspace=fs_ws)[0].rows == 21
    features.apply([CUSTOMER, spend_view(ttl="30d")], workspace=fs_ws)  # version 2
    result = features.materialize(end=end, workspace=fs_ws)[0]
    assert result.version == 2 and result.start is None and result.rows == 21
    got = features.get_online_features(
        [{"customer_id": 99}], ["spend_stats:spend"], at=end, workspace=fs_ws
    )
    assert got.loc[0, "spend"] == 1.0


def test_on_demand_features_online_and_bad_requests(fs_ws: Workspace) -> None:
    def doubled(df):  # type: ignore[no-untyped-def]
        return pd.DataFrame({"spend_x": df["spend"] * df["factor"]})

    odfv = features.OnDemandFeatureView(
        "scaled", ["spend_stats:spend"], ["spend_x"], doubled, request_fields={"factor": "float64"}
    )
    svc = features.FeatureService("svc", [odfv, "spend_stats:visits"])
    features.apply([odfv, svc], workspace=fs_ws)
    end = T0 + pd.Timedelta(days=61)
    features.materialize(end=end, workspace=fs_ws)
    want = latest_before(feature_rows(), end)
    got = features.get_online_features(
        pd.DataFrame({"customer_id": [3], "factor": [10.0]}), "svc", at=end, workspace=fs_ws
    )
    assert list(got.columns) == ["customer_id", "factor", "spend_x", "visits"]
    assert got.loc[0, "spend_x"] == pytest.approx(want.loc[3, "spend"] * 10)

    as_dict = features.get_online_features(
        [{"customer_id": 3, "factor": 10.0}], "svc", at=end, to="dict", workspace=fs_ws
    )
    assert as_dict == {k: got[k].tolist() for k in got.columns}
    plain = features.get_online_features(
        [{"customer_id": 3}], ["spend_stats:visits"], at=end, to="dict", workspace=fs_ws
    )
    assert plain == {"customer_id": [3], "visits": [int(want.loc[3, "visits"])]}
    with pytest.raises(InvalidInput, match="to must be 'pandas' or 'dict'"):
        features.get_online_features([{"customer_id": 3}], "svc", to="arrow", workspace=fs_ws)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="entity_rows have no 'factor'"):
        features.get_online_features([{"customer_id": 3}], "svc", workspace=fs_ws)
    with pytest.raises(InvalidInput, match="entity_rows have no 'customer_id'"):
        features.get_online_features([{"id": 3}], ["spend_stats:spend"], workspace=fs_ws)
    with pytest.raises(InvalidInput, match=r"entity_rows\[1\] has no 'customer_id'"):
        features.get_online_features(
            [{"customer_id": 3}, {"x": 1}], ["spend_stats:spend"], workspace=fs_ws
        )
    with pytest.raises(InvalidInput, match="entity_rows must be"):
        features.get_online_features(42, ["spend_stats:spend"], workspace=fs_ws)
    with pytest.raises(InvalidInput, match="entity_rows is empty"):
        features.get_online_features([], ["spend_stats:spend"], workspace=fs_ws)
    with pytest.raises(NotFound, match="no feature service named 'nope'"):
        features.get_online_features([{"customer_id": 3}], "nope", workspace=fs_ws)
    with pytest.raises(InvalidInput, match="'soon' is not a time"):
        features.materialize(end="soon", workspace=fs_ws)
    with pytest.raises(InvalidInput, match="must be before end"):
        features.materialize(end, T0, workspace=fs_ws)
    with pytest.raises(NotFound, match="no feature view named 'ghost'"):
        features.materialize(views=["ghost"], workspace=fs_ws)
