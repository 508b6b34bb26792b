"""The web UI that ``loopml server`` serves at ``/``: server-rendered Jinja2 pages, htmx
for partial updates and uPlot for curves, all shipped in the package (``static/vendor``
holds the upstream files with their licenses; nothing is fetched at run time).

Pages read the workspace through the same services and role checks as ``/api/v1``; with
auth on, a browser logs in at ``/login`` with an API token kept in an HttpOnly cookie.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from loopml.server._access import Access
from loopml.server.ui._compare import compare_routes
from loopml.server.ui._datasets import dataset_routes
from loopml.server.ui._lineage import lineage_routes
from loopml.server.ui._login import login_routes
from loopml.server.ui._models import model_routes
from loopml.server.ui._ops import ops_routes
from loopml.server.ui._runs import run_routes
from loopml.store import Workspace

STATIC = Path(__file__).parent / "static"


async def _home(request: Request) -> Response:
    return RedirectResponse("/experiments", 307)


def ui_routes(ws: Workspace, *, auth: bool = False) -> list[BaseRoute]:
    """Every route of the web UI over ``ws`` (``auth``: whether the server asks for tokens).

    Examples
    --------
    >>> app = Starlette(routes=[*api_routes(ws), *ui_routes(ws)])  # doctest: +SKIP
    """
    access = ws.component(Access)
    return [
        Route("/", _home, methods=["GET"]),
        *login_routes(ws, auth=auth),
        *run_routes(ws, access),
        *model_routes(ws, access),
        *compare_routes(ws, access),
        *lineage_routes(ws, access),
        *dataset_routes(ws, access),
        *ops_routes(ws, access),
        Mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static"),
    ]


__all__ = ["ui_routes"]
