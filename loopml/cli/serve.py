"""``loopml serve``: serve registered models and deployments over HTTP."""

from __future__ import annotations

import os

import typer

from loopml.cli._common import console, open_workspace
from loopml.errors import InvalidInput
from loopml.serving import BatchConfig, ServeConfig
from loopml.serving import serve as run_server

TOKEN_ENV = "LOOPML_SERVE_TOKEN"


def serve(
    ctx: typer.Context,
    refs: list[str] = typer.Argument(None, help="Model references, e.g. churn@production."),
    model: list[str] = typer.Option(
        None, "--model", "-m", help="Model reference (repeatable): churn@production, churn/3."
    ),
    deployment: list[str] = typer.Option(
        None, "--deployment", "-d", help="Deployment name to serve (repeatable)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    workers: int = typer.Option(1, help="Server processes (each loads the models)."),
    token: str = typer.Option(
        None, help=f"Require 'Authorization: Bearer <token>' (default: ${TOKEN_ENV})."
    ),
    max_batch_size: int = typer.Option(64, help="Rows per model call at most."),
    max_wait_ms: float = typer.Option(2.0, help="Longest wait for a batch to fill."),
    no_batching: bool = typer.Option(False, "--no-batching", help="Run each request alone."),
    max_body_mb: float = typer.Option(32.0, help="Larger request bodies get HTTP 413."),
    timeout: float = typer.Option(30.0, help="Seconds before a prediction gets HTTP 504."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not log predictions."),
    runtime: str = typer.Option(
        "native",
        help="native (each model's library) or onnx (its ONNX export, run by onnxruntime; "
        "register the model with onnx=True).",
    ),
) -> None:
    """Serve models (and deployments) with micro-batching until Ctrl-C / SIGTERM."""
    models = [*(refs or []), *(model or [])]
    if not models and not deployment:
        raise InvalidInput("give a model reference (e.g. churn@production) or --deployment")
    config = ServeConfig(
        batching=BatchConfig(
            enabled=not no_batching, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms
        ),
        max_body_mb=max_body_mb,
        timeout_s=timeout,
        token=token or os.environ.get(TOKEN_ENV) or None,
        runtime=runtime,
    )
    ws = open_workspace(ctx)
    served = ", ".join([*models, *(f"deployment {d}" for d in deployment or [])])
    via = "" if runtime == "native" else f" with the {runtime} runtime"
    console.print(f"serving {served}{via} on http://{host}:{port} (Ctrl-C stops)")
    run_server(
        ws,
        models,
        deployments=deployment or [],
        host=host,
        port=port,
        workers=workers,
        config=config,
        log_predictions=not no_log,
    )
