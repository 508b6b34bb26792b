"""Users, API tokens and project roles: who may call the platform server, and as what.

A token is ``lml_`` followed by 32 random bytes (URL-safe base64). The database keeps only
its sha256, so a copy of the database holds no usable credential; a request is
authenticated by hashing the token it carries and looking the hash up. Roles are given per
project and ordered viewer < editor < admin; an admin user may do everything everywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StoreError,
    Unauthorized,
)
from loopml.store import Workspace, now_ms
from loopml.store.schema import api_tokens, project_roles, users

Role = Literal["viewer", "editor", "admin"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
_RANK: Final[Mapping[str, int]] = {role: rank for rank, role in enumerate(ROLES)}

TOKEN_PREFIX: Final = "lml_"
_USER: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_PROJECT: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RESERVED: Final = frozenset({"anonymous"})
_TOUCH_MS: Final = 60_000  # a token's last_used_at is refreshed at most once a minute

log = logging.getLogger(__name__)


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


__all__ = [
    "ANONYMOUS",
    "ROLES",
    "TOKEN_PREFIX",
    "Principal",
    "Role",
    "User",
    "add_user",
    "authenticate",
    "disable_user",
    "enable_user",
    "grant",
    "hash_token",
    "issue_token",
    "list_users",
    "new_token",
    "revoke",
]
