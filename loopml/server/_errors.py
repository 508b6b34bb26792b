"""One JSON error shape for the platform API: ``{"error": {"code", "message", "field"}}``.

Every error a request can cause is a 4xx with a precise message; a 500 means a bug.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from loopml.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidInput,
    LoopmlError,
    MissingDependency,
    NotFound,
    StoreError,
    Unauthorized,
)

log = logging.getLogger(__name__)


class ApiError(LoopmlError):
    """An error the API answers with ``status``, ``code`` and the offending ``field``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field


class TooLarge(ApiError):
    """A request body over the server's limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "too_large", f"request body is larger than {limit:,} bytes")


# the most precise class first: Forbidden is an Unauthorized
_STATUS: tuple[tuple[type[BaseException], int, str], ...] = (
    (Forbidden, 403, "forbidden"),
    (Unauthorized, 401, "unauthorized"),
    (NotFound, 404, "not_found"),
    (AlreadyExists, 409, "already_exists"),
    (Conflict, 409, "conflict"),
    (InvalidInput, 422, "invalid_input"),
    (MissingDependency, 501, "missing_dependency"),
    (StoreError, 503, "store_unavailable"),
)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The body of every error answer."""
    return {"error": {"code": code, "message": message, "field": field}}


def describe(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The status and body that answer ``exc``: a stable code and a message naming the cause."""
    if isinstance(exc, ApiError):
        return exc.status, error_body(exc.code, str(exc), exc.field)
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return status, error_body(code, str(exc))
    log.error("internal error", exc_info=exc)
    return 500, error_body("internal", f"internal error ({type(exc).__name__})")


def error_response(exc: BaseException) -> Response:
    """The JSON answer for ``exc``."""
    status, body = describe(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="loopml"'} if status == 401 else None
    return JSONResponse(body, status, headers=headers)


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for LoopmlError (and anything unexpected)."""
    return error_response(exc)


__all__ = [
    "ApiError",
    "TooLarge",
    "describe",
    "error_body",
    "error_response",
    "handle_error",
]
