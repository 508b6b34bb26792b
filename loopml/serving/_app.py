"""The request path every prediction protocol shares: endpoints from references and
deployments, :class:`ModelServer` (read, parse, route, batch, answer, time out, shadow),
and the JSON error responses (4xx naming what is wrong; 500 only for a bug).
The routes and the Starlette app are in :mod:`loopml.serving._asgi`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import InvalidInput, LoopmlError, NotFound, Unauthorized
from loopml.registry import get_model_version, parse_model_uri
from loopml.serving._batcher import Outcome
from loopml.serving._codec import (
    BadRequest,
    Parsed,
    UnsupportedMediaType,
    dumps,
    media_type,
)
from loopml.serving._deployments import Deployment, get_deployment, resolve_version
from loopml.serving._metrics import ServingMetrics
from loopml.serving._pool import (
    BatcherClosed,
    Endpoint,
    ModelPool,
    PredictionLog,
    ServeConfig,
    ServedModel,
    Slot,
)
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


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
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
    return json_response({"error": message}, status, headers)


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
        features=d.features,
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

    def slot(self, endpoint: Endpoint, version: str) -> Slot:
        """The slot of ``endpoint`` serving model version ``version`` now.

        Raises
        ------
        NotFound
            No slot serves that version.
        """
        served = []
        for _, slot in endpoint.slots():
            if slot.current is not None:
                if str(slot.current.version) == version:
                    return slot
                served.append(str(slot.current.version))
        raise NotFound(
            f"{endpoint.name} has no version {version!r} loaded here; it serves "
            f"{', '.join(served) or 'none yet'}"
        )

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
        version: str | None = None,
    ) -> Response:
        """Read, parse, route, batch, answer — the path every prediction protocol shares.

        ``render`` returns a JSON-ready body, or a finished :class:`Response`. A ``version``
        sends the request to the slot serving that version instead of the traffic policy.
        """
        start = time.perf_counter()
        request_id = request.headers.get("x-request-id") or self._new_id()
        try:
            endpoint = self.endpoint(name)
        except NotFound as exc:
            self.metrics.request("_unknown", 404, time.perf_counter() - start)
            return error_response(exc, request_id)
        try:
            served, outcome, parsed = await self._predict(
                request, endpoint, parse, request_id, version
            )
            body = render(served, request_id, outcome, parsed)
            headers = {
                "X-Request-Id": request_id,
                "X-Model-Name": served.name,
                "X-Model-Version": str(served.version),
            }
            if isinstance(body, Response):  # a protocol's own body (V2 binary outputs)
                response = body
                response.headers.update(headers)
            else:
                response = json_response(body, headers=headers)
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
        version: str | None = None,
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
                slot = endpoint.choose(key)[0] if version is None else self.slot(endpoint, version)
                served = self._current(slot)
                if proba and not served.has_proba:
                    raise InvalidInput(
                        f"{served.name}/{served.version} has no predict_proba (not a classifier)"
                    )
                if big:
                    data, rows = await asyncio.to_thread(served.prepare, parsed)
                else:
                    data, rows = served.prepare(parsed)
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
        if endpoint.policy == "shadow" and endpoint.candidate is not None and version is None:
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
            data, rows = served.prepare(parsed)
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
