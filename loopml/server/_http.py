"""Reading requests and writing answers: bounded, gzip-aware JSON bodies checked by pydantic
models, query parameters, opaque page tokens."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import InvalidInput
from loopml.server._errors import ApiError, TooLarge
from loopml.store.remote import page_offset, page_token

M = TypeVar("M", bound=BaseModel)
MAX_BODY = 64 << 20  # bytes, after decompression


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, decompressed if ``Content-Encoding: gzip``; 413 past ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise ApiError(400, "malformed_body", f"gzip body cannot be read: {exc}") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise TooLarge(limit)
    elif encoding != "identity":
        raise ApiError(415, "unsupported_encoding", f"Content-Encoding {encoding!r}: use gzip")
    return body


async def read_json(request: Request, model: type[M]) -> M:
    """The JSON body checked against ``model``: 400 if it is not JSON, 422 naming the field."""
    body = await read_body(request)
    try:
        data = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
    return validate(model, data)


def validate(model: type[M], data: Any) -> M:
    """``data`` as ``model``; an ApiError 422 naming the first wrong field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        message = f"{field}: {first['msg']}" if field else first["msg"]
        raise ApiError(422, "invalid_input", message, field) from None


def name_query(request: Request, name: str) -> str | None:
    """Query parameter ``name`` (a deployment or monitor name), if given; 422 naming it."""
    value = request.query_params.get(name)
    if value is not None and (not value or "\x00" in value or len(value) > 256):
        raise ApiError(422, "invalid_input", f"{name} {value[:40]!r} is not a name", name)
    return value


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """Integer query parameter ``name`` within [low, high], else 422 naming it."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            422, "invalid_input", f"{name} must be an integer, got {raw!r}", name
        ) from None
    if not low <= value <= high:
        raise ApiError(422, "invalid_input", f"{name} must be from {low} to {high}", name)
    return value


def decode_page_token(token: str | None) -> int:
    """The offset a page token stands for (0 for none); 422 naming ``page_token``."""
    try:
        return page_offset(token)
    except InvalidInput as exc:
        raise ApiError(422, "invalid_input", str(exc), "page_token") from None


def next_page_token(more: bool, offset: int, size: int) -> str | None:
    """The token of the page after ``[offset, offset + size)``, if ``more`` follow."""
    return page_token(offset + size) if more else None


def page(key: str, items: list[Any], offset: int, size: int) -> dict[str, Any]:
    """One page of ``items`` (fetched with one extra to know whether more follow)."""
    return {key: items[:size], "next_page_token": next_page_token(len(items) > size, offset, size)}


def finite(value: float | None) -> float | None:
    """A float for JSON: NaN and infinities become null."""
    return None if value is None or not math.isfinite(value) else value


def json_float(value: float) -> float | str:
    """A metric value for JSON: NaN and infinities as the strings "NaN", "Infinity" and
    "-Infinity" (what ``float()`` reads back), so no value is lost on the way."""
    return (
        value
        if math.isfinite(value)
        else str(value).replace("inf", "Infinity").replace("nan", "NaN")
    )


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A compact JSON answer (NaN is not JSON: callers pass :func:`finite` values)."""
    text = json.dumps(body, separators=(",", ":"), allow_nan=False, default=str)
    return Response(text, status, dict(headers or {}), media_type="application/json")


__all__ = [
    "MAX_BODY",
    "decode_page_token",
    "finite",
    "json_float",
    "json_response",
    "name_query",
    "next_page_token",
    "page",
    "query_int",
    "read_body",
    "read_json",
    "validate",
]
