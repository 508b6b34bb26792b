"""``loopml server``: the platform server (REST + MLflow-compatible API) and its users."""

from __future__ import annotations

import typer

from loopml.cli._common import console, open_workspace
from loopml.cli.server_users import users_app
from loopml.server import run_server
from loopml.server._run import check_exposure

server_app = typer.Typer(
    help="Run the platform server: one API over this workspace for a whole team.",
    invoke_without_command=True,
    no_args_is_help=False,
)
server_app.add_typer(users_app, name="users", help="Users, API tokens and project roles.")


@server_app.callback()
def server(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(5000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Server processes."),
    auth: bool = typer.Option(
        False, "--auth", help="Require an API token (`loopml server users add`)."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow a non-loopback --host without --auth."
    ),
) -> None:
    """Serve /api/v1, MLflow's /api/2.0/mlflow and /openapi.json until Ctrl-C / SIGTERM.

    Without --auth it only listens on 127.0.0.1 unless --insecure is given.
    """
    if ctx.invoked_subcommand is not None:
        return
    check_exposure(host, auth, insecure)
    ws = open_workspace(ctx)
    mode = "token auth" if auth else "no auth"
    console.print(f"loopml server on http://{host}:{port} ({mode}, {workers} worker(s))")
    run_server(ws, host=host, port=port, workers=workers, auth=auth, insecure=insecure)
