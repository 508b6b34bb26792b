"""The model server as a Starlette app, built from constructor arguments.

Routes: loopml's ``/v1`` API, the Open Inference Protocol (``/v2``), MLflow's
``/invocations``, health probes, Prometheus ``/metrics`` and ``/openapi.json``. Every
request error is a 4xx JSON body ``{"error": "..."}`` naming what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopml._version import __version__
from loopml.errors import InvalidInput, LoopmlError, NotFound, Unauthorized
from loopml.registry import get_model_version, parse_model_uri
from loopml.serving._auth import BearerAuth
from loopml.serving._batcher import Outcome
from loopml.serving._codec import (
    BadRequest,
    Parsed,
    UnsupportedMediaType,
    dumps,
    loads,
    media_type,
)
from loopml.serving._codec import parse_v1 as _parse_v1
from loopml.serving._codec import to_list as _to_list
from loopml.serving._deployments import Deployment, get_deployment, resolve_version
from loopml.serving._metrics import CONTENT_TYPE, ServingMetrics
from loopml.serving._openapi import openapi_spec
from loopml.serving._pool import (
    BatcherClosed,
    Endpoint,
    ModelPool,
    PredictionLog,
    ServeConfig,
    ServedModel,
    Slot,
)
from loopml.serving._predlog import PredictionLogger
from loopml.serving._protocols import parse_mlflow, parse_v2, render_v2, v2_metadata
from loopml.store import Workspace

log = logging.getLogger("loopml.serving")
_THREAD_PARSE_BYTES = 256 * 1024  # bodies larger than this are parsed off the event loop
_RETRIES = 3


class BodyTooLarge(InvalidInput):
    """The request body exceeds the configured limit."""


class Unavailable(LoopmlError):
    """The endpoint is not ready (still loading, or shutting down)."""


_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (BodyTooLarge, 413),
    (UnsupportedMediaType, 415),
    (BadRequest, 400),
    (InvalidInput, 422),
    (NotFound, 404),
    (Unauthorized, 401),
    (Unavailable, 503),
    (TimeoutError, 504),
    (ValueError, 422),  # the model itself rejected the input
    (TypeError, 422),
)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status, headers, media_type="application/json")


def error_response(exc: BaseException, request_id: str | None = None) -> Response:
    """The JSON error response for ``exc`` (4xx for anything a request can cause)."""
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    if status == 500:
        log.error("internal error", exc_info=exc)
        message = f"internal error ({type(exc).__name__})"
    elif status == 504:
        message = "timed out waiting for the prediction"
    elif isinstance(exc, ValueError | TypeError) and not isinstance(exc, LoopmlError):
        message = f"the model rejected the input: {str(exc)[:300]}"
    else:
        message = str(exc)
    headers = {"X-Request-Id": request_id} if request_id else None
    return _json({"error": message}, status, headers)


def _endpoint_for_ref(ws: Workspace, ref: str) -> Endpoint:
    name, version, _ = parse_model_uri(ref)
    get_model_version(ws, ref)  # fail now, with the registry's message, if it does not exist
    return Endpoint(name, Slot(ref, lambda: get_model_version(ws, ref), movable=version is None))


def _endpoint_for_deployment(ws: Workspace, d: Deployment) -> Endpoint:
    def slot(ref: str) -> Slot:
        return Slot(
            f"{d.model}{ref if ref.startswith('@') else '/' + ref}",
            lambda: get_model_version(ws, d.model, resolve_version(ws, d.model, ref)),
            movable=ref.startswith("@"),
        )

    def reload() -> Endpoint | None:
        fresh = get_deployment(ws, d.name)
        return None if fresh.updated_at == d.updated_at else _endpoint_for_deployment(ws, fresh)

    candidate = slot(d.candidate) if d.candidate is not None else None
    return Endpoint(
        d.name,
        slot(d.primary),
        candidate,
        policy=d.policy,
        route=d.route,
        sticky_key=d.sticky_key,
        reload=reload,
    )


def build_endpoints(
    ws: Workspace, models: Sequence[str], deployments: Sequence[str | Deployment] = ()
) -> dict[str, Endpoint]:
    """Endpoints for model references and deployments (names or records).

    Raises
    ------
    InvalidInput
        Nothing to serve, a malformed reference, or two endpoints with one name.
    NotFound
        A model, version, alias or deployment does not exist.
    """
    if isinstance(models, str):
        models = [models]
    endpoints: list[Endpoint] = [_endpoint_for_ref(ws, ref) for ref in models]
    for d in deployments:
        record = get_deployment(ws, d) if isinstance(d, str) else d
        endpoints.append(_endpoint_for_deployment(ws, record))
    if not endpoints:
        raise InvalidInput("nothing to serve: give at least one model reference or deployment")
    out: dict[str, Endpoint] = {}
    for e in endpoints:
        if e.name in out:
            raise InvalidInput(
                f"two endpoints are named {e.name!r}; serve one version per model name "
                "(use a deployment for shadow, canary or A/B)"
            )
        out[e.name] = e
    return out


class ModelServer:
    """The request handlers over a :class:`ModelPool` (one per app)."""

    def __init__(
        self,
        pool: ModelPool,
        config: ServeConfig,
        metrics: ServingMetrics,
        logger: PredictionLog | None,
    ) -> None:
        self.pool = pool
        self.config = config
        self.metrics = metrics
        self.logger = logger
        self.limit = int(config.max_body_mb * 1024 * 1024)
        self.draining = False
        self._shadows: set[asyncio.Future[Outcome]] = set()
        self._prefix = os.urandom(6).hex()  # unique per process; a counter makes ids unique
        self._ids = itertools.count(1)
        # weak: a finished request's future (and its result) is not kept for the timeout
        self._deadlines: deque[tuple[float, weakref.ref[asyncio.Future[Outcome]]]] = deque()
        self._sweeper: asyncio.Task[None] | None = None

    def _new_id(self) -> str:
        return f"{self._prefix}{next(self._ids):08x}"

    def start(self) -> None:
        """Start the timeout sweeper (on the app's event loop)."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        """Stop the timeout sweeper."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _sweep(self) -> None:
        """Fail predictions waiting past the timeout (one timer for all requests).

        Deadlines are appended in time order (the timeout is one constant), so the overdue
        ones are always at the left end.
        """
        loop = asyncio.get_running_loop()
        tick = min(0.25, self.config.timeout_s / 4)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            while self._deadlines and self._deadlines[0][0] <= now:
                future = self._deadlines.popleft()[1]()
                if future is not None and not future.done():
                    future.set_exception(TimeoutError())

    # -- shared steps ---------------------------------------------------------------------
    def endpoint(self, name: str) -> Endpoint:
        endpoint = self.pool.endpoints.get(name)
        if endpoint is None:
            served = ", ".join(sorted(self.pool.endpoints))
            raise NotFound(f"no model or deployment {name!r} is served here; served: {served}")
        return endpoint

    async def body(self, request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            raise BodyTooLarge(f"the body has {length} bytes; the limit is {self.limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.limit:
                raise BodyTooLarge(f"the body exceeds the limit of {self.limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def predict(
        self,
        request: Request,
        name: str,
        parse: Callable[[bytes, str, ServedModel], tuple[Parsed, bool, str | None]],
        render: Callable[[ServedModel, str, Outcome, Parsed], Any],
    ) -> Response:
        """Read, parse, route, batch, answer — the path every prediction protocol shares."""
        start = time.perf_counter()
        request_id = request.headers.get("x-request-id") or self._new_id()
        try:
            endpoint = self.endpoint(name)
        except NotFound as exc:
            self.metrics.request("_unknown", 404, time.perf_counter() - start)
            return error_response(exc, request_id)
        try:
            served, outcome, parsed = await self._predict(request, endpoint, parse, request_id)
            body = render(served, request_id, outcome, parsed)
            response = _json(
                body,
                headers={
                    "X-Request-Id": request_id,
                    "X-Model-Name": served.name,
                    "X-Model-Version": str(served.version),
                },
            )
        except (LoopmlError, TimeoutError, ValueError, TypeError) as exc:
            response = error_response(exc, request_id)
            if self.logger is not None:  # what a monitor's error_rate counts
                self.logger.log_error(name, request_id, response.status_code, str(exc))
        self.metrics.request(name, response.status_code, time.perf_counter() - start)
        return response

    async def _predict(
        self,
        request: Request,
        endpoint: Endpoint,
        parse: Callable[[bytes, str, ServedModel], tuple[Parsed, bool, str | None]],
        request_id: str,
    ) -> tuple[ServedModel, Outcome, Parsed]:
        endpoint.arrivals.expect()
        queued = False
        try:
            body = await self.body(request)
            media = media_type(request.headers.get("content-type"))
            primary = self._current(endpoint.primary)
            big = len(body) > _THREAD_PARSE_BYTES
            if big:
                parsed, proba, key = await asyncio.to_thread(parse, body, media, primary)
            else:
                parsed, proba, key = parse(body, media, primary)
            key = request.headers.get("x-request-key") or key
            for _ in range(_RETRIES):
                slot, _ = endpoint.choose(key)
                served = self._current(slot)
                if proba and not served.has_proba:
                    raise InvalidInput(
                        f"{served.name}/{served.version} has no predict_proba (not a classifier)"
                    )
                if big:
                    data, rows = await asyncio.to_thread(served.schema.prepare, parsed)
                else:
                    data, rows = served.schema.prepare(parsed)
                try:
                    future = served.submit(data, rows, proba, request_id)
                except BatcherClosed:
                    continue
                queued = True
                break
            else:
                raise Unavailable(f"{endpoint.name}: the model kept being swapped; retry")
        finally:
            if not queued:
                endpoint.arrivals.arrived()
        if endpoint.policy == "shadow" and endpoint.candidate is not None:
            self._shadow(endpoint, parsed, request_id)
        deadline = asyncio.get_running_loop().time() + self.config.timeout_s
        self._deadlines.append((deadline, weakref.ref(future)))
        try:
            outcome = await future
        except asyncio.CancelledError:
            future.cancel()
            raise
        return served, outcome, parsed

    def _current(self, slot: Slot) -> ServedModel:
        served = slot.current
        if served is None or self.draining:
            raise Unavailable(f"{slot.ref} is not loaded yet, or the server is shutting down")
        return served

    def _shadow(self, endpoint: Endpoint, parsed: Parsed, request_id: str) -> None:
        """Mirror a request to the shadow candidate, off the request path."""
        served = endpoint.candidate.current if endpoint.candidate is not None else None
        if served is None:
            return
        try:
            data, rows = served.schema.prepare(parsed)
            future = served.submit(data, rows, False, request_id, expected=False)
        except (LoopmlError, BatcherClosed, ValueError, TypeError) as exc:
            log.info(
                "%s: shadow %s/%s skipped: %s", endpoint.name, served.name, served.version, exc
            )
            return
        self._shadows.add(future)
        future.add_done_callback(self._shadow_done)

    def _shadow_done(self, future: asyncio.Future[Outcome]) -> None:
        self._shadows.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.info("shadow prediction failed: %s", future.exception())


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
        logger = PredictionLogger(ws)
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
        return _json({"status": "alive"})

    async def readyz(request: Request) -> Response:
        waiting = [e.name for e in pool.endpoints.values() if not e.ready]
        if server.draining:
            return _json({"status": "shutting down"}, 503)
        if waiting:
            return _json({"status": "loading", "waiting": waiting}, 503)
        return _json({"status": "ready"})

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return _json(openapi_spec(pool.endpoints))

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
        return _json({"models": [describe(e) for e in pool.endpoints.values()]})

    async def model_info(request: Request) -> Response:
        try:
            return _json(describe(server.endpoint(request.path_params["name"])))
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

    async def v2_server(request: Request) -> Response:
        return _json({"name": "loopml", "version": __version__, "extensions": []})

    async def v2_live(request: Request) -> Response:
        return _json({"live": True})

    async def v2_ready(request: Request) -> Response:
        ready = not server.draining and all(e.ready for e in pool.endpoints.values())
        return _json({"ready": ready}, 200 if ready else 503)

    async def v2_model(request: Request) -> Response:
        try:
            endpoint = server.endpoint(request.path_params["name"])
            served = server._current(endpoint.primary)
        except LoopmlError as exc:
            return error_response(exc)
        versions = [s.current.version for _, s in endpoint.slots() if s.current is not None]
        return _json(v2_metadata(endpoint.name, versions, served.loaded.signature))

    async def v2_model_ready(request: Request) -> Response:
        try:
            endpoint = server.endpoint(request.path_params["name"])
        except LoopmlError as exc:
            return error_response(exc)
        ready = endpoint.ready and not server.draining
        return _json({"name": endpoint.name, "ready": ready}, 200 if ready else 503)

    async def v2_infer(request: Request) -> Response:
        ids: dict[str, str | None] = {}

        def parse(body: bytes, media: str, served: ServedModel) -> tuple[Parsed, bool, str | None]:
            parsed, proba, given = parse_v2(body, media, served.loaded.signature)
            ids["id"] = given
            return parsed, proba, _sticky(parsed, endpoint_key(request))

        def render(served: ServedModel, request_id: str, outcome: Outcome, _: Parsed) -> Any:
            return render_v2(
                served.name,
                served.version,
                ids.get("id") or request_id,
                outcome.predictions,
                outcome.probabilities,
            )

        return await server.predict(request, request.path_params["name"], parse, render)

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
        Route("/v2", v2_server),
        Route("/v2/health/live", v2_live),
        Route("/v2/health/ready", v2_ready),
        Route("/v2/models/{name}", v2_model),
        Route("/v2/models/{name}/ready", v2_model_ready),
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
    return _json({"accepted": len(ids)}, 202)
