"""``loopml pipeline run|resume|list|show|schedule|export`` and ``loopml scheduler``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import typer
import yaml
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from loopml import pipelines
from loopml.cli._common import console, err_console, open_workspace, table, when
from loopml.errors import InvalidInput
from loopml.store import Workspace, use_workspace

app = typer.Typer(
    help="Pipelines: run, resume and inspect them; schedules; export to Airflow.",
    no_args_is_help=True,
)

ParamOption = typer.Option(
    None, "--param", "-p", help="A pipeline parameter as NAME=VALUE (YAML value); repeatable."
)
ExecutorOption = typer.Option(None, "--executor", "-x", help="process (default), thread or ray.")

_STYLE = {
    "running": "cyan",
    "retrying": "yellow",
    "finished": "green",
    "cached": "green",
    "reused": "green",
    "failed": "red",
    "skipped": "dim",
}


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``NAME=VALUE`` options as a dict, each value read as YAML (``3``, ``0.5``, ``[a, b]``)."""
    params: dict[str, Any] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--param {item!r}: expected NAME=VALUE")
        try:
            params[name.strip()] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as exc:
            raise InvalidInput(f"--param {name}: cannot read value {text!r}: {exc}") from None
    return params


@contextmanager
def step_progress() -> Iterator[Callable[[pipelines.StepEvent], None]]:
    """A Rich progress display with one line per step; yields the event hook."""
    lines: dict[str, TaskID] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:

        def on_event(event: pipelines.StepEvent) -> None:
            style = _STYLE.get(event.status, "white")
            extra = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            if event.error and event.status in ("failed", "retrying"):
                extra += f": {event.error.splitlines()[0][:120]}"
            text = f"[bold]{event.node}[/] [{style}]{event.status}[/]{extra}"
            done = event.status not in ("running", "retrying")
            if event.node not in lines:
                lines[event.node] = progress.add_task(text, total=1)
            progress.update(lines[event.node], description=text, completed=1 if done else 0)
            if done:
                progress.stop_task(lines[event.node])

        yield on_event


def _report(run: pipelines.PipelineRun) -> None:
    steps = run.steps
    cached = int(steps.cache_hit.sum())
    colour = "green" if run.status == "FINISHED" else "red"
    console.print(
        f"pipeline [bold]{run.pipeline}[/] run {run.id}: [{colour}]{run.status}[/] — "
        f"{len(steps)} steps, {cached} from cache; tracking run {run.run_id}",
        highlight=False,
    )


def _run(ws: Workspace, action: Any) -> pipelines.PipelineRun:
    use_workspace(ws)  # steps that call loopml without a workspace get this one
    with step_progress() as on_event:
        run: pipelines.PipelineRun = action(on_event)
    _report(run)
    if run.status != "FINISHED":
        err_console.print(f"resume it with: loopml pipeline resume {run.id}", highlight=False)
        raise typer.Exit(1)
    return run


@app.command("run")
def run(
    ctx: typer.Context,
    target: str = typer.Argument(
        ..., help="file.py:pipeline, package.module:pipeline, or a loopml.yaml recipe."
    ),
    param: list[str] = ParamOption,
    executor: str = ExecutorOption,
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every step, even if cached."),
    max_workers: int = typer.Option(None, "--max-workers", "-j", help="Steps at once."),
) -> None:
    """Run a pipeline, showing each step's progress."""
    params = parse_params(param)
    found = pipelines.load_pipeline(target)
    ws = open_workspace(ctx)
    _run(
        ws,
        lambda hook: found.run(
            params,
            executor=executor,
            cache=False if no_cache else None,
            max_workers=max_workers,
            workspace=ws,
            on_event=hook,
            raise_on_failure=False,
        ),
    )


@app.command("resume")
def resume(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="The failed pipeline run's id."),
    executor: str = ExecutorOption,
) -> None:
    """Resume a failed pipeline run from its failed steps, reusing the finished ones."""
    ws = open_workspace(ctx)
    _run(
        ws,
        lambda hook: pipelines.resume(
            run_id, executor=executor, workspace=ws, on_event=hook, raise_on_failure=False
        ),
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    pipeline: str = typer.Option(None, "--pipeline", help="Only runs of this pipeline."),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many runs."),
) -> None:
    """List pipeline runs, newest first."""
    if limit < 1:
        raise InvalidInput("--limit must be at least 1")
    ws = open_workspace(ctx)
    t = table("run id", "pipeline", "status", "started", "ended", "executor", "schedule")
    for r in pipelines.list_pipeline_runs(ws, pipeline, limit=limit):
        slot = f"{r.schedule} @ {when(r.slot)}" if r.schedule else "-"
        t.add_row(
            r.id, r.pipeline, r.status, when(r.created_at), when(r.ended_at), r.executor, slot
        )
    console.print(t)


def _seconds(row: Any) -> str:
    if pd.isna(row.started_at) or pd.isna(row.ended_at):
        return "-"
    return f"{(row.ended_at - row.started_at).total_seconds():.2f}s"


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="A pipeline run id."),
) -> None:
    """Show a pipeline run: its parameters and every step's status, cache hit and output."""
    ws = open_workspace(ctx)
    r = pipelines.get_pipeline_run(ws, run_id)
    console.print(
        f"[bold]{r.pipeline}[/] run {r.id}: {r.status}; source {r.source}; "
        f"params {r.params}; tracking run {r.run_id}",
        highlight=False,
    )
    t = table("step", "status", "cache", "attempts", "time", "output", "error", wrap=("error",))
    for row in pipelines.step_table(ws, run_id).itertuples():
        has_output = isinstance(row.output_digest, str)
        output = f"{row.output_kind}:{row.output_digest[:12]}" if has_output else "-"
        error = row.error.strip().splitlines()[-1:] if isinstance(row.error, str) else []
        t.add_row(
            row.node,
            row.status,
            "hit" if row.cache_hit else "-",
            str(row.attempts),
            _seconds(row),
            output,
            error[0] if error else "",
        )
    console.print(t)


schedule_app = typer.Typer(
    help="Cron schedules of pipelines (run by `loopml scheduler`).", no_args_is_help=True
)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("add")
def schedule_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The schedule's name."),
    target: str = typer.Argument(..., help="file.py:pipeline, module:pipeline or loopml.yaml."),
    cron: str = typer.Option(..., "--cron", help="Cron expression (UTC), e.g. '0 3 * * *'."),
    param: list[str] = ParamOption,
    executor: str = ExecutorOption,
    start: str = typer.Option(None, "--start", help="First slot after this ISO time (now)."),
) -> None:
    """Schedule a pipeline on a cron expression."""
    ws = open_workspace(ctx)
    made = pipelines.add_schedule(
        ws, name, target, cron, params=parse_params(param), executor=executor, start_at=start
    )
    console.print(f"schedule [bold]{made.name}[/]: {made.source} at '{made.cron}' (UTC)")


@schedule_app.command("list")
def schedule_list(ctx: typer.Context) -> None:
    """List schedules."""
    ws = open_workspace(ctx)
    t = table("name", "cron", "pipeline", "params", "executor", "since")
    for s in pipelines.list_schedules(ws):
        t.add_row(s.name, s.cron, s.source, str(s.params), s.executor, when(s.start_at))
    console.print(t)


@schedule_app.command("remove")
def schedule_remove(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Delete a schedule (its pipeline runs stay)."""
    pipelines.remove_schedule(open_workspace(ctx), name)
    console.print(f"removed schedule {name}")


@schedule_app.command("backfill")
def schedule_backfill(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The schedule."),
    start: str = typer.Option(..., "--start", help="First slot time (ISO), inclusive."),
    end: str = typer.Option(..., "--end", help="Last slot time (ISO), inclusive."),
) -> None:
    """Run every slot of a schedule in a date range that has not run yet (once each)."""
    ws = open_workspace(ctx)
    use_workspace(ws)
    with step_progress() as on_event:
        runs = pipelines.backfill(ws, name, start, end, on_event=on_event)
    failed = [r for r in runs if r.status != "FINISHED"]
    console.print(f"backfill {name}: {len(runs)} slots run, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


def scheduler(
    ctx: typer.Context,
    interval: float = typer.Option(30.0, "--interval", help="Seconds between checks."),
    once: bool = typer.Option(False, "--once", help="Check once, run what is due, exit."),
    name: str = typer.Option(None, "--name", help="Who claims slots (default host:pid)."),
) -> None:
    """Run the due slots of every schedule, exactly once each even with several schedulers."""
    if interval <= 0:
        raise InvalidInput("--interval must be positive")
    ws = open_workspace(ctx)
    use_workspace(ws)
    runner = pipelines.Scheduler(ws, owner=name)
    with step_progress() as on_event:
        if once:
            runs = runner.tick(on_event=on_event)
            console.print(f"scheduler: {len(runs)} slot(s) run")
            return
        console.print(f"scheduler {runner.owner}: checking every {interval:g} s (Ctrl-C stops)")
        try:
            runner.run(interval, on_event=on_event)
        except KeyboardInterrupt:
            runner.stop()


@app.command("export")
def export(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="file.py:pipeline, module:pipeline or loopml.yaml."),
    airflow: bool = typer.Option(False, "--airflow", help="Write an Airflow DAG file."),
    output: Path = typer.Option(None, "--output", "-o", help="The file (default dags/<name>.py)."),
    param: list[str] = ParamOption,
    schedule: str = typer.Option(None, "--schedule", help="The DAG's cron schedule."),
) -> None:
    """Export a pipeline for another scheduler (Airflow), its tasks calling the same steps."""
    if not airflow:
        raise InvalidInput("choose a format: --airflow")
    params = parse_params(param)
    found = pipelines.load_pipeline(target)
    ws = open_workspace(ctx)
    out = pipelines.export_airflow(
        target,
        output or Path("dags") / f"{found.name}.py",
        params,
        workspace=ws.home,
        schedule=schedule,
    )
    console.print(f"wrote Airflow DAG {out} ({found.name}, tasks run with loopml)")
