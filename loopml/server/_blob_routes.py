"""``/api/v1/blobs/{sha256}``: the content-addressed blob store over HTTP.

Uploads stream to a temporary file while their sha256 is computed; a body whose hash is
not the address in the URL is refused (422) and nothing is stored. Downloads stream and
carry the digest, which the client checks again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from loopml.errors import NotFound
from loopml.server._errors import ApiError, TooLarge
from loopml.server._http import json_response
from loopml.server._openapi import ApiRoute
from loopml.store import Workspace
from loopml.store.blobs import check_digest

MAX_BLOB = 8 << 30  # bytes


def _digest(request: Request) -> str:
    try:
        return check_digest(request.path_params["digest"])
    except Exception as exc:
        raise ApiError(422, "invalid_input", str(exc), "digest") from None


def blob_routes(ws: Workspace) -> list[BaseRoute]:
    """Routes to upload, check and download blobs."""

    async def head(request: Request) -> Response:
        digest = _digest(request)
        if not await run_in_threadpool(ws.blobs.exists, digest):
            return Response(status_code=404)
        return Response(status_code=200, headers={"X-Content-SHA256": digest})

    async def get(request: Request) -> Response:
        digest = _digest(request)
        if not await run_in_threadpool(ws.blobs.exists, digest):
            raise NotFound(f"no blob {digest}")
        return StreamingResponse(
            ws.blobs._chunks(digest),
            media_type="application/octet-stream",
            headers={"X-Content-SHA256": digest},
        )

    async def put(request: Request) -> Response:
        digest = _digest(request)
        h, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(prefix="loopml-upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_BLOB:
                        raise TooLarge(MAX_BLOB)
                    h.update(chunk)
                    await run_in_threadpool(out.write, chunk)
            if h.hexdigest() != digest:
                raise ApiError(
                    422,
                    "invalid_input",
                    f"body hashes to {h.hexdigest()}, not to the address {digest}",
                    "digest",
                )
            await run_in_threadpool(ws.blobs.put_file, tmp)
        finally:
            os.unlink(tmp)
        return json_response({"digest": digest, "size": size}, 201)

    path = "/api/v1/blobs/{digest}"
    return [
        ApiRoute(path, head, methods=["HEAD"]),
        ApiRoute(path, get, methods=["GET"]),
        ApiRoute(path, put, methods=["PUT"]),
    ]


__all__ = ["blob_routes"]
