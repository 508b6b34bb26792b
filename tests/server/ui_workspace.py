"""A workspace with real runs, a tuning parent, artifacts, a dataset input and a model with
two versions: what the web UI tests look at (``test_ui_pages.py`` and ``test_ui.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression

from loopml import data, registry, tracking
from loopml.server._users import add_user
from loopml.store import Workspace
from loopml.store.schema import experiments

EVIL = "<script>alert(1)</script>"
N_RUNS = 30


@dataclass
class UiData:
    """What :func:`populate` made."""

    ws: Workspace
    auc: dict[str, float]  # run id -> latest auc of the "churn" runs
    evil_run: str
    parent_run: str
    children: list[str]
    image_run: str
    editor: str  # tokens
    viewer: str


def populate(home: Path) -> UiData:
    """A fresh workspace in ``home`` with everything the UI pages show."""
    ws = Workspace.init(home)
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"tenure": rng.integers(1, 60, 200), "spend": rng.normal(50, 9, 200)})
    frame["churned"] = (frame.tenure < 12).astype(int)
    dv = data.ingest(frame, name="customers", workspace=ws)
    auc: dict[str, float] = {}
    for i in range(N_RUNS):
        name = EVIL if i == 3 else f"trial-{i:02d}"
        with tracking.start_run("churn", name, workspace=ws) as run:
            run.log_params({"model": ("xgb", "rf", "lr")[i % 3], "lr": 0.01 * (i + 1)})
            run.set_tag("team", "growth")
            value = round(0.6 + 0.35 * (i / (N_RUNS - 1)), 4)
            for step in range(40):
                run.log_metric("loss", float(np.exp(-step / (8 + i))), step=step)
            run.log_metric("auc", value)
            auc[run.id] = value
            if i == 3:
                evil_run = run.id
    with tracking.start_run("churn", "tune-lgbm", workspace=ws) as parent:
        parent.log_input(dv, "training")
        parent.log_dict({"best": {"lr": 0.05}, "note": "</pre><b>x</b>"}, "best.json")
        parent.log_text("trial log\nline 2\n", "notes.txt")
        fig = Figure(figsize=(4, 3))
        fig.subplots().plot([0, 1, 2], [3, 1, 2])
        parent.log_figure(fig, "curve.png")
        children = []
        for j in range(3):
            with tracking.start_run("churn", f"child-{j}", parent=parent, workspace=ws) as child:
                child.log_params({"num_leaves": 16 * (j + 1)})
                child.log_metric("auc", 0.7 + 0.05 * j)
                children.append(child.id)
        parent.log_metric("auc", 0.8)
    with tracking.start_run("hidden", "secret-run", workspace=ws) as secret:
        secret.log_metric("auc", 0.5)
    with ws.db.write() as conn:  # the "hidden" experiment belongs to a project viewers lack
        conn.execute(
            sa.update(experiments).where(experiments.c.name == "hidden").values(project="secret")
        )
    features = frame[["tenure", "spend"]]
    model = LogisticRegression().fit(features, frame.churned)
    first = registry.register_model(
        ws, model, "churn", run_id=parent.id, input_example=features.head(3)
    )
    registry.register_model(ws, model, "churn", run_id=children[0], input_example=features.head(3))
    registry.set_alias(ws, "churn", "production", first.version)
    editor = add_user(ws, "erin", roles={"default": "editor"})
    viewer = add_user(ws, "vic", roles={"default": "viewer"})
    return UiData(ws, auc, evil_run, parent.id, children, parent.id, editor, viewer)
