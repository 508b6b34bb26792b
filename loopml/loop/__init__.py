"""The closed loop: monitor → retrain → challenger → compare → shadow → promote.

:func:`run_once` does one iteration (its stages :func:`check`, :func:`retrain`,
:func:`evaluate` and :func:`conclude` are also the steps of
``loopml.pipelines.closed_loop``) for a deployment under a :class:`Policy`; :func:`watch`
repeats it on a schedule; :func:`history` lists the recorded decisions with their evidence.
"""

from loopml.loop._loop import (
    Decision,
    Iteration,
    Policy,
    check,
    compare,
    conclude,
    evaluate,
    history,
    retrain,
    run_once,
    watch,
)
from loopml.loop._recipe import Recipe, champion_recipe

__all__ = [
    "Decision",
    "Iteration",
    "Policy",
    "Recipe",
    "champion_recipe",
    "check",
    "compare",
    "conclude",
    "evaluate",
    "history",
    "retrain",
    "run_once",
    "watch",
]
