"""The command line, run as a user runs it: a real process, real exit codes and output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from loopml.store import Workspace
from loopml.tracking import start_run


def loopml(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopml", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A workspace with two finished runs in experiment 'churn'."""
    home = tmp_path / "proj"
    with Workspace.init(home) as ws:
        for i, model in enumerate(["xgb", "rf"]):
            with start_run("churn", name=f"run-{model}", workspace=ws) as run:
                run.log_params({"model": model, "depth": 3 + i})
                run.log_metric("auc", 0.8 + i / 10)
    return home


def test_version_and_help(tmp_path: Path) -> None:
    assert loopml("--version", cwd=tmp_path).stdout.startswith("loopml ")
    for group in ([], ["runs"], ["experiments"], ["store"], ["init"], ["runs", "list"]):
        out = loopml(*group, "--help", cwd=tmp_path)
        assert out.returncode == 0 and "Usage" in out.stdout, (group, out.stderr)


def test_init_then_found_from_a_subfolder(tmp_path: Path) -> None:
    out = loopml("init", "proj", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "proj" / "loopml.toml").is_file()
    (tmp_path / "proj" / "src").mkdir()
    assert loopml("experiments", "list", cwd=tmp_path / "proj" / "src").returncode == 0
    again = loopml("init", "proj", cwd=tmp_path)
    assert again.returncode == 1 and "already a loopml workspace" in again.stderr


def test_runs_list_show_compare(project: Path) -> None:
    listed = loopml("runs", "list", "-e", "churn", "-f", "metrics.auc > 0.85", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert "run-rf" in listed.stdout and "run-xgb" not in listed.stdout
    exps = loopml("experiments", "list", cwd=project)
    assert "churn" in exps.stdout
    with Workspace.open(project) as ws:
        from loopml.tracking import search_runs

        ids = list(search_runs(ws, "churn").run_id)
    shown = loopml("runs", "show", ids[0][:8], cwd=project)
    assert shown.returncode == 0 and "auc" in shown.stdout and "depth" in shown.stdout
    compared = loopml("runs", "compare", *ids, cwd=project)
    assert compared.returncode == 0 and "params.model" in compared.stdout


def test_store_upgrade_is_idempotent(project: Path) -> None:
    out = loopml("store", "upgrade", cwd=project)
    assert out.returncode == 0 and "already at revision" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "abcdef12"], "no run with id"),
        (["runs", "show", "xyz"], "not a run id"),
        (["runs", "list", "-e", "nope"], "no experiment"),
        (["runs", "list", "-f", "metrics.auc > 1; DROP TABLE runs"], "invalid filter"),
    ],
)
def test_errors_are_one_line_without_traceback(
    project: Path, args: list[str], message: str
) -> None:
    out = loopml(*args, cwd=project)
    assert out.returncode == 1
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2


def test_outside_a_workspace_says_how_to_make_one(tmp_path: Path) -> None:
    out = loopml("runs", "list", cwd=tmp_path)
    assert out.returncode == 1 and "loopml init" in out.stderr and "Traceback" not in out.stderr


def test_models_commands(project: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from loopml import registry

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    with Workspace.open(project) as ws:
        for _ in range(2):
            registry.register_model(ws, model, "churn", input_example=X)
    assert "churn" in loopml("models", "list", cwd=project).stdout
    moved = loopml("models", "alias", "set", "churn", "production", "2", cwd=project)
    assert moved.returncode == 0 and "version 2" in moved.stdout
    shown = loopml("models", "show", "churn@production", cwd=project)
    assert shown.returncode == 0 and "float64" in shown.stdout and "models:/churn/2" in shown.stdout
    versions = loopml("models", "show", "churn", cwd=project)
    assert versions.returncode == 0 and "production" in versions.stdout
    assert loopml("models", "alias", "delete", "churn", "production", cwd=project).returncode == 0
    gone = loopml("models", "show", "churn@production", cwd=project)
    assert gone.returncode == 1 and "production" in gone.stderr and "Traceback" not in gone.stderr
    missing = loopml("models", "alias", "set", "churn", "production", "9", cwd=project)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_data_commands(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    assert loopml("init", str(home), cwd=tmp_path).returncode == 0
    csv = tmp_path / "customers.csv"
    csv.write_text("id,Age,plan\na,30,basic\nb,17,pro\nc,45,pro\nd,38,gold\ne,99\n")
    bad = loopml("data", "ingest", str(csv), "--name", "churn", cwd=home)
    assert bad.returncode == 1 and "line 6" in bad.stderr and "Traceback" not in bad.stderr
    ok = loopml("data", "ingest", str(csv), "-n", "churn", "--skip-bad-lines", cwd=home)
    assert ok.returncode == 0 and "churn@1" in ok.stdout and "skipped 1" in ok.stdout
    assert "churn" in loopml("data", "list", cwd=home).stdout
    assert "age" in loopml("data", "show", "churn@1", cwd=home).stdout
    html = tmp_path / "profile.html"
    prof = loopml("data", "profile", "churn", "--html", str(html), cwd=home)
    assert prof.returncode == 0 and "<svg" in html.read_text()
    suite = tmp_path / "suite.yaml"
    assert loopml("data", "suggest", "churn@1", "-o", str(suite), cwd=home).returncode == 0
    passed = loopml("data", "validate", "churn@1", "-s", str(suite), cwd=home)
    assert passed.returncode == 0 and "passed" in passed.stdout
    suite.write_text("checks:\n  - {check: in_range, column: age, min: 18}\n")
    failed = loopml("data", "validate", "churn@1", "-s", str(suite), cwd=home)
    assert failed.returncode == 1 and "failed" in failed.stdout
    quarantine = loopml(
        "data", "validate", "churn@1", "-s", str(suite), "--on-fail", "quarantine", cwd=home
    )
    assert quarantine.returncode == 0 and "churn-quarantine@1" in quarantine.stdout
    diff = loopml("data", "diff", "churn@1", "churn@2", cwd=home)
    assert diff.returncode == 0 and "4 -> 3" in diff.stdout
    rows = loopml("data", "sql", "select count(*) as n from {churn@2}", cwd=home)
    assert rows.returncode == 0 and "3" in rows.stdout
    for cmd in ("ingest", "list", "show", "profile", "validate", "suggest", "diff", "sql"):
        assert loopml("data", cmd, "--help", cwd=home).returncode == 0


def test_train_command(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    with Workspace.init(home) as ws:
        from loopml import data

        frame = pd.DataFrame({"x": range(60), "y": [i % 2 == 0 for i in range(60)]})
        data.ingest(frame, name="toy", workspace=ws)
    out = loopml(
        "train",
        "toy@1",
        "-t",
        "y",
        "-m",
        "linear",
        "-p",
        "C=0.5",
        "--register",
        "toy",
        "--alias",
        "staging",
        cwd=home,
    )
    assert out.returncode == 0, out.stderr
    assert "accuracy" in out.stdout and "models:/toy/1" in out.stdout
    bad = loopml("train", "toy@1", "-t", "y", "-p", "nonsense", cwd=home)
    assert bad.returncode == 1 and "NAME=VALUE" in bad.stderr and "Traceback" not in bad.stderr
    assert loopml("train", "--help", cwd=home).returncode == 0


def test_tune_command(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    with Workspace.init(home) as ws:
        from loopml import data

        frame = pd.DataFrame({"x": range(80), "y": [i % 3 == 0 for i in range(80)]})
        data.ingest(frame, name="toy", workspace=ws)
    space = tmp_path / "space.yaml"
    space.write_text("C: [0.1, 1.0]\n")
    out = loopml(
        "tune",
        "toy@1",
        "-t",
        "y",
        "-m",
        "linear",
        "-s",
        str(space),
        "--strategy",
        "grid",
        "-n",
        "2",
        "--register",
        "toy",
        cwd=home,
    )
    assert out.returncode == 0, out.stderr
    assert "best roc_auc" in out.stdout and "models:/toy/1" in out.stdout
    space.write_text("C: {type: float, low: 1, high: 0}\n")
    bad = loopml("tune", "toy@1", "-t", "y", "-m", "linear", "-s", str(space), cwd=home)
    assert bad.returncode == 1 and "low < high" in bad.stderr and "Traceback" not in bad.stderr


def test_automl_command(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    with Workspace.init(home) as ws:
        from loopml import data

        frame = pd.DataFrame({"x": range(80), "y": [i % 3 == 0 for i in range(80)]})
        data.ingest(frame, name="toy", workspace=ws)
    args = ("automl", "toy@1", "-t", "y", "-b", "30", "-f", "linear", "--max-trials", "2")
    out = loopml(*args, "--register", "toy", cwd=home)
    assert out.returncode == 0, out.stderr
    assert "binary: best roc_auc" in out.stdout and "models:/toy/1" in out.stdout
    bad = loopml("automl", "toy@1", "-t", "nope", cwd=home)
    assert bad.returncode == 1 and "'nope' is not in" in bad.stderr
    assert "Traceback" not in bad.stderr
