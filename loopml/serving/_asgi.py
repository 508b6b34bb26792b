"""The Starlette app: routes per protocol, the direct path for predictions, ``create_app``.

Routes: loopml's ``/v1`` API (with ``/v1/features``, online feature lookups), the Open
Inference Protocol (``/v2``), MLflow's
``/invocations``, health probes, Prometheus ``/metrics`` and ``/openapi.json``. Every
request error is a 4xx JSON body ``{"error": "..."}`` naming what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopml._version import __version__
from loopml.errors import InvalidInput, LoopmlError
from loopml.serving._app import (
    ModelServer,
    build_endpoints,
    error_response,
    json_response,
    log,
)
from loopml.serving._auth import BearerAuth
from loopml.serving._batcher import Outcome
from loopml.serving._codec import (
    Parsed,
    UnsupportedMediaType,
    dumps,
    loads,
    media_type,
)
from loopml.serving._codec import parse_v1 as _parse_v1
from loopml.serving._codec import to_list as _to_list
from loopml.serving._compact import compact_predictions
from loopml.serving._deployments import Deployment
from loopml.serving._features import features_route
from loopml.serving._metrics import CONTENT_TYPE, ServingMetrics
from loopml.serving._openapi import openapi_spec
from loopml.serving._pool import (
    Endpoint,
    ModelPool,
    PredictionLog,
    ServeConfig,
    ServedModel,
)
from loopml.serving._predlog import PredictionLogger
from loopml.serving._protocols import V2Request, parse_mlflow, parse_v2, render_v2, v2_metadata
from loopml.serving._v2binary import HEADER as V2_HEADER
from loopml.serving._v2binary import decompress
from loopml.store import Workspace


# -- parse and render per protocol --------------------------------------------------------
def _sticky(parsed: Parsed, field: str | None) -> str | None:
    if field is None:
        return None
    if isinstance(parsed, list):
        first = parsed[0] if parsed and isinstance(parsed[0], dict) else {}
        value = first.get(field)
    elif isinstance(parsed, tuple):
        columns, rows = parsed
        idx = columns.index(field) if field in columns else -1
        row = rows[0] if rows and isinstance(rows[0], list) else []
        value = row[idx] if 0 <= idx < len(row) else None
    else:
        value = parsed[field].iloc[0] if field in parsed.columns and len(parsed) else None
    return None if value is None else str(value)


def _query(request: Request, key: str) -> str | None:
    if not request.scope.get("query_string"):  # skip parsing on the common, bare path
        return None
    return request.query_params.get(key)


def _proba_flag(request: Request) -> bool:
    value = _query(request, "proba") or _query(request, "predict_proba") or ""
    return value.lower() in ("1", "true", "yes")


def _render_v1(served: ServedModel, request_id: str, outcome: Outcome, _: Parsed) -> Any:
    body: dict[str, Any] = {
        "model": served.name,
        "version": served.version,
        "request_id": request_id,
        "predictions": _to_list(outcome.predictions),
    }
    if outcome.probabilities is not None:
        body["probabilities"] = _to_list(outcome.probabilities)
        body["classes"] = outcome.classes
    return body


def _render_mlflow(served: ServedModel, request_id: str, outcome: Outcome, _: Parsed) -> Any:
    return {"predictions": _to_list(outcome.predictions)}


def _compact_closed(ws: Workspace, deployment: str, before: int) -> None:
    """Compact a deployment's hours that closed before ``before`` (from the logger)."""
    result = compact_predictions(ws, deployment, before=before)
    if result.hours:
        log.info(
            "%s: compacted %d log files into %d", deployment, result.files_before, result.hours
        )


def create_app(
    ws: Workspace,
    models: Sequence[str] = (),
    *,
    deployments: Sequence[str | Deployment] = (),
    config: ServeConfig | None = None,
    logger: PredictionLog | bool | None = True,
) -> Starlette:
    """The model server app.

    Parameters
    ----------
    ws : the workspace models (and deployments) are read from and predictions logged to.
    models : model references (``churn@production``, ``churn/3``, ``models:/churn``); each
        is served under its model name and logged under that name.
    deployments : deployment names or records; each is served under its own name with its
        traffic policy (shadow, canary, A/B).
    config : server settings (batching, limits, timeout, hot-swap interval, token).
    logger : ``True`` (default) logs predictions to ``ws`` with a :class:`PredictionLogger`;
        ``False``/``None`` logs nothing; or pass a logger.

    Returns
    -------
    starlette.applications.Starlette
        Models load at startup (the lifespan), so use it under uvicorn or in a
        ``TestClient`` context.

    Raises
    ------
    InvalidInput
        Nothing to serve, a malformed reference, or duplicate endpoint names.
    NotFound
        A model, version, alias or deployment does not exist.
    """
    config = config or ServeConfig()
    endpoints = build_endpoints(ws, models, deployments)
    if logger is True:
        logger = PredictionLogger(ws, on_hour_closed=functools.partial(_compact_closed, ws))
    active_logger: PredictionLog | None = logger or None
    metrics = ServingMetrics(
        None if active_logger is None else (lambda: float(active_logger.dropped))
    )
    pool = ModelPool(ws, endpoints, config, metrics, active_logger)
    server = ModelServer(pool, config, metrics, active_logger)
    routes = _routes(server)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.start()
        server.start()
        try:
            yield
        finally:
            server.draining = True
            await pool.aclose()
            await server.stop()
            if active_logger is not None:
                await asyncio.to_thread(active_logger.close)
            metrics.close()

    middleware = [Middleware(BearerAuth, token=config.token)] if config.token else []
    app = _ServingApp(routes=routes, middleware=middleware, lifespan=lifespan)
    app.direct = not middleware
    app.state.server = server
    app.state.pool = pool
    app.state.metrics = metrics
    return app


class _ServingApp(Starlette):
    """Starlette, except that prediction requests go straight to their handlers.

    The handlers turn every error into a JSON response themselves, so without middleware to
    run (no auth token) a ``POST`` to a prediction route skips Starlette's middleware stack
    and router — about a third of the server's per-request cost outside the model.
    """

    direct = False
    _PREDICT = ("/v1/models/", "/predict")
    _INFER = ("/v2/models/", "/infer")

    def _direct_route(self, path: str) -> tuple[str, str | None] | None:
        if path == "/invocations":
            return path, None
        for head, tail in (self._PREDICT, self._INFER):
            if path.startswith(head) and path.endswith(tail):
                name = path[len(head) : -len(tail)]
                if name and "/" not in name:
                    return head + "{name}" + tail, name
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.direct and scope["type"] == "http" and scope["method"] == "POST":
            found = self._direct_route(scope["path"])
            if found is not None:
                route = self._handlers[found[0]]
                scope["app"] = self
                scope["path_params"] = {} if found[1] is None else {"name": found[1]}
                response = await route(Request(scope, receive))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    @functools.cached_property
    def _handlers(self) -> dict[str, Any]:
        return {
            r.path: r.endpoint
            for r in self.routes
            if isinstance(r, Route)
            and r.path in ("/invocations", "/v1/models/{name}/predict", "/v2/models/{name}/infer")
        }


def _routes(server: ModelServer) -> list[Route]:
    pool, metrics = server.pool, server.metrics

    async def healthz(request: Request) -> Response:
        return json_response({"status": "alive"})

    async def readyz(request: Request) -> Response:
        waiting = [e.name for e in pool.endpoints.values() if not e.ready]
        if server.draining:
            return json_response({"status": "shutting down"}, 503)
        if waiting:
            return json_response({"status": "loading", "waiting": waiting}, 503)
        return json_response({"status": "ready"})

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return json_response(openapi_spec(pool.endpoints))

    def describe(endpoint: Endpoint) -> dict[str, Any]:
        versions = {}
        for role, slot in endpoint.slots():
            if slot.current is not None:
                versions[role] = {
                    "ref": slot.ref,
                    "model": slot.current.name,
                    "version": slot.current.version,
                    "signature": slot.current.loaded.signature.to_dict(),
                }
        return {"name": endpoint.name, "policy": endpoint.policy, "versions": versions}

    async def list_models(request: Request) -> Response:
        return json_response({"models": [describe(e) for e in pool.endpoints.values()]})

    async def model_info(request: Request) -> Response:
        try:
            return json_response(describe(server.endpoint(request.path_params["name"])))
        except LoopmlError as exc:
            return error_response(exc)

    async def v1_predict(request: Request) -> Response:
        proba = _proba_flag(request)

        def parse(body: bytes, media: str, served: ServedModel) -> tuple[Parsed, bool, str | None]:
            parsed = _parse_v1(body, media)
            return parsed, proba, _sticky(parsed, endpoint_key(request))

        return await server.predict(request, request.path_params["name"], parse, _render_v1)

    def endpoint_key(request: Request) -> str | None:
        endpoint = pool.endpoints.get(request.path_params.get("name", ""))
        return endpoint.sticky_key if endpoint is not None else None

    async def feedback(request: Request) -> Response:
        try:
            return await _feedback(server, request)
        except LoopmlError as exc:
            return error_response(exc)

    async def online_features(request: Request) -> Response:
        try:
            return await features_route(server, request)
        except LoopmlError as exc:
            return error_response(exc)

    async def v2_server(request: Request) -> Response:
        return json_response(
            {"name": "loopml", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    async def v2_live(request: Request) -> Response:
        return json_response({"live": True})

    async def v2_ready(request: Request) -> Response:
        ready = not server.draining and all(e.ready for e in pool.endpoints.values())
        return json_response({"ready": ready}, 200 if ready else 503)

    async def v2_model(request: Request) -> Response:
        version = request.path_params.get("version")
        try:
            endpoint = server.endpoint(request.path_params["name"])
            slot = endpoint.primary if version is None else server.slot(endpoint, version)
            served = server._current(slot)
        except LoopmlError as exc:
            return error_response(exc)
        versions = [s.current.version for _, s in endpoint.slots() if s.current is not None]
        if version is not None:
            versions = [served.version]
        signature = served.loaded.signature
        return json_response(v2_metadata(endpoint.name, versions, signature, served.has_proba))

    async def v2_model_ready(request: Request) -> Response:
        try:
            endpoint = server.endpoint(request.path_params["name"])
            if "version" in request.path_params:
                server.slot(endpoint, request.path_params["version"])
        except LoopmlError as exc:
            return error_response(exc)
        ready = endpoint.ready and not server.draining
        return json_response({"name": endpoint.name, "ready": ready}, 200 if ready else 503)

    async def v2_infer(request: Request) -> Response:
        asked: dict[str, V2Request] = {}
        header = request.headers.get(V2_HEADER)
        encoding = request.headers.get("content-encoding")

        def parse(body: bytes, media: str, served: ServedModel) -> tuple[Parsed, bool, str | None]:
            body = decompress(body, encoding, server.limit)
            v2 = parse_v2(body, media, served.loaded.signature, header)
            asked["request"] = v2
            return v2.parsed, v2.proba, _sticky(v2.parsed, endpoint_key(request))

        def render(served: ServedModel, request_id: str, outcome: Outcome, _: Parsed) -> Any:
            v2 = asked["request"]
            body, chunks = render_v2(
                served.name,
                served.version,
                v2.id or request_id,
                outcome.predictions,
                outcome.probabilities,
                v2,
            )
            if not chunks:
                return body
            head = dumps(body)
            return Response(
                b"".join([head, *chunks]),
                headers={"Inference-Header-Content-Length": str(len(head))},
                media_type="application/octet-stream",
            )

        name, version = request.path_params["name"], request.path_params.get("version")
        return await server.predict(request, name, parse, render, version)

    async def invocations(request: Request) -> Response:
        name = _query(request, "model")
        if name is None:
            if len(pool.endpoints) != 1:
                served = ", ".join(sorted(pool.endpoints))
                return error_response(
                    InvalidInput(f"several models are served ({served}); add ?model=<name>")
                )
            name = next(iter(pool.endpoints))
        sticky = pool.endpoints[name].sticky_key if name in pool.endpoints else None

        def parse(body: bytes, media: str, served: ServedModel) -> tuple[Parsed, bool, str | None]:
            parsed = parse_mlflow(body, media, served.schema.names)
            return parsed, False, _sticky(parsed, sticky)

        return await server.predict(request, name, parse, _render_mlflow)

    return [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/v1/models/{name}/predict", v1_predict, methods=["POST"]),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/ping", healthz),
        Route("/metrics", metrics_route),
        Route("/openapi.json", openapi),
        Route("/v1/models", list_models),
        Route("/v1/models/{name}", model_info),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/v1/features", online_features, methods=["POST"]),
        Route("/v2", v2_server),
        Route("/v2/health/live", v2_live),
        Route("/v2/health/ready", v2_ready),
        Route("/v2/models/{name}", v2_model),
        Route("/v2/models/{name}/ready", v2_model_ready),
        Route("/v2/models/{name}/versions/{version}", v2_model),
        Route("/v2/models/{name}/versions/{version}/ready", v2_model_ready),
        Route("/v2/models/{name}/versions/{version}/infer", v2_infer, methods=["POST"]),
    ]


async def _feedback(server: ModelServer, request: Request) -> Response:
    """``POST /v1/feedback``: ``{"deployment": ..., "feedback": [{"request_id", "label"}]}``."""
    if media_type(request.headers.get("content-type")) != "application/json":
        raise UnsupportedMediaType("feedback takes application/json")
    data = loads(await server.body(request))
    if not isinstance(data, dict) or not isinstance(data.get("feedback"), list):
        raise InvalidInput('send {"deployment": <name>, "feedback": [{"request_id", "label"}]}')
    name = data.get("deployment")
    if not isinstance(name, str):
        raise InvalidInput("'deployment' must be the name of a served model or deployment")
    server.endpoint(name)
    ids, labels = [], []
    for i, item in enumerate(data["feedback"]):
        if not isinstance(item, dict) or "request_id" not in item or "label" not in item:
            raise InvalidInput(f"feedback[{i}] must be an object with request_id and label")
        label = item["label"]
        if not isinstance(label, str | int | float | bool) or label is None:
            raise InvalidInput(f"feedback[{i}].label must be a string, number or boolean")
        ids.append(item["request_id"])
        labels.append(label)
    if not ids:
        raise InvalidInput("feedback is empty")
    if server.logger is None:
        raise InvalidInput("this server does not log predictions, so it keeps no feedback")
    server.logger.log_feedback(name, ids, labels)
    return json_response({"accepted": len(ids)}, 202)
