"""``/login`` and ``/logout``: the web UI's session is an API token in a cookie.

The cookie (:data:`~loopml.server._auth.COOKIE`) is HttpOnly, SameSite=Strict, and Secure
when the page was served over HTTPS; :class:`~loopml.server._auth.AuthMiddleware` reads
it like an Authorization header.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from loopml.errors import Unauthorized
from loopml.server._auth import COOKIE, same_origin
from loopml.server._users import authenticate
from loopml.server.ui._render import render
from loopml.store import Workspace

SESSION_SECONDS = 7 * 24 * 3600


def _next(request: Request, raw: object) -> str:
    """Where to go after logging in: a path of this server only (never another site)."""
    target = str(raw or "")
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else "/experiments"


def login_routes(ws: Workspace, *, auth: bool) -> list[BaseRoute]:
    """``GET/POST /login`` and ``POST /logout`` (``auth``: whether the server asks for one)."""

    async def login_form(request: Request) -> Response:
        target = _next(request, request.query_params.get("next"))
        if not auth:
            return RedirectResponse(target, 303)
        return render(request, "login.html", next=target, error=None)

    async def login(request: Request) -> Response:
        form = await request.form()
        target = _next(request, form.get("next"))
        if not auth:
            return RedirectResponse(target, 303)
        token = str(form.get("token", "")).strip()
        try:
            if not same_origin(request.scope):
                raise Unauthorized("log in from this server's login page")
            await run_in_threadpool(authenticate, ws, token)
        except Unauthorized as exc:
            return render(request, "login.html", 401, next=target, error=str(exc))
        response = RedirectResponse(target, 303)
        response.set_cookie(
            COOKIE,
            token,
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login" if auth else "/experiments", 303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]


__all__ = ["login_routes"]
