"""The closed loop as a pipeline (``loopml.pipelines.closed_loop``) on a small deployed
model: its steps are the loop's stages, its decision is the loop's, and it can be
scheduled like any pipeline."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect

import pytest

import loopml
from loopml import data, loop, pipelines, registry
from loopml.store import Workspace
from tests.loop.test_loop import _champion, _traffic

STAGES = ["check", "retrain", "evaluate", "conclude"]


def test_a_better_challenger_is_promoted_by_the_pipeline(ws: Workspace) -> None:
    _champion(ws)
    _traffic(ws, data.demo_churn(800, period="after", seed=1))
    run = pipelines.closed_loop.run({"deployment": "churn", "when": "always"}, workspace=ws)
    assert run.status == "FINISHED"
    decision = run.output
    assert decision["decision"] == "promoted" and decision["trigger"] == "schedule"
    assert (decision["champion"], decision["challenger"]) == (1, 2)
    steps = run.steps.set_index("node")
    assert list(run.steps.node) == STAGES and (steps.status == "FINISHED").all()
    assert not steps.cache_hit.any()
    assert registry.get_model_version(ws, "models:/churn@production").version == 2
    [recorded] = loop.history(ws, "churn")  # one decision, with the loop's evidence
    assert recorded.id == decision["id"] and recorded.evidence["data"]["holdout_rows"] == 400
    assert recorded.evidence["comparison"]["improvement_low"] > 0


def test_a_decision_early_in_the_loop_passes_through_the_later_stages(
    sqlite_ws: Workspace,
) -> None:
    _champion(sqlite_ws)
    _traffic(sqlite_ws, data.demo_churn(20, period="after"))  # too few fresh rows
    params = {"deployment": "churn", "when": "always"}
    first = pipelines.closed_loop.run(params, workspace=sqlite_ws)
    second = pipelines.closed_loop.run(params, workspace=sqlite_ws)  # not from the cache
    for run in (first, second):
        assert run.output["decision"] == "skipped" and "holdout rows" in run.output["reason"]
        assert (run.steps.status == "FINISHED").all() and not run.steps.cache_hit.any()
    assert [d.decision for d in loop.history(sqlite_ws, "churn")] == ["skipped", "skipped"]
    assert registry.get_model_version(sqlite_ws, "models:/churn@production").version == 1


def test_a_bad_policy_fails_before_anything_runs(sqlite_ws: Workspace) -> None:
    with pytest.raises(loopml.InvalidInput, match="parameter 'when'"):
        pipelines.closed_loop.run({"deployment": "churn", "when": "sometimes"}, workspace=sqlite_ws)
    with pytest.raises(loopml.InvalidInput, match="shadow_requests"):
        pipelines.closed_loop.run(
            {"deployment": "churn", "shadow_requests": -1}, workspace=sqlite_ws
        )
    with pytest.raises(loopml.InvalidInput, match="parameter 'deployment': Field required"):
        pipelines.closed_loop.run({}, workspace=sqlite_ws)
    assert pipelines.list_pipeline_runs(sqlite_ws) == []


def test_the_parameters_are_the_policy_fields() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(loop.Policy)}
    params = inspect.signature(pipelines.closed_loop.fn).parameters
    assert set(params) == {*fields, "trigger"}
    assert all(params[k].default == v for k, v in fields.items() if k != "deployment")


def test_the_loop_runs_on_a_schedule(sqlite_ws: Workspace) -> None:
    _champion(sqlite_ws)
    _traffic(sqlite_ws, data.demo_churn(800, period="after", seed=1))
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    pipelines.add_schedule(
        sqlite_ws,
        "nightly-loop",
        "loopml.pipelines:closed_loop",
        "0 3 * * *",
        params={"deployment": "churn", "when": "always"},
        start_at=t0,
    )
    [run] = pipelines.Scheduler(sqlite_ws).tick(t0 + dt.timedelta(days=1, hours=1))
    assert run.status == "FINISHED" and run.output["decision"] == "promoted"
    stored = pipelines.get_pipeline_run(sqlite_ws, run.id)
    assert (stored.schedule, stored.executor) == ("nightly-loop", "thread")
    assert registry.get_model_version(sqlite_ws, "models:/churn@production").version == 2
