"""A workspace for the datasets and deployments pages (``test_ui_data_ops*.py``): a dataset
with two versions and a validation report, a trained model that is deployed and watched by
monitors with stored reports and alerts, and a loop decision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loopml import data, monitoring
from loopml.loop import Policy, run_once
from loopml.server._users import add_user
from loopml.store import Workspace
from tests.monitoring._deployed import customers, deployed, log_traffic

EVIL = "<script>alert(1)</script>"
SUITE = {
    "name": "churn-checks",
    "checks": [
        {"check": "not_null", "column": "age"},
        {"check": "in_range", "column": "age", "min": 18, "max": 60},
    ],
}


@dataclass
class OpsData:
    """What :func:`populate` made."""

    ws: Workspace
    viewer: str  # tokens
    outsider: str


def populate(home: Path) -> OpsData:
    """``churn`` v1 (trained on, deployed, validated) and v2 (older customers, an evil
    plan value), monitor ``churn-drift`` with three reports (calm, then drifted) and a firing
    alert, ``churn-quiet`` with the one report the loop made, and that skipped decision."""
    ws = Workspace.init(home)
    deployed(ws)  # churn@1, model churn@production, deployment churn
    data.validate("churn@1", SUITE, on_fail="warn", workspace=ws)
    newer = customers(400, seed=5, shifted=True)
    newer.loc[:9, "plan"] = EVIL
    data.ingest(newer, "churn", workspace=ws)
    data.set_alias("churn", "stable", 1, workspace=ws)
    monitoring.create_monitor(ws, "churn-drift", "churn", rules=["drift_share > 0.3"])
    monitoring.create_monitor(ws, "churn-quiet", "churn", rules=["rows < 1"])
    for i, shifted in enumerate((False, True, True)):
        log_traffic(ws, customers(150, seed=10 + i, shifted=shifted), f"t{i}")
        monitoring.check_monitor(ws, "churn-drift")
    run_once(ws, Policy("churn", monitor="churn-quiet"))  # no alert firing: skipped
    viewer = add_user(ws, "vic", roles={"default": "viewer"})
    outsider = add_user(ws, "olga", roles={"secret": "viewer"})
    return OpsData(ws, viewer, outsider)
