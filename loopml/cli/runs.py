"""``loopml runs list|show|compare``."""

from __future__ import annotations

from typing import Any

import pandas as pd
import typer

from loopml.cli._common import console, duration, number, open_workspace, table, when
from loopml.tracking import get_run, list_artifacts, resolve_run_id, search_runs

app = typer.Typer(help="Runs: list, inspect and compare them.", no_args_is_help=True)


def _ts(value: Any) -> Any:
    return None if pd.isna(value) else value.to_pydatetime()


@app.command("list")
def list_(
    ctx: typer.Context,
    experiment: list[str] = typer.Option(None, "--experiment", "-e", help="Experiment name."),
    filter: str = typer.Option(
        None, "--filter", "-f", help="e.g. \"metrics.auc > 0.8 and params.model = 'xgb'\""
    ),
    order_by: list[str] = typer.Option(None, "--order-by", "-o", help="e.g. 'metrics.auc DESC'"),
    max_results: int = typer.Option(50, "--max-results", "-n", help="At most this many runs."),
    metrics: int = typer.Option(4, help="Show up to this many metric columns."),
) -> None:
    """List runs, newest first, optionally filtered and ordered."""
    ws = open_workspace(ctx)
    df = search_runs(ws, experiment or None, filter, order_by or None, max_results)
    metric_cols = [c for c in df.columns if c.startswith("metrics.")][:metrics]
    many = df.experiment.nunique() > 1
    base = ["run id", *(["experiment"] if many else []), "name", "status", "started", "duration"]
    t = table(*base, *(c.removeprefix("metrics.") for c in metric_cols))
    for rec in df.to_dict("records"):
        t.add_row(
            rec["run_id"][:8],
            *([rec["experiment"]] if many else []),
            rec["name"],
            rec["status"],
            when(_ts(rec["start_time"])),
            duration(_ts(rec["start_time"]), _ts(rec["end_time"])),
            *(number(rec[c]) for c in metric_cols),
        )
    console.print(t)
    console.print(f"{len(df)} run(s)")


@app.command("show")
def show(
    ctx: typer.Context, run_id: str = typer.Argument(..., help="Run id or unique prefix.")
) -> None:
    """Show one run: status, source, params, latest metrics, tags and artifacts."""
    ws = open_workspace(ctx)
    run = get_run(ws, resolve_run_id(ws, run_id))
    console.print(f"[bold]{run.name}[/]  {run.id}")
    console.print(
        f"experiment {run.experiment}   status {run.status}   "
        f"started {when(run.start_time)}   duration {duration(run.start_time, run.end_time)}"
    )
    if run.parent_id:
        console.print(f"parent run {run.parent_id}")
    console.print(
        f"source {run.source_entry_point or '-'} @ {run.source_commit or 'no git commit'}"
    )
    for title, values in (("params", run.params), ("metrics", run.metrics), ("tags", run.tags)):
        if values:
            t = table("key", "value", title=title, wrap=("value",))
            for k, v in sorted(values.items()):
                t.add_row(k, number(v))
            console.print(t)
    arts = list_artifacts(ws, run.id)
    if len(arts):
        t = table("path", "size", title="artifacts")
        for path, size in zip(arts.path, arts["size"], strict=True):
            t.add_row(path, f"{size:,} B")
        console.print(t)
    if run.error:
        console.print("[red]error:[/]", run.error.strip().splitlines()[-1])


@app.command("compare")
def compare(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids (or unique prefixes)."),
) -> None:
    """Compare runs side by side: params and latest metrics; differences in yellow."""
    ws = open_workspace(ctx)
    runs = [get_run(ws, resolve_run_id(ws, r)) for r in run_ids]
    t = table("", *(f"{r.name}\n{r.id[:8]}" for r in runs))
    for kind in ("params", "metrics"):
        keys = sorted({k for r in runs for k in getattr(r, kind)})
        for key in keys:
            cells = [number(getattr(r, kind).get(key)) for r in runs]
            style = "yellow" if len(set(cells)) > 1 else None
            t.add_row(f"{kind}.{key}", *cells, style=style)
    console.print(t)
