"""``loopml pipeline ...`` as a user runs it: a real process, real exit codes, real output."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from loopml import data, pipelines, registry, serving
from loopml.cli import app
from loopml.errors import LoopmlError
from loopml.store import Workspace


def loopml(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopml", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},
    )


FLOW = """
from pathlib import Path

import loopml


@loopml.step
def square(x: int) -> int:
    return x * x


@loopml.step
def add(values: list[int], fail_flag: str) -> int:
    if Path(fail_flag).exists():
        raise RuntimeError("asked to fail")
    return sum(values)


@loopml.pipeline
def squares(n: int = 3, fail_flag: str = "fail.flag") -> int:
    return add([square(i) for i in range(n)], fail_flag)


if __name__ == "__main__":
    print(squares.run({"n": 2}).output)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    home = tmp_path / "proj"
    Workspace.init(home).close()
    (home / "flow.py").write_text(FLOW)
    return home


def in_process(project: Path, *args: str) -> Result:
    """The CLI in this process (quicker than a new interpreter), wide enough not to wrap."""
    return CliRunner().invoke(app, ["-w", str(project), *args], env={"COLUMNS": "200"})


def test_run_list_show_resume(project: Path) -> None:
    (project / "fail.flag").touch()
    failed = loopml("pipeline", "run", "flow.py:squares", "-p", "n=4", "-x", "thread", cwd=project)
    assert failed.returncode == 1
    assert "asked to fail" in failed.stdout and "FAILED" in failed.stdout
    run_id = failed.stderr.split("loopml pipeline resume")[-1].split()[0]
    shown = in_process(project, "pipeline", "show", run_id)
    assert shown.exit_code == 0, shown.output
    assert "square-4" in shown.output and "RuntimeError: asked to fail" in shown.output
    (project / "fail.flag").unlink()
    resumed = loopml("pipeline", "resume", run_id, cwd=project)  # the process executor
    assert resumed.returncode == 0, resumed.stderr
    assert "reused" in resumed.stdout and "FINISHED" in resumed.stdout
    listed = in_process(project, "pipeline", "list")
    assert run_id in listed.output and "FINISHED" in listed.output
    with Workspace.open(project) as ws:
        steps = pipelines.step_table(ws, run_id).set_index("node")
        assert steps.loc["add", "status"] == "FINISHED"
        run = pipelines.PipelineRun(run_id, "squares", "FINISHED", "", ws)
        assert run.value("add") == 0 + 1 + 4 + 9


def test_cli_input_errors_are_one_line(project: Path) -> None:
    bad = loopml("pipeline", "run", "flow.py:squares", "-p", "n=lots", cwd=project)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "parameter 'n'" in bad.stderr
    for args, message in [
        (["run", "flow.py:squares", "-p", "n"], "expected NAME=VALUE"),
        (["run", "nope.py:x"], "no such file"),
        (["show", "f" * 32], "no pipeline run"),
        (["list", "-n", "0"], "--limit must be at least 1"),
    ]:
        result = in_process(project, "pipeline", *args)
        assert isinstance(result.exception, LoopmlError) and message in str(result.exception)
    for group in (["pipeline"], ["pipeline", "run"], ["pipeline", "resume"]):
        assert in_process(project, *group, "--help").exit_code == 0


RECIPE = """
name: churn-recipe
ingest: {source: data/churn.csv, dataset: churn}
validate: {suite: auto}
train: {target: churned, model: linear, drop: [customer_id, event_time]}
evaluate: {metric: roc_auc, min: 0.55}
register: {model: churn, alias: production}
deploy: {name: churn}
"""


def test_the_yaml_recipe_runs_the_loop_with_the_loopml_apis(project: Path) -> None:
    (project / "data").mkdir()
    data.demo_churn(400, period="before").to_csv(project / "data" / "churn.csv", index=False)
    (project / "loopml.yaml").write_text(RECIPE)
    out = loopml("pipeline", "run", "loopml.yaml", cwd=project)
    assert out.returncode == 0, out.stderr + out.stdout
    with Workspace.open(project) as ws:
        mv = registry.get_model_version(ws, "models:/churn@production")
        assert mv.version == 1 and mv.run_id is not None
        assert serving.get_deployment(ws, "churn").model == "churn"
        run = pipelines.list_pipeline_runs(ws)[0]
        assert run.source == str(project / "loopml.yaml")
    again = loopml("pipeline", "run", "loopml.yaml", cwd=project)
    assert again.returncode == 0 and "6 steps, 6 from cache" in " ".join(again.stdout.split())
    (project / "loopml.yaml").write_text(RECIPE.replace("min: 0.55", "min: 0.999"))
    gated = loopml("pipeline", "run", "loopml.yaml", "-x", "thread", cwd=project)
    assert gated.returncode == 1 and "below the minimum" in gated.stdout
    (project / "loopml.yaml").write_text(RECIPE.replace("target: churned", "taget: churned"))
    typo = loopml("pipeline", "run", "loopml.yaml", cwd=project)
    assert typo.returncode == 1 and "train.target: Field required" in typo.stderr


def test_the_script_runs_with_its_own_guarded_main(project: Path) -> None:
    out = subprocess.run(
        [sys.executable, "flow.py"], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    assert textwrap.dedent(FLOW)  # the example in the docs is this file
