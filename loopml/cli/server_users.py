"""``loopml server users add|list|disable|enable|grant|revoke|token`` and ``loopml login``."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import httpx
import typer

from loopml._credentials import normalize_url, save_token
from loopml.cli._common import console, err_console, open_workspace, table, when
from loopml.errors import InvalidInput, Unauthorized
from loopml.server._run import is_loopback
from loopml.server._users import (
    ROLES,
    Role,
    add_user,
    disable_user,
    enable_user,
    grant,
    issue_token,
    list_users,
    revoke,
)

users_app = typer.Typer(
    help="Users of the platform server, their API tokens and their role per project.",
    no_args_is_help=True,
)

_ROLE_HELP = f"Role: {', '.join(ROLES)} (each includes the ones before it)."


def _role(value: str) -> Role:
    if value not in ROLES:
        raise InvalidInput(f"role {value!r} is not one of {', '.join(ROLES)}")
    return value


def _show_token(user: str, token: str) -> None:
    """The token alone on stdout (for scripts); the warning on stderr."""
    typer.echo(token)
    err_console.print(
        f"API token for [bold]{user}[/]: copy it now, it will not be shown again "
        "(a lost token is replaced with `loopml server users token`)."
    )


@users_app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name: letters, digits, '.', '_', '-' or '@'."),
    admin: bool = typer.Option(False, "--admin", help="May do everything in every project."),
    role: list[str] = typer.Option(
        [], "--role", "-r", help="PROJECT=ROLE, repeatable, e.g. --role default=editor."
    ),
) -> None:
    """Add a user and print its first API token (shown only once)."""
    roles: dict[str, Role] = {}
    for spec in role:
        project, eq, value = spec.partition("=")
        if not eq or not project:
            raise InvalidInput(f"--role {spec!r} must be PROJECT=ROLE, e.g. default=editor")
        roles[project.strip()] = _role(value.strip())
    token = add_user(open_workspace(ctx), name, admin=admin, roles=roles)
    _show_token(name, token)


@users_app.command("list")
def list_(ctx: typer.Context) -> None:
    """List users with their roles, live tokens and last use."""
    t = table("name", "admin", "disabled", "roles", "tokens", "last used", wrap=("roles",))
    for u in list_users(open_workspace(ctx)):
        roles = ", ".join(f"{p}:{r}" for p, r in u.roles.items()) or "-"
        t.add_row(
            u.name,
            "yes" if u.is_admin else "-",
            "yes" if u.disabled else "-",
            roles,
            str(u.tokens),
            when(u.last_used_at),
        )
    console.print(t)


@users_app.command("disable")
def disable(ctx: typer.Context, name: str = typer.Argument(..., help="User name.")) -> None:
    """Refuse all of a user's tokens (a running server notices within seconds)."""
    disable_user(open_workspace(ctx), name)
    console.print(f"disabled user {name}")


@users_app.command("enable")
def enable(ctx: typer.Context, name: str = typer.Argument(..., help="User name.")) -> None:
    """Accept a disabled user's unexpired tokens again."""
    enable_user(open_workspace(ctx), name)
    console.print(f"enabled user {name}")


@users_app.command("grant")
def grant_(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name."),
    project: str = typer.Argument(..., help="Project (the namespace of experiments, models...)."),
    role: str = typer.Argument(..., help=_ROLE_HELP),
) -> None:
    """Give a user a role in a project (replacing the role it had there)."""
    grant(open_workspace(ctx), name, project, _role(role))
    console.print(f"{name} is {role} in project {project}")


@users_app.command("revoke")
def revoke_(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name."),
    project: str = typer.Argument(..., help="Project."),
) -> None:
    """Remove a user's role in a project."""
    revoke(open_workspace(ctx), name, project)
    console.print(f"{name} has no role in project {project} any more")


@users_app.command("token")
def token(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name."),
    label: str = typer.Option("", "--label", "-l", help="What the token is for, e.g. 'ci'."),
    expires_in_days: float | None = typer.Option(
        None, "--expires-in-days", help="Refuse the token after this many days (default: never)."
    ),
) -> None:
    """Issue a new API token for a user and print it (shown only once)."""
    expires = None if expires_in_days is None else dt.timedelta(days=expires_in_days)
    _show_token(name, issue_token(open_workspace(ctx), name, label, expires_in=expires))


def login(
    url: str = typer.Argument(..., help="The server, e.g. https://loopml.example.com."),
    token: str = typer.Option(
        ..., prompt=True, hide_input=True, help="An API token (lml_...) given by an admin."
    ),
) -> None:
    """Check an API token against a loopml server and save it for later commands."""
    base, token = normalize_url(url), token.strip()
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"server URL {url!r} must look like https://host[:port]")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        err_console.print("[yellow]warning:[/] the token travels unencrypted over plain http")
    try:
        answer = httpx.get(
            f"{base}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
    except httpx.HTTPError as exc:
        raise InvalidInput(f"cannot reach {base}: {exc}") from exc
    if answer.status_code in (401, 403):
        raise Unauthorized(f"{base} refused the token: {_message(answer)}")
    if answer.status_code != 200:
        raise InvalidInput(
            f"{base}/api/v1/whoami answered {answer.status_code}: is this a loopml server?"
        )
    try:
        who = answer.json()
    except ValueError:
        raise InvalidInput(f"{base}/api/v1/whoami is not JSON: is this a loopml server?") from None
    path = save_token(base, token)
    admin = " (admin)" if who.get("is_admin") else ""
    console.print(
        f"logged in to {base} as [bold]{who.get('user')}[/]{admin}; token saved in {path}"
    )


def _message(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return answer.text[:200] or f"status {answer.status_code}"


__all__ = ["login", "users_app"]
