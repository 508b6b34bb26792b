"""UI pages for what runs in production: deployments, and one deployment's monitors with
their drift share over time, alerts (firing and resolved) and the closed loop's decisions
with their evidence.

Each is seen by those with a role in the project of the model the deployment serves, as
in ``/api/v1`` (see :mod:`loopml.server._ops_routes`). Request rate, latency and errors are
drawn in the browser from ``/api/v1/deployments/{name}/requests``, refreshed while the page
is open.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml import loop, monitoring, serving
from loopml.server._access import Access
from loopml.server._ops_routes import record_json
from loopml.server.ui._render import page, render
from loopml.store import Workspace

REPORTS = 500  # newest monitor reports drawn per monitor
ALERTS = 200
DECISIONS = 50


def _drift(reports: list[monitoring.MonitorReport]) -> dict[str, list[float | None]]:
    """Oldest first: report times (epoch seconds), drift share and rows, for uPlot."""
    ordered = sorted(reports, key=lambda r: (r.created_at, r.id))
    return {
        "t": [r.created_at.timestamp() for r in ordered],
        "drift_share": [r.drift_share for r in ordered],
        "rows": [float(r.rows) for r in ordered],
    }


def _evidence(evidence: dict[str, Any]) -> str:
    """A decision's evidence as indented JSON (times as epoch ms, NaN as null)."""
    return json.dumps(record_json(evidence), indent=2, sort_keys=True, ensure_ascii=False)


class OpsPages:
    """The operations pages over one workspace."""

    def __init__(self, ws: Workspace, access: Access) -> None:
        self.ws = ws
        self.access = access

    async def deployments(self, request: Request) -> Response:
        found = await run_in_threadpool(serving.list_deployments, self.ws)
        visible = await self.access.visible(request, "deployment", (d.name for d in found))
        shown = [d for d in found if d.name in visible]
        return render(request, "deployments.html", deployments=shown)

    def _view(self, name: str) -> dict[str, Any]:
        deployment = serving.get_deployment(self.ws, name)
        monitors: list[dict[str, Any]] = []
        series: dict[str, dict[str, list[float | None]]] = {}
        thresholds: dict[str, float] = {}
        for m in monitoring.list_monitors(self.ws, name):
            reports = monitoring.list_reports(self.ws, m.name, limit=REPORTS)
            alerts = monitoring.list_alerts(self.ws, source=m.name, state=None, limit=ALERTS)
            monitors.append(
                {
                    "monitor": m,
                    "latest": reports[0] if reports else None,
                    "count": len(reports),
                    "alerts": alerts,
                    "firing": sum(a.state == "firing" for a in alerts),
                }
            )
            if reports:
                series[m.name] = _drift(reports)
            thresholds[m.name] = m.drift_share
        decisions = [
            {"decision": d, "evidence": _evidence(d.evidence)}
            for d in loop.history(self.ws, name, limit=DECISIONS)
        ]
        return {
            "deployment": deployment,
            "monitors": monitors,
            "series": series,
            "thresholds": thresholds,
            "decisions": decisions,
        }

    async def deployment(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        await self.access.named(request, "deployment", name, "viewer")
        view = await run_in_threadpool(self._view, name)
        return render(request, "deployment.html", **view)


def ops_routes(ws: Workspace, access: Access) -> list[BaseRoute]:
    """The operations pages."""
    pages = OpsPages(ws, access)
    return [
        Route("/deployments", page(pages.deployments), methods=["GET"]),
        Route("/deployments/{name}", page(pages.deployment), methods=["GET"]),
    ]


__all__ = ["OpsPages", "ops_routes"]
