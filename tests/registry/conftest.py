"""Fixtures for registry tests: a small churn table, fitted models and a run row."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from loopml.store import Workspace, now_ms
from loopml.store.schema import experiments, runs


@pytest.fixture(scope="session")
def churn() -> pd.DataFrame:
    """Twenty customers: int, float and string features and a 0/1 target."""
    n = 20
    return pd.DataFrame(
        {
            "age": [18 + (i * 7) % 50 for i in range(n)],
            "income": [1000.0 + 250.5 * ((i * 3) % 11) for i in range(n)],
            "plan": ["basic" if i % 3 else "pro" for i in range(n)],
            "churned": [int((i * 7) % 50 > 20) for i in range(n)],
        }
    )


@pytest.fixture(scope="session")
def clf(churn: pd.DataFrame) -> LogisticRegression:
    """Logistic regression on the numeric columns."""
    return LogisticRegression(max_iter=1000).fit(churn[["age", "income"]], churn["churned"])


@pytest.fixture(scope="session")
def pipeline(churn: pd.DataFrame) -> Pipeline:
    """Scaling + one-hot encoding + logistic regression on all three features."""
    prep = ColumnTransformer(
        [("num", StandardScaler(), ["age", "income"]), ("cat", OneHotEncoder(), ["plan"])]
    )
    model = Pipeline([("prep", prep), ("lr", LogisticRegression(max_iter=1000))])
    return model.fit(churn[["age", "income", "plan"]], churn["churned"])


@pytest.fixture
def run_id(ws: Workspace) -> str:
    """The id of a finished run, inserted directly (with its experiment) into ``ws``."""
    run_id = uuid.uuid4().hex
    with ws.db.write() as conn:
        experiment = conn.execute(
            sa.insert(experiments)
            .values(name=f"exp-{run_id[:8]}", created_at=now_ms())
            .returning(experiments.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(runs).values(
                id=run_id,
                experiment_id=experiment,
                name="train",
                status="FINISHED",
                start_time=now_ms(),
            )
        )
    return run_id
