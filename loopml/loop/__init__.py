"""The closed loop: monitor → retrain → challenger → compare → shadow → promote.

:func:`run_once` does one iteration for a deployment under a :class:`Policy`; :func:`watch`
repeats it on a schedule; :func:`history` lists the recorded decisions with their evidence.
"""

from loopml.loop._loop import Decision, Policy, compare, history, run_once, watch
from loopml.loop._recipe import Recipe, champion_recipe

__all__ = [
    "Decision",
    "Policy",
    "Recipe",
    "champion_recipe",
    "compare",
    "history",
    "run_once",
    "watch",
]
