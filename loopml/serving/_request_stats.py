"""A deployment's traffic over time, read back from its prediction log: requests, rows,
errors and latency percentiles per time bucket (what the web UI's live charts draw).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from loopml.errors import InvalidInput
from loopml.serving._predread import TimeLike, _files, _scan, duration_ms, to_ms
from loopml.store import Workspace, now_ms

MAX_BUCKETS = 10_000
_NO_PREDICTIONS = (
    "SELECT NULL::VARCHAR AS request_id, NULL::TIMESTAMPTZ AS ts, NULL::DOUBLE AS latency_ms"
    " WHERE false"
)
COLUMNS = ["time", "requests", "rows", "errors", "error_rate", "p50_ms", "p99_ms"]


def request_stats(
    ws: Workspace,
    deployment: str,
    *,
    since: TimeLike = "1h",
    until: TimeLike = None,
    bucket: str = "1m",
) -> pd.DataFrame:
    """Requests per ``bucket`` for ``deployment`` between ``since`` and ``until`` (now).

    Every bucket of the window is a row, oldest first, empty ones included, so a chart's
    gaps are real silences. A request counts once however many rows it carried (shadow
    predictions share their request's id); its latency is the slowest of its predictions.

    Returns
    -------
    DataFrame with columns ``time`` (UTC bucket start), ``requests``, ``rows``, ``errors``
    (answered 4xx/5xx), ``error_rate`` (errors over requests + errors; NaN when idle),
    ``p50_ms`` and ``p99_ms`` (NaN when no request).

    Raises
    ------
    InvalidInput
        A bad time or bucket, a window of more than 10,000 buckets, or ``since`` after
        ``until``.
    """
    if not isinstance(deployment, str) or not deployment:
        raise InvalidInput(f"deployment must be a non-empty string, not {deployment!r}")
    size = duration_ms(bucket, "bucket")
    hi = to_ms(until, "until") or now_ms()
    lo = to_ms(since, "since")
    if lo is None:
        raise InvalidInput("since is required: a time or a duration back from now such as 1h")
    if lo >= hi:
        raise InvalidInput(f"since must be before until, not {lo} ms ≥ {hi} ms")
    first, last = lo // size * size, (hi - 1) // size * size
    if (last - first) // size + 1 > MAX_BUCKETS:
        raise InvalidInput(
            f"{(last - first) // size + 1} buckets of {bucket} is too many (at most "
            f"{MAX_BUCKETS}): use a larger bucket or a shorter window"
        )
    predictions = _files(ws, deployment, "predictions", lo, hi)
    errors = _files(ws, deployment, "errors", lo, hi)
    params: dict[str, object] = {"lo": lo, "hi": hi, "size": size, "first": first, "last": last}
    if predictions:
        params["p"] = predictions
    if errors:
        params["e"] = errors
    window = "epoch_ms(ts) >= $lo AND epoch_ms(ts) < $hi"
    served = _scan("p", predictions, "predictions") if predictions else _NO_PREDICTIONS
    sql = f"""
        WITH req AS (
            SELECT min(epoch_ms(ts)) AS t, count(*) AS n, max(latency_ms) AS latency
            FROM ({served}) WHERE {window} GROUP BY request_id
        ), served AS (
            SELECT t // $size * $size AS b, count(*) AS requests, sum(n) AS rows,
                   quantile_cont(latency, 0.5) AS p50, quantile_cont(latency, 0.99) AS p99
            FROM req GROUP BY b
        ), failed AS (
            SELECT epoch_ms(ts) // $size * $size AS b, count(*) AS errors
            FROM ({_scan("e", errors, "errors")}) WHERE {window} GROUP BY b
        )
        SELECT g.b AS t, coalesce(s.requests, 0) AS requests, coalesce(s.rows, 0) AS rows,
               coalesce(f.errors, 0) AS errors, s.p50, s.p99
        FROM range($first, $last + 1, $size) g(b)
        LEFT JOIN served s ON s.b = g.b LEFT JOIN failed f ON f.b = g.b
        ORDER BY g.b
    """
    with duckdb.connect() as con:
        frame = con.sql(sql, params=params).df()
    answered = frame["requests"] + frame["errors"]
    return pd.DataFrame(
        {
            "time": pd.to_datetime(frame["t"], unit="ms", utc=True),
            "requests": frame["requests"].astype("int64"),
            "rows": frame["rows"].astype("int64"),
            "errors": frame["errors"].astype("int64"),
            "error_rate": (frame["errors"] / answered.where(answered > 0)).astype(float),
            "p50_ms": frame["p50"].astype(float),
            "p99_ms": frame["p99"].astype(float),
        },
        columns=COLUMNS,
    )


__all__ = ["request_stats"]
