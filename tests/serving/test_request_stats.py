"""Request rate, rows, errors and latency per time bucket, read from the prediction log."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput
from loopml.serving import request_stats
from loopml.serving._predlog import PredictionLogger
from loopml.store import Workspace

FRAME = pd.DataFrame({"x": [1.0, 2.0, 3.0]})


def _log(lg: PredictionLogger, ids: list[str], latency: float, role: str = "primary") -> None:
    lg.log("churn", "churn", 1, role, ids, FRAME.head(len(ids)), np.zeros(len(ids)), None, None,
           latency)  # fmt: skip


def test_buckets_count_requests_once_and_keep_silent_buckets(ws: Workspace) -> None:
    lg = PredictionLogger(ws, flush_interval=3600)
    _log(lg, ["a", "a", "a"], 10.0)  # one request of three rows
    _log(lg, ["a", "a", "a"], 30.0, role="shadow")  # its shadow: same request
    _log(lg, ["b"], 20.0)
    lg.log_error("churn", "c", 422, "bad field")
    lg.close()
    stats = request_stats(ws, "churn", since="5m", bucket="1m")
    assert list(stats.columns) == [
        "time", "requests", "rows", "errors", "error_rate", "p50_ms", "p99_ms"
    ]  # fmt: skip
    assert len(stats) in (5, 6)  # every minute of the window, busy or not
    busy = stats[stats["requests"] > 0]
    assert busy["requests"].sum() == 2 and busy["rows"].sum() == 7
    assert stats["errors"].sum() == 1
    assert stats["time"].is_monotonic_increasing and str(stats["time"].dt.tz) == "UTC"
    last = stats.iloc[-1]
    if last["requests"] == 2:  # all in the newest minute (the usual case)
        assert last["p50_ms"] == pytest.approx(25.0)  # slowest prediction of each request
        assert last["error_rate"] == pytest.approx(1 / 3)
    idle = stats[(stats["requests"] == 0) & (stats["errors"] == 0)]
    assert idle["p99_ms"].isna().all() and idle["error_rate"].isna().all()


def test_a_deployment_without_traffic_has_empty_buckets(ws: Workspace) -> None:
    until = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    stats = request_stats(ws, "nothing", since="2026-01-01T11:00", until=until, bucket="15m")
    assert len(stats) == 4 and stats["requests"].tolist() == [0, 0, 0, 0]
    assert stats["time"].iloc[0] == pd.Timestamp("2026-01-01T11:00", tz="UTC")
    assert all(math.isnan(v) for v in stats["p50_ms"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bucket": "soon"}, "bucket must be a positive duration"),
        ({"bucket": "0s"}, "bucket must be a positive duration"),
        ({"since": "yesterday"}, "since 'yesterday' is not a time"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "since must be before until"),
        ({"since": "30d", "bucket": "1s"}, "too many"),
    ],
)
def test_bad_windows_are_refused_precisely(
    ws: Workspace, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        request_stats(ws, "churn", **kwargs)
