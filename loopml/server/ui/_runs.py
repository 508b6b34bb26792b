"""UI pages for tracking: experiments, an experiment's runs table, a run and its artifacts.

The runs table is paged by the server (one page of runs plus one, to know whether another
page follows) and takes the API's filter language; htmx asks for the table alone when the
filter, the sort or the page changes. Unfiltered, it lists top-level runs and nests each
one's child runs under it on demand (``flat=1`` lists every run).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import mimetypes
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from loopml import tracking
from loopml.errors import InvalidInput, NotFound
from loopml.server._access import Access
from loopml.server.ui._render import fragment, is_htmx, page, render
from loopml.store import Node, Workspace, upstream
from loopml.store.schema import experiments, latest_metrics, params, run_tags, runs

PAGE_SIZES = (25, 50, 100, 200)
MAX_KEYS = 2000  # keys of each kind offered by the column chooser
MAX_POINTS = 10_000  # points per curve sent to the browser (longer histories are strided)
TEXT_LIMIT = 512 * 1024  # bytes of a text artifact shown in the page
IMAGES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"})
TEXTS = frozenset({".txt", ".json", ".yaml", ".yml", ".csv", ".md", ".log", ".py", ".toml"})
# Artifacts are user data: served so that nothing in them runs in the UI's origin.
_ARTIFACT_HEADERS = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def _int(raw: str | None, default: int, lo: int) -> int:
    try:
        return max(int(raw or default), lo)
    except ValueError:
        return default


def _columns(frame: pd.DataFrame | None) -> list[str]:
    if frame is None:
        return []
    return [c for c in frame.columns if c.split(".", 1)[0] in ("metrics", "params", "tags")]


_GROUPS = {"metrics": 0, "params": 1, "tags": 2}


def _group(column: str) -> str:
    return column.split(".", 1)[0]


def _next_order(order: str, column: str) -> str:
    """The order_by item a click on ``column``'s header asks for: DESC first, then ASC."""
    return f"{column} ASC" if order == f"{column} DESC" else f"{column} DESC"


def _artifact_kind(path: str) -> str:
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return "image" if suffix in IMAGES else "text" if suffix in TEXTS else "file"


class RunPages:
    """The tracking pages over one workspace."""

    def __init__(self, ws: Workspace, access: Access) -> None:
        self.ws = ws
        self.access = access

    # -- experiments --------------------------------------------------------------------------
    async def experiments(self, request: Request) -> Response:
        found = await run_in_threadpool(tracking.list_experiments, self.ws)
        visible = await self.access.visible_experiments(request)
        if visible is not None:
            allowed = set(visible)
            found = [(e, n) for e, n in found if e.name in allowed]
        return render(request, "experiments.html", experiments=found)

    # -- runs tables --------------------------------------------------------------------------
    def _table(
        self, request: Request, experiment: str, url: str, base_filter: str | None
    ) -> dict[str, Any]:
        """The context of a runs table at ``url``: one page, its columns and links."""
        q = request.query_params
        user_filter = q.get("filter", "").strip() if base_filter is None else ""
        order = q.get("order", "").strip()
        size = _int(q.get("n"), 50, 1)
        size = size if size in PAGE_SIZES else 50
        number = _int(q.get("page"), 1, 1)
        chosen = q.getlist("col") if q.get("chosen") else None
        flat = bool(q.get("flat"))
        nested = base_filter is None and not user_filter and not flat  # children under parents
        frame: pd.DataFrame | None = None
        error = None
        try:
            frame = tracking.search_runs(
                self.ws,
                experiment,
                base_filter or user_filter or (TOP_LEVEL if nested else None),
                [order] if order else None,
                max_results=size + 1,
                offset=(number - 1) * size,
            )
        except InvalidInput as exc:
            error = str(exc)
        available = list(dict.fromkeys([*_columns(frame), *(chosen or [])]))
        picked = chosen if chosen is not None else [c for c in available if c[:5] != "tags."]
        shown = sorted(picked, key=lambda c: _GROUPS.get(_group(c), len(_GROUPS)))
        groups = [(g, len(list(cs))) for g, cs in itertools.groupby(shown, key=_group)]
        state = {
            "filter": user_filter,
            "order": order,
            "n": None if size == 50 else size,
            "chosen": None if chosen is None else "1",
            "col": chosen,
            "flat": "1" if flat else None,
        }
        rows = [] if frame is None else frame.head(size).to_dict(orient="records")
        children = self._child_counts([str(r["run_id"]) for r in rows])
        return {
            "url": url,
            "state": state,
            "filterable": base_filter is None,
            "error": error,
            "rows": rows,
            "children": children,
            "nested": nested,
            "shown": shown,
            "groups": groups,
            "available": available,
            "order": order,
            "next_order": {c: _next_order(order, c) for c in [*available, *_ATTRS]},
            "page": number,
            "size": size,
            "sizes": PAGE_SIZES,
            "first": (number - 1) * size + 1,
            "more": frame is not None and len(frame) > size,
        }

    def _child_counts(self, run_ids: list[str]) -> dict[str, int]:
        """How many child runs each of ``run_ids`` has (those with none are left out)."""
        if not run_ids:
            return {}
        query = (
            sa.select(runs.c.parent_id, sa.func.count())
            .where(runs.c.parent_id.in_(run_ids))
            .group_by(runs.c.parent_id)
        )
        with self.ws.db.read() as conn:
            return {str(parent): int(n) for parent, n in conn.execute(query)}

    async def experiment(self, request: Request) -> Response:
        name = request.path_params["name"]
        await self.access.experiment(request, name, "viewer")
        url = request.url.path
        started = time.perf_counter()
        table = await run_in_threadpool(self._table, request, name, url, None)
        searched = time.perf_counter()
        if is_htmx(request) and not request.headers.get("hx-history-restore-request"):
            response = render(request, "_runs_table.html", **table)
        else:
            response = render(request, "experiment.html", experiment=name, **table)
        response.headers["Vary"] = "HX-Request"
        done = time.perf_counter()  # the handler's own time, for benchmarks and devtools
        response.headers["Server-Timing"] = (
            f"search;dur={(searched - started) * 1e3:.1f}, render;dur={(done - searched) * 1e3:.1f}"
        )
        return response

    def _keys(self, experiment: str) -> list[str]:
        """Every metric, param and tag key of the experiment's runs (up to MAX_KEYS each)."""
        keyed = (("metrics", latest_metrics), ("params", params), ("tags", run_tags))
        with self.ws.db.read() as conn:
            found = conn.execute(
                sa.select(experiments.c.id).where(experiments.c.name == experiment)
            ).scalar_one_or_none()
            if found is None:
                raise NotFound(f"no experiment named {experiment!r}")
            keys = []
            for group, table in keyed:
                query = (
                    sa.select(table.c.key)
                    .distinct()
                    .join(runs, runs.c.id == table.c.run_id)
                    .where(runs.c.experiment_id == found)
                    .order_by(table.c.key)
                    .limit(MAX_KEYS)
                )
                keys += [f"{group}.{k}" for k in conn.execute(query).scalars()]
        return keys

    async def columns(self, request: Request) -> Response:
        """The column chooser's choices: every key of the experiment, those shown ticked."""
        name = request.path_params["name"]
        await self.access.experiment(request, name, "viewer")
        keys = await run_in_threadpool(self._keys, name)
        shown = request.query_params.getlist("col")
        return render(
            request, "_columns.html", available=list(dict.fromkeys([*keys, *shown])), shown=shown
        )

    async def children(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        await self.access.run(request, run_id, "viewer")
        record = await run_in_threadpool(tracking.get_run, self.ws, run_id)
        table = await run_in_threadpool(
            self._table, request, record.experiment, request.url.path, _parent_filter(run_id)
        )
        if request.query_params.get("rows"):  # rows to nest under the parent's own row
            depth = _int(request.query_params.get("depth"), 1, 1)
            return render(request, "_runs_rows.html", depth=min(depth, 8), **table)
        return render(request, "_runs_table.html", **table)

    # -- one run ------------------------------------------------------------------------------
    def _run_view(self, request: Request, run_id: str) -> dict[str, Any]:
        record = tracking.get_run(self.ws, run_id)
        found_curves = {key: self._curve(run_id, key) for key in sorted(record.metrics)}
        curves = {k: c for k, c in found_curves.items() if len(c["step"]) > 1}  # a history
        found = tracking.list_artifacts(self.ws, run_id).to_dict(orient="records")
        artifacts = [{**a, "kind": _artifact_kind(str(a["path"]))} for a in found]
        inputs = [e for e in upstream(self.ws.db, Node("run", run_id), max_depth=1)]
        url = f"/runs/{run_id}/children"
        children = self._table(request, record.experiment, url, _parent_filter(run_id))
        return {
            "run": record,
            "curves": curves,
            "artifacts": artifacts,
            "inputs": inputs,
            "children": children,
            "children_html": fragment("_runs_table.html", **children),
        }

    def _curve(self, run_id: str, key: str) -> dict[str, list[float | None]]:
        history = tracking.get_metric_history(self.ws, run_id, key)
        stride = max(1, math.ceil(len(history) / MAX_POINTS))
        picked = history.iloc[::stride]
        values = [None if math.isnan(v) or math.isinf(v) else v for v in picked["value"]]
        return {"step": [float(s) for s in picked["step"]], "value": values}

    async def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        await self.access.run(request, run_id, "viewer")
        view = await run_in_threadpool(self._run_view, request, run_id)
        return render(request, "run.html", **view)

    # -- artifacts ----------------------------------------------------------------------------
    def _artifact(self, run_id: str, path: str) -> tuple[str, int]:
        frame = tracking.list_artifacts(self.ws, run_id)
        hit = frame[frame.path == path.strip("/")]
        if hit.empty:
            raise NotFound(f"run {run_id} has no artifact {path!r}")
        return str(hit.digest.iloc[0]), int(hit["size"].iloc[0])

    async def artifact(self, request: Request) -> Response:
        """The artifact's bytes: images by their type, text as plain text, else a download."""
        run_id, path = request.path_params["run_id"], request.path_params["path"]
        await self.access.run(request, run_id, "viewer")
        digest, size = await run_in_threadpool(self._artifact, run_id, path)
        kind = _artifact_kind(path)
        headers = {**_ARTIFACT_HEADERS, "Content-Length": str(size)}
        if kind == "image":
            media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        elif kind == "text":
            media = "text/plain; charset=utf-8"
        else:
            media = "application/octet-stream"
            headers["Content-Disposition"] = "attachment"
        chunks = self.ws.blobs._chunks(digest)  # streamed and verified, as the API serves it
        return StreamingResponse(chunks, media_type=media, headers=headers)

    async def view(self, request: Request) -> Response:
        """A text artifact's start (JSON pretty-printed), as a fragment for the run page."""
        run_id, path = request.path_params["run_id"], request.path_params["path"]
        await self.access.run(request, run_id, "viewer")
        digest, size = await run_in_threadpool(self._artifact, run_id, path)
        data = await run_in_threadpool(self.ws.blobs.get_bytes, digest)
        text = data[:TEXT_LIMIT].decode("utf-8", errors="replace")
        if path.lower().endswith(".json") and size <= TEXT_LIMIT:
            with contextlib.suppress(ValueError):  # else shown as it is
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        return render(
            request, "_artifact.html", path=path, text=text, cut=size > TEXT_LIMIT, size=size
        )


_ATTRS: Sequence[str] = ("attributes.name", "attributes.status", "attributes.start_time")
TOP_LEVEL = "attributes.parent_run_id IS NULL"


def _parent_filter(run_id: str) -> str:
    if "'" in run_id:  # ids are hex; one that is not cannot be a parent
        raise NotFound(f"no run with id {run_id!r}")
    return f"attributes.parent_run_id = '{run_id}'"


def run_routes(ws: Workspace, access: Access) -> list[BaseRoute]:
    """The tracking pages."""
    pages = RunPages(ws, access)
    return [
        Route("/experiments", page(pages.experiments), methods=["GET"]),
        Route("/experiments/{name}", page(pages.experiment), methods=["GET"]),
        Route("/experiments/{name}/columns", page(pages.columns), methods=["GET"]),
        Route("/runs/{run_id}", page(pages.run), methods=["GET"]),
        Route("/runs/{run_id}/children", page(pages.children), methods=["GET"]),
        Route("/runs/{run_id}/artifacts/{path:path}", page(pages.artifact), methods=["GET"]),
        Route("/runs/{run_id}/view/{path:path}", page(pages.view), methods=["GET"]),
    ]


__all__ = ["RunPages", "run_routes"]
