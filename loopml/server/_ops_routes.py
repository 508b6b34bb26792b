"""``/api/v1`` read-only lists of what runs in production: deployments (and their request
statistics), monitors and their reports, alerts, and the closed loop's decisions. Every
list is paginated with ``max_results`` and ``page_token``; times are epoch milliseconds."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Literal

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from loopml import monitoring, serving
from loopml.server._access import Access
from loopml.server._errors import ApiError
from loopml.server._http import (
    decode_page_token,
    finite,
    json_response,
    name_query,
    page,
    query_int,
)
from loopml.server._openapi import ApiRoute
from loopml.store import Workspace
from loopml.store.schema import loop_decisions

_STATES: dict[str, Literal["firing", "resolved"] | None] = {
    "firing": "firing",
    "resolved": "resolved",
    "all": None,
}


def record_json(value: Any) -> Any:
    """A record (dataclass) as JSON: datetimes in epoch ms, NaN and infinities as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): record_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [record_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, float):
        return finite(value)
    return value


def _window(request: Request) -> tuple[int, int]:
    """(offset, size) of the page asked for."""
    size = query_int(request, "max_results", 100, 1, 1000)
    return decode_page_token(request.query_params.get("page_token")), size


def _decisions(ws: Workspace, deployment: str | None, offset: int, limit: int) -> list[Any]:
    """Rows of ``loop_decisions`` as :class:`loopml.loop.Decision` holds them, newest first
    (``loop.history`` lists one deployment's; this pages through every one's)."""
    t = loop_decisions
    query = sa.select(t).order_by(t.c.id.desc()).offset(min(offset, 2**62)).limit(limit)
    if deployment is not None:
        query = query.where(t.c.deployment == deployment)
    with ws.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def ops_routes(ws: Workspace) -> list[BaseRoute]:
    """The operations half of ``/api/v1``: deployments, monitors, alerts, loop decisions.

    Each is seen by those with a role in the project of the model its deployment serves.
    """
    access = ws.component(Access)

    async def deployments(request: Request) -> Response:
        """List deployments, by name"""
        offset, size = _window(request)
        found = await run_in_threadpool(serving.list_deployments, ws)
        visible = await access.visible(request, "deployment", (d.name for d in found))
        found = [d for d in found if d.name in visible]
        items = record_json(found[offset : offset + size + 1])
        return json_response(page("deployments", items, offset, size))

    async def requests(request: Request) -> Response:
        """A deployment's requests, rows, errors and latency per time bucket, oldest first"""
        name = request.path_params["name"]
        await access.named(request, "deployment", name, "viewer")
        q = request.query_params
        stats = await run_in_threadpool(
            lambda: serving.request_stats(
                ws,
                name,
                since=q.get("since", "1h"),
                until=q.get("until"),
                bucket=q.get("bucket", "1m"),
            )
        )
        columns = {
            "t": [round(t.timestamp() * 1000) for t in stats["time"]],
            **{c: [finite(float(v)) for v in stats[c]] for c in stats.columns if c != "time"},
        }
        return json_response({"deployment": name, "buckets": columns})

    async def monitors(request: Request) -> Response:
        """List monitors (of one deployment, if given), by name"""
        offset, size = _window(request)
        deployment = name_query(request, "deployment")
        found = await run_in_threadpool(monitoring.list_monitors, ws, deployment)
        visible = await access.visible(request, "monitor", (m.name for m in found))
        found = [m for m in found if m.name in visible]
        items = record_json(found[offset : offset + size + 1])
        return json_response(page("monitors", items, offset, size))

    async def reports(request: Request) -> Response:
        """List a monitor's stored reports, newest first"""
        offset, size = _window(request)
        name = request.path_params["name"]
        await access.named(request, "monitor", name, "viewer")
        found = await run_in_threadpool(
            lambda: monitoring.list_reports(ws, name, limit=offset + size + 1)
        )
        return json_response(page("reports", record_json(found[offset:]), offset, size))

    async def alerts(request: Request) -> Response:
        """List alerts (firing by default; state=resolved or state=all), newest first"""
        offset, size = _window(request)
        state = request.query_params.get("state", "firing")
        if state not in _STATES:
            raise ApiError(
                422,
                "invalid_input",
                f"state must be firing, resolved or all, not {state!r}",
                "state",
            )
        source = name_query(request, "source")
        found = await run_in_threadpool(
            lambda: monitoring.list_alerts(
                ws, source=source, state=_STATES[state], limit=offset + size + 1
            )
        )
        visible = await access.visible(request, "monitor", {a.source for a in found})
        found = [a for a in found if a.source in visible]
        return json_response(page("alerts", record_json(found[offset:]), offset, size))

    async def decisions(request: Request) -> Response:
        """List the closed loop's decisions (of one deployment, if given), newest first"""
        offset, size = _window(request)
        deployment = name_query(request, "deployment")
        rows = await run_in_threadpool(_decisions, ws, deployment, offset, size + 1)
        visible = await access.visible(request, "deployment", {r["deployment"] for r in rows})
        rows = [r for r in rows if r["deployment"] in visible]
        return json_response(page("decisions", record_json(rows), offset, size))

    paged = ("max_results", "page_token")
    return [
        ApiRoute("/api/v1/deployments", deployments, methods=["GET"], query=paged),
        ApiRoute(
            "/api/v1/deployments/{name}/requests",
            requests,
            methods=["GET"],
            query=("since", "until", "bucket"),
        ),
        ApiRoute("/api/v1/monitors", monitors, methods=["GET"], query=("deployment", *paged)),
        ApiRoute("/api/v1/monitors/{name}/reports", reports, methods=["GET"], query=paged),
        ApiRoute("/api/v1/alerts", alerts, methods=["GET"], query=("source", "state", *paged)),
        ApiRoute(
            "/api/v1/loop/decisions", decisions, methods=["GET"], query=("deployment", *paged)
        ),
    ]


__all__ = ["ops_routes", "record_json"]
