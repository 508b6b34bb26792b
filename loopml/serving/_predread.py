"""Reading the prediction log back: DuckDB over the Parquet partitions that
:class:`~loopml.serving._predlog.PredictionLogger` wrote, found through ``log_partitions``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from loopml.errors import InvalidInput, NotFound
from loopml.serving._predlog import HOUR_MS, TS_TYPE, Kind
from loopml.store import Workspace, now_ms
from loopml.store.schema import log_partitions

TimeLike = dt.datetime | str | None
_ATTEMPTS = 5
_RELATIVE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|w)$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": HOUR_MS, "d": 24 * HOUR_MS, "w": 7 * 24 * HOUR_MS}
_BASE_COLUMNS = {
    "predictions": [
        ("request_id", pa.string()),
        ("ts", TS_TYPE),
        ("deployment", pa.string()),
        ("model", pa.string()),
        ("version", pa.int32()),
        ("role", pa.string()),
        ("latency_ms", pa.float64()),
        ("prediction", pa.null()),
    ],
    "feedback": [("request_id", pa.string()), ("ts", TS_TYPE), ("label", pa.null())],
    "errors": [
        ("request_id", pa.string()),
        ("ts", TS_TYPE),
        ("status", pa.int16()),
        ("error", pa.string()),
    ],
}


def to_ms(value: TimeLike, field: str = "time") -> int | None:
    """Milliseconds since the epoch for a datetime (naive means UTC), an ISO 8601 string, or
    a duration back from now such as ``"15m"``, ``"2h"``, ``"7d"``; None stays None.

    Raises
    ------
    InvalidInput
        ``value`` is none of those; the message names ``field``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        relative = _RELATIVE.match(text)
        if relative:
            return now_ms() - int(float(relative.group(1)) * _UNIT_MS[relative.group(2)])
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(
                f"{field} {text!r} is not a time: use ISO 8601 (2026-05-01T12:00) or a "
                "duration back from now (30s, 15m, 2h, 7d, 1w)"
            ) from None
    if not isinstance(value, dt.datetime):
        raise InvalidInput(f"{field} must be a datetime or a string, not {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


def duration_ms(value: str, field: str = "duration") -> int:
    """Milliseconds in a duration such as ``"30s"``, ``"1m"``, ``"2h"``, ``"7d"`` or ``"1w"``.

    Raises
    ------
    InvalidInput
        ``value`` is not such a duration, or is zero; the message names ``field``.
    """
    found = _RELATIVE.match(value.strip()) if isinstance(value, str) else None
    ms = int(float(found.group(1)) * _UNIT_MS[found.group(2)]) if found else 0
    if ms <= 0:
        raise InvalidInput(
            f"{field} must be a positive duration such as 30s, 1m, 2h, 7d or 1w, not {value!r}"
        )
    return ms


def _files(
    ws: Workspace, deployment: str, kind: Kind, since: int | None, until: int | None
) -> list[str]:
    t = log_partitions
    query = sa.select(t.c.digest).where(t.c.deployment == deployment, t.c.kind == kind)
    if since is not None:
        query = query.where(t.c.max_ts >= since)
    if until is not None:
        query = query.where(t.c.min_ts < until)
    with ws.db.read() as conn:
        digests = list(conn.execute(query.order_by(t.c.hour, t.c.id)).scalars())
    cache = cache_dir(ws)
    return [str(ws.blobs.local_path(d, cache)) for d in digests]


def cache_dir(ws: Workspace) -> Path:
    """Where local copies of remote log blobs are kept."""
    home = ws.settings.home
    return (home / ".loopml" if home else Path(tempfile.gettempdir()) / "loopml") / "cache/blobs"


def _check_limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidInput(f"limit must be a non-negative integer, not {limit!r}")
    return limit


def _scan(name: str, files: list[str], kind: Kind) -> str:
    """SQL of a relation over ``files`` with ordering columns ``_pos`` and ``_row``."""
    if not files:
        cols = ", ".join(
            f"CAST(NULL AS {'TIMESTAMPTZ' if c == 'ts' else 'VARCHAR'}) AS {c}"
            for c, _ in _BASE_COLUMNS[kind][:2]
        )
        return f"SELECT {cols}, 0 AS _pos, 0 AS _row WHERE false"
    return (
        f"SELECT * EXCLUDE (filename, file_row_number), list_position(${name}, filename) AS _pos,"
        f" file_row_number AS _row FROM read_parquet(${name}, union_by_name=true, filename=true,"
        " file_row_number=true)"
    )


def _finish(table: pa.Table, kind: Kind, with_labels: bool) -> pa.Table:
    if table.num_rows == 0 and "deployment" not in table.column_names and kind == "predictions":
        labels = [("label", pa.null()), ("label_ts", TS_TYPE)] if with_labels else []
        return pa.schema(_BASE_COLUMNS[kind] + labels).empty_table()
    if table.num_rows == 0 and "label" not in table.column_names and kind == "feedback":
        return pa.schema(_BASE_COLUMNS[kind]).empty_table()
    if table.num_rows == 0 and "status" not in table.column_names and kind == "errors":
        return pa.schema(_BASE_COLUMNS[kind]).empty_table()
    for name in ("ts", "label_ts"):
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, name, table.column(name).cast(TS_TYPE))
    return table


def _query(
    ws: Workspace,
    deployment: str,
    kind: Kind,
    *,
    since: TimeLike,
    until: TimeLike,
    limit: int | None,
    role: str | None = None,
    with_labels: bool = False,
    only_labelled: bool = False,
) -> pa.Table:
    lo, hi = to_ms(since, "since"), to_ms(until, "until")
    _check_limit(limit)
    if not isinstance(deployment, str) or not deployment:
        raise InvalidInput(f"deployment must be a non-empty string, not {deployment!r}")
    args = (ws, deployment, kind, lo, hi, limit, role, with_labels, only_labelled)
    for _ in range(_ATTEMPTS - 1):
        # a compaction may delete files listed a moment ago: then list them again
        with contextlib.suppress(NotFound, duckdb.IOException):
            return _run(*args)
    return _run(*args)


def _run(
    ws: Workspace,
    deployment: str,
    kind: Kind,
    lo: int | None,
    hi: int | None,
    limit: int | None,
    role: str | None,
    with_labels: bool,
    only_labelled: bool,
) -> pa.Table:
    files = _files(ws, deployment, kind, lo, hi)
    params: dict[str, Any] = {}
    if files:
        params["files"] = files
    where = ["true"]
    if lo is not None:
        where.append("epoch_ms(ts) >= $lo")
        params["lo"] = lo
    if hi is not None:
        where.append("epoch_ms(ts) < $hi")
        params["hi"] = hi
    if role is not None and files:
        where.append("role = $role")
        params["role"] = role
    rows = f"SELECT * FROM ({_scan('files', files, kind)}) WHERE {' AND '.join(where)}"
    if with_labels:
        feedback = _files(ws, deployment, "feedback", lo, None)
        if feedback:
            params["labels"] = feedback
        latest = (
            "SELECT request_id AS _rid, label, ts AS label_ts, row_number() OVER (PARTITION BY "
            f"request_id ORDER BY ts DESC, _pos DESC, _row DESC) AS _n FROM "
            f"({_scan('labels', feedback, 'feedback')})"
        )
        if not feedback:
            latest = (
                "SELECT NULL::VARCHAR AS _rid, NULL AS label, NULL::TIMESTAMPTZ AS label_ts,"
                " 1 AS _n WHERE false"
            )
        join = "JOIN" if only_labelled else "LEFT JOIN"
        rows = (
            f"SELECT r.*, l.label, l.label_ts FROM ({rows}) r {join} ({latest}) l "
            "ON r.request_id = l._rid AND l._n = 1"
        )
    order = "ts, _pos, _row"
    sql = f"SELECT * FROM ({rows}) ORDER BY {order}"
    if limit is not None:
        newest = "ts DESC, _pos DESC, _row DESC"
        sql = f"SELECT * FROM ({rows} ORDER BY {newest} LIMIT {limit}) ORDER BY {order}"
    with duckdb.connect() as con:
        table = con.sql(sql, params=params).to_arrow_table()
    return _finish(table.drop_columns(["_pos", "_row"]), kind, with_labels)


def read_predictions(
    ws: Workspace,
    deployment: str,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    limit: int | None = None,
    role: str | None = None,
) -> pa.Table:
    """Logged predictions of ``deployment``, oldest first.

    Parameters
    ----------
    ws : the workspace.
    deployment : deployment name.
    since, until : time window ``[since, until)``: datetimes (naive means UTC), ISO strings
        or durations back from now (``"15m"``, ``"2h"``, ``"7d"``).
    limit : keep only the newest ``limit`` rows (still returned oldest first).
    role : only rows of this role (``primary``, ``shadow`` or ``candidate``).

    Returns
    -------
    pyarrow.Table
        ``request_id``, ``ts``, ``deployment``, ``model``, ``version``, ``role``,
        ``latency_ms``, ``input.<column>``..., ``prediction``, ``proba.<class>``...; files
        with different columns are unioned by name.

    Raises
    ------
    InvalidInput
        A malformed time or limit.
    """
    return _query(ws, deployment, "predictions", since=since, until=until, limit=limit, role=role)


def read_feedback(
    ws: Workspace,
    deployment: str,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    limit: int | None = None,
) -> pa.Table:
    """Feedback labels of ``deployment`` (``request_id``, ``ts``, ``label``), oldest first."""
    return _query(ws, deployment, "feedback", since=since, until=until, limit=limit)


def read_errors(
    ws: Workspace,
    deployment: str,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    limit: int | None = None,
) -> pa.Table:
    """Requests of ``deployment`` that got an error answer (``request_id``, ``ts``,
    ``status``, ``error``), oldest first."""
    return _query(ws, deployment, "errors", since=since, until=until, limit=limit)


def labelled_predictions(
    ws: Workspace,
    deployment: str,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    limit: int | None = None,
    role: str | None = None,
    only_labelled: bool = False,
) -> pa.Table:
    """Predictions (as :func:`read_predictions`) with the latest feedback label of each
    request id in columns ``label`` and ``label_ts`` (null where none arrived yet; with
    ``only_labelled``, those rows are left out). Labels are matched whenever they arrived
    after ``since``, however long after the prediction."""
    return _query(
        ws,
        deployment,
        "predictions",
        since=since,
        until=until,
        limit=limit,
        role=role,
        with_labels=True,
        only_labelled=only_labelled,
    )


__all__ = [
    "TimeLike",
    "cache_dir",
    "labelled_predictions",
    "read_feedback",
    "read_predictions",
    "to_ms",
]
