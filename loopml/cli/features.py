"""``loopml features apply|list|show|materialize|ingest-stream``."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from loopml import features
from loopml.cli._common import console, open_workspace, table, when

app = typer.Typer(
    help="Feature store: definitions, materialization, streaming ingestion.",
    no_args_is_help=True,
)

_STYLE = {"create": "green", "update": "yellow", "unchanged": "dim"}


@app.command("apply")
def apply(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A .py or .yaml file of definitions, or a folder."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
) -> None:
    """Register (and version) the entities, views and services defined in PATH."""
    ws = open_workspace(ctx)
    definitions = features.load_definitions(path)
    changes = features.apply(definitions, dry_run=dry_run, workspace=ws)
    for change in changes:
        style = _STYLE.get(change.action, "")
        console.print(
            f"[{style}]{change.action:9}[/] {change.kind.replace('_', ' ')} "
            f"[bold]{change.name}@{change.version}[/]",
            highlight=False,
        )
        for line in change.diff:
            console.print(f"    {line}", highlight=False, markup=False)
    changed = sum(c.action != "unchanged" for c in changes)
    verb = "would change" if dry_run else "changed"
    console.print(f"{changed} of {len(changes)} definition(s) {verb}")


@app.command("list")
def list_(
    ctx: typer.Context,
    kind: str = typer.Option(
        None, help="entity, feature_view, on_demand_feature_view or feature_service."
    ),
) -> None:
    """List registered definitions (latest versions)."""
    frame = features.list_definitions(kind, workspace=open_workspace(ctx))
    t = table("kind", "name", "version", "features", "owner", "created")
    for rec in frame.to_dict("records"):
        t.add_row(
            rec["kind"].replace("_", " "),
            rec["name"],
            str(rec["version"]),
            str(rec["features"] or "-"),
            rec["owner"] or "-",
            when(rec["created_at"].to_pydatetime()),
        )
    console.print(t)


@app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The definition's name."),
    kind: str = typer.Option(None, help="Its kind, if several share the name."),
    version: int = typer.Option(None, help="A version (default: the latest)."),
) -> None:
    """Show one definition: its spec, version and creation time."""
    reg = features.get_definition(name, kind, version=version, workspace=open_workspace(ctx))
    console.print(
        f"[bold]{reg.kind.replace('_', ' ')} {reg.ref}[/]  created {when(reg.created_at)}",
        highlight=False,
    )
    spec = dict(reg.spec)
    source = spec.pop("function_source", None)
    console.print_json(json.dumps(spec))
    if source:
        console.print(source, markup=False, highlight=False)


@app.command("materialize")
def materialize(
    ctx: typer.Context,
    start: str = typer.Option(None, help="Window start (ISO time, UTC); default: watermark."),
    end: str = typer.Option(None, help="Window end (ISO time, UTC); default: now."),
    view: list[str] = typer.Option(None, "--view", help="A view to materialize (repeatable)."),
    store: str = typer.Option(None, help="Online store URI (default: setting online_store)."),
) -> None:
    """Copy the latest values of feature views into the online store."""
    ws = open_workspace(ctx)
    target = features.open_online_store(ws, store) if store else None
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("materializing", total=None)

        def advance(name: str, rows: int) -> None:
            bar.update(task, description=f"{name}: {rows:,} rows")

        try:
            results = features.materialize(
                start, end, views=view or None, store=target, progress=advance, workspace=ws
            )
        finally:
            if target is not None:
                target.close()
    t = table("view", "version", "from", "to", "rows")
    for r in results:
        t.add_row(r.view, str(r.version), when(r.start), when(r.end), f"{r.rows:,}")
    console.print(t)


@app.command("ingest-stream")
def ingest_stream(
    ctx: typer.Context,
    view: str = typer.Argument(..., help="The feature view the events belong to."),
    broker: str = typer.Option("redis", help="redis (Redis Streams) or nats (JetStream)."),
    stream: str = typer.Option(..., help="Redis stream key, or JetStream stream name."),
    subject: str = typer.Option(None, help="NATS subject (default: the stream name)."),
    url: str = typer.Option(None, help="Broker URL (default: the local Redis / NATS)."),
    group: str = typer.Option(None, help="Consumer group / durable (default loopml-VIEW)."),
    consumer: str = typer.Option("loopml", help="Consumer name in the Redis group."),
    batch_rows: int = typer.Option(5000, help="Flush to the offline store at this many events."),
    flush_interval: float = typer.Option(1.0, help="...or after this many seconds."),
    ack_wait: float = typer.Option(30.0, help="NATS: seconds before an unacked event is re-sent."),
    max_events: int = typer.Option(None, help="Stop after this many events."),
    idle_exit: float = typer.Option(None, help="Stop after this many seconds without events."),
    store: str = typer.Option(None, help="Online store URI (default: setting online_store)."),
) -> None:
    """Consume a stream into the online store (at once) and the offline store (batches).

    Stop with Ctrl-C or SIGTERM: buffered events are flushed and acknowledged first.
    """
    ws = open_workspace(ctx)
    target = features.open_online_store(ws, store) if store else None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def report(stats: features.IngestStats) -> None:
        console.print(
            f"{stats.events:,} events, {stats.offline_rows:,} offline rows, "
            f"{stats.rejected:,} rejected",
            highlight=False,
        )

    console.print(f"consuming {broker} stream {stream!r} into feature view {view!r}")
    try:
        stats = features.ingest_stream(
            view,
            broker=broker,
            url=url,
            stream=stream,
            subject=subject,
            group=group,
            consumer=consumer,
            batch_rows=batch_rows,
            flush_interval=flush_interval,
            ack_wait=ack_wait,
            max_events=max_events,
            idle_exit=idle_exit,
            stop_event=stop,
            store=target,
            report=report,
            workspace=ws,
        )
    finally:
        if target is not None:
            target.close()
    console.print_json(json.dumps(stats.summary()))
