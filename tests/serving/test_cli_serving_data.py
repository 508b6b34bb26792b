"""``loopml deploy``, ``loopml predictions`` and ``loopml predict`` through Typer's runner,
on a real workspace (the groups are mounted on a local app, as the main CLI mounts them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from loopml.cli import deploy, predict, predictions
from loopml.cli._common import WorkspaceOption
from loopml.errors import InvalidInput, NotFound
from loopml.serving import PredictionLogger, get_deployment, list_deployments
from loopml.store import Workspace
from tests.serving._churn import churn_frame, register_churn

app = typer.Typer(pretty_exceptions_enable=False)


@app.callback()
def _root(ctx: typer.Context, workspace_dir: Path = WorkspaceOption) -> None:
    ctx.ensure_object(dict)["home"] = workspace_dir


app.add_typer(deploy.app, name="deploy")
app.add_typer(predictions.app, name="predictions")
app.command("predict")(predict.predict)
runner = CliRunner()


_env: dict[str, str] = {}


@pytest.fixture
def home(ws: Workspace) -> Path:
    """The workspace folder; the commands reach its store (SQLite or PostgreSQL) by env."""
    register_churn(ws, versions=2)
    _env.clear()
    _env.update({"COLUMNS": "240", "LOOPML_STORE_URI": ws.settings.resolved_store_uri()})
    assert ws.home is not None
    return ws.home


def run(home: Path, *args: str) -> str:
    result = runner.invoke(app, ["--workspace", str(home), *args], env=_env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_deploy_create_show_delete(ws: Workspace, home: Path) -> None:
    out = run(home, "deploy", "churn", "--primary", "@production", "--shadow", "@challenger")
    assert "deployed churn: churn @production (v1), shadow @challenger (v2)" in out
    assert get_deployment(ws, "churn").policy == "shadow"
    out = run(home, "deploy", "create", "churn-ab", "-m", "churn", "--ab", "2", "--traffic",
              "0.3", "--sticky-key", "user_id")  # fmt: skip
    assert "ab 2 (v2) at 30% by user_id" in out
    shown = run(home, "deploy", "show")
    assert "churn-ab" in shown and "shadow" in shown and "user_id" in shown
    assert "@challenger (v2)" in run(home, "deploy", "show", "churn")
    assert "removed deployment churn-ab" in run(home, "deploy", "delete", "churn-ab")
    assert [d.name for d in list_deployments(ws)] == ["churn"]


def test_deploy_errors_are_loopml_errors(home: Path) -> None:
    with pytest.raises(InvalidInput, match="canary deployment needs traffic="):
        run(home, "deploy", "churn", "--canary", "@challenger")
    with pytest.raises(NotFound, match="no deployment named 'nope'"):
        run(home, "deploy", "show", "nope")
    assert "no deployments yet" in run(home, "deploy", "show")


def test_predictions_tail_and_export(ws: Workspace, home: Path, tmp_path: Path) -> None:
    logger = PredictionLogger(ws, flush_interval=3600)
    frame = churn_frame(30)[["age", "income"]]
    ids = [f"req-{i:03d}" for i in range(30)]
    logger.log("churn", "churn", 1, "primary", ids, frame, np.arange(30) % 2, None, None, 2.0)
    logger.log_feedback("churn", ["req-000", "req-001"], [1, 1])
    logger.close()
    out = run(home, "predictions", "tail", "churn", "-n", "5", "--wide")
    assert "req-029" in out and "req-025" in out and "req-024" not in out
    assert "input.age" in out
    run(home, "predictions", "export", "churn", "-o", str(tmp_path / "p.parquet"), "--labels")
    exported = pd.read_parquet(tmp_path / "p.parquet")
    assert len(exported) == 30 and exported["label"].notna().sum() == 2
    run(home, "predictions", "export", "churn", "-o", str(tmp_path / "p.csv"), "--since", "1h")
    assert pd.read_csv(tmp_path / "p.csv")["request_id"].tolist() == ids
    assert "no predictions logged for 'other'" in run(home, "predictions", "tail", "other")
    with pytest.raises(InvalidInput, match=r"use a \.csv or \.parquet file"):
        run(home, "predictions", "export", "churn", "-o", str(tmp_path / "p.txt"))


def test_predictions_compact(ws: Workspace, home: Path) -> None:
    logger = PredictionLogger(ws, flush_interval=3600)
    frame = churn_frame(10)[["age", "income"]]
    for flush in range(3):
        ids = [f"req-{flush}-{i}" for i in range(10)]
        logger.log("churn", "churn", 1, "primary", ids, frame, np.arange(10) % 2, None, None, 2.0)
        logger.flush()
    logger.close()
    assert "compact" in run(home, "predictions", "--help")
    assert "--min-files" in run(home, "predictions", "compact", "--help")
    assert "nothing to compact" in run(home, "predictions", "compact", "churn", "--before", "2h")
    out = run(home, "predictions", "compact", "churn", "--kind", "predictions")
    assert "churn: 3 files in 1 hour partition(s) now 1 file(s), 30 rows" in out
    assert "nothing to compact" in run(home, "predictions", "compact", "churn")
    out = run(home, "predictions", "tail", "churn", "-n", "30")
    assert "req-0-0" in out and "req-2-9" in out
    with pytest.raises(InvalidInput, match="unknown log kind"):
        run(home, "predictions", "compact", "churn", "--kind", "logs")
    with pytest.raises(NotFound, match="'nope' has no prediction log"):
        run(home, "predictions", "compact", "nope")


def test_predict_a_file(home: Path, tmp_path: Path) -> None:
    churn_frame(25).to_parquet(tmp_path / "in.parquet")
    src, dest = str(tmp_path / "in.parquet"), str(tmp_path / "out.csv")
    out = run(home, "predict", "churn@production", "-i", src, "-o", dest, "--chunk-rows", "10",
              "-k", "customer_id", "--proba")  # fmt: skip
    assert "predicted 25 rows with models:/churn/1" in out
    written = pd.read_csv(tmp_path / "out.csv")
    assert list(written.columns) == ["customer_id", "prediction", "proba.0", "proba.1"]
    with pytest.raises(NotFound, match=r"input file .* does not exist"):
        run(home, "predict", "churn", "-i", str(tmp_path / "x.csv"), "-o", str(tmp_path / "y.csv"))
