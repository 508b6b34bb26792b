"""``loopml deploy``: create, show and delete deployments (endpoint + traffic policy).

``loopml deploy churn --primary @production --shadow @challenger`` is short for
``loopml deploy create churn ...``.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from loopml.cli._common import console, open_workspace, table, when
from loopml.errors import LoopmlError
from loopml.serving import (
    Deployment,
    delete_deployment,
    deploy,
    get_deployment,
    list_deployments,
    resolve_version,
)
from loopml.store import Workspace


class _CreateByDefault(TyperGroup):
    """A group whose first argument, when it is not a subcommand, is a deployment name."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: Typer's click Context
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["create", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_CreateByDefault,
    help="Deployments: an endpoint name, a model's primary version and a traffic policy "
    "(shadow, canary or sticky A/B) towards a candidate. `loopml deploy NAME ...` creates.",
    no_args_is_help=True,
)


def _version(ws: Workspace, model: str, ref: str | None) -> str:
    if ref is None:
        return "-"
    try:
        return f"{ref} (v{resolve_version(ws, model, ref)})"
    except LoopmlError:
        return f"{ref} (unresolved)"


def _describe(ws: Workspace, d: Deployment) -> str:
    text = f"[bold]{d.name}[/]: {d.model} {_version(ws, d.model, d.primary)}"
    if d.policy == "shadow":
        text += f", shadow {_version(ws, d.model, d.candidate)}"
    elif d.policy in ("canary", "ab"):
        text += f", {d.policy} {_version(ws, d.model, d.candidate)} at {d.traffic:.0%}"
        if d.sticky_key:
            text += f" by {d.sticky_key}"
    if d.features:
        text += f", features from service {d.features}"
    return text


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment (endpoint) name."),
    model: str = typer.Option(
        None, "--model", "-m", help="Registered model (default: the deployment's, else NAME)."
    ),
    primary: str = typer.Option("@production", help="Version answering: @alias, 3 or v3."),
    shadow: str = typer.Option(None, help="Mirror requests to this version; log both."),
    canary: str = typer.Option(None, help="Send a --traffic share of requests to this version."),
    ab: str = typer.Option(None, "--ab", help="Sticky A/B split with this version."),
    traffic: float = typer.Option(None, help="The candidate's share in (0, 1)."),
    sticky_key: str = typer.Option(None, help="Request field hashed for sticky assignment."),
    features: str = typer.Option(
        None,
        "--features",
        help="Feature service: requests carry only its entity keys; the server looks up the rest.",
    ),
) -> None:
    """Create deployment NAME, or replace its versions and policy."""
    ws = open_workspace(ctx)
    d = deploy(
        ws,
        name,
        model=model,
        primary=primary,
        shadow=shadow,
        canary=canary,
        ab=ab,
        traffic=traffic,
        sticky_key=sticky_key,
        features=features,
    )
    console.print(f"deployed {_describe(ws, d)}", highlight=False)


@app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="A deployment (default: list them all)."),
) -> None:
    """List deployments, or show one with the versions its references point at now."""
    ws = open_workspace(ctx)
    found = [get_deployment(ws, name)] if name else list_deployments(ws)
    t = table("deployment", "policy", "updated", wrap=("deployment",))
    for d in found:
        t.add_row(_describe(ws, d), d.policy, when(d.updated_at))
    if not found:
        console.print("no deployments yet; create one with `loopml deploy NAME --primary @alias`")
        return
    console.print(t)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment to remove (its prediction logs stay)."),
) -> None:
    """Remove a deployment."""
    delete_deployment(open_workspace(ctx), name)
    console.print(f"removed deployment {name}")
