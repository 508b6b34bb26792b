"""The closed loop as a pipeline: ``check → retrain → evaluate → conclude``, the stages
of :func:`loopml.loop.run_once` as steps (never cached: each looks at the deployment as it
is now), so the loop can be scheduled, resumed and seen like any other pipeline."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from loopml import loop
from loopml.pipelines._pipeline import pipeline
from loopml.pipelines._step import step
from loopml.pipelines._worker import step_workspace


def _policy(policy: dict[str, Any]) -> loop.Policy:
    return loop.Policy(**policy)


@step(cache=False, name="check")
def check_step(policy: dict[str, Any], trigger: str) -> loop.Iteration:
    """Finish a pending shadow, or check the monitor."""
    return loop.check(step_workspace(), _policy(policy), trigger=trigger)


@step(cache=False, name="retrain")
def retrain_step(policy: dict[str, Any], it: loop.Iteration) -> loop.Iteration:
    """Train and register a challenger on a fresh holdout's complement."""
    return loop.retrain(step_workspace(), _policy(policy), it)


@step(cache=False, name="evaluate")
def evaluate_step(policy: dict[str, Any], it: loop.Iteration) -> loop.Iteration:
    """Champion and challenger on the same fresh holdout."""
    return loop.evaluate(step_workspace(), _policy(policy), it)


@step(cache=False, name="conclude")
def conclude_step(policy: dict[str, Any], it: loop.Iteration) -> dict[str, Any]:
    """Recommend, shadow or promote the winner; the recorded decision (without its
    evidence, which ``loopml loop history`` shows)."""
    decision = loop.conclude(step_workspace(), _policy(policy), it)
    out = asdict(decision)
    del out["evidence"]
    out["created_at"] = None if decision.created_at is None else decision.created_at.isoformat()
    return out


@pipeline(name="closed_loop", executor="thread")
def closed_loop(
    deployment: str,
    monitor: str | None = None,
    when: Literal["alert", "always"] = "alert",
    retrain: Literal["recipe", "automl"] = "recipe",
    automl_budget: float = 60.0,
    feedback: bool = True,
    metric: str | None = None,
    margin: float = 0.0,
    shadow_requests: int = 0,
    promote: bool = True,
    alias: str = "production",
    seed: int = 0,
    trigger: str = "schedule",
) -> Any:
    """One iteration of the closed loop for ``deployment``; the parameters are
    :class:`loopml.loop.Policy`'s fields (and the decision's ``trigger``)."""
    policy = {
        "deployment": deployment,
        "monitor": monitor,
        "when": when,
        "retrain": retrain,
        "automl_budget": automl_budget,
        "feedback": feedback,
        "metric": metric,
        "margin": margin,
        "shadow_requests": shadow_requests,
        "promote": promote,
        "alias": alias,
        "seed": seed,
    }
    _policy(policy).check()  # an inconsistent policy fails before anything runs
    it = check_step(policy, trigger)
    return conclude_step(policy, evaluate_step(policy, retrain_step(policy, it)))


__all__ = ["closed_loop"]
