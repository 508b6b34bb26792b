"""The audit log: one row per write request — who, when, what, from where, with what result.

Rows are buffered in memory and inserted in batches from a background thread (every
~200 ms, sooner when many are waiting, and on close), so the server's hot path of small
metric-logging requests never waits for an audit transaction. The buffer belongs to the
workspace (``ws.component(AuditWriter)``): closing the workspace flushes it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopml.errors import LoopmlError
from loopml.server._auth import principal
from loopml.server._errors import ApiError
from loopml.server._http import json_response, query_int
from loopml.server._openapi import ApiRoute
from loopml.server._users import Principal
from loopml.store import Workspace, now_ms
from loopml.store.schema import audit_log

log = logging.getLogger(__name__)

READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_ACTION: Final = "audit_action"
_INSERT: Final = sa.insert(audit_log)
_PATH_MAX: Final = 2048  # the width of audit_log.path
_PARAMS: Final = ("user", "method", "since", "until", "max_results", "page_token")
_METHOD: Final = re.compile(r"^[A-Za-z]{1,16}$")
_PAGE_PREFIX: Final = "before:"
_MAX_MS: Final = 2**63 - 1


class AuditWriter:
    """Buffers audit rows and inserts them in batches from a background thread.

    Parameters
    ----------
    ws : the workspace whose ``audit_log`` table receives the rows.
    interval : seconds between batch inserts.
    batch_size : buffered rows that wake the writer before the interval ends.
    max_buffer : rows kept while the database is failing; beyond it the oldest are dropped
        (and the loss logged).
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        interval: float = 0.2,
        batch_size: int = 1000,
        max_buffer: int = 100_000,
    ) -> None:
        self.ws = ws
        self.interval = interval
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # guards _rows, _thread and _closed
        self._flush_lock = threading.Lock()  # one batch insert at a time, in order
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def record(
        self,
        *,
        time: int,
        user: str | None,
        method: str,
        path: str,
        status: int,
        action: str | None = None,
        remote_addr: str | None = None,
    ) -> None:
        """Queue one audit row (written within ``interval``; at once after :meth:`close`)."""
        row = {
            "time": time,
            "user_name": user,
            "method": method[:16],
            "path": path[:_PATH_MAX],
            "action": action,
            "status": status,
            "remote_addr": None if remote_addr is None else remote_addr[:64],
        }
        with self._lock:
            self._rows.append(row)
            closed, waiting = self._closed, len(self._rows)
            if not closed and self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="loopml-audit-writer", daemon=True
                )
                self._thread.start()
        if closed:
            try:
                self.flush()
            except (LoopmlError, SQLAlchemyError):
                log.exception("audit log: a row recorded after close could not be written")
        elif waiting >= self.batch_size:
            self._wake.set()

    def flush(self) -> int:
        """Insert every buffered row now; return how many were written.

        Raises
        ------
        StoreError : the database failed (the rows stay buffered for the next try).
        """
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            try:
                with self.ws.db.write() as conn:
                    self.ws.db.execute_many(conn, _INSERT, rows)
            except (LoopmlError, SQLAlchemyError):
                self._requeue(rows)
                raise
            return len(rows)

    def _requeue(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rows[:0] = rows
            excess = len(self._rows) - self.max_buffer
            if excess > 0:
                del self._rows[:excess]
                log.error("audit log: dropped %d rows the database would not take", excess)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
            try:
                self.flush()
            except (LoopmlError, SQLAlchemyError):
                log.exception("audit log: batch insert failed; retrying")

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()
        try:
            self.flush()
        except (LoopmlError, SQLAlchemyError):
            log.exception("audit log: %d rows could not be written at close", len(self._rows))


def note_action(conn: HTTPConnection | Scope, action: str) -> None:
    """Say what a request did, for its audit row (e.g. ``"alias churn@production -> 3"``)."""
    scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    scope.setdefault("state", {})[_ACTION] = action


class AuditMiddleware:
    """Record every write request (any method but GET, HEAD and OPTIONS) in the audit log.

    Install it outside :class:`~loopml.server._auth.AuthMiddleware`, so that refused writes
    are recorded too (with no user); the user is read from ``scope["state"]`` once the
    request is answered.

    Parameters
    ----------
    app : the wrapped ASGI app.
    ws : the workspace whose ``audit_log`` receives the rows.
    writer : the buffer to use (default: the workspace's :class:`AuditWriter`).
    """

    def __init__(self, app: ASGIApp, ws: Workspace, *, writer: AuditWriter | None = None) -> None:
        self.app = app
        self.writer = ws.component(AuditWriter) if writer is None else writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        started = now_ms()
        state = scope.setdefault("state", {})
        status = 500  # unless the app answers

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            who = state.get("principal")
            client = scope.get("client")
            self.writer.record(
                time=started,
                user=who.user if isinstance(who, Principal) else None,
                method=scope["method"],
                path=scope["path"],
                status=status,
                action=state.get(_ACTION),
                remote_addr=client[0] if client else None,
            )

    def close(self) -> None:
        """Write every buffered row (the workspace's close does this too)."""
        self.writer.close()


# -- GET /api/v1/audit -------------------------------------------------------------------------
def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_input", message, field)


# Pages are keyset (entries older than the last one seen), not offsets: new writes land at
# the head of this newest-first list while a client pages, and must not shift its pages.
def _page_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PAGE_PREFIX}{last_id}".encode()).decode().rstrip("=")


def _before_id(token: str | None) -> int | None:
    if token is None:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if text.startswith(_PAGE_PREFIX):
            return int(text.removeprefix(_PAGE_PREFIX))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise _invalid("page_token", f"page_token {token!r} is not a token this server made")


def _query(request: Request) -> tuple[sa.Select[Any], int]:
    params = request.query_params
    unknown = sorted(set(params) - set(_PARAMS))
    if unknown:
        raise _invalid(unknown[0], f"unknown query parameter {unknown[0]!r}")
    limit = query_int(request, "max_results", 100, 1, 1000)
    since = query_int(request, "since", 0, 0, _MAX_MS)
    until = query_int(request, "until", _MAX_MS, 0, _MAX_MS)
    query = (
        sa.select(audit_log)
        .where(audit_log.c.time >= since, audit_log.c.time < until)
        .order_by(audit_log.c.id.desc())
        .limit(limit + 1)
    )
    if (before := _before_id(params.get("page_token"))) is not None:
        query = query.where(audit_log.c.id < before)
    if (user := params.get("user")) is not None:
        query = query.where(audit_log.c.user_name == user)
    if (method := params.get("method")) is not None:
        if not _METHOD.match(method):
            raise _invalid("method", f"method {method!r} is not an HTTP method")
        query = query.where(audit_log.c.method == method.upper())
    return query, limit


def audit_routes(ws: Workspace) -> list[Route]:
    """``GET /api/v1/audit`` (admins only): audit entries, newest first.

    Query parameters: ``user``, ``method``, ``since`` (ms, inclusive), ``until`` (ms,
    exclusive), ``max_results`` (1-1000, default 100) and ``page_token`` (the previous
    answer's ``next_page_token``). Answers ``{"entries": [...], "next_page_token": ...}``.
    """

    def list_audit(request: Request) -> Response:
        """List audit entries (admins only), newest first."""
        principal(request).require_admin()
        query, limit = _query(request)
        writer = ws.existing(AuditWriter)
        if writer is not None:
            writer.flush()  # so an admin sees the writes made just before
        with ws.db.read() as conn:
            rows = conn.execute(query).all()
        entries = [
            {
                "id": r.id,
                "time": r.time,
                "user": r.user_name,
                "method": r.method,
                "path": r.path,
                "action": r.action,
                "status": r.status,
                "remote_addr": r.remote_addr,
            }
            for r in rows[:limit]
        ]
        more = len(rows) > limit
        token = _page_token(rows[limit - 1].id) if more else None
        return json_response({"entries": entries, "next_page_token": token})

    return [ApiRoute("/api/v1/audit", list_audit, methods=["GET"], query=_PARAMS)]


__all__ = ["READ_METHODS", "AuditMiddleware", "AuditWriter", "audit_routes", "note_action"]
