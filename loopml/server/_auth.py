"""Users, API tokens, project roles and request authentication for the platform server.

A token is ``lml_`` followed by 32 random bytes (URL-safe base64). The database keeps only
its sha256, so a copy of the database holds no usable credential; a request is
authenticated by hashing the token it carries and looking the hash up. Roles are given per
project and ordered viewer < editor < admin; an admin user may do everything everywhere.

:class:`AuthMiddleware` puts a :class:`Principal` in every request's scope (``ANONYMOUS``
when auth is off); route handlers read it with :func:`principal` and check it with
:meth:`Principal.require`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, get_args
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from loopml.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidInput,
    LoopmlError,
    NotFound,
    StoreError,
    Unauthorized,
)
from loopml.server._errors import error_response
from loopml.server._http import json_response
from loopml.server._openapi import ApiRoute
from loopml.store import Workspace, now_ms
from loopml.store.schema import api_tokens, project_roles, users

Role = Literal["viewer", "editor", "admin"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
_RANK: Final[Mapping[str, int]] = {role: rank for rank, role in enumerate(ROLES)}

TOKEN_PREFIX: Final = "lml_"
OPEN_PATHS: Final = frozenset({"/healthz", "/readyz", "/openapi.json", "/login", "/logout"})
OPEN_PREFIXES: Final = ("/ui/static/",)  # the web UI's CSS and JS (the login page needs them)
COOKIE: Final = "loopml_token"  # the web UI's session: the API token, HttpOnly, SameSite=Strict
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CACHE_TTL: Final = 5.0  # seconds a checked token is trusted without asking the database
_USER: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_PROJECT: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RESERVED: Final = frozenset({"anonymous"})
_TOUCH_MS: Final = 60_000  # a token's last_used_at is refreshed at most once a minute

log = logging.getLogger(__name__)


# -- principals and roles -------------------------------------------------------------------
def _rank(role: str) -> int:
    try:
        return _RANK[role]
    except KeyError:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}") from None


@dataclass(frozen=True)
class Principal:
    """Who a request acts as, and what it may do.

    Attributes
    ----------
    user : the user's name (``"anonymous"`` when auth is off).
    is_admin : an admin may do everything in every project.
    roles : the user's role in each project it has one in.
    """

    user: str
    is_admin: bool
    roles: Mapping[str, Role] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", MappingProxyType(dict(self.roles)))

    def can(self, project: str, role: Role) -> bool:
        """Whether the user has ``role`` (or a higher one) in ``project``."""
        needed = _rank(role)
        if self.is_admin:
            return True
        have = self.roles.get(project)
        return have is not None and _RANK[have] >= needed

    def require(self, project: str, role: Role) -> None:
        """Raise :class:`Forbidden` unless the user has ``role`` in ``project``."""
        if self.can(project, role):
            return
        have = self.roles.get(project)
        held = "has no role" if have is None else f"is only {have}"
        raise Forbidden(f"user {self.user!r} {held} in project {project!r}; {role} is needed")

    def require_admin(self) -> None:
        """Raise :class:`Forbidden` unless the user is an admin."""
        if not self.is_admin:
            raise Forbidden(f"user {self.user!r} is not an admin; this needs an admin user")

    def visible_projects(self) -> frozenset[str] | None:
        """The projects the user may read, or None for all of them (admins)."""
        return None if self.is_admin else frozenset(self.roles)


ANONYMOUS: Final = Principal("anonymous", True, {})


# -- tokens -----------------------------------------------------------------------------------
def new_token() -> str:
    """A fresh random API token, ``lml_<43 URL-safe characters>``."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The sha256 (hex) under which ``token`` is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


# -- users, tokens and roles in the workspace --------------------------------------------------
@dataclass(frozen=True)
class User:
    """A user as :func:`list_users` reports it.

    Attributes
    ----------
    name, is_admin, disabled, created_at : the user record.
    roles : the user's role per project.
    tokens : how many of the user's tokens have not expired.
    last_used_at : when any of the user's tokens was last used (to the minute), or None.
    """

    name: str
    is_admin: bool
    disabled: bool
    created_at: dt.datetime
    roles: Mapping[str, Role]
    tokens: int
    last_used_at: dt.datetime | None


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _check_user_name(name: str) -> None:
    if not _USER.match(name):
        raise InvalidInput(
            f"user name {name!r} is invalid: use 1-128 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    if name in _RESERVED:
        raise InvalidInput(f"user name {name!r} is reserved")


def _check_project(project: str) -> None:
    if not _PROJECT.match(project):
        raise InvalidInput(
            f"project name {project!r} is invalid: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def _require_user(conn: Connection, name: str) -> sa.Row[Any]:
    row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    if row is None:
        raise NotFound(f"no user {name!r}; see `loopml server users list`")
    return row


def _insert_token(conn: Connection, user: str, label: str, expires_in: dt.timedelta | None) -> str:
    if len(label) > 256:
        raise InvalidInput("token label is longer than 256 characters")
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise InvalidInput("expires_in must be a positive duration")
    token, now = new_token(), now_ms()
    expires = None if expires_in is None else now + int(expires_in.total_seconds() * 1000)
    row = {"user_name": user, "label": label, "created_at": now, "expires_at": expires}
    conn.execute(sa.insert(api_tokens).values(hash=hash_token(token), **row))
    return token


def _set_role(ws: Workspace, conn: Connection, user: str, project: str, role: str) -> None:
    row = {"user_name": user, "project": project, "role": role, "updated_at": now_ms()}
    ws.db.upsert(
        conn, project_roles, [row], keys=("user_name", "project"), update=("role", "updated_at")
    )


def add_user(
    ws: Workspace,
    name: str,
    *,
    admin: bool = False,
    roles: Mapping[str, Role] | None = None,
    label: str = "initial",
) -> str:
    """Create a user with a first API token, and return that token (it is shown only once).

    Parameters
    ----------
    ws : the workspace.
    name : 1-128 letters, digits, ``.``, ``_``, ``-`` or ``@``.
    admin : an admin may do everything in every project.
    roles : the user's role per project, e.g. ``{"default": "editor"}``.
    label : the first token's label.

    Raises
    ------
    InvalidInput : a bad name, project or role.
    AlreadyExists : the name is taken.
    """
    _check_user_name(name)
    for project, role in (roles or {}).items():
        _check_project(project)
        _rank(role)
    try:
        with ws.db.write() as conn:
            if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first():
                raise AlreadyExists(f"user {name!r} already exists")
            user = {"name": name, "is_admin": admin, "disabled": False, "created_at": now_ms()}
            conn.execute(sa.insert(users).values(**user))
            for project, role in (roles or {}).items():
                _set_role(ws, conn, name, project, role)
            return _insert_token(conn, name, label, None)
    except sa.exc.IntegrityError as exc:  # another process added the same name just now
        raise AlreadyExists(f"user {name!r} already exists") from exc


def issue_token(
    ws: Workspace, user: str, label: str = "", *, expires_in: dt.timedelta | None = None
) -> str:
    """Issue a new API token for ``user`` and return it (it is shown only once).

    Raises
    ------
    NotFound : no such user.
    Conflict : the user is disabled.
    """
    with ws.db.write() as conn:
        if _require_user(conn, user).disabled:
            raise Conflict(f"user {user!r} is disabled; enable it before issuing a token")
        return _insert_token(conn, user, label, expires_in)


def _set_disabled(ws: Workspace, name: str, disabled: bool) -> None:
    with ws.db.write() as conn:
        done = conn.execute(sa.update(users).where(users.c.name == name).values(disabled=disabled))
        if done.rowcount == 0:
            raise NotFound(f"no user {name!r}; see `loopml server users list`")


def disable_user(ws: Workspace, name: str) -> None:
    """Refuse every token of ``name`` from now on (a running server within a few seconds).

    Raises
    ------
    NotFound : no such user.
    """
    _set_disabled(ws, name, True)


def enable_user(ws: Workspace, name: str) -> None:
    """Accept the (unexpired) tokens of a disabled user again.

    Raises
    ------
    NotFound : no such user.
    """
    _set_disabled(ws, name, False)


def grant(ws: Workspace, user: str, project: str, role: Role) -> None:
    """Give ``user`` the role ``role`` in ``project``, replacing any role it had there.

    Raises
    ------
    InvalidInput : a bad project name or role.
    NotFound : no such user.
    """
    _check_project(project)
    _rank(role)
    with ws.db.write() as conn:
        _require_user(conn, user)
        _set_role(ws, conn, user, project, role)


def revoke(ws: Workspace, user: str, project: str) -> None:
    """Remove ``user``'s role in ``project``.

    Raises
    ------
    NotFound : no such user, or the user has no role in the project.
    """
    with ws.db.write() as conn:
        done = conn.execute(
            sa.delete(project_roles).where(
                project_roles.c.user_name == user, project_roles.c.project == project
            )
        )
        if done.rowcount == 0:
            _require_user(conn, user)
            raise NotFound(f"user {user!r} has no role in project {project!r}")


def list_users(ws: Workspace) -> list[User]:
    """Every user, by name, with roles, live token count and last use."""
    now = now_ms()
    live = sa.or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > now)
    tokens = (
        sa.select(
            api_tokens.c.user_name,
            sa.func.count().filter(live).label("live"),
            sa.func.max(api_tokens.c.last_used_at).label("last_used"),
        )
        .group_by(api_tokens.c.user_name)
        .subquery()
    )
    query = (
        sa.select(users, tokens.c.live, tokens.c.last_used)
        .outerjoin(tokens, tokens.c.user_name == users.c.name)
        .order_by(users.c.name)
    )
    with ws.db.read() as conn:
        rows = conn.execute(query).all()
        roles: dict[str, dict[str, Role]] = {}
        for user_name, project, role in conn.execute(
            sa.select(project_roles.c.user_name, project_roles.c.project, project_roles.c.role)
        ):
            roles.setdefault(user_name, {})[project] = role
    return [
        User(
            name=r.name,
            is_admin=bool(r.is_admin),
            disabled=bool(r.disabled),
            created_at=_time(r.created_at),
            roles=dict(sorted(roles.get(r.name, {}).items())),
            tokens=r.live or 0,
            last_used_at=None if r.last_used is None else _time(r.last_used),
        )
        for r in rows
    ]


def authenticate(ws: Workspace, token: str) -> Principal:
    """The principal an API token stands for.

    Raises
    ------
    Unauthorized : the token is unknown or expired, or its user is disabled.
    """
    if not token.startswith(TOKEN_PREFIX):
        raise Unauthorized(f"not a loopml API token (they start with {TOKEN_PREFIX!r})")
    digest = hash_token(token)
    query = (
        sa.select(
            api_tokens.c.hash,
            api_tokens.c.user_name,
            api_tokens.c.expires_at,
            api_tokens.c.last_used_at,
            users.c.is_admin,
            users.c.disabled,
        )
        .join(users, users.c.name == api_tokens.c.user_name)
        .where(api_tokens.c.hash == digest)
    )
    with ws.db.read() as conn:
        row = conn.execute(query).first()
        if row is None or not hmac.compare_digest(row.hash, digest):
            raise Unauthorized("unknown API token")
        now = now_ms()
        if row.disabled:
            raise Unauthorized(f"user {row.user_name!r} is disabled")
        if row.expires_at is not None and row.expires_at <= now:
            raise Unauthorized(f"this API token of user {row.user_name!r} has expired")
        roles: dict[str, Role] = {
            project: role
            for project, role in conn.execute(
                sa.select(project_roles.c.project, project_roles.c.role).where(
                    project_roles.c.user_name == row.user_name
                )
            )
        }
    if row.last_used_at is None or now - row.last_used_at >= _TOUCH_MS:
        _touch(ws, digest, now)
    return Principal(row.user_name, bool(row.is_admin), roles)


def _touch(ws: Workspace, digest: str, now: int) -> None:
    """Record a token's use; a busy database does not fail the request over it."""
    try:
        with ws.db.write() as conn:
            conn.execute(
                sa.update(api_tokens).where(api_tokens.c.hash == digest).values(last_used_at=now)
            )
    except StoreError as exc:
        log.warning("could not record the use of a token: %s", exc)


# -- the middleware ---------------------------------------------------------------------------
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
    "ANONYMOUS",
    "CACHE_TTL",
    "COOKIE",
    "OPEN_PATHS",
    "OPEN_PREFIXES",
    "ROLES",
    "AuthMiddleware",
    "Principal",
    "Role",
    "TokenCache",
    "User",
    "add_user",
    "auth_routes",
    "authenticate",
    "disable_user",
    "enable_user",
    "grant",
    "hash_token",
    "issue_token",
    "list_users",
    "new_token",
    "principal",
    "revoke",
    "same_origin",
]
