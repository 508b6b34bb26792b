"""``loopml models list|show`` and ``loopml models alias set|delete``."""

from __future__ import annotations

import typer

from loopml.cli._common import console, open_workspace, table, when
from loopml.registry import (
    delete_alias,
    get_model_version,
    list_models,
    list_versions,
    set_alias,
)
from loopml.store import Node, upstream

app = typer.Typer(help="Registered models, versions and aliases.", no_args_is_help=True)
alias_app = typer.Typer(help="Move or remove aliases such as 'production'.", no_args_is_help=True)
app.add_typer(alias_app, name="alias")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List registered models with their latest version and aliases."""
    ws = open_workspace(ctx)
    t = table("name", "latest", "aliases", "updated", "description")
    for m in list_models(ws):
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(m.aliases.items())) or "-"
        t.add_row(
            m.name, str(m.latest_version or "-"), aliases, when(m.updated_at), m.description or ""
        )
    console.print(t)


@app.command("show")
def show(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="NAME (all versions), NAME/3, NAME@alias or models:/..."),
) -> None:
    """Show a model's versions, or one version with its signature and lineage."""
    ws = open_workspace(ctx)
    if "/" not in model.removeprefix("models:/") and "@" not in model:
        t = table("version", "flavor", "aliases", "run", "created", "status")
        for mv in list_versions(ws, model.removeprefix("models:/")):
            t.add_row(
                str(mv.version),
                mv.flavor,
                ", ".join(mv.aliases) or "-",
                (mv.run_id or "-")[:8],
                when(mv.created_at),
                mv.status,
            )
        console.print(t)
        return
    mv = get_model_version(ws, model)
    console.print(
        f"[bold]{mv.uri}[/]  flavor {mv.flavor}  status {mv.status}  created {when(mv.created_at)}"
    )
    console.print(f"aliases: {', '.join(mv.aliases) or '-'}   run: {mv.run_id or '-'}")
    if mv.description:
        console.print(mv.description)
    t = table("input column", "dtype", title="signature")
    for col in mv.signature.inputs:
        t.add_row(col.name, col.dtype)
    for col in mv.signature.outputs:
        t.add_row(f"-> {col.name}", col.dtype, style="cyan")
    console.print(t)
    console.print("lineage:")
    for edge in upstream(ws.db, Node("model_version", f"{mv.name}/{mv.version}")):
        console.print(f"  {edge}")


@alias_app.command("set")
def alias_set(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. production."),
    version: int = typer.Argument(..., help="Version the alias should point at."),
) -> None:
    """Point NAME@ALIAS at VERSION (moving it if it exists)."""
    ws = open_workspace(ctx)
    mv = set_alias(ws, name, alias, version)
    console.print(f"{name}@{alias} -> version {mv.version}")


@alias_app.command("delete")
def alias_delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias to remove."),
) -> None:
    """Remove an alias."""
    delete_alias(open_workspace(ctx), name, alias)
    console.print(f"removed {name}@{alias}")
