"""Templates and the helpers every UI page uses: rendering, errors as pages, formatting."""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from loopml.errors import LoopmlError
from loopml.server._auth import principal
from loopml.server._errors import describe

Page = Callable[[Request], Awaitable[Response]]


def _when(value: object) -> str:
    """A datetime (or pandas Timestamp) as ``YYYY-MM-DD HH:MM:SS`` UTC; blank when unset."""
    if not isinstance(value, dt.datetime) or value != value:  # NaT is not equal to itself
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _num(value: object) -> str:
    """A metric value in 5 significant digits; blank for a missing one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float | int):
        return f"{value:.5g}"
    return str(value)


def _cell(value: object) -> str:
    """A param or tag value; blank for a missing one (NaN in a frame)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _size(n: int) -> str:
    """A byte count as ``812 B``, ``3.4 KB``, ``1.2 MB`` or ``5.0 GB``."""
    if n < 1024:
        return f"{n} B"
    size = n / 1024
    for unit in ("KB", "MB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _query(base: Mapping[str, Any], **changes: Any) -> str:
    """``base`` (a query) with ``changes`` applied, as ``?a=1&b=2``; None drops a key."""
    merged = {**base, **changes}
    pairs = [
        (key, item)
        for key, value in merged.items()
        if value is not None and value != ""
        for item in (value if isinstance(value, list | tuple) else [value])
    ]
    return "?" + urlencode(pairs) if pairs else ""


ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("loopml.server.ui", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(
    when=_when,
    num=_num,
    cell=_cell,
    size=_size,
    path=lambda v: quote(str(v), safe=""),  # one path segment
    urlpath=lambda v: quote(str(v), safe="/"),  # a path of segments (artifacts)
)
ENV.globals.update(query=_query)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered for ``request``'s caller (``who`` in the template)."""
    who = request.scope.get("state", {}).get("principal")
    html = ENV.get_template(template).render(request=request, who=who, **context)
    return HTMLResponse(html, status)


def fragment(template: str, **context: Any) -> Markup:
    """``template`` rendered as a piece of another page."""
    return Markup(ENV.get_template(template).render(**context))


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it then wants a fragment, not a page)."""
    return request.headers.get("hx-request") == "true"


def page(endpoint: Page) -> Page:
    """``endpoint``, with a loopml error answered by an error page of the right status."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        try:
            principal(request)  # Unauthorized if no middleware set one (never a 500)
            return await endpoint(request)
        except LoopmlError as exc:
            status, body = describe(exc)
            return render(request, "error.html", status, code=status, error=body["error"])

    return wrapped


__all__ = ["ENV", "Page", "fragment", "is_htmx", "page", "render"]
