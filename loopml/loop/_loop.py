"""One iteration of the loop: check → retrain → compare → shadow → promote, with evidence.

``run_once`` looks at a deployment's champion (the version its primary reference points
at), and — when its monitor has an alert firing, or always if the policy says so — trains a
challenger from the champion's recipe (or AutoML) on the newest version of the champion's
dataset plus labelled feedback, registers it, and compares both on the same fresh holdout:
rows the champion never saw, kept out of the challenger's training. The challenger wins
only if the paired bootstrap's confidence interval of its improvement lies above the
policy's margin; then it is shadowed (when the policy asks for shadow traffic) and the
alias moves. Every outcome is a row in ``loop_decisions`` with its evidence and lineage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from loopml import data, monitoring, registry, serving
from loopml.errors import InvalidInput
from loopml.loop._recipe import Recipe, champion_recipe
from loopml.store import Node, Workspace, add_edge
from loopml.store.db import now_ms
from loopml.store.schema import alerts, loop_decisions
from loopml.training import automl, better, mcnemar, paired_bootstrap, train, tune
from loopml.training._tune import DEFAULT_METRIC

Outcome = Literal["promoted", "rejected", "shadowing", "recommended", "skipped"]
MIN_HOLDOUT = 30  # rows; fewer cannot tell two models apart


@dataclass
class Policy:
    """How the loop treats one deployment.

    Parameters
    ----------
    deployment : the deployment to improve.
    monitor : a monitor of it; its firing alerts trigger retraining.
    when : ``alert`` — retrain only while an alert fires (``always`` without a monitor);
        ``always`` — retrain at every iteration (a schedule).
    retrain : ``recipe`` — the champion's family and hyperparameters (or, if it won a
        ``tune`` search, that search again); ``automl`` — a new search across families
        within ``automl_budget`` seconds.
    feedback : add the deployment's labelled predictions to the training data.
    metric : what decides (default: roc_auc, accuracy or rmse by task).
    margin : how much better the challenger must be (its confidence interval's lower end).
    shadow_requests : shadow the challenger until it has answered this many requests
        before promoting it (0: promote right after the comparison).
    promote : move the alias; False only records a recommendation.
    alias : the alias production traffic follows.
    """

    deployment: str
    monitor: str | None = None
    when: Literal["alert", "always"] = "alert"
    retrain: Literal["recipe", "automl"] = "recipe"
    automl_budget: float = 60.0
    feedback: bool = True
    metric: str | None = None
    margin: float = 0.0
    shadow_requests: int = 0
    promote: bool = True
    alias: str = "production"
    seed: int = 0

    def check(self) -> None:
        """Refuse an inconsistent policy: InvalidInput naming the field."""
        if self.when not in ("alert", "always"):
            raise InvalidInput(f"policy.when must be 'alert' or 'always', got {self.when!r}")
        if self.retrain not in ("recipe", "automl"):
            raise InvalidInput(f"policy.retrain must be 'recipe' or 'automl', got {self.retrain!r}")
        if self.shadow_requests < 0 or self.automl_budget <= 0:
            raise InvalidInput("policy.shadow_requests must be >= 0 and automl_budget > 0")


@dataclass(frozen=True)
class Decision:
    """One recorded outcome of the loop."""

    id: int | None
    deployment: str
    model: str
    champion: int | None
    challenger: int | None
    trigger: str
    decision: Outcome
    reason: str
    evidence: dict[str, Any] = field(repr=False)
    created_at: datetime | None = None


@dataclass(frozen=True)
class Iteration:
    """One iteration of the loop between its stages (:func:`check` → :func:`retrain` →
    :func:`evaluate` → :func:`conclude`); each stage returns it with more filled in, and
    once ``decision`` is set the later stages pass it through unchanged. Picklable, so the
    stages can be pipeline steps (``loopml.pipelines.closed_loop``)."""

    deployment: str
    model: str
    champion: int
    trigger: str
    evidence: dict[str, Any] = field(repr=False)
    decision: Decision | None = None
    challenger: int | None = None
    holdout: pd.DataFrame | None = field(default=None, repr=False)
    target: str | None = None
    task: str | None = None
    summary: str | None = None


def run_once(ws: Workspace, policy: Policy, *, trigger: str = "manual") -> Decision:
    """One iteration of the loop for ``policy.deployment``; see the module docstring."""
    checked = check(ws, policy, trigger=trigger)
    return conclude(ws, policy, evaluate(ws, policy, retrain(ws, policy, checked)))


def check(ws: Workspace, policy: Policy, *, trigger: str = "manual") -> Iteration:
    """The first stage: finish a pending shadow, else check the monitor; decided
    (``skipped``) when the policy retrains only on an alert and none fires."""
    policy.check()
    dep = serving.get_deployment(ws, policy.deployment)
    champion = serving.resolve_version(ws, dep.model, dep.primary)
    it = Iteration(dep.name, dep.model, champion, trigger, {})
    pending = _pending_shadow(ws, dep)
    if pending is not None:
        return replace(it, decision=_finish_shadow(ws, policy, dep, pending))
    evidence: dict[str, Any] = {}
    if policy.monitor is not None:
        checked = monitoring.check_monitor(ws, policy.monitor)
        firing = _firing(ws, policy.monitor)
        evidence["monitor"] = {"report": checked.report_id, "alerts": firing}
        if firing:
            trigger = "alert"
    it = replace(it, trigger=trigger, evidence=evidence)
    if policy.when == "alert" and policy.monitor is not None and trigger != "alert":
        return _decide(ws, it, "skipped", "no alert firing")
    return it


def retrain(ws: Workspace, policy: Policy, it: Iteration) -> Iteration:
    """The second stage: a fresh holdout and a challenger trained (from the champion's
    recipe or AutoML) and registered; decided (``skipped``) without enough fresh rows."""
    if it.decision is not None:
        return it
    mv = registry.get_model_version(ws, it.model, it.champion)
    recipe = champion_recipe(ws, mv)
    latest = data.resolve(f"{recipe.dataset}@latest", workspace=ws)
    frame = latest.to_pandas()
    features = [c.name for c in mv.signature.inputs]
    if policy.feedback:
        frame = _with_feedback(ws, it.deployment, frame, features, recipe.target)
    seen = data.resolve(recipe.trained_on, workspace=ws).to_pandas()
    fit_rows, holdout, fresh = _fresh_holdout(frame, seen, [*features, recipe.target], policy.seed)
    evidence = dict(it.evidence)
    evidence["data"] = {
        "dataset": latest.ref,
        "champion_trained_on": recipe.trained_on,
        "rows": len(frame),
        "fresh_rows": fresh,
        "holdout_rows": len(holdout),
    }
    it = replace(it, evidence=evidence)
    if len(holdout) < MIN_HOLDOUT:
        reason = f"only {len(holdout)} holdout rows (need {MIN_HOLDOUT}): waiting for data"
        return _decide(ws, it, "skipped", reason)

    result = _retrain(ws, policy, recipe, fit_rows, features)
    with ws.db.write() as conn:
        add_edge(ws.db, conn, latest.lineage_node, Node("run", result.run_id), "training")
    challenger = result.register(it.model, alias="challenger")
    it = replace(
        it,
        evidence={**evidence, "challenger_run": result.run_id},
        challenger=challenger.version,
        holdout=holdout,
        target=recipe.target,
        task=recipe.task,
    )
    problem = _incompatible(mv.signature, challenger.signature)
    if problem:
        return _decide(ws, it, "rejected", problem)
    return it


def evaluate(ws: Workspace, policy: Policy, it: Iteration) -> Iteration:
    """The third stage: champion and challenger on the same fresh holdout; decided
    (``rejected``) unless the challenger's gain is above the policy's margin."""
    if it.decision is not None:
        return it
    assert it.challenger is not None and it.holdout is not None
    assert it.target is not None and it.task is not None
    champion = registry.get_model_version(ws, it.model, it.champion)
    challenger = registry.get_model_version(ws, it.model, it.challenger)
    metric = policy.metric or DEFAULT_METRIC[it.task]
    comparison = compare(ws, champion, challenger, it.holdout, it.target, it.task, metric)
    it = replace(it, evidence={**it.evidence, "comparison": comparison}, holdout=None)
    gain = comparison["improvement_low"]
    if not gain > policy.margin:
        reason = (
            f"{metric}: challenger {comparison['challenger']:.4f} vs champion "
            f"{comparison['champion']:.4f}; the 95% interval of the gain starts at "
            f"{gain:.4f}, not above the margin {policy.margin}"
        )
        return _decide(ws, it, "rejected", reason)
    summary = (
        f"{metric}: challenger {comparison['challenger']:.4f} vs champion "
        f"{comparison['champion']:.4f} (gain >= {gain:.4f} at 95%)"
    )
    return replace(it, summary=summary)


def conclude(ws: Workspace, policy: Policy, it: Iteration) -> Decision:
    """The last stage: the challenger that won is recommended, shadowed or promoted (as
    the policy says); the iteration's decision, recorded."""
    if it.decision is not None:
        return it.decision
    challenger, summary = it.challenger, it.summary
    assert challenger is not None and summary is not None
    if not policy.promote:
        return _decided(ws, it, "recommended", summary)
    dep = serving.get_deployment(ws, it.deployment)
    if policy.shadow_requests > 0:
        serving.deploy(ws, dep.name, model=dep.model, primary=dep.primary, shadow=str(challenger))
        reason = f"{summary}; shadowing until {policy.shadow_requests} requests"
        return _decided(ws, it, "shadowing", reason)
    _promote(ws, policy, dep, challenger)
    return _decided(ws, it, "promoted", summary)


def _decide(ws: Workspace, it: Iteration, outcome: Outcome, reason: str) -> Iteration:
    """``it`` with its decision made and recorded."""
    return replace(it, decision=_decided(ws, it, outcome, reason), holdout=None)


def _decided(ws: Workspace, it: Iteration, outcome: Outcome, reason: str) -> Decision:
    """The decision on ``it``, recorded (a rejected challenger tagged so)."""
    if outcome == "rejected" and it.challenger is not None:
        registry.set_model_tag(ws, it.model, "loop.rejected", reason[:500], version=it.challenger)
    return _record_row(
        ws,
        it.deployment,
        it.model,
        it.champion,
        it.challenger,
        it.trigger,
        outcome,
        reason,
        it.evidence,
    )


def watch(
    ws: Workspace,
    policy: Policy,
    *,
    every: float,
    iterations: int | None = None,
    on_decision: Callable[[Decision], None] | None = None,
    stop: threading.Event | None = None,
) -> list[Decision]:
    """Run :func:`run_once` every ``every`` seconds until ``stop`` is set (or ``iterations``)."""
    if not every > 0:
        raise InvalidInput(f"every must be a positive number of seconds, got {every}")
    stop = stop or threading.Event()
    decisions: list[Decision] = []
    while not stop.is_set() and (iterations is None or len(decisions) < iterations):
        decision = run_once(ws, policy, trigger="schedule")
        decisions.append(decision)
        if on_decision is not None:
            on_decision(decision)
        if iterations is None or len(decisions) < iterations:
            stop.wait(every)
    return decisions


def history(ws: Workspace, deployment: str, *, limit: int = 50) -> list[Decision]:
    """The loop's decisions for ``deployment``, newest first."""
    t = loop_decisions
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(t).where(t.c.deployment == deployment).order_by(t.c.id.desc()).limit(limit)
        ).all()
    return [_decision(r) for r in rows]


def compare(
    ws: Workspace,
    champion: registry.ModelVersion,
    challenger: registry.ModelVersion,
    holdout: pd.DataFrame,
    target: str,
    task: str,
    metric: str,
) -> dict[str, Any]:
    """Both versions on the same rows: paired bootstrap of ``metric`` (+ McNemar)."""
    a = registry.load_model(ws, champion)
    b = registry.load_model(ws, challenger)
    columns = [c.name for c in champion.signature.inputs]
    X, y = holdout[columns], holdout[target].to_numpy()
    pred_a, pred_b = np.asarray(a.predict(X)), np.asarray(b.predict(X))
    scored = task != "regression" and hasattr(a.native, "predict_proba")
    boot = paired_bootstrap(
        y,
        pred_a,
        pred_b,
        metric,
        task=task,
        proba_a=a.predict_proba(X) if scored else None,
        proba_b=b.predict_proba(X) if scored else None,
        labels=sorted(pd.unique(holdout[target])) if scored else None,
    )
    direction = better(metric)
    out: dict[str, Any] = {
        "metric": metric,
        "rows": len(holdout),
        "champion": boot.value_a,
        "challenger": boot.value_b,
        "bootstrap": asdict(boot),
        "improvement": direction * boot.diff,
        "improvement_low": boot.ci_low if direction == 1 else -boot.ci_high,
    }
    if task != "regression":
        out["mcnemar"] = asdict(mcnemar(y, pred_a, pred_b))
    return out


# -- steps --------------------------------------------------------------------------


def _with_feedback(
    ws: Workspace, deployment: str, frame: pd.DataFrame, features: list[str], target: str
) -> pd.DataFrame:
    """``frame`` plus the deployment's labelled predictions as training rows."""
    labelled = serving.labelled_predictions(ws, deployment, only_labelled=True).to_pandas()
    inputs = [f"input.{c}" for c in features]
    if labelled.empty or any(c not in labelled.columns for c in inputs):
        return frame
    rows = labelled[inputs].set_axis(features, axis=1).assign(**{target: labelled["label"]})
    rows[target] = rows[target].astype(frame[target].dtype)
    columns = [*features, target]
    known = set(pd.util.hash_pandas_object(frame[columns], index=False))
    new = ~pd.util.hash_pandas_object(rows[columns], index=False).isin(known).to_numpy()
    return pd.concat([frame, rows[new]], ignore_index=True)  # rows the dataset lacks


def _fresh_holdout(
    frame: pd.DataFrame, seen: pd.DataFrame, columns: list[str], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(rows to train on, holdout, number of fresh rows).

    Fresh rows are those not in the champion's training data; half of them (at most) form
    the holdout, so neither model has seen it. Without fresh rows there is no fair holdout.
    """
    shared = [c for c in columns if c in frame.columns and c in seen.columns]
    old = set(pd.util.hash_pandas_object(seen[shared], index=False))
    fresh = ~pd.util.hash_pandas_object(frame[shared], index=False).isin(old).to_numpy()
    positions = np.flatnonzero(fresh)
    rng = np.random.default_rng(seed)
    held = rng.permutation(positions)[: len(positions) // 2]
    mask = np.zeros(len(frame), dtype=bool)
    mask[held] = True
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True), len(positions)


def _retrain(
    ws: Workspace, policy: Policy, recipe: Recipe, rows: pd.DataFrame, features: list[str]
) -> Any:
    frame = rows[[*features, recipe.target]]
    experiment = f"{recipe.dataset}-loop"
    if policy.retrain == "automl":
        found = automl(
            frame,
            recipe.target,
            time_budget=policy.automl_budget,
            metric=policy.metric,
            seed=policy.seed,
            experiment=experiment,
            workspace=ws,
        )
        return found.best
    if recipe.search is not None:  # the champion won a search: run that search again
        space = recipe.search["space"]
        return tune(
            frame,
            recipe.target,
            model=recipe.model,
            search_space=space,
            strategy=recipe.search["strategy"],
            n_trials=recipe.search["n_trials"],
            metric=recipe.search["metric"],
            params={k: v for k, v in recipe.params.items() if k not in space},
            split=recipe.split,
            seed=recipe.seed,
            experiment=experiment,
            workspace=ws,
        ).best
    return train(
        frame,
        recipe.target,
        model=recipe.model,
        params=recipe.params,
        split=recipe.split,
        task=recipe.task,  # type: ignore[arg-type]
        seed=recipe.seed,
        experiment=experiment,
        run_name="challenger",
        workspace=ws,
    )


def _incompatible(champion: registry.Signature, challenger: registry.Signature) -> str | None:
    """Why clients of the champion could not call the challenger, or None."""
    have = {c.name: c for c in challenger.inputs}
    for column in champion.inputs:
        other = have.get(column.name)
        if other is None:
            return f"the challenger does not take input {column.name!r}"
        if other.dtype != column.dtype:
            return f"input {column.name!r} changed from {column.dtype} to {other.dtype}"
    extra = set(have) - {c.name for c in champion.inputs}
    if extra:
        return f"the challenger needs new input(s) {', '.join(sorted(extra))}"
    return None


def _promote(ws: Workspace, policy: Policy, dep: serving.Deployment, version: int) -> None:
    registry.set_alias(ws, dep.model, policy.alias, version)
    serving.deploy(ws, dep.name, model=dep.model, primary=f"@{policy.alias}")


def _pending_shadow(ws: Workspace, dep: serving.Deployment) -> Decision | None:
    """The loop's latest decision if it put the deployment's current candidate in shadow."""
    if dep.policy != "shadow" or dep.candidate is None:
        return None
    last = history(ws, dep.name, limit=1)
    if not last or last[0].decision != "shadowing":
        return None
    candidate = serving.resolve_version(ws, dep.model, dep.candidate)
    return last[0] if last[0].challenger == candidate else None


def _finish_shadow(
    ws: Workspace, policy: Policy, dep: serving.Deployment, pending: Decision
) -> Decision:
    """Promote the shadowed challenger once it has answered enough requests."""
    assert pending.created_at is not None and pending.challenger is not None
    since = pending.created_at
    shadow = serving.read_predictions(ws, dep.name, since=since, role="shadow").to_pandas()
    if len(shadow) < policy.shadow_requests:
        return Decision(
            pending.id,
            dep.name,
            dep.model,
            pending.champion,
            pending.challenger,
            pending.trigger,
            "shadowing",
            f"shadow: {len(shadow)} of {policy.shadow_requests} requests so far",
            pending.evidence,
            pending.created_at,
        )
    primary = serving.read_predictions(ws, dep.name, since=since, role="primary").to_pandas()
    both = shadow.merge(primary, on="request_id", suffixes=("_shadow", "_primary"))
    stats = {
        "requests": len(shadow),
        "paired": len(both),
        "agreement": float((both.prediction_shadow == both.prediction_primary).mean())
        if len(both)
        else None,
        "p99_latency_ms": {
            "shadow": float(np.percentile(shadow.latency_ms, 99)),
            "primary": float(np.percentile(primary.latency_ms, 99)) if len(primary) else None,
        },
    }
    evidence = {**pending.evidence, "shadow": stats}
    _promote(ws, policy, dep, pending.challenger)
    reason = f"{pending.reason.split(';')[0]}; shadow served {len(shadow)} requests"
    return _record_row(
        ws,
        dep.name,
        dep.model,
        pending.champion,
        pending.challenger,
        "shadow",
        "promoted",
        reason,
        evidence,
    )


def _firing(ws: Workspace, monitor: str) -> list[str]:
    t = alerts
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(t.c.rule).where(t.c.source == monitor, t.c.state == "firing")
        ).all()
    return [r.rule for r in rows]


def _record_row(
    ws: Workspace,
    deployment: str,
    model: str,
    champion: int | None,
    challenger: int | None,
    trigger: str,
    outcome: Outcome,
    reason: str,
    evidence: dict[str, Any],
) -> Decision:
    row = {
        "deployment": deployment,
        "model": model,
        "champion": champion,
        "challenger": challenger,
        "trigger": trigger,
        "decision": outcome,
        "reason": reason,
        "evidence": _jsonable(evidence),
        "created_at": now_ms(),
    }
    with ws.db.write() as conn:
        key = conn.execute(sa.insert(loop_decisions).values(**row)).inserted_primary_key
        assert key is not None
        decision_id = int(key[0])
        node = Node("loop_decision", str(decision_id))
        for role, version in (("champion", champion), ("challenger", challenger)):
            if version is not None:
                add_edge(ws.db, conn, Node("model_version", f"{model}/{version}"), node, role)
    return Decision(
        decision_id,
        deployment,
        model,
        champion,
        challenger,
        trigger,
        outcome,
        reason,
        row["evidence"],
        datetime.fromtimestamp(row["created_at"] / 1000, UTC),
    )


def _decision(row: Any) -> Decision:
    return Decision(
        id=row.id,
        deployment=row.deployment,
        model=row.model,
        champion=row.champion,
        challenger=row.challenger,
        trigger=row.trigger,
        decision=row.decision,
        reason=row.reason,
        evidence=row.evidence,
        created_at=datetime.fromtimestamp(row.created_at / 1000, UTC),
    )


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
