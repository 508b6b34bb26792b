"""The loop: a drifted deployment gets a challenger that is compared, shadowed, promoted."""

from __future__ import annotations

import pandas as pd
import pytest

from loopml import data, registry, serving
from loopml.errors import InvalidInput
from loopml.loop import Policy, champion_recipe, history, run_once, watch
from loopml.store import Node, Workspace, upstream
from loopml.training import train

FEATURES = ["tenure_months", "monthly_fee", "support_calls", "plan", "region", "payment"]


def _champion(ws: Workspace) -> None:
    before = data.demo_churn(3000).drop(columns=["customer_id", "event_time"])
    dv = data.ingest(before, name="churn", workspace=ws)
    result = train(dv, "churned", model="linear", workspace=ws)
    result.register("churn", alias="production")
    serving.deploy(ws, "churn", model="churn", primary="@production")


def _traffic(
    ws: Workspace,
    frame: pd.DataFrame,
    *,
    role: str = "primary",
    version: int = 1,
    labels: bool = True,
    prefix: str = "r",
) -> None:
    logger = serving.PredictionLogger(ws)
    ids = [f"{prefix}{i}" for i in range(len(frame))]
    model = registry.load_model(ws, f"models:/churn/{version}")
    inputs = frame[FEATURES].reset_index(drop=True)
    logger.log("churn", "churn", version, role, ids, inputs, model.predict(inputs), None, None, 1.0)
    if labels:
        logger.log_feedback("churn", ids, frame["churned"].tolist())
    logger.close()


def test_a_better_challenger_is_promoted_with_evidence(ws: Workspace) -> None:
    _champion(ws)
    _traffic(ws, data.demo_churn(800, period="after", seed=1))
    decision = run_once(ws, Policy("churn", when="always"))
    assert decision.decision == "promoted", decision.reason
    assert decision.champion == 1 and decision.challenger == 2
    comparison = decision.evidence["comparison"]
    assert comparison["metric"] == "roc_auc" and comparison["improvement_low"] > 0
    assert decision.evidence["data"]["fresh_rows"] == 800
    assert decision.evidence["data"]["holdout_rows"] == 400
    assert registry.get_model_version(ws, "models:/churn@production").version == 2
    assert history(ws, "churn")[0].id == decision.id
    roles = {e.role for e in upstream(ws.db, Node("loop_decision", str(decision.id)))}
    assert {"champion", "challenger", "training"} <= roles  # and on to the data it read
    recipe = champion_recipe(ws, registry.get_model_version(ws, "models:/churn/1"))
    assert recipe.model == "linear" and recipe.target == "churned"


def test_no_gain_means_rejected_and_production_stays(sqlite_ws: Workspace) -> None:
    _champion(sqlite_ws)
    _traffic(sqlite_ws, data.demo_churn(600, period="before", seed=7))  # same world as before
    decision = run_once(sqlite_ws, Policy("churn", when="always", margin=0.01))
    assert decision.decision == "rejected"
    assert "not above the margin 0.01" in decision.reason
    assert registry.get_model_version(sqlite_ws, "models:/churn@production").version == 1
    challenger = registry.get_model_version(sqlite_ws, "models:/churn/2")
    assert "margin" in challenger.tags["loop.rejected"]


def test_shadow_then_promote(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    _champion(ws)
    _traffic(ws, data.demo_churn(800, period="after", seed=1))
    policy = Policy("churn", when="always", shadow_requests=50)
    first = run_once(ws, policy)
    assert first.decision == "shadowing"
    dep = serving.get_deployment(ws, "churn")
    assert dep.policy == "shadow" and dep.candidate == "2"
    waiting = run_once(ws, policy)
    assert waiting.decision == "shadowing" and "0 of 50" in waiting.reason
    shadowed = data.demo_churn(60, period="after", seed=5)
    _traffic(ws, shadowed, role="shadow", version=2, labels=False, prefix="s")
    _traffic(ws, shadowed, role="primary", version=1, labels=False, prefix="s")
    done = run_once(ws, policy)
    assert done.decision == "promoted" and done.evidence["shadow"]["requests"] == 60
    assert 0 <= done.evidence["shadow"]["agreement"] <= 1
    assert serving.get_deployment(ws, "churn").policy == "single"
    assert registry.get_model_version(ws, "models:/churn@production").version == 2


def test_too_little_fresh_data_waits(sqlite_ws: Workspace) -> None:
    _champion(sqlite_ws)
    _traffic(sqlite_ws, data.demo_churn(20, period="after"))
    decisions = watch(sqlite_ws, Policy("churn", when="always"), every=0.01, iterations=2)
    assert [d.decision for d in decisions] == ["skipped", "skipped"]
    assert "holdout rows" in decisions[0].reason
    assert len(history(sqlite_ws, "churn")) == 2


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (Policy("churn", when="sometimes"), "policy.when"),  # type: ignore[arg-type]
        (Policy("churn", retrain="magic"), "policy.retrain"),  # type: ignore[arg-type]
        (Policy("churn", shadow_requests=-1), "shadow_requests"),
    ],
)
def test_bad_policies(sqlite_ws: Workspace, policy: Policy, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        run_once(sqlite_ws, policy)


def test_cli_run_and_history(sqlite_ws: Workspace) -> None:
    from typer.testing import CliRunner

    from loopml.cli import app

    _champion(sqlite_ws)
    _traffic(sqlite_ws, data.demo_churn(800, period="after", seed=1))
    home = ["--workspace", str(sqlite_ws.home)]
    runner = CliRunner()
    out = runner.invoke(app, [*home, "loop", "run", "churn", "--no-promote"])
    assert out.exit_code == 0, out.output
    assert "recommended churn v1 vs v2" in out.output
    out = runner.invoke(app, [*home, "loop", "history", "churn", "--evidence"])
    assert out.exit_code == 0 and "recommended" in out.output and "improvement_low" in out.output
    out = runner.invoke(app, [*home, "loop", "run", "nope"])
    assert out.exit_code == 1 and isinstance(out.exception, Exception)


def test_a_firing_alert_triggers_retraining(sqlite_ws: Workspace) -> None:
    from loopml.monitoring import create_monitor

    ws = sqlite_ws
    _champion(ws)
    create_monitor(ws, "churn-drift", "churn", rules=["drift_share > 0.3"], window="30d")
    _traffic(ws, data.demo_churn(300, period="before", seed=9), labels=False, prefix="q")
    calm = run_once(ws, Policy("churn", monitor="churn-drift"))
    assert calm.decision == "skipped" and calm.reason == "no alert firing"
    assert calm.evidence["monitor"]["alerts"] == []
    _traffic(ws, data.demo_churn(800, period="after", seed=1))
    drifted = run_once(ws, Policy("churn", monitor="churn-drift"))
    assert drifted.trigger == "alert" and drifted.decision == "promoted", drifted.reason
    assert drifted.evidence["monitor"]["alerts"] == ["drift_share > 0.3"]


def test_a_champion_from_a_search_is_retrained_by_that_search(sqlite_ws: Workspace) -> None:
    from loopml.training import tune

    ws = sqlite_ws
    before = data.demo_churn(2000).drop(columns=["customer_id", "event_time"])
    dv = data.ingest(before, name="churn", workspace=ws)
    space = {"C": {"type": "float", "low": 0.01, "high": 10.0, "log": True}}
    tune(dv, "churned", model="linear", search_space=space, n_trials=3, workspace=ws).register(
        "churn", alias="production"
    )
    serving.deploy(ws, "churn", model="churn", primary="@production")
    recipe = champion_recipe(ws, registry.get_model_version(ws, "models:/churn@production"))
    assert recipe.search == {"space": space, "strategy": "tpe", "metric": "roc_auc", "n_trials": 3}
    _traffic(ws, data.demo_churn(600, period="after", seed=2))
    decision = run_once(ws, Policy("churn", when="always"))
    assert decision.decision == "promoted", decision.reason
