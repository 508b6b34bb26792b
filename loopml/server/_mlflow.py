"""MLflow's REST API over a loopml workspace, so that the unmodified ``mlflow`` client, with
``MLFLOW_TRACKING_URI=http://<this server>``, logs into and reads from loopml's store.

:func:`mlflow_routes` serves the tracking and model registry APIs under
``/api/2.0/mlflow/`` (and ``/ajax-api/2.0/mlflow/``), the artifact proxy under
``/api/2.0/mlflow-artifacts/artifacts``, and the ``/api/3.0/mlflow/server-info`` probe. The
handlers live in :mod:`._mlflow_tracking`, :mod:`._mlflow_registry` and
:mod:`._mlflow_artifacts`, over :mod:`._mlflow_protocol` (request fields, page tokens) and
:mod:`._mlflow_search` (filters); this module reads requests, runs the handlers in worker
threads, streams artifact bodies and answers in MLflow's shapes. Every error is
``{"error_code": ..., "message": ...}`` with the status MLflow gives that code
(``RESOURCE_DOES_NOT_EXIST`` 404, ``INVALID_PARAMETER_VALUE`` 400, what loopml does not do
``NOT_IMPLEMENTED`` 501); an endpoint this server lacks is ``ENDPOINT_NOT_FOUND`` 404, which
lets the client fall back to another endpoint where it has one.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from loopml.errors import (
    AlreadyExists,
    Conflict,
    CorruptBlob,
    Forbidden,
    InvalidInput,
    MissingDependency,
    NotFound,
    StoreError,
    Unauthorized,
)
from loopml.server import _mlflow_artifacts as artifacts
from loopml.server import _mlflow_registry as registry
from loopml.server import _mlflow_tracking as tracking
from loopml.server._errors import ApiError
from loopml.server._mlflow_access import MlflowAccess
from loopml.server._mlflow_protocol import Fields, Handler, natural, not_implemented
from loopml.server._users import ANONYMOUS, Principal
from loopml.store import Workspace

log = logging.getLogger(__name__)

API_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
INFO_PREFIXES = ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow")
MAX_BODY = 64 << 20  # bytes of a JSON request; artifact uploads are streamed, unbounded
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_WRITE_CHUNK = 1 << 20

# the most precise class first: Forbidden is an Unauthorized, CorruptBlob a StoreError
_ERRORS: tuple[tuple[type[BaseException], int, str], ...] = (
    (Forbidden, 403, "PERMISSION_DENIED"),
    (Unauthorized, 401, "UNAUTHENTICATED"),
    (NotFound, 404, "RESOURCE_DOES_NOT_EXIST"),
    (AlreadyExists, 400, "RESOURCE_ALREADY_EXISTS"),
    (InvalidInput, 400, "INVALID_PARAMETER_VALUE"),
    (Conflict, 400, "INVALID_PARAMETER_VALUE"),
    (MissingDependency, 501, "NOT_IMPLEMENTED"),
    (CorruptBlob, 500, "DATA_LOSS"),
    (StoreError, 503, "TEMPORARILY_UNAVAILABLE"),
)


def json_response(body: Any, status: int = 200) -> Response:
    """A compact JSON answer (handlers give non-finite doubles as strings)."""
    text = json.dumps(body, separators=(",", ":"), allow_nan=False)
    return Response(text, status, media_type="application/json")


def error_response(exc: BaseException) -> Response:
    """MLflow's error answer for ``exc``; anything unexpected is a logged 500."""
    if isinstance(exc, ApiError):
        status, code = exc.status, exc.code
    else:
        status, code = next(
            ((s, c) for kind, s, c in _ERRORS if isinstance(exc, kind)), (500, "INTERNAL_ERROR")
        )
    message = str(exc)
    if status == 500 and code == "INTERNAL_ERROR":
        log.error("internal error in the MLflow API", exc_info=exc)
        message = f"internal error ({type(exc).__name__}); the server log has the details"
    return json_response({"error_code": code, "message": message}, status)


async def _read_body(request: Request) -> bytes:
    declared = natural(request.headers.get("content-length", ""), 19)
    if declared is not None and declared > MAX_BODY:
        raise InvalidInput(f"request body is larger than {MAX_BODY:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise InvalidInput(f"request body is larger than {MAX_BODY:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_fields(request: Request) -> Fields:
    """The request's fields: query parameters of a GET (repeated ones as lists), else its
    JSON body (an empty body is no fields); then the path's parameters."""
    data: dict[str, Any] = {}
    if request.method in ("GET", "HEAD"):
        query = request.query_params
        for key in query:
            values = query.getlist(key)
            data[key] = values[0] if len(values) == 1 else values
    elif (body := await _read_body(request)).strip():
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInput("request body must be a JSON object")
    return Fields(data | request.path_params)


Endpoint = Callable[[Request], Awaitable[Response]]


def _caller(request: Request) -> Principal:
    """The request's principal; with no auth middleware in front, an open server's."""
    found = request.scope.get("state", {}).get("principal")
    return found if isinstance(found, Principal) else ANONYMOUS


def _endpoint(ws: Workspace, handler: Handler, path: str, access: MlflowAccess) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            fields = await read_fields(request)
            who = _caller(request)
            if not who.is_admin:
                await run_in_threadpool(access.check, who, request.method, path, fields)
            body = await run_in_threadpool(handler, ws, fields)
            if not who.is_admin:
                body = await run_in_threadpool(access.visible, who, path, body)
            return json_response(body)
        except Exception as exc:  # the edge of the API: every failure becomes an answer
            return error_response(exc)

    return endpoint


async def _save_body(request: Request, file: Path) -> None:
    """Stream the request body into ``file``, writing in worker threads."""
    with open(file, "wb") as out:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) >= _WRITE_CHUNK:
                await run_in_threadpool(out.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(out.write, bytes(buffer))


def _artifact_endpoints(ws: Workspace, access: MlflowAccess) -> tuple[Endpoint, Endpoint]:
    async def listing(request: Request) -> Response:
        try:
            path = (await read_fields(request)).text("path") or ""
            who = _caller(request)
            if not who.is_admin:
                await run_in_threadpool(access.check_artifact, who, "GET", path)
            return json_response(
                {"files": await run_in_threadpool(artifacts.list_folder, ws, path)}
            )
        except Exception as exc:  # the edge of the API: every failure becomes an answer
            return error_response(exc)

    async def artifact(request: Request) -> Response:
        path = request.path_params["path"]
        try:
            who = _caller(request)
            if not who.is_admin:
                await run_in_threadpool(access.check_artifact, who, request.method, path)
            if request.method == "PUT":
                run, folder, name = await run_in_threadpool(artifacts.upload_target, ws, path)
                with tempfile.TemporaryDirectory(prefix="loopml-mlflow-upload-") as tmp:
                    file = Path(tmp) / name
                    await _save_body(request, file)
                    await run_in_threadpool(artifacts.store_upload, run, folder, file)
                return json_response({})
            if request.method == "DELETE":
                raise not_implemented("loopml keeps every artifact: artifacts cannot be deleted")
            file = await run_in_threadpool(artifacts.open_download, ws, path)
            name = path.rstrip("/").rsplit("/", 1)[-1]
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return FileResponse(
                file, media_type=kind, filename=name, headers={"X-Content-Type-Options": "nosniff"}
            )
        except Exception as exc:  # the edge of the API: every failure becomes an answer
            return error_response(exc)

    return listing, artifact


# -- what the client asks of a server that loopml does not have ----------------------------------
_NO_LOGGED_MODELS = (
    "loopml has no MLflow logged models: log the model's files as run artifacts "
    "(mlflow.log_artifacts) and register runs:/<run_id>/<path>, or use loopml.register_model"
)


def _search_logged_models(ws: Workspace, f: Fields) -> dict[str, Any]:
    """logged-models/search: always empty (the client asks while it lists run artifacts)."""
    for text in f.texts("experiment_ids"):
        tracking.experiment_id(ws, text, create_default=False)
    return {"models": []}


def _get_logged_model(ws: Workspace, f: Fields) -> dict[str, Any]:
    raise NotFound(f"no logged model {f.text('model_id')!r}: {_NO_LOGGED_MODELS}")


def _create_logged_model(ws: Workspace, f: Fields) -> dict[str, Any]:
    raise not_implemented(_NO_LOGGED_MODELS)


LOGGED_MODELS: list[tuple[str, str, Handler]] = [
    ("/logged-models/search", "POST", _search_logged_models),
    ("/logged-models", "POST", _create_logged_model),
    ("/logged-models/{model_id}", "GET", _get_logged_model),
]


async def _server_info(request: Request) -> Response:
    return json_response(
        {
            "artifact_serving_enabled": True,
            "workspaces_enabled": False,
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
            "artifacts_presigned_only": False,
        }
    )


async def _no_endpoint(request: Request) -> Response:
    return json_response(
        {
            "error_code": "ENDPOINT_NOT_FOUND",
            "message": f"this loopml server has no MLflow endpoint {request.method} "
            f"{request.url.path}",
        },
        404,
    )


def mlflow_routes(ws: Workspace) -> list[BaseRoute]:
    """The routes of MLflow's REST API over workspace ``ws``.

    Parameters
    ----------
    ws : the workspace whose runs and models MLflow clients see and write.

    Returns
    -------
    list of starlette routes
        One Mount per MLflow prefix; each answers ``ENDPOINT_NOT_FOUND`` for any other path
        under its prefix.

    Examples
    --------
    >>> app = Starlette(routes=mlflow_routes(ws))  # doctest: +SKIP
    >>> # then: MLFLOW_TRACKING_URI=http://127.0.0.1:8000 python train.py
    """
    handlers = [*tracking.HANDLERS, *registry.HANDLERS, *artifacts.HANDLERS, *LOGGED_MODELS]
    access = MlflowAccess(ws)
    api: list[BaseRoute] = [
        Route(path, _endpoint(ws, handler, path, access), methods=[method])
        for path, method, handler in handlers
    ]
    listing, artifact = _artifact_endpoints(ws, access)
    proxy: list[BaseRoute] = [
        Route("/artifacts", listing, methods=["GET"]),
        Route("/artifacts/{path:path}", artifact, methods=["GET", "PUT", "DELETE"]),
    ]
    info: list[BaseRoute] = [Route("/server-info", _server_info, methods=["GET"])]
    rest = Route("/{rest:path}", _no_endpoint, methods=_METHODS)
    # one Mount per prefix: the router tests a request against a prefix, not every route
    routes: list[BaseRoute] = []
    for prefixes, inner in ((API_PREFIXES, api), (ARTIFACT_PREFIXES, proxy), (INFO_PREFIXES, info)):
        routes += [Mount(prefix, routes=[*inner, rest]) for prefix in prefixes]
    return routes


__all__ = ["error_response", "mlflow_routes", "read_fields"]
