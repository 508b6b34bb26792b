"""Helpers shared by the serving-data tests: a small churn table and a registered model."""

from __future__ import annotations

import pandas as pd
from sklearn.linear_model import LogisticRegression

from loopml.registry import ModelVersion, register_model, set_alias
from loopml.store import Workspace


def churn_frame(n: int = 40) -> pd.DataFrame:
    """``n`` customers: an id, int and float features and a 0/1 target."""
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "age": [18 + (i * 7) % 50 for i in range(n)],
            "income": [1000.0 + 250.5 * ((i * 3) % 11) for i in range(n)],
            "churned": [int((i * 7) % 50 > 20) for i in range(n)],
        }
    )


def register_churn(ws: Workspace, versions: int = 2, name: str = "churn") -> list[ModelVersion]:
    """Register ``versions`` logistic regressions on age and income; alias production → 1,
    challenger → the last one."""
    df = churn_frame()
    X = df[["age", "income"]]
    out = []
    for i in range(versions):
        clf = LogisticRegression(C=1.0 / (i + 1), max_iter=1000).fit(X, df["churned"])
        out.append(register_model(ws, clf, name, input_example=X.head(5)))
    set_alias(ws, name, "production", 1)
    set_alias(ws, name, "challenger", versions)
    return out
