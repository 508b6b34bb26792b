"""Stored monitor reports: list them, read one's JSON or its self-contained HTML page."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from loopml.errors import InvalidInput, NotFound
from loopml.monitoring._monitor import get_monitor
from loopml.store import Workspace
from loopml.store.schema import monitor_reports


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


@dataclass(frozen=True)
class MonitorReport:
    """A stored check: its ``id``, window, ``rows``, ``drift_share`` (None without drift
    results), ``summary`` (headline figures incl. ``metrics``) and when it was made."""

    id: int
    monitor: str
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    rows: int
    drift_share: float | None
    summary: dict[str, Any]
    created_at: dt.datetime
    report_digest: str
    html_digest: str


def _report(r: Any) -> MonitorReport:
    return MonitorReport(
        id=int(r.id),
        monitor=r.monitor,
        window_start=None if r.window_start is None else _time(r.window_start),
        window_end=None if r.window_end is None else _time(r.window_end),
        rows=int(r.num_rows),
        drift_share=r.drift_share,
        summary=dict(r.summary),
        created_at=_time(r.created_at),
        report_digest=r.report_digest,
        html_digest=r.html_digest,
    )


def list_reports(ws: Workspace, monitor: str, *, limit: int = 100) -> list[MonitorReport]:
    """The newest ``limit`` reports of ``monitor``, newest first.

    Raises
    ------
    NotFound
        No such monitor.
    """
    get_monitor(ws, monitor)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive integer, not {limit!r}")
    t = monitor_reports
    query = (
        sa.select(t)
        .where(t.c.monitor == monitor)
        .order_by(t.c.created_at.desc(), t.c.id.desc())
        .limit(limit)
    )
    with ws.db.read() as conn:
        return [_report(r) for r in conn.execute(query)]


def _report_row(ws: Workspace, report_id: object) -> MonitorReport:
    if isinstance(report_id, bool) or not isinstance(report_id, int) or report_id < 1:
        raise InvalidInput(f"report id must be a positive integer, not {report_id!r}")
    with ws.db.read() as conn:
        row = conn.execute(sa.select(monitor_reports).where(monitor_reports.c.id == report_id))
        found = row.first()
    if found is None:
        raise NotFound(f"no monitor report with id {report_id}")
    return _report(found)


def get_report(ws: Workspace, report_id: int) -> dict[str, Any]:
    """The stored JSON of report ``report_id`` (with its ``id``).

    Raises
    ------
    NotFound
        No report has that id.
    """
    row = _report_row(ws, report_id)
    data_ = json.loads(ws.blobs.get_bytes(row.report_digest))
    return {"id": row.id, **data_}


def report_html(ws: Workspace, report_id: int) -> str:
    """The self-contained HTML page of report ``report_id``.

    Raises
    ------
    NotFound
        No report has that id.
    """
    row = _report_row(ws, report_id)
    return ws.blobs.get_bytes(row.html_digest).decode("utf-8")


__all__ = ["MonitorReport", "get_report", "list_reports", "report_html"]
