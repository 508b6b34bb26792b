"""A deployed churn model on a real workspace, and helpers that log traffic to it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.data import ingest
from loopml.registry import load_model
from loopml.serving import PredictionLogger, deploy
from loopml.store import Workspace
from loopml.training import train

FEATURES = ["age", "income", "plan"]
PLANS = np.array(["free", "pro", "team"])


def customers(n: int, seed: int, *, shifted: bool = False) -> pd.DataFrame:
    """``n`` customers; ``shifted`` makes them 15 years older and mostly on the team plan."""
    rng = np.random.default_rng(seed)
    age = rng.normal(55 if shifted else 40, 10, n).round().astype(np.int64)
    income = rng.lognormal(8, 0.4, n)
    p = [0.2, 0.2, 0.6] if shifted else [0.6, 0.3, 0.1]
    plan = PLANS[rng.choice(3, n, p=p)]
    logit = 0.08 * (age - 40) - 0.9 * (plan == "pro") + 0.5 * (plan == "team")
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({"age": age, "income": income, "plan": plan, "churned": churned})


def deployed(ws: Workspace, name: str = "churn") -> None:
    """Ingest 600 customers, train a logistic regression on them, register it as
    ``name@production`` and deploy it as ``name``."""
    dv = ingest(customers(600, seed=1), name, workspace=ws)
    result = train(dv, "churned", model="linear", plots=False, workspace=ws)
    result.register(name, alias="production")
    deploy(ws, name)


def log_traffic(
    ws: Workspace, frame: pd.DataFrame, prefix: str, *, name: str = "churn", latency: float = 2.0
) -> list[str]:
    """Predict ``frame`` with ``name@production`` and log it as that deployment's primary
    traffic (flushed now); return the request ids."""
    model = load_model(ws, f"models:/{name}@production")
    X = frame[FEATURES]
    ids = [f"{prefix}-{i}" for i in range(len(frame))]
    logger = PredictionLogger(ws, flush_interval=3600)
    logger.log(
        name,
        name,
        model.model_version.version,
        "primary",
        ids,
        X,
        model.predict(X),
        model.predict_proba(X),
        list(model.native.classes_),
        latency,
    )
    logger.close()
    assert logger.written == len(frame), logger.last_error
    return ids


def log_labels(ws: Workspace, ids: list[str], labels: list[int], name: str = "churn") -> None:
    """Log feedback labels for ``ids`` (as ``/v1/feedback`` does)."""
    logger = PredictionLogger(ws, flush_interval=3600)
    logger.log_feedback(name, ids, labels)
    logger.close()
