"""``loopml alerts``: the alerts monitors raised (firing, or every one with ``--all``)."""

from __future__ import annotations

import typer

from loopml.cli._common import console, number, open_workspace, table, when
from loopml.monitoring import list_alerts

app = typer.Typer(help="Alerts raised by monitor rules.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", help="Also resolved alerts."),
    monitor: str = typer.Option(None, "--monitor", "-m", help="Only this monitor's."),
    limit: int = typer.Option(100, "-n", help="At most this many, newest first."),
) -> None:
    """List firing alerts (with --all, resolved ones too), newest first."""
    ws = open_workspace(ctx)
    found = list_alerts(ws, source=monitor, state=None if all_ else "firing", limit=limit)
    if not found:
        console.print("no alerts" if all_ else "no firing alerts")
        return
    t = table("id", "monitor", "rule", "state", "value", "fired", "resolved", wrap=("rule",))
    for a in found:
        state = "[red]firing[/]" if a.state == "firing" else "resolved"
        t.add_row(
            str(a.id),
            a.source,
            a.rule,
            state,
            number(a.value),
            when(a.fired_at),
            when(a.resolved_at),
        )
    console.print(t)
