"""``/api/v1`` routes for experiments, runs, params, metrics, tags, inputs and artifacts."""

from __future__ import annotations

import io
import re
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from loopml import tracking
from loopml.errors import AlreadyExists, NotFound
from loopml.server._access import Access
from loopml.server._batches import (
    MAX_TIME_MS,
    RUN_ID,
    ArtifactRef,
    BatchApplier,
    InputRef,
    LogBatch,
    Points,
    Segment,
    SeriesBody,
)
from loopml.server._errors import ApiError
from loopml.server._http import (
    decode_page_token,
    json_float,
    json_response,
    next_page_token,
    page,
    query_int,
    read_body,
    read_json,
)
from loopml.server._openapi import ApiRoute
from loopml.store import Workspace, now_ms
from loopml.store.remote import ARROW_STREAM
from loopml.store.schema import DEFAULT_PROJECT
from loopml.tracking import RunRecord

RUN_ID_PATTERN = re.compile(RUN_ID)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewExperiment(_Body):
    name: str = Field(min_length=1, max_length=256)
    project: str = Field(default=DEFAULT_PROJECT, min_length=1, max_length=256)
    exist_ok: bool = False


class NewRun(_Body):
    experiment: str = Field(default="default", min_length=1, max_length=256)
    name: str | None = Field(default=None, min_length=1, max_length=256)
    run_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    parent_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    start_time: int | None = Field(default=None, ge=0, le=MAX_TIME_MS)
    tags: dict[str, str] = {}
    source_commit: str | None = Field(default=None, max_length=64)
    source_entry_point: str | None = None


class RunUpdate(_Body):
    status: Literal["RUNNING", "FINISHED", "FAILED", "KILLED"] | None = None
    end_time: int | None = Field(default=None, ge=0, le=MAX_TIME_MS)
    name: str | None = Field(default=None, min_length=1, max_length=256)
    error: str | None = None


class Search(_Body):
    experiments: list[str] | None = None
    filter: str | None = None
    order_by: list[str] | None = None
    max_results: int = Field(default=1000, ge=1, le=50_000)
    page_token: str | None = None


class Params(_Body):
    params: dict[str, str | int | float | bool]


class Tags(_Body):
    tags: dict[str, str | int | float | bool]


def _run_id(request: Request) -> str:
    """The run id in the request's path; 422 unless it is 32 lowercase hex characters."""
    run_id: str = request.path_params["run_id"]
    if not RUN_ID_PATTERN.match(run_id):
        message = f"run_id must be 32 lowercase hex characters, got {run_id[:40]!r}"
        raise ApiError(422, "invalid_input", message, "run_id")
    return run_id


def experiment_json(exp: tracking.Experiment, n_runs: int | None = None) -> dict[str, Any]:
    """An experiment as the API shows it."""
    body: dict[str, Any] = {
        "id": exp.id,
        "name": exp.name,
        "project": exp.project,
        "created_at": int(exp.created_at.timestamp() * 1000),
    }
    if n_runs is not None:
        body["n_runs"] = n_runs
    return body


def _ms(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value.timestamp() * 1000)


def run_json(run: RunRecord, steps: dict[str, int] | None = None) -> dict[str, Any]:
    """A run record as the API shows it (times in epoch ms, NaN metrics as null)."""
    return {
        "run_id": run.id,
        "experiment": run.experiment,
        "name": run.name,
        "status": run.status,
        "start_time": _ms(run.start_time),
        "end_time": _ms(run.end_time),
        "parent_run_id": run.parent_id,
        "source_commit": run.source_commit,
        "source_entry_point": run.source_entry_point,
        "error": run.error,
        "params": run.params,
        "metrics": {k: json_float(v) for k, v in run.metrics.items()},
        "tags": run.tags,
        **({"metric_steps": steps} if steps is not None else {}),
    }


def _frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """search_runs' frame as JSON records with metrics/params/tags nested."""
    groups = {
        p: [c for c in frame.columns if c.startswith(p + ".")]
        for p in ("metrics", "params", "tags")
    }
    records = []
    plain = frame[["run_id", "experiment", "name", "status", "parent_run_id"]]
    starts = [_ms(v) for v in frame["start_time"]]
    ends = [_ms(v) for v in frame["end_time"]]
    columns = {
        p: {c[len(p) + 1 :]: frame[c].to_numpy() for c in cols} for p, cols in groups.items()
    }
    for i, row in enumerate(plain.itertuples(index=False)):
        rec: dict[str, Any] = dict(row._asdict())
        if rec["parent_run_id"] is not None and pd.isna(rec["parent_run_id"]):
            rec["parent_run_id"] = None
        rec["start_time"], rec["end_time"] = starts[i], ends[i]
        rec["metrics"] = {
            k: json_float(float(v[i])) for k, v in columns["metrics"].items() if not np.isnan(v[i])
        }
        for p in ("params", "tags"):
            rec[p] = {k: v[i] for k, v in columns[p].items() if isinstance(v[i], str)}
        records.append(rec)
    return records


def arrow_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as an Arrow IPC stream."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def tracking_routes(ws: Workspace) -> list[BaseRoute]:
    """The tracking half of ``/api/v1``."""
    applier = BatchApplier(ws)
    access = ws.component(Access)

    async def list_experiments(request: Request) -> Response:
        size = query_int(request, "max_results", 100, 1, 1000)
        offset = decode_page_token(request.query_params.get("page_token"))
        found = await run_in_threadpool(tracking.list_experiments, ws)
        projects = access.who(request).visible_projects()
        if projects is not None:
            found = [(e, n) for e, n in found if e.project in projects]
        items = [experiment_json(e, n) for e, n in found[offset : offset + size + 1]]
        return json_response(page("experiments", items, offset, size))

    async def create_experiment(request: Request) -> Response:
        body = await read_json(request, NewExperiment)
        access.who(request).require(body.project, "editor")

        def create() -> tuple[tracking.Experiment, bool]:
            try:
                found = tracking.get_experiment(ws, body.name)
            except NotFound:
                return tracking.get_or_create_experiment(ws, body.name, body.project), True
            if not body.exist_ok:
                raise AlreadyExists(f"experiment {body.name!r} exists already")
            return found, False

        exp, created = await run_in_threadpool(create)
        return json_response(experiment_json(exp), 201 if created else 200)

    async def get_experiment(request: Request) -> Response:
        await access.experiment(request, request.path_params["name"], "viewer")
        exp = await run_in_threadpool(tracking.get_experiment, ws, request.path_params["name"])
        return json_response(experiment_json(exp))

    async def create_run(request: Request) -> Response:
        body = await read_json(request, NewRun)
        try:
            await access.experiment(request, body.experiment, "editor")
        except NotFound:  # created with the run, in the default project
            access.who(request).require(DEFAULT_PROJECT, "editor")

        def create() -> RunRecord:
            run = tracking.create_run(
                ws,
                body.experiment,
                body.name,
                run_id=body.run_id,
                parent_id=body.parent_id,
                start_time=body.start_time,
                source_commit=body.source_commit,
                source_entry_point=body.source_entry_point,
                tags=body.tags,
            )
            run.flush()
            return tracking.get_run(ws, run.id)

        return json_response(run_json(await run_in_threadpool(create)), 201)

    async def get_run(request: Request) -> Response:
        run_id = await run_in_threadpool(tracking.resolve_run_id, ws, request.path_params["run_id"])
        await access.run(request, run_id, "viewer")
        record = await run_in_threadpool(tracking.get_run, ws, run_id)
        steps = await run_in_threadpool(applier.latest_steps, run_id)
        return json_response(run_json(record, steps))

    async def update_run(request: Request) -> Response:
        body = await read_json(request, RunUpdate)
        run_id = _run_id(request)
        await access.run(request, run_id, "editor")

        def update() -> RunRecord:
            tracking.update_run(
                ws,
                run_id,
                status=body.status,
                end_time=body.end_time,
                name=body.name,
                error=body.error,
            )
            return tracking.get_run(ws, run_id)

        return json_response(run_json(await run_in_threadpool(update)))

    async def search(request: Request) -> Response:
        if request.method == "POST":
            body = await read_json(request, Search)
        else:
            q = request.query_params
            body = Search(
                experiments=q.getlist("experiment") or None,
                filter=q.get("filter"),
                order_by=q.getlist("order_by") or None,
                max_results=query_int(request, "max_results", 1000, 1, 50_000),
                page_token=q.get("page_token"),
            )
        offset = decode_page_token(body.page_token)
        names = body.experiments
        visible = await access.visible_experiments(request)
        if names is not None:
            for name in names:
                await access.experiment(request, name, "viewer")
        elif visible is not None:
            names = visible  # maybe none: then no run matches
        frame = await run_in_threadpool(
            tracking.search_runs,
            ws,
            names,
            body.filter,
            body.order_by,
            body.max_results + 1,
            offset,
        )
        more = len(frame) > body.max_results
        frame = frame.iloc[: body.max_results]
        token = next_page_token(more, offset, body.max_results)
        if ARROW_STREAM in request.headers.get("accept", ""):
            data = await run_in_threadpool(arrow_bytes, frame)
            headers = {"X-Next-Page-Token": token} if token else {}
            return Response(data, 200, headers, media_type=ARROW_STREAM)
        records = await run_in_threadpool(_frame_records, frame)
        return json_response({"runs": records, "next_page_token": token})

    async def write(request: Request, **parts: Any) -> Response:
        """Apply ``parts`` of a segment to the run in the path, as an editor of its project."""
        run_id = _run_id(request)
        await access.run(request, run_id, "editor")
        await applier.apply_one(Segment(run_id=run_id, **parts))
        return json_response({"ok": True})

    async def log_params(request: Request) -> Response:
        body = await read_json(request, Params)
        return await write(request, params={k: str(v) for k, v in body.params.items()})

    async def set_tags(request: Request) -> Response:
        body = await read_json(request, Tags)
        return await write(request, tags={k: str(v) for k, v in body.tags.items()})

    async def log_metrics(request: Request) -> Response:
        body = await read_json(request, Points)
        series: dict[str, SeriesBody] = {}
        now = now_ms()
        for p in body.metrics:
            s = series.setdefault(p.key, SeriesBody(step=[], value=[], timestamp=[]))
            s.step.append(p.step)
            s.value.append(p.value)
            s.timestamp.append(now if p.timestamp is None else p.timestamp)
        return await write(request, metrics=series)

    async def log_input(request: Request) -> Response:
        return await write(request, inputs=[await read_json(request, InputRef)])

    async def metric_history(request: Request) -> Response:
        run_id, key = _run_id(request), request.path_params["key"]
        await access.run(request, run_id, "viewer")
        size = query_int(request, "max_results", 1_000_000, 1, 1_000_000)
        offset = decode_page_token(request.query_params.get("page_token"))
        frame = await run_in_threadpool(tracking.get_metric_history, ws, run_id, key)
        part = frame.iloc[offset : offset + size]
        body = {
            "key": key,
            "step": part["step"].tolist(),
            "value": [json_float(v) for v in part["value"].tolist()],
            "timestamp": part["timestamp"].dt.as_unit("ms").astype("int64").tolist(),
            "next_page_token": next_page_token(len(frame) > offset + size, offset, size),
        }
        return json_response(body)

    async def list_artifacts(request: Request) -> Response:
        await access.run(request, _run_id(request), "viewer")
        frame = await run_in_threadpool(tracking.list_artifacts, ws, _run_id(request))
        return json_response({"artifacts": frame.to_dict(orient="records")})

    async def get_artifact(request: Request) -> Response:
        run_id, path = _run_id(request), request.path_params["path"]
        await access.run(request, run_id, "viewer")
        frame = await run_in_threadpool(tracking.list_artifacts, ws, run_id)
        hit = frame[frame.path == path.strip("/")]
        if hit.empty:
            raise NotFound(f"run {run_id} has no artifact {path!r}")
        digest, size = str(hit.digest.iloc[0]), int(hit["size"].iloc[0])
        headers = {"X-Content-SHA256": digest, "Content-Length": str(size)}
        return StreamingResponse(ws.blobs._chunks(digest), headers=headers)

    async def put_artifact(request: Request) -> Response:
        run_id, path = _run_id(request), request.path_params["path"]
        await access.run(request, run_id, "editor")
        data = await read_body(request)
        digest = await run_in_threadpool(ws.blobs.put_bytes, data)
        ref = {path: ArtifactRef(digest=digest, size=len(data))}
        await applier.apply_one(Segment(run_id=run_id, artifacts=ref))
        return json_response({"path": path.strip("/"), "digest": digest, "size": len(data)}, 201)

    async def apply_batch(request: Request) -> Response:
        body = await read_json(request, LogBatch)
        return json_response(await applier.apply(body, access.who(request), access.segment))

    return [
        ApiRoute(
            "/api/v1/experiments",
            list_experiments,
            methods=["GET"],
            query=("max_results", "page_token"),
        ),
        ApiRoute("/api/v1/experiments", create_experiment, methods=["POST"], body=NewExperiment),
        ApiRoute("/api/v1/experiments/{name}", get_experiment, methods=["GET"]),
        ApiRoute("/api/v1/runs", create_run, methods=["POST"], body=NewRun),
        ApiRoute(
            "/api/v1/runs",
            search,
            methods=["GET"],
            query=("experiment", "filter", "order_by", "max_results", "page_token"),
        ),
        ApiRoute("/api/v1/runs/search", search, methods=["POST"], body=Search),
        ApiRoute("/api/v1/runs/{run_id}", get_run, methods=["GET"]),
        ApiRoute("/api/v1/runs/{run_id}", update_run, methods=["PATCH"], body=RunUpdate),
        ApiRoute("/api/v1/runs/{run_id}/params", log_params, methods=["POST"], body=Params),
        ApiRoute("/api/v1/runs/{run_id}/tags", set_tags, methods=["POST"], body=Tags),
        ApiRoute("/api/v1/runs/{run_id}/metrics", log_metrics, methods=["POST"], body=Points),
        ApiRoute("/api/v1/runs/{run_id}/metrics/{key:path}", metric_history, methods=["GET"]),
        ApiRoute("/api/v1/runs/{run_id}/inputs", log_input, methods=["POST"], body=InputRef),
        ApiRoute("/api/v1/runs/{run_id}/artifacts", list_artifacts, methods=["GET"]),
        ApiRoute("/api/v1/runs/{run_id}/artifacts/{path:path}", get_artifact, methods=["GET"]),
        ApiRoute("/api/v1/runs/{run_id}/artifacts/{path:path}", put_artifact, methods=["PUT"]),
        ApiRoute("/api/v1/batches", apply_batch, methods=["POST"], body=LogBatch),
    ]


__all__ = ["arrow_bytes", "experiment_json", "run_json", "tracking_routes"]
