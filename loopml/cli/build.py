"""``loopml build`` (an image build context for a model version) and ``loopml k8s`` (its
Kubernetes and KServe manifests)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from loopml.cli._common import console, open_workspace
from loopml.targets import K8sOptions, build_context, k8s_manifests, to_yaml


def build(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Model version: churn/3, churn@production, models:/..."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the build context to."),
    runtime: str = typer.Option("native", help="native, or onnx (the version's ONNX export)."),
    port: int = typer.Option(8080, help="Port the container listens on."),
    log_predictions: bool = typer.Option(
        False, "--log-predictions", help="Log predictions inside the container's workspace."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing folder."),
) -> None:
    """Write a reproducible image build context: Dockerfile, pinned requirements, the
    loopml wheel and a workspace holding the model. Build it with `docker build DIR`."""
    ws = open_workspace(ctx)
    with console.status(f"packaging {model} ..."):
        result = build_context(
            ws, model, out, runtime=runtime, port=port, log_predictions=log_predictions, force=force
        )
    console.print(
        f"wrote {result.path} for {result.model_version.uri} (python {result.python}, "
        f"{len(result.requirements)} pinned requirements); serves {result.served_ref}"
    )
    console.print(f"next: docker build -t {result.model_version.name.lower()}:latest {result.path}")


def k8s(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Model version: churn/3, churn@production, models:/..."),
    image: str = typer.Option(..., help="Image built from `loopml build`, e.g. churn:3."),
    out: Path = typer.Option(None, "--out", "-o", help="YAML file to write (default: stdout)."),
    name: str = typer.Option(None, help="Object name (default: the model name)."),
    namespace: str = typer.Option(None, help="Namespace (default: kubectl's)."),
    replicas: int = typer.Option(2, help="Replicas (the autoscaler's minimum)."),
    max_replicas: int = typer.Option(10, help="The autoscaler's maximum."),
    cpu: str = typer.Option("500m", help="CPU request per pod (the limit is twice)."),
    memory: str = typer.Option("512Mi", help="Memory request and limit per pod."),
    target_rps: int = typer.Option(200, help="Requests/s per pod the autoscaler aims at."),
    target_cpu: int = typer.Option(70, help="CPU utilisation (%) the autoscaler aims at."),
    port: int = typer.Option(8080, help="Container port (as given to loopml build)."),
    runtime: str = typer.Option("native", help="native or onnx (as given to loopml build)."),
) -> None:
    """Write Kubernetes manifests (Deployment, Service, HorizontalPodAutoscaler) and a
    KServe InferenceService for the image of a model version."""
    options = K8sOptions(
        image=image,
        name=name,
        namespace=namespace,
        replicas=replicas,
        max_replicas=max_replicas,
        cpu=cpu,
        memory=memory,
        target_rps=target_rps,
        target_cpu=target_cpu,
        port=port,
        runtime=runtime,
    )
    text = to_yaml(k8s_manifests(open_workspace(ctx), model, options))
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out)
    console.print(f"wrote {out}: Deployment, Service, HorizontalPodAutoscaler, InferenceService")
