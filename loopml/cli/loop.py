"""``loopml loop``: retrain, compare, shadow and promote a deployment's model."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import typer

from loopml.cli._common import console, open_workspace, when

app = typer.Typer(
    help="The closed loop: retrain a deployment's model, compare, shadow and promote.",
    no_args_is_help=True,
)

Deployment = typer.Argument(..., help="The deployment to improve.")
Monitor = typer.Option(None, "--monitor", help="Retrain when this monitor has an alert firing.")
Always = typer.Option(False, "--always", help="Retrain every time, alert or not.")
Retrain = typer.Option("recipe", "--retrain", help="recipe (the champion's) or automl.")
Budget = typer.Option(60.0, "--automl-budget", help="Seconds for --retrain automl.")
Margin = typer.Option(0.0, help="The challenger's gain must exceed this (95% interval).")
Shadow = typer.Option(0, "--shadow-requests", help="Shadow the challenger this long first.")
NoPromote = typer.Option(False, "--no-promote", help="Only recommend; never move the alias.")
Metric = typer.Option(None, help="Metric that decides (default by task).")


def _policy(deployment: str, **options: Any) -> Any:
    from loopml.loop import Policy  # scikit-learn loads only when the loop runs

    return Policy(
        deployment,
        monitor=options["monitor"],
        when="always" if options["always"] or options["monitor"] is None else "alert",
        retrain=options["retrain"],
        automl_budget=options["budget"],
        metric=options["metric"],
        margin=options["margin"],
        shadow_requests=options["shadow"],
        promote=not options["no_promote"],
    )


def _show(decision: Any) -> None:
    colour = {"promoted": "green", "rejected": "red", "shadowing": "yellow"}.get(
        decision.decision, "white"
    )
    versions = f"v{decision.champion}" + (
        f" vs v{decision.challenger}" if decision.challenger else ""
    )
    console.print(
        f"[{colour}]{decision.decision}[/] {decision.deployment} {versions} "
        f"({decision.trigger}): {decision.reason}",
        highlight=False,
    )


@app.command()
def run(
    ctx: typer.Context,
    deployment: str = Deployment,
    monitor: str = Monitor,
    always: bool = Always,
    retrain: str = Retrain,
    budget: float = Budget,
    margin: float = Margin,
    shadow: int = Shadow,
    no_promote: bool = NoPromote,
    metric: str = Metric,
) -> None:
    """One iteration: check, retrain, compare on fresh data, shadow or promote."""
    from loopml.loop import run_once

    policy = _policy(**{k: v for k, v in locals().items() if k != "ctx"})
    _show(run_once(open_workspace(ctx), policy))


@app.command()
def watch(
    ctx: typer.Context,
    deployment: str = Deployment,
    every: float = typer.Option(3600.0, "--every", help="Seconds between iterations."),
    iterations: int = typer.Option(None, help="Stop after this many iterations."),
    monitor: str = Monitor,
    always: bool = Always,
    retrain: str = Retrain,
    budget: float = Budget,
    margin: float = Margin,
    shadow: int = Shadow,
    no_promote: bool = NoPromote,
    metric: str = Metric,
) -> None:
    """Run the loop on a schedule until stopped (Ctrl-C or SIGTERM)."""
    from loopml.loop import watch as watch_loop

    policy = _policy(
        **{k: v for k, v in locals().items() if k not in ("ctx", "every", "iterations")}
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        watch_loop(
            open_workspace(ctx),
            policy,
            every=every,
            iterations=iterations,
            on_decision=_show,
            stop=stop,
        )
    except KeyboardInterrupt:
        console.print("stopped")


@app.command()
def history(
    ctx: typer.Context,
    deployment: str = Deployment,
    limit: int = typer.Option(20, "-n", help="How many decisions."),
    evidence: bool = typer.Option(False, "--evidence", help="Print each decision's evidence."),
) -> None:
    """The loop's decisions for a deployment, newest first."""
    from loopml.loop import history as decisions

    rows = decisions(open_workspace(ctx), deployment, limit=limit)
    if not rows:
        console.print(f"no loop decisions for {deployment} yet")
    for d in rows:
        console.print(f"#{d.id} {when(d.created_at)} ", end="")
        _show(d)
        if evidence:
            console.print_json(json.dumps(d.evidence))
