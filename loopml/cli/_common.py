"""What every command shares: the consoles, opening the workspace, tables, formatting."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from loopml.store import Workspace

console = Console()
err_console = Console(stderr=True)

WorkspaceOption = typer.Option(
    None,
    "--workspace",
    "-w",
    help="Workspace folder (default: $LOOPML_HOME, else found from the current folder).",
    show_default=False,
)


def open_workspace(ctx: typer.Context) -> Workspace:
    """The workspace chosen by the global ``--workspace`` option (opened once per command)."""
    state: dict[str, Any] = ctx.ensure_object(dict)
    ws: Workspace | None = state.get("ws")
    if ws is None:
        ws = state["ws"] = Workspace.open(state.get("home"))
        ctx.call_on_close(ws.close)
    return ws


def when(value: datetime | None) -> str:
    """A timestamp as local ``YYYY-MM-DD HH:MM``, or '-'."""
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M")


def duration(start: datetime | None, end: datetime | None) -> str:
    """``end - start`` as ``1h02m``, ``3m05s`` or ``4.2s``."""
    if start is None or end is None:
        return "-"
    s = (end - start).total_seconds()
    if s < 60:
        return f"{s:.1f}s"
    minutes, sec = divmod(int(s), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def number(value: Any) -> str:
    """A metric value, compactly."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def table(*columns: str, title: str | None = None, wrap: tuple[str, ...] = ()) -> Table:
    """A Rich table with our usual look; only the ``wrap`` columns fold long text."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, no_wrap=c not in wrap, overflow="fold" if c in wrap else "ellipsis")
    return t


def home_arg(value: Path | None) -> Path | None:
    """A CLI folder argument, expanded."""
    return value.expanduser() if value else None
