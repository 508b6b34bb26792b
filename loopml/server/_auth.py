"""Request authentication for the platform server: the :class:`AuthMiddleware` puts a
:class:`~loopml.server._users.Principal` in every request's scope (``ANONYMOUS`` when auth
is off), from a bearer token, Basic auth or the web UI's cookie; route handlers read it
with :func:`principal` and check it with :meth:`Principal.require`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from loopml.errors import (
    Forbidden,
    LoopmlError,
    Unauthorized,
)
from loopml.server._errors import error_response
from loopml.server._http import json_response
from loopml.server._openapi import ApiRoute
from loopml.server._users import ANONYMOUS, Principal, authenticate, hash_token
from loopml.store import Workspace

OPEN_PATHS: Final = frozenset({"/healthz", "/readyz", "/openapi.json", "/login", "/logout"})
OPEN_PREFIXES: Final = ("/ui/static/",)  # the web UI's CSS and JS (the login page needs them)
COOKIE: Final = "loopml_token"  # the web UI's session: the API token, HttpOnly, SameSite=Strict
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CACHE_TTL: Final = 5.0  # seconds a checked token is trusted without asking the database


class TokenCache:
    """Principals of recently checked tokens (by hash), each trusted for ``ttl`` seconds.

    Parameters
    ----------
    ttl : seconds an entry is used before the database is asked again; this bounds how
        long a disabled user, a changed role or an expired token goes unnoticed.
    max_entries : entries kept at most (the oldest go first).
    clock : a monotonic clock in seconds.
    """

    def __init__(
        self,
        ttl: float = CACHE_TTL,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        """The cached principal of a token hash, or None when absent or stale."""
        with self._lock:
            found = self._entries.get(digest)
            if found is None:
                return None
            if found[0] <= self.clock():
                del self._entries[digest]
                return None
            return found[1]

    def put(self, digest: str, principal: Principal) -> None:
        """Trust ``principal`` for ``digest`` for the next ``ttl`` seconds."""
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries.pop(digest, None)
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[digest] = (self.clock() + self.ttl, principal)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


def _header(scope: Scope, name: bytes) -> str | None:
    raw = next((v for k, v in scope["headers"] if k == name), None)
    return None if raw is None else raw.decode("latin-1")


def _cookie_token(scope: Scope) -> str | None:
    """The web UI's session token from the :data:`COOKIE` cookie, if sent."""
    raw = _header(scope, b"cookie")
    if raw is None:
        return None
    for part in raw.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name == COOKIE and value:
            return value
    return None


def same_origin(scope: Scope) -> bool:
    """Whether the request's Origin (or, lacking one, Referer) is this server's own host."""
    sent = _header(scope, b"origin") or _header(scope, b"referer")
    host = _header(scope, b"host")
    return bool(sent and host and sent != "null" and urlsplit(sent).netloc == host)


def _credentials(scope: Scope) -> tuple[str, str | None] | None:
    """``(token, basic_user)`` from the Authorization header, else from the web UI's
    cookie; None when there is neither.

    A cookie write (any method but GET, HEAD, OPTIONS) must come from a page of this
    server: its Origin or Referer header must name the request's Host, else Forbidden.
    Beside the cookie's SameSite=Strict, this is the UI's protection against CSRF.
    """
    raw = _header(scope, b"authorization")
    if raw is None:
        token = _cookie_token(scope)
        write = scope.get("method", "GET") not in _SAFE_METHODS
        if token is not None and write and not same_origin(scope):
            raise Forbidden("a write with the session cookie must come from this server's pages")
        return None if token is None else (token, None)
    scheme, _, value = raw.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        if not value:
            raise Unauthorized("empty bearer token")
        return value, None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials (not base64 of user:token)") from None
        user, colon, token = decoded.partition(":")
        if not colon or not token:
            raise Unauthorized("Basic credentials need the API token as the password")
        return token, user
    raise Unauthorized(f"unsupported authorization scheme {scheme!r}; send Bearer <token>")


class AuthMiddleware:
    """Authenticate every request and put its :class:`Principal` in ``scope["state"]``.

    Under auth, a request needs ``Authorization: Bearer <token>`` (what MLflow clients send
    for ``MLFLOW_TRACKING_TOKEN``) or ``Authorization: Basic base64(user:token)`` (what they
    send for ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, the token being the password and
    the user name the token's user), or the web UI's :data:`COOKIE` cookie, else it is
    answered 401 (a browser asking for a page outside ``/api`` is sent to ``/login``
    instead). Without auth, every request acts as :data:`ANONYMOUS`. Paths in
    ``open_paths``, and those under :data:`OPEN_PREFIXES`, pass without a principal.

    Parameters
    ----------
    app : the wrapped ASGI app.
    ws : the workspace whose users and tokens are checked.
    enabled : whether to require credentials.
    open_paths : exact paths served without credentials (probes, the OpenAPI document).
    cache : where checked tokens are remembered (default: for :data:`CACHE_TTL` seconds).
    """

    def __init__(
        self,
        app: ASGIApp,
        ws: Workspace,
        *,
        enabled: bool,
        open_paths: frozenset[str] = OPEN_PATHS,
        cache: TokenCache | None = None,
    ) -> None:
        self.app = app
        self.ws = ws
        self.enabled = enabled
        self.open_paths = open_paths
        self.cache = TokenCache() if cache is None else cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.enabled:
            state["principal"] = ANONYMOUS
        elif scope["path"] not in self.open_paths and not scope["path"].startswith(OPEN_PREFIXES):
            try:
                state["principal"] = await self._authenticate(scope)
            except LoopmlError as exc:  # Unauthorized, or StoreError (503) if the DB is down
                await self._refuse(exc, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> Principal:
        given = _credentials(scope)
        if given is None:
            raise Unauthorized(
                "missing credentials: send Authorization: Bearer <token> "
                "(tokens come from `loopml server users add` or `... users token`)"
            )
        token, basic_user = given
        digest = hash_token(token)
        found = self.cache.get(digest)
        if found is None:
            found = await run_in_threadpool(authenticate, self.ws, token)
            self.cache.put(digest, found)
        if basic_user is not None and not hmac.compare_digest(
            basic_user.encode(), found.user.encode()
        ):
            raise Unauthorized("the Basic auth user name is not the token's user")
        return found

    @staticmethod
    async def _refuse(exc: LoopmlError, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": str(exc)[:120]})
            return
        if isinstance(exc, Unauthorized) and _wants_page(scope):
            target = "/login?" + urlencode({"next": scope["path"]})
            page: Response = (
                Response(status_code=401, headers={"HX-Redirect": target})  # htmx navigates
                if _header(scope, b"hx-request")
                else RedirectResponse(target, 303)
            )
            await page(scope, receive, send)
            return
        await error_response(exc)(scope, receive, send)


def _wants_page(scope: Scope) -> bool:
    """Whether a refused request is a browser's (or htmx's) GET of a web UI page."""
    path: str = scope["path"]
    html = "text/html" in (_header(scope, b"accept") or "") or _header(scope, b"hx-request")
    return scope.get("method") == "GET" and not path.startswith("/api/") and bool(html)


def principal(conn: HTTPConnection | Scope) -> Principal:
    """The principal of a request (or of an ASGI scope), as :class:`AuthMiddleware` set it.

    Raises
    ------
    Unauthorized : the request carries none (an open path, or no middleware installed).
    """
    scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    found = scope.get("state", {}).get("principal")
    if not isinstance(found, Principal):
        raise Unauthorized("this request was not authenticated")
    return found


async def whoami(request: Request) -> Response:
    """The caller: user name, admin flag and role per project."""
    p = principal(request)
    return json_response({"user": p.user, "is_admin": p.is_admin, "roles": dict(p.roles)})


def auth_routes() -> list[Route]:
    """``GET /api/v1/whoami``: the caller's user name, admin flag and roles."""
    return [ApiRoute("/api/v1/whoami", whoami, methods=["GET"])]


__all__ = [
    "CACHE_TTL",
    "COOKIE",
    "OPEN_PATHS",
    "OPEN_PREFIXES",
    "AuthMiddleware",
    "TokenCache",
    "auth_routes",
    "principal",
    "same_origin",
]
