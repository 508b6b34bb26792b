"""The ``loopml`` command line (Typer + Rich), one module per command group.

Errors loopml raises on purpose end the command with a one-line message and exit code 1,
never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import typer

from loopml._version import __version__
from loopml.cli import (
    alerts,
    build,
    data,
    deploy,
    experiments,
    features,
    loop,
    models,
    monitor,
    pipeline,
    predict,
    predictions,
    runs,
    serve,
    server,
    server_users,
    workspace,
)
from loopml.cli._common import WorkspaceOption, err_console
from loopml.cli.quickstart import quickstart
from loopml.cli.train import automl, train, tune
from loopml.errors import LoopmlError

app = typer.Typer(
    name="loopml",
    help="loopml: data → training → tracking → registry → serving → monitoring, in one tool.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"loopml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace_dir: Path = WorkspaceOption,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.ensure_object(dict)["home"] = workspace_dir


app.command("init")(workspace.init)
app.add_typer(server.server_app, name="server")
app.command("login")(server_users.login)
app.command("quickstart")(quickstart)
app.command("train")(train)
app.command("tune")(tune)
app.command("automl")(automl)
app.command("predict")(predict.predict)
app.command("serve")(serve.serve)
app.command("build")(build.build)
app.command("k8s")(build.k8s)
app.add_typer(workspace.store_app, name="store")
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(deploy.app, name="deploy")
app.add_typer(predictions.app, name="predictions")
app.add_typer(monitor.app, name="monitor")
app.add_typer(alerts.app, name="alerts")
app.add_typer(loop.app, name="loop")
app.add_typer(pipeline.app, name="pipeline")
app.command("scheduler")(pipeline.scheduler)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except LoopmlError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
