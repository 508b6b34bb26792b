"""``loopml experiments ...``."""

from __future__ import annotations

import typer

from loopml.cli._common import console, open_workspace, table, when
from loopml.tracking import list_experiments

app = typer.Typer(help="Experiments (named groups of runs).", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List experiments with their number of runs."""
    ws = open_workspace(ctx)
    t = table("name", "id", "runs", "created")
    for exp, n_runs in list_experiments(ws):
        t.add_row(exp.name, str(exp.id), str(n_runs), when(exp.created_at))
    console.print(t)
