"""``/api/v1/pipelines``: read-only pipeline runs and their steps (status, cache hit,
attempts, timings, output, tracking runs). A pipeline run belongs to the project of its
tracking run's experiment; times are epoch milliseconds."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from loopml import pipelines
from loopml.errors import NotFound
from loopml.server._access import Access
from loopml.server._errors import ApiError
from loopml.server._http import decode_page_token, json_response, name_query, page, query_int
from loopml.server._openapi import ApiRoute
from loopml.server._ops_routes import record_json
from loopml.store import Workspace
from loopml.store.schema import DEFAULT_PROJECT, experiments, pipeline_runs, runs

_STATUSES = ("RUNNING", "FINISHED", "FAILED")


def _status(request: Request) -> str | None:
    value = request.query_params.get("status")
    if value is None:
        return None
    if value.upper() not in _STATUSES:
        raise ApiError(
            422,
            "invalid_input",
            f"status must be one of {', '.join(_STATUSES)}, not {value[:40]!r}",
            "status",
        )
    return value.upper()


def _list(
    ws: Workspace,
    pipeline: str | None,
    status: str | None,
    projects: frozenset[str] | None,
    offset: int,
    limit: int,
) -> list[dict[str, Any]]:
    """Pipeline runs, newest first, with the project each belongs to."""
    t = pipeline_runs
    project = sa.func.coalesce(experiments.c.project, DEFAULT_PROJECT)
    query = (
        sa.select(t, project.label("project"))
        .select_from(
            t.outerjoin(runs, runs.c.id == t.c.run_id).outerjoin(
                experiments, experiments.c.id == runs.c.experiment_id
            )
        )
        .order_by(t.c.created_at.desc(), t.c.id)
        .offset(min(offset, 2**62))
        .limit(limit)
    )
    if pipeline is not None:
        query = query.where(t.c.pipeline == pipeline)
    if status is not None:
        query = query.where(t.c.status == status)
    if projects is not None:
        query = query.where(project.in_(sorted(projects)))
    with ws.db.read() as conn:
        found = conn.execute(query).all()
    return [dict(r._mapping) for r in found]  # times are stored in epoch ms already


def _project(access: Access, run_id: str | None) -> str:
    if run_id is None:
        return DEFAULT_PROJECT
    try:
        return access.run_project(run_id)
    except NotFound:
        return DEFAULT_PROJECT


def pipeline_routes(ws: Workspace) -> list[BaseRoute]:
    """``GET /api/v1/pipelines/runs`` (paged, filtered by pipeline and status) and
    ``GET /api/v1/pipelines/runs/{id}`` (one run with its steps); a viewer may read."""
    access = ws.component(Access)

    async def list_runs(request: Request) -> Response:
        """List pipeline runs (of one pipeline, with one status, if given), newest first"""
        size = query_int(request, "max_results", 100, 1, 1000)
        offset = decode_page_token(request.query_params.get("page_token"))
        name = name_query(request, "pipeline")
        status = _status(request)
        projects = access.who(request).visible_projects()
        found = await run_in_threadpool(_list, ws, name, status, projects, offset, size + 1)
        return json_response(page("runs", found, offset, size))

    async def get_run(request: Request) -> Response:
        """A pipeline run with its steps"""
        run_id = request.path_params["id"]
        if not run_id or len(run_id) > 64 or "\x00" in run_id:
            raise NotFound(f"no pipeline run with id {run_id[:70]!r}")

        def fetch() -> tuple[dict[str, Any], str]:
            record = pipelines.get_pipeline_run(ws, run_id)
            return record_json(record), _project(access, record.run_id)

        run, project = await run_in_threadpool(fetch)
        access.who(request).require(project, "viewer")
        run["project"] = project
        run["steps"] = await run_in_threadpool(pipelines.step_rows, ws, run_id)
        return json_response({"run": run})

    return [
        ApiRoute(
            "/api/v1/pipelines/runs",
            list_runs,
            methods=["GET"],
            query=("pipeline", "status", "max_results", "page_token"),
        ),
        ApiRoute("/api/v1/pipelines/runs/{id}", get_run, methods=["GET"]),
    ]


__all__ = ["pipeline_routes"]
