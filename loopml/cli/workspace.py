"""``loopml init`` and ``loopml store upgrade``."""

from __future__ import annotations

from pathlib import Path

import typer

from loopml.cli._common import console
from loopml.settings import load_settings
from loopml.store import MetadataDB, Workspace

store_app = typer.Typer(help="The metadata store.", no_args_is_help=True)


def init(
    directory: Path = typer.Argument(Path("."), help="Folder to turn into a workspace."),
) -> None:
    """Create a workspace: loopml.toml plus .loopml/ (metadata DB and blob store)."""
    with Workspace.init(directory) as ws:
        console.print(f"Initialised loopml workspace in [bold]{ws.home}[/]")
        console.print(f"  metadata: {ws.db.url}\n  blobs:    {ws.blobs.uri}")


@store_app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Apply pending schema migrations to the metadata DB."""
    settings = load_settings(home=ctx.ensure_object(dict).get("home"))
    db = MetadataDB(settings.resolved_store_uri(), migrate=False)
    try:
        before = db.current_revision()
        db.upgrade()
        after = db.current_revision()
    finally:
        db.dispose()
    if before == after:
        console.print(f"Schema already at revision {after}.")
    else:
        console.print(f"Schema upgraded: {before or 'empty'} -> {after}.")
