"""The compare page: 2 to 10 runs side by side at ``/compare?runs=<id>&runs=<id>``.

It shows which params differ, the latest metrics, each shared metric's curves overlaid
(one uPlot series per run) and parallel coordinates of the numeric params against a
chosen metric. The caller needs the viewer role on every run.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml import tracking
from loopml.errors import InvalidInput
from loopml.server._access import Access
from loopml.server.ui._render import page, render
from loopml.store import Workspace

MIN_RUNS, MAX_RUNS = 2, 10
MAX_POINTS = 2_000  # points per run and curve sent to the browser


def _float(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def chosen_runs(ids: list[str]) -> list[str]:
    """The distinct run ids asked for, in order; InvalidInput unless there are 2 to 10."""
    picked = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if not MIN_RUNS <= len(picked) <= MAX_RUNS:
        raise InvalidInput(
            f"compare takes {MIN_RUNS} to {MAX_RUNS} runs; got {len(picked)} "
            "(tick runs in a runs table, then press Compare selected)"
        )
    return picked


def param_rows(runs: list[tracking.RunRecord]) -> list[dict[str, Any]]:
    """One row per param key: its value in each run (None if unset) and whether they differ."""
    keys = sorted({k for r in runs for k in r.params})
    rows = []
    for key in keys:
        values = [r.params.get(key) for r in runs]
        rows.append({"key": key, "cells": values, "differs": len(set(values)) > 1})
    return rows


def parallel(runs: list[tracking.RunRecord], metric: str | None) -> dict[str, Any]:
    """Parallel coordinates: numeric params then ``metric``, each scaled to 0..1 over runs."""
    axes = [
        k
        for k in sorted({k for r in runs for k in r.params})
        if all(_float(r.params[k]) is not None for r in runs if k in r.params)
    ]
    columns: list[list[float | None]] = [
        [_float(r.params[k]) if k in r.params else None for r in runs] for k in axes
    ]
    if metric is not None:
        axes.append(metric)
        values = [r.metrics.get(metric) for r in runs]
        columns.append([v if v is not None and math.isfinite(v) else None for v in values])
    ranges, scaled = [], []
    for column in columns:
        present = [v for v in column if v is not None]
        lo, hi = (min(present), max(present)) if present else (0.0, 0.0)
        ranges.append([lo, hi])
        scaled.append(
            [None if v is None else (0.5 if hi == lo else (v - lo) / (hi - lo)) for v in column]
        )
    per_run = [[col[i] for col in scaled] for i in range(len(runs))]
    return {"axes": axes, "ranges": ranges, "runs": per_run}


class ComparePages:
    """The compare page over one workspace."""

    def __init__(self, ws: Workspace, access: Access) -> None:
        self.ws = ws
        self.access = access

    def _curve(self, run_id: str, key: str) -> list[list[float | None]]:
        history = tracking.get_metric_history(self.ws, run_id, key)
        picked = history.iloc[:: max(1, math.ceil(len(history) / MAX_POINTS))]
        values = [None if not math.isfinite(v) else float(v) for v in picked["value"]]
        return [[float(s) for s in picked["step"]], values]

    def _view(self, ids: list[str], metric: str | None) -> dict[str, Any]:
        runs = [tracking.get_run(self.ws, i) for i in ids]
        keys = sorted({k for r in runs for k in r.metrics})
        shared = [k for k in keys if sum(k in r.metrics for r in runs) >= 2]
        empty: list[list[float | None]] = [[], []]
        found = {
            k: [self._curve(r.id, k) if k in r.metrics else empty for r in runs] for k in shared
        }
        curves = {k: c for k, c in found.items() if max(len(s[0]) for s in c) > 1}
        if metric not in keys:
            metric = shared[0] if shared else (keys[0] if keys else None)
        return {
            "runs": runs,
            "ids": ids,
            "params": param_rows(runs),
            "metric_keys": keys,
            "metric": metric,
            "curves": curves,
            "parallel": parallel(runs, metric),
        }

    async def compare(self, request: Request) -> Response:
        ids = chosen_runs(request.query_params.getlist("runs"))
        for run_id in ids:
            await self.access.run(request, run_id, "viewer")
        metric = request.query_params.get("metric")
        view = await run_in_threadpool(self._view, ids, metric)
        return render(request, "compare.html", **view)


def compare_routes(ws: Workspace, access: Access) -> list[BaseRoute]:
    """The compare page."""
    return [Route("/compare", page(ComparePages(ws, access).compare), methods=["GET"])]


__all__ = ["ComparePages", "chosen_runs", "compare_routes", "parallel", "param_rows"]
