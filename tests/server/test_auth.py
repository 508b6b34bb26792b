"""Users, tokens and roles; the auth and audit middleware on a small app; the users CLI,
``loopml login`` against a live server, and the saved-credentials file."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import socket
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from typer.testing import CliRunner

with warnings.catch_warnings():  # starlette >= 1.x asks for httpx2; httpx still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from loopml._credentials import credentials_path, save_token, token_for
from loopml.cli._common import WorkspaceOption
from loopml.cli.server_users import login, users_app
from loopml.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidInput,
    LoopmlError,
    NotFound,
    Unauthorized,
)
from loopml.server._audit import AuditMiddleware, AuditWriter, audit_routes, note_action
from loopml.server._auth import AuthMiddleware, TokenCache, auth_routes, principal
from loopml.server._errors import handle_error
from loopml.server._openapi import openapi_spec
from loopml.server._users import (
    ANONYMOUS,
    Principal,
    add_user,
    authenticate,
    disable_user,
    enable_user,
    grant,
    issue_token,
    list_users,
    revoke,
)
from loopml.store import Workspace, now_ms
from loopml.store.schema import api_tokens, audit_log, users


# -- a tiny app: one route, a probe, a websocket, whoami and the audit log ---------------------
async def _hello(request: Request) -> JSONResponse:
    if request.method == "POST":
        note_action(request, "said hello")
    return JSONResponse({"user": principal(request).user}, 201 if request.method == "POST" else 200)


async def _healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(principal(websocket).user)
    await websocket.close()


def make_app(ws: Workspace, *, enabled: bool = True, cache: TokenCache | None = None) -> Starlette:
    routes = [
        Route("/hello", _hello, methods=["GET", "POST", "DELETE"]),
        Route("/healthz", _healthz),
        WebSocketRoute("/echo", _echo),
        *auth_routes(),
        *audit_routes(ws),
    ]
    middleware = [
        Middleware(AuditMiddleware, ws),
        Middleware(AuthMiddleware, ws, enabled=enabled, cache=cache),
    ]
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers={LoopmlError: handle_error}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# -- users, tokens, roles ----------------------------------------------------------------------
def test_the_database_holds_only_the_sha256_of_a_token(ws: Workspace) -> None:
    first = add_user(ws, "ana")
    second = issue_token(ws, "ana", "ci")
    assert first.startswith("lml_") and len(first) == 4 + 43 and first != second
    with ws.db.read() as conn:
        rows = conn.execute(sa.select(api_tokens)).all()
        dumped = repr(rows) + repr(conn.execute(sa.select(users)).all())
    assert {r.hash for r in rows} == {
        hashlib.sha256(t.encode()).hexdigest() for t in (first, second)
    }
    assert first not in dumped and second not in dumped
    assert {r.label for r in rows} == {"initial", "ci"}


def test_bad_names_duplicates_unknown_users_and_bad_roles_are_clear_errors(ws: Workspace) -> None:
    for bad in ["", "a b", "x:y", "-lead", "a" * 129]:
        with pytest.raises(InvalidInput, match="user name"):
            add_user(ws, bad)
    with pytest.raises(InvalidInput, match="reserved"):
        add_user(ws, "anonymous")
    with pytest.raises(InvalidInput, match="role 'owner'"):
        add_user(ws, "ana", roles={"default": "owner"})  # type: ignore[dict-item]
    add_user(ws, "ana@example.com")
    with pytest.raises(AlreadyExists, match="already exists"):
        add_user(ws, "ana@example.com", admin=True)
    with pytest.raises(NotFound, match="no user 'bob'"):
        issue_token(ws, "bob", "x")
    with pytest.raises(NotFound, match="no user 'bob'"):
        grant(ws, "bob", "default", "viewer")
    with pytest.raises(NotFound, match="no user 'bob'"):
        disable_user(ws, "bob")
    with pytest.raises(InvalidInput, match="role 'writer'"):
        grant(ws, "ana@example.com", "default", "writer")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="project name"):
        grant(ws, "ana@example.com", "no spaces", "viewer")
    with pytest.raises(NotFound, match="has no role in project 'default'"):
        revoke(ws, "ana@example.com", "default")
    with pytest.raises(NotFound, match="no user 'bob'"):
        revoke(ws, "bob", "default")


def test_authenticate_reads_roles_and_refuses_unknown_disabled_and_expired(ws: Workspace) -> None:
    token = add_user(ws, "ana", roles={"churn": "editor"})
    grant(ws, "ana", "fraud", "viewer")
    assert authenticate(ws, token) == Principal(
        "ana", False, {"churn": "editor", "fraud": "viewer"}
    )
    grant(ws, "ana", "fraud", "admin")  # replaces the role
    revoke(ws, "ana", "churn")
    assert dict(authenticate(ws, token).roles) == {"fraud": "admin"}

    with pytest.raises(Unauthorized, match="unknown API token"):
        authenticate(ws, "lml_" + "x" * 43)
    with pytest.raises(Unauthorized, match="not a loopml API token"):
        authenticate(ws, "ghp_something")
    disable_user(ws, "ana")
    with pytest.raises(Unauthorized, match="'ana' is disabled"):
        authenticate(ws, token)
    with pytest.raises(Conflict, match="disabled"):
        issue_token(ws, "ana", "new")
    enable_user(ws, "ana")
    assert authenticate(ws, token).user == "ana"

    short = issue_token(ws, "ana", "short", expires_in=dt.timedelta(days=1))
    assert authenticate(ws, short).user == "ana"
    with ws.db.write() as conn:  # a day later
        conn.execute(
            sa.update(api_tokens).where(api_tokens.c.label == "short").values(expires_at=1)
        )
    with pytest.raises(Unauthorized, match="expired"):
        authenticate(ws, short)
    with pytest.raises(InvalidInput, match="positive"):
        issue_token(ws, "ana", "x", expires_in=dt.timedelta(0))


def test_list_users_shows_roles_live_tokens_and_last_use(ws: Workspace) -> None:
    token = add_user(ws, "ana", roles={"churn": "viewer"})
    add_user(ws, "root", admin=True)
    issue_token(ws, "root", "ci")
    disable_user(ws, "root")
    before = now_ms()
    authenticate(ws, token)
    ana, root = list_users(ws)
    assert (ana.name, ana.is_admin, ana.disabled, dict(ana.roles), ana.tokens) == (
        "ana",
        False,
        False,
        {"churn": "viewer"},
        1,
    )
    assert ana.last_used_at is not None and ana.last_used_at.timestamp() * 1000 >= before - 1
    assert (root.name, root.is_admin, root.disabled, root.tokens, root.last_used_at) == (
        "root",
        True,
        True,
        2,
        None,
    )


def test_principal_roles_are_ordered_and_admins_may_do_everything() -> None:
    ana = Principal("ana", False, {"churn": "editor"})
    assert ana.can("churn", "viewer") and ana.can("churn", "editor")
    assert not ana.can("churn", "admin") and not ana.can("fraud", "viewer")
    ana.require("churn", "editor")
    with pytest.raises(Forbidden, match="'ana' is only editor in project 'churn'; admin is needed"):
        ana.require("churn", "admin")
    with pytest.raises(Forbidden, match="'ana' has no role in project 'fraud'; viewer is needed"):
        ana.require("fraud", "viewer")
    with pytest.raises(Forbidden, match="not an admin"):
        ana.require_admin()
    with pytest.raises(InvalidInput, match="role 'owner'"):
        ana.can("churn", "owner")  # type: ignore[arg-type]
    assert ana.visible_projects() == frozenset({"churn"})
    with pytest.raises(TypeError):
        ana.roles["fraud"] = "admin"  # type: ignore[index]

    root = Principal("root", True)
    assert root.can("anything", "admin") and root.visible_projects() is None
    root.require_admin()
    assert ANONYMOUS.is_admin and ANONYMOUS.visible_projects() is None


# -- the auth middleware -----------------------------------------------------------------------
def test_middleware_refuses_missing_and_wrong_tokens_and_passes_a_good_one(ws: Workspace) -> None:
    token = add_user(ws, "ana")
    client = TestClient(make_app(ws))
    for headers, why in [
        ({}, "missing credentials"),
        (bearer("lml_" + "y" * 43), "unknown API token"),
        (bearer(""), "empty bearer token"),
        ({"Authorization": f"Token {token}"}, "unsupported authorization scheme 'Token'"),
    ]:
        answer = client.get("/hello", headers=headers)
        assert answer.status_code == 401, why
        assert answer.json()["error"]["code"] == "unauthorized"
        assert why in answer.json()["error"]["message"]
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/hello", headers=bearer(token)).json() == {"user": "ana"}
    assert client.get("/healthz").text == "ok"  # probes stay open
    whoami = client.get("/api/v1/whoami", headers=bearer(token)).json()
    assert whoami == {"user": "ana", "is_admin": False, "roles": {}}
    assert client.get("/api/v1/whoami").status_code == 401


def test_without_auth_every_request_is_anonymous(ws: Workspace) -> None:
    client = TestClient(make_app(ws, enabled=False))
    assert client.get("/hello").json() == {"user": "anonymous"}
    assert client.get("/api/v1/whoami").json()["is_admin"] is True


def test_basic_auth_takes_the_token_as_password_for_its_own_user(ws: Workspace) -> None:
    token = add_user(ws, "ana")
    client = TestClient(make_app(ws))
    assert client.get("/hello", headers=basic("ana", token)).json() == {"user": "ana"}
    refused = {
        "bob": basic("bob", token),
        "no password": basic("ana", ""),
        "not base64": {"Authorization": "Basic !!!"},
    }
    for why, headers in refused.items():
        assert client.get("/hello", headers=headers).status_code == 401, why


def test_websockets_need_a_token_too(ws: Workspace) -> None:
    token = add_user(ws, "ana")
    client = TestClient(make_app(ws))
    with client.websocket_connect("/echo", headers=bearer(token)) as sock:
        assert sock.receive_text() == "ana"
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/echo"):
        pass
    assert refused.value.code == 1008


def test_checked_tokens_are_cached_and_a_disabled_user_is_refused_after_the_ttl(
    ws: Workspace,
) -> None:
    token = add_user(ws, "ana")
    clock = [1000.0]
    client = TestClient(make_app(ws, cache=TokenCache(5.0, clock=lambda: clock[0])))
    assert client.get("/hello", headers=bearer(token)).status_code == 200
    disable_user(ws, "ana")
    clock[0] += 4.0
    assert client.get("/hello", headers=bearer(token)).status_code == 200  # from the cache
    clock[0] += 1.5
    answer = client.get("/hello", headers=bearer(token))
    assert answer.status_code == 401 and "disabled" in answer.json()["error"]["message"]


def test_without_a_cache_a_disabled_user_is_refused_at_once(ws: Workspace) -> None:
    token = add_user(ws, "ana")
    client = TestClient(make_app(ws, cache=TokenCache(0)))
    assert client.get("/hello", headers=bearer(token)).status_code == 200
    disable_user(ws, "ana")
    assert client.get("/hello", headers=bearer(token)).status_code == 401


def test_principal_outside_the_middleware_is_unauthorized() -> None:
    with pytest.raises(Unauthorized, match="not authenticated"):
        principal({"type": "http", "state": {}})


# -- the audit log -----------------------------------------------------------------------------
def test_writes_are_audited_and_only_admins_read_the_log(ws: Workspace) -> None:
    root, ana = add_user(ws, "root", admin=True), add_user(ws, "ana", roles={"default": "editor"})
    client = TestClient(make_app(ws))
    client.get("/hello", headers=bearer(ana))
    client.head("/hello", headers=bearer(ana))
    assert client.post("/hello?x=1", headers=bearer(ana)).status_code == 201
    assert client.delete("/hello").status_code == 401
    assert client.post("/nowhere", headers=bearer(ana)).status_code == 404

    forbidden = client.get("/api/v1/audit", headers=bearer(ana))
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert client.get("/api/v1/audit").status_code == 401
    answer = client.get("/api/v1/audit", headers=bearer(root))
    assert answer.status_code == 200
    entries = answer.json()["entries"]
    assert answer.json()["next_page_token"] is None
    summary = [(e["user"], e["method"], e["path"], e["status"], e["action"]) for e in entries]
    assert summary == [  # newest first; reads are not recorded
        ("ana", "POST", "/nowhere", 404, None),
        (None, "DELETE", "/hello", 401, None),
        ("ana", "POST", "/hello", 201, "said hello"),
    ]
    assert all(e["remote_addr"] == "testclient" and e["time"] > 0 for e in entries)


def test_the_audit_log_filters_and_pages(ws: Workspace) -> None:
    root = add_user(ws, "root", admin=True)
    writer = ws.component(AuditWriter)
    for i in range(10):
        writer.record(
            time=1000 + i,
            user="ana" if i % 2 else "bob",
            method="DELETE" if i == 3 else "POST",
            path=f"/api/v1/x/{i}",
            status=200,
        )
    client = TestClient(make_app(ws))

    def get(**params: Any) -> Any:
        answer = client.get("/api/v1/audit", params=params, headers=bearer(root))
        return answer.status_code, answer.json()

    seen: list[int] = []
    page: dict[str, Any] = {"max_results": 3}
    while True:
        status, body = get(**page)
        assert status == 200 and len(body["entries"]) <= 3
        seen += [e["time"] for e in body["entries"]]
        if body["next_page_token"] is None:
            break
        page["page_token"] = body["next_page_token"]
    assert seen == list(range(1009, 999, -1))

    assert [e["time"] for e in get(user="ana", since=1003, until=1007)[1]["entries"]] == [
        1005,
        1003,
    ]
    assert [e["path"] for e in get(method="delete")[1]["entries"]] == ["/api/v1/x/3"]
    for params, field in [
        ({"max_results": 0}, "max_results"),
        ({"max_results": 1001}, "max_results"),
        ({"max_results": "ten"}, "max_results"),
        ({"since": -1}, "since"),
        ({"until": "yesterday"}, "until"),
        ({"page_token": "bm9wZQ"}, "page_token"),
        ({"method": "PO ST"}, "method"),
        ({"users": "ana"}, "users"),
    ]:
        status, body = get(**params)
        assert status == 422 and body["error"]["field"] == field, params


def test_whoami_and_audit_are_in_the_openapi_document(ws: Workspace) -> None:
    paths = openapi_spec([*auth_routes(), *audit_routes(ws)], "0")["paths"]
    assert set(paths) == {"/api/v1/whoami", "/api/v1/audit"}
    query = {p["name"] for p in paths["/api/v1/audit"]["get"]["parameters"]}
    assert query == {"user", "method", "since", "until", "max_results", "page_token"}


def test_the_audit_writer_inserts_in_the_background_and_on_close(ws: Workspace) -> None:
    def count() -> int:
        with ws.db.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one())

    fast = AuditWriter(ws, interval=0.05)
    fast.record(time=1, user="ana", method="POST", path="/a", status=200)
    deadline = time.monotonic() + 30
    while count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert count() == 1  # written with no flush or close asked for
    fast.close()

    slow = AuditWriter(ws, interval=3600)
    for i in range(3):
        slow.record(time=i, user=None, method="PUT", path="/b", status=204)
    assert count() == 1
    slow.close()  # a clean shutdown loses nothing
    assert count() == 4
    slow.record(time=9, user=None, method="PUT", path="/c", status=204)  # after close: at once
    assert count() == 5


# -- the users CLI and login -------------------------------------------------------------------
cli = typer.Typer(pretty_exceptions_enable=False)


@cli.callback()
def _root(ctx: typer.Context, workspace_dir: Path = WorkspaceOption) -> None:
    ctx.ensure_object(dict)["home"] = workspace_dir


cli.add_typer(users_app, name="users")
cli.command("login")(login)
runner = CliRunner()


@pytest.fixture
def run(ws: Workspace) -> Any:
    """Run the CLI on the workspace (reached by env for PostgreSQL); return the result."""
    env = {"COLUMNS": "240", "LOOPML_STORE_URI": ws.settings.resolved_store_uri()}

    def invoke(*args: str, input: str | None = None) -> Any:
        result = runner.invoke(cli, ["--workspace", str(ws.home), *args], env=env, input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == 0, result.output
        return result

    return invoke


def test_users_cli_adds_lists_grants_revokes_issues_and_disables(ws: Workspace, run: Any) -> None:
    added = run("users", "add", "ana", "--role", "churn=editor", "-r", "fraud=viewer")
    token = added.stdout.strip()
    assert token.startswith("lml_") and "\n" not in token
    assert "will not be shown again" in added.stderr
    assert dict(authenticate(ws, token).roles) == {"churn": "editor", "fraud": "viewer"}

    run("users", "grant", "ana", "fraud", "admin")
    run("users", "revoke", "ana", "churn")
    assert dict(authenticate(ws, token).roles) == {"fraud": "admin"}
    second = run("users", "token", "ana", "--label", "ci", "--expires-in-days", "30").stdout.strip()
    assert authenticate(ws, second).user == "ana"
    run("users", "add", "root", "--admin")

    listed = run("users", "list").stdout
    ana_line = next(line for line in listed.splitlines() if "ana" in line)
    assert "fraud:admin" in ana_line and " 2 " in ana_line
    assert "root" in listed

    run("users", "disable", "ana")
    with pytest.raises(Unauthorized, match="disabled"):
        authenticate(ws, second)
    run("users", "enable", "ana")
    assert authenticate(ws, second).user == "ana"

    with pytest.raises(InvalidInput, match="role 'boss'"):
        run("users", "grant", "ana", "fraud", "boss")
    with pytest.raises(InvalidInput, match="PROJECT=ROLE"):
        run("users", "add", "bob", "--role", "editor")
    with pytest.raises(AlreadyExists):
        run("users", "add", "ana")
    for command in ["add", "list", "disable", "enable", "grant", "revoke", "token"]:
        helped = run("users", command, "--help").stdout
        assert "Usage" in helped and len(helped.splitlines()) > 4, command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def live_server(app: Starlette) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port, in a thread; yields its URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_login_checks_the_token_then_saves_it(
    ws: Workspace, run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPML_CONFIG_DIR", str(tmp_path / "config"))
    token = add_user(ws, "ana", roles={"churn": "viewer"})
    with live_server(make_app(ws)) as url:
        with pytest.raises(Unauthorized, match="refused the token: unknown API token"):
            run("login", url + "/", "--token", "lml_" + "z" * 43)
        assert token_for(url) is None
        out = run("login", url + "/", input=token + "\n").stdout  # the hidden prompt
        assert "as ana" in out
    assert token_for(url) == token


def test_mlflow_clients_authenticate_with_a_token_or_basic_auth(ws: Workspace) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.rest_utils import MlflowHostCreds, http_request

    token = add_user(ws, "ana")
    with live_server(make_app(ws)) as url:
        for creds in [
            MlflowHostCreds(url, token=token),
            MlflowHostCreds(url, username="ana", password=token),
        ]:
            answer = http_request(creds, "/api/v1/whoami", "GET", max_retries=0)
            assert answer.status_code == 200 and answer.json()["user"] == "ana"
        refused = MlflowHostCreds(url, username="ana", password="lml_" + "q" * 43)
        try:
            status = http_request(refused, "/api/v1/whoami", "GET", max_retries=0).status_code
        except MlflowException as exc:
            status = exc.get_http_status_code()
        assert status == 401


# -- saved credentials -------------------------------------------------------------------------
def test_credentials_are_private_keyed_by_url_and_replaced_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPML_CONFIG_DIR", str(tmp_path / "cfg"))
    assert token_for("https://a.example") is None  # no file yet
    path = save_token("https://A.example:8443/", "lml_one")
    assert path == credentials_path() == tmp_path / "cfg" / "credentials.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token_for("https://a.example:8443") == token_for("https://a.example:8443//") == "lml_one"
    save_token("http://127.0.0.1:5000", 'odd"\\token\n')
    save_token("https://a.example:8443", "lml_two")
    assert token_for("https://a.example:8443/") == "lml_two"
    assert token_for("http://127.0.0.1:5000") == 'odd"\\token\n'
    assert token_for("https://b.example") is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["credentials.toml"]  # no temp left
    with pytest.raises(InvalidInput, match="must look like"):
        save_token("a.example", "lml_x")
    path.write_text("not = [toml", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        token_for("https://a.example:8443")
