"""``loopml monitor``: create monitors on deployments, check them, read their reports."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import typer

from loopml.cli._common import console, number, open_workspace, table, when
from loopml.errors import InvalidInput
from loopml.monitoring import (
    MonitorCheck,
    check_monitor,
    create_monitor,
    delete_monitor,
    get_monitor,
    list_monitors,
    list_reports,
    report_html,
    skew_report,
)
from loopml.store import Workspace

app = typer.Typer(
    help="Monitors: watch a deployment's traffic for drift, data quality and performance "
    "against its training data; alert rules notify by log, webhook or Slack.",
    no_args_is_help=True,
)

_TIME = "ISO time (2026-05-01T12:00) or a duration back from now (15m, 2h, 7d)."


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name."),
    deployment: str = typer.Option(..., "--deployment", "-d", help="Deployment to watch."),
    reference: str = typer.Option(
        None, help="Reference dataset (churn@1); default: the model's training data (lineage)."
    ),
    label: str = typer.Option(None, help="Target column of the reference (default: the run's)."),
    window: str = typer.Option(None, help="Window back from now: 15m, 1h, 1d (default 1h)."),
    window_rows: int = typer.Option(None, help="Window of the newest N predictions instead."),
    alert: list[str] = typer.Option(
        [], "--alert", "-a", help="Alert rule, e.g. 'drift_share > 0.3' (repeatable)."
    ),
    notify: list[str] = typer.Option(
        [], "--notify", "-n", help="log, webhook:URL or slack:URL (repeatable)."
    ),
    drift_share: float = typer.Option(0.5, help="Share of drifted features = dataset drift."),
    replace: bool = typer.Option(False, "--replace", help="Replace a monitor of that name."),
) -> None:
    """Create monitor NAME on a deployment; its reference is summarised once, now."""
    ws = open_workspace(ctx)
    m = create_monitor(
        ws,
        name,
        deployment,
        reference=reference,
        label=label,
        window=window,
        window_rows=window_rows,
        rules=alert,
        notify=notify,
        drift_share=drift_share,
        replace=replace,
    )
    size = f"last {m.window}" if m.window else f"newest {m.window_rows} predictions"
    console.print(
        f"monitor [bold]{m.name}[/] watches {m.deployment} ({size}) against "
        f"{m.reference['dataset']} ({m.reference['rows']:,} rows, {len(m.features)} features"
        f"{', label ' + m.label if m.label else ''}); {len(m.rules)} alert rule(s)",
        highlight=False,
    )


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    if not path.parent.is_dir():
        raise InvalidInput(f"folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _html_path(ws: Workspace, name: str, report_id: int, html: Path | None) -> Path:
    if html is not None:
        return html.expanduser()
    folder = ws.settings.state_dir / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{report_id}.html"


def _print_check(c: MonitorCheck) -> None:
    span = f"{when(c.window_start)} → {when(c.window_end)}"
    console.print(
        f"[bold]{c.monitor}[/] ({c.deployment}) report {c.report_id}: {c.rows:,} predictions, "
        f"{c.labelled_rows:,} labelled, window {span}",
        highlight=False,
    )
    if c.no_traffic:
        console.print("[yellow]no traffic in this window[/]")
    if c.drift is not None:
        t = table("column", "role", "test", "statistic", "p-value", "threshold", "drift")
        for col in c.drift.columns.values():
            mark = "[red]drift[/]" if col.drifted else "ok"
            t.add_row(
                col.column,
                col.role,
                col.test,
                number(col.statistic),
                number(col.p_value),
                number(col.threshold),
                mark,
            )
        console.print(t)
        console.print(
            f"drift share {c.drift.drift_share:.0%}"
            f"{' — dataset drift' if c.drift.dataset_drift else ''}",
            highlight=False,
        )
    for column, why in {**c.skipped, **c.errors}.items():
        console.print(f"not compared: {column}: {why}", highlight=False)
    if c.quality is not None:
        if c.quality.issues:
            t = table("column", "issue", "rows", "detail", wrap=("detail",))
            for i in c.quality.issues:
                t.add_row(i.column, i.kind, str(i.count), i.message)
            console.print(t)
        else:
            console.print("data quality: no issues")
    perf = c.performance.overall if c.performance is not None else {}
    if perf or c.estimated:
        t = table("metric", "measured", "estimated")
        for key in sorted({*perf, *c.estimated}):
            t.add_row(key, number(perf.get(key)), number(c.estimated.get(key)))
        console.print(t)
    for a in c.fired:
        console.print(f"[red]FIRING[/] {a.message}", highlight=False)
    for a in c.resolved:
        console.print(f"[green]RESOLVED[/] {a.message}", highlight=False)
    firing = [r.rule for r in c.rules if r.firing]
    if firing and not c.fired:
        console.print(f"still firing: {', '.join(firing)}", highlight=False)
    if c.notify_failures:
        console.print(f"[yellow]{c.notify_failures} notification(s) failed (see the log)[/]")


@app.command("check")
def check(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name."),
    since: str = typer.Option(None, help=f"Window start: {_TIME}"),
    until: str = typer.Option(None, help=f"Window end (exclusive): {_TIME}"),
    html: Path = typer.Option(
        None, help="Write the HTML report here (default: .loopml/reports/NAME-ID.html)."
    ),
) -> None:
    """Check monitor NAME now: drift, data quality, performance, alerts; store the report."""
    ws = open_workspace(ctx)
    if html is not None and not html.expanduser().parent.is_dir():
        raise InvalidInput(f"--html {html}: folder {html.expanduser().parent} does not exist")
    c = check_monitor(ws, name, since=since, until=until)
    _print_check(c)
    path = _html_path(ws, name, c.report_id, html)
    write_atomic(path, report_html(ws, c.report_id))
    console.print(f"HTML report: {path}", highlight=False, soft_wrap=True)


@app.command("skew")
def skew(
    ctx: typer.Context,
    deployment: str = typer.Argument(..., help="A deployment made with --features."),
    since: str = typer.Option("1d", help=f"Window start: {_TIME}"),
    until: str = typer.Option(None, help=f"Window end (exclusive): {_TIME}"),
    tolerance: float = typer.Option(1e-9, help="Numeric values closer than this are equal."),
) -> None:
    """Training/serving skew: served feature values vs offline ones, point in time."""
    ws = open_workspace(ctx)
    r = skew_report(ws, deployment, since=since, until=until, tolerance=tolerance)
    t = table(
        "feature",
        "rows",
        "mismatched",
        "share",
        "max abs diff",
        title=f"{deployment}: feature service {r.service}, {r.rows} logged row(s)",
    )
    for f in r.features:
        share = f"{f.mismatch_share:.1%}"
        t.add_row(f.feature, str(f.rows), str(f.mismatched), share, number(f.max_abs_diff))
    console.print(t)
    if r.skewed:
        console.print(f"[yellow]skewed: {', '.join(r.skewed)}[/]", highlight=False)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List monitors."""
    ws = open_workspace(ctx)
    monitors = list_monitors(ws)
    if not monitors:
        console.print("no monitors yet")
        return
    t = table("name", "deployment", "reference", "window", "rules", "created")
    for m in monitors:
        size = m.window or f"{m.window_rows} rows"
        t.add_row(
            m.name,
            m.deployment,
            m.reference["dataset"],
            size,
            str(len(m.rules)),
            when(m.created_at),
        )
    console.print(t)


@app.command("show")
def show(ctx: typer.Context, name: str = typer.Argument(..., help="Monitor name.")) -> None:
    """Show monitor NAME's configuration and its latest report."""
    ws = open_workspace(ctx)
    m = get_monitor(ws, name)
    ref = m.reference
    lines = [
        f"[bold]{m.name}[/] watches deployment {m.deployment} (role {m.role or 'any'})",
        f"reference: {ref['dataset']} ({ref['source']}; model version {ref['model_version']}, "
        f"{ref['rows']:,} rows)",
        f"features: {', '.join(m.features)}",
        f"label: {m.label or '-'}; prediction: {m.prediction or '-'}; task: {m.task or '-'}",
        f"window: {m.window or str(m.window_rows) + ' rows'}; dataset drift from "
        f"{m.drift_share:.0%} of features",
        f"rules: {'; '.join(m.rules) or '-'}",
        f"notify: {', '.join(m.notify) or '-'}",
    ]
    for line in lines:
        console.print(line, highlight=False)
    latest = list_reports(ws, name, limit=1)
    if latest:
        r = latest[0]
        console.print(
            f"latest report {r.id} ({when(r.created_at)}): {r.rows:,} rows, drift share "
            f"{number(r.drift_share)}",
            highlight=False,
        )


@app.command("reports")
def reports(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name."),
    limit: int = typer.Option(20, "-n", help="How many of the newest reports."),
    html: int = typer.Option(None, help="Write the HTML of this report id (with --output)."),
    output: Path = typer.Option(None, "--output", "-o", help="File for --html."),
) -> None:
    """List monitor NAME's reports, newest first (or export one's HTML)."""
    ws = open_workspace(ctx)
    if html is not None:
        if output is None:
            raise InvalidInput("--html ID needs --output FILE")
        found = [r for r in list_reports(ws, name, limit=10_000) if r.id == html]
        if not found:
            raise InvalidInput(f"report {html} is not a report of monitor {name!r}")
        write_atomic(output.expanduser(), report_html(ws, html))
        console.print(f"wrote report {html} to {output}", highlight=False)
        return
    rows = list_reports(ws, name, limit=limit)
    if not rows:
        console.print(f"no reports of {name!r} yet; run `loopml monitor check {name}`")
        return
    t = table("id", "created", "rows", "drift share", "drifted", wrap=("drifted",))
    for r in rows:
        t.add_row(
            str(r.id),
            when(r.created_at),
            f"{r.rows:,}",
            number(r.drift_share),
            ", ".join(r.summary.get("drifted_columns") or []) or "-",
        )
    console.print(t)


@app.command("delete")
def delete(ctx: typer.Context, name: str = typer.Argument(..., help="Monitor name.")) -> None:
    """Delete monitor NAME with its reports and alerts."""
    delete_monitor(open_workspace(ctx), name)
    console.print(f"removed monitor {name}")
