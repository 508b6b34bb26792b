"""``create_app``: the platform server's Starlette app over one workspace.

Routes: ``/api/v1`` (tracking, blobs, registry, data, operations, users and audit),
health probes and ``/openapi.json``. Every request error is answered in one JSON shape
(see :mod:`loopml.server._errors`); auth and the audit log wrap every route.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml._version import __version__
from loopml.errors import LoopmlError
from loopml.server._audit import AuditMiddleware, audit_routes
from loopml.server._auth import AuthMiddleware, auth_routes
from loopml.server._blob_routes import blob_routes
from loopml.server._data_routes import data_routes
from loopml.server._errors import ApiError, error_response
from loopml.server._http import json_response
from loopml.server._mlflow import mlflow_routes
from loopml.server._openapi import openapi_spec
from loopml.server._ops_routes import ops_routes
from loopml.server._pipeline_routes import pipeline_routes
from loopml.server._registry_routes import registry_routes
from loopml.server._tracking_routes import tracking_routes
from loopml.server.ui import ui_routes
from loopml.store import Workspace


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    message = (
        f"no route {request.method} {request.url.path}"
        if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    return error_response(ApiError(exc.status_code, code, message))


async def _loopml_error(request: Request, exc: Exception) -> Response:
    return error_response(exc)


def api_routes(ws: Workspace) -> list[BaseRoute]:
    """Every ``/api/v1`` route."""
    return [
        *tracking_routes(ws),
        *blob_routes(ws),
        *registry_routes(ws),
        *data_routes(ws),
        *ops_routes(ws),
        *pipeline_routes(ws),
        *auth_routes(),
        *audit_routes(ws),
    ]


def create_app(ws: Workspace, *, auth: bool = False) -> Starlette:
    """The platform server over ``ws``.

    Parameters
    ----------
    ws : the workspace served (its own store: SQLite or PostgreSQL, any blob store).
    auth : require an API token on every request but the probes and the spec.
    """
    routes = api_routes(ws)
    spec = openapi_spec(routes, __version__)  # loopml's own API; MLflow's is documented by MLflow

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ws.db.current_revision()  # StoreError (503) while the database is down
        return json_response({"status": "ready", "version": __version__})

    async def openapi(request: Request) -> Response:
        return json_response(spec)

    routes += [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *ui_routes(ws, auth=auth),
    ]
    return Starlette(
        routes=[*mlflow_routes(ws), *routes],  # MLflow's prefixes first: one test each
        middleware=[
            Middleware(AuditMiddleware, ws=ws),
            Middleware(AuthMiddleware, ws=ws, enabled=auth),
        ],
        exception_handlers={
            HTTPException: _http_error,
            LoopmlError: _loopml_error,
            Exception: _loopml_error,
        },
    )


__all__ = ["api_routes", "create_app"]
