"""UI pages for datasets: the datasets list, a dataset's versions, and one version's
schema, stored profile (a histogram per numeric column, top values of the others),
validation reports and its diff against another version. Nothing here reads the data:
every figure comes from what ingestion and validation stored."""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml import data
from loopml.data import DatasetVersion
from loopml.data._datasets import get_version
from loopml.data._records import from_ms
from loopml.data._refs import check_dataset_name, parse_dataset_ref
from loopml.errors import InvalidInput, NotFound
from loopml.server._access import Access
from loopml.server.ui._render import page, render
from loopml.store import Workspace
from loopml.store.schema import dataset_aliases, validation_reports


def _aliases(ws: Workspace, name: str) -> dict[int, list[str]]:
    """Version → its aliases, for dataset ``name``."""
    t = dataset_aliases
    query = sa.select(t.c.alias, t.c.version).where(t.c.name == name).order_by(t.c.alias)
    found: dict[int, list[str]] = {}
    with ws.db.read() as conn:
        for alias, version in conn.execute(query):
            found.setdefault(int(version), []).append(str(alias))
    return found


def _reports(ws: Workspace, dv: DatasetVersion) -> list[dict[str, Any]]:
    """The stored validation reports of ``dv``, newest first, each with its check results."""
    t = validation_reports
    query = (
        sa.select(t.c.id, t.c.suite, t.c.passed, t.c.failed_checks, t.c.created_at)
        .where(t.c.dataset == dv.name, t.c.version == dv.version)
        .order_by(t.c.id.desc())
        .limit(20)
    )
    with ws.db.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        report = data.get_report(int(row["id"]), workspace=ws)
        row["results"] = report.get("results", []) if isinstance(report, dict) else []
        row["created_at"] = from_ms(int(row["created_at"]))
    return rows


def _charts(dv: DatasetVersion) -> dict[str, dict[str, list[float]]]:
    """Per numeric column with a histogram: bin starts, widths and counts, for uPlot."""
    charts = {}
    for name, column in dv.profile.get("columns", {}).items():
        histogram = column.get("histogram")
        if column.get("kind") != "numeric" or not histogram or not histogram["counts"]:
            continue
        edges = [float(e) for e in histogram["edges"]]
        charts[name] = {
            "x": [(a + b) / 2 for a, b in itertools.pairwise(edges)],
            "y": [float(c) for c in histogram["counts"]],
            "edges": edges,
        }
    return charts


class DatasetPages:
    """The dataset pages over one workspace."""

    def __init__(self, ws: Workspace, access: Access) -> None:
        self.ws = ws
        self.access = access

    async def datasets(self, request: Request) -> Response:
        frame = await run_in_threadpool(lambda: data.list_datasets(workspace=self.ws))
        visible = await self.access.visible(request, "dataset", frame["name"])
        rows = frame[frame["name"].isin(visible)].to_dict(orient="records")
        return render(request, "datasets.html", datasets=rows)

    async def _allowed(self, request: Request) -> str:
        name = str(request.path_params["name"])
        check_dataset_name(name)
        await self.access.named(request, "dataset", name, "viewer")
        return name

    async def dataset(self, request: Request) -> Response:
        name = await self._allowed(request)

        def load() -> dict[str, Any]:
            versions = data.list_versions(name, workspace=self.ws)
            return {"versions": list(reversed(versions)), "aliases": _aliases(self.ws, name)}

        return render(request, "dataset.html", name=name, **await run_in_threadpool(load))

    def _version(self, name: str, text: str) -> DatasetVersion:
        _, number, alias = parse_dataset_ref(f"{name}@{text}")
        return get_version(self.ws, name, number, alias)

    def _version_view(self, name: str, text: str, against: str | None) -> dict[str, Any]:
        dv = self._version(name, text)
        versions = [v.version for v in data.list_versions(name, workspace=self.ws)]
        others = [v for v in versions if v != dv.version]
        if against is None:
            earlier = [v for v in others if v < dv.version]
            against = str(earlier[-1]) if earlier else (str(others[0]) if others else None)
        diff, diff_error = None, None
        if against:
            try:
                other = self._version(name, against)
                diff = data.diff(other, dv, workspace=self.ws)
            except (InvalidInput, NotFound) as exc:  # shown beside the select, not a 404
                diff_error = str(exc)
        columns = dv.profile.get("columns", {})
        return {
            "dv": dv,
            "columns": columns,
            "charts": _charts(dv),
            "aliases": _aliases(self.ws, name).get(dv.version, []),
            "reports": _reports(self.ws, dv),
            "others": others,
            "against": against,
            "diff": diff,
            "diff_stats": [] if diff is None else diff.stats.to_dict(orient="records"),
            "diff_error": diff_error,
        }

    async def version(self, request: Request) -> Response:
        name = await self._allowed(request)
        text = str(request.path_params["version"])
        against = request.query_params.get("against") or None
        view = await run_in_threadpool(self._version_view, name, text, against)
        return render(request, "dataset_version.html", **view)


def dataset_routes(ws: Workspace, access: Access) -> list[BaseRoute]:
    """The dataset pages."""
    pages = DatasetPages(ws, access)
    return [
        Route("/datasets", page(pages.datasets), methods=["GET"]),
        Route("/datasets/{name}", page(pages.dataset), methods=["GET"]),
        Route("/datasets/{name}/{version}", page(pages.version), methods=["GET"]),
    ]


__all__ = ["DatasetPages", "dataset_routes"]
