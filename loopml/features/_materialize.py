"""``materialize``: copy each view's latest values per entity into the online store.

A window is half-open, ``[start, end)`` on the view's timestamp. Without ``start`` the
window begins at the view's watermark for this online store (the ``end`` of its last
materialization; the beginning of time the first time, or after the view changed
version), so repeated calls are incremental. The online store keeps a row only if it is
at least as new as the stored one, so overlapping windows never roll values back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd
import sqlalchemy as sa

from loopml.errors import InvalidInput
from loopml.features._online import OnlineStore, encode_key
from loopml.features._registry import Registered, get, latest
from loopml.features._source import connect, resolve_source
from loopml.features._source import quote as q
from loopml.features._stores import default_online_store
from loopml.store import Workspace, default_workspace, now_ms
from loopml.store.schema import feature_watermarks

_BATCH = 10_000
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Materialized:
    """What one view's materialization wrote."""

    view: str
    version: int
    start: datetime | None
    end: datetime
    rows: int


def to_ms(value: Any, what: str) -> int:
    """A time (datetime, pandas Timestamp, ISO string; naive means UTC) in ms since epoch."""
    if isinstance(value, datetime) and not isinstance(value, pd.Timestamp):  # the fast path
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{what}: {value!r} is not a time: {exc}") from None
    if ts is pd.NaT:
        raise InvalidInput(f"{what}: {value!r} is not a time")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def watermark(ws: Workspace, view: Registered, store: OnlineStore) -> int | None:
    """The end of the view's last materialization into ``store`` (None: never, or an older
    version of the view)."""
    t = feature_watermarks
    with ws.db.read() as conn:
        row = conn.execute(
            sa.select(t.c.watermark, t.c.view_version).where(
                t.c.view == view.name, t.c.store == store.name
            )
        ).first()
    if row is None or row.view_version != view.version:
        return None
    return int(row.watermark)


def _set_watermark(
    ws: Workspace, view: Registered, store: OnlineStore, end: int, rows: int
) -> None:
    with ws.db.write() as conn:
        ws.db.upsert(
            conn,
            feature_watermarks,
            [
                {
                    "view": view.name,
                    "store": store.name,
                    "view_version": view.version,
                    "watermark": end,
                    "rows": rows,
                    "updated_at": now_ms(),
                }
            ],
            keys=["view", "store"],
            update=["view_version", "watermark", "rows", "updated_at"],
        )


def view_rows(
    ws: Workspace, view: Registered, start: int | None, end: int
) -> tuple[duckdb.DuckDBPyConnection, Any, list[str]]:
    """A reader of the view's latest row per entity in ``[start, end)`` (keys, ``__t``
    in ms, features), its connection, and the join keys."""
    spec = view.spec
    keys: list[str] = []
    for entity in spec["entities"]:
        keys += get(ws, "entity", entity).spec["join_keys"]
    keys = list(dict.fromkeys(keys))
    src = resolve_source(ws, spec["source"], f"feature view {view.name!r}")
    ts = f"CAST({q(spec['timestamp_field'])} AS TIMESTAMP)"
    where = [f"{ts} < make_timestamp({end * 1000})"]
    if start is not None:
        where.append(f"{ts} >= make_timestamp({start * 1000})")
    feats = [f["name"] for f in spec["features"]]
    query = (
        f"SELECT {', '.join(map(q, keys))}, epoch_ms({ts}) AS __t, {', '.join(map(q, feats))} "
        f"FROM ({src.sql}) WHERE {' AND '.join(where)} "
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join(map(q, keys))} ORDER BY {ts} DESC) = 1"
    )
    con = connect()
    try:
        reader = con.sql(query).to_arrow_reader(_BATCH)
    except duckdb.Error as exc:
        con.close()
        raise InvalidInput(
            f"feature view {view.name!r}: reading its source failed: {exc}"
        ) from None
    return con, reader, keys


def _materialize_view(
    ws: Workspace,
    view: Registered,
    store: OnlineStore,
    start: int | None,
    end: int,
    progress: Progress | None,
) -> Materialized:
    con, reader, keys = view_rows(ws, view, start, end)
    feats = [f["name"] for f in view.spec["features"]]
    total = 0
    try:
        for batch in reader:
            cols = batch.to_pydict()
            key_cols = [cols[k] for k in keys]
            rows = [
                (
                    encode_key([c[i] for c in key_cols]),
                    cols["__t"][i],
                    {f: cols[f][i] for f in feats},
                )
                for i in range(batch.num_rows)
            ]
            store.write(view.name, rows)
            total += len(rows)
            if progress is not None:
                progress(view.name, total)
    finally:
        con.close()
    previous = watermark(ws, view, store)
    _set_watermark(ws, view, store, max(end, previous or end), total)
    begin = None if start is None else _from_ms(start)
    return Materialized(view.name, view.version, begin, _from_ms(end), total)


def materialize(
    start: Any = None,
    end: Any = None,
    *,
    views: Sequence[str] | None = None,
    store: OnlineStore | None = None,
    progress: Progress | None = None,
    workspace: Workspace | None = None,
) -> list[Materialized]:
    """Write the latest values in ``[start, end)`` of each view into the online store.

    Parameters
    ----------
    start : window start (datetime or ISO string, naive = UTC); default: each view's
        watermark for this store — incremental after the first run.
    end : window end; default: now.
    views : the feature views to materialize (default: all).
    store : the online store (default: the workspace's, from settings ``online_store``).
    progress : called with ``(view, rows written so far)``.

    Returns
    -------
    list[Materialized]
        Per view: the window and the number of entity rows written.
    """
    ws = workspace or default_workspace()
    end_ms = now_ms() if end is None else to_ms(end, "end")
    start_ms = None if start is None else to_ms(start, "start")
    if start_ms is not None and start_ms >= end_ms:
        raise InvalidInput(f"start ({start}) must be before end ({end})")
    target = store if store is not None else default_online_store(ws)
    if views is None:
        chosen = latest(ws, ["feature_view"])
    else:
        if isinstance(views, str):
            views = [views]
        chosen = [get(ws, "feature_view", v) for v in views]
    results = []
    for view in chosen:
        begin = start_ms if start_ms is not None else watermark(ws, view, target)
        if begin is not None and begin >= end_ms:
            window = (_from_ms(begin), _from_ms(end_ms))
            results.append(Materialized(view.name, view.version, *window, 0))
            continue
        results.append(_materialize_view(ws, view, target, begin, end_ms, progress))
    return results
