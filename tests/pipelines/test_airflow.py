"""``loopml pipeline export --airflow``: the DAG file parses, has one task per step call
with the DAG's dependencies, and its task callables run the same steps through loopml.
(Airflow itself is not installed in dev: the file is checked with ``ast``.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

import loopml
from loopml import pipelines
from loopml.cli import app
from loopml.store import Workspace

from . import steps

SOURCE = f"{steps.__name__}:arithmetic"


def _tasks_and_edges(text: str) -> tuple[dict[str, dict[str, object]], set[tuple[str, str]]]:
    tree = ast.parse(text)
    names: dict[str, str] = {}
    kwargs: dict[str, dict[str, object]] = {}
    edges = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call = node.value
            if isinstance(call.func, ast.Name) and call.func.id == "PythonOperator":
                args = {k.arg: k.value for k in call.keywords}
                task_id = ast.literal_eval(args["task_id"])
                assert isinstance(args["python_callable"], ast.Name)
                assert args["python_callable"].id == "run_task"
                names[node.targets[0].id] = task_id  # type: ignore[attr-defined]
                op = args["op_kwargs"]
                assert isinstance(op, ast.Dict)
                kwargs[task_id] = {
                    ast.literal_eval(k): v.id if isinstance(v, ast.Name) else ast.literal_eval(v)
                    for k, v in zip(op.keys, op.values, strict=True)  # type: ignore[arg-type]
                }
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            edges.add((node.left.id, node.right.id))  # type: ignore[attr-defined]
    return kwargs, {(names[a], names[b]) for a, b in edges}


def test_exported_dag_has_the_steps_and_their_order(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    Workspace.init(home).close()
    out = tmp_path / "dags" / "arith.py"
    result = CliRunner().invoke(
        app,
        [
            "-w",
            str(home),
            "pipeline",
            "export",
            SOURCE,
            "--airflow",
            "-o",
            str(out),
            "-p",
            "n=3",
            "--schedule",
            "0 4 * * *",
        ],
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    compile(text, str(out), "exec")
    kwargs, edges = _tasks_and_edges(text)
    assert set(kwargs) == {"numbers", "double", "total", "total-2"}
    assert edges == {("numbers", "double"), ("numbers", "total"), ("double", "total-2")}
    assert "schedule='0 4 * * *'" in text and '"n": 3' in text
    module = ast.parse(text)
    constants = {
        t.id: ast.literal_eval(n.value)
        for n in module.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name) and t.id in ("SOURCE", "PARAMS", "WORKSPACE")
    }
    # run the tasks as Airflow would, in dependency order: each runs its step via loopml
    for task in ["numbers", "double", "total", "total-2"]:
        pipelines.run_task(constants["SOURCE"], task, constants["PARAMS"], constants["WORKSPACE"])
    with Workspace.open(home) as ws:
        runs = pipelines.list_pipeline_runs(ws)
        last = pipelines.step_table(ws, runs[0].id).set_index("node")
        assert list(last.index) == ["numbers", "double", "total-2"]
        assert last.loc["numbers", "cache_hit"] and last.loc["double", "cache_hit"]
        assert not last.loc["total-2", "cache_hit"]  # each step ran once, in its own task
        run = pipelines.PipelineRun(runs[0].id, "arithmetic", "FINISHED", "", ws)
        assert run.value("total-2") == {"total": 6.5}


def test_export_errors() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["pipeline", "export", SOURCE])
    assert isinstance(result.exception, loopml.InvalidInput) and "--airflow" in str(
        result.exception
    )
    with pytest.raises(loopml.InvalidInput, match=r"must end in \.py"):
        pipelines.export_airflow(SOURCE, "dag.txt")
    with pytest.raises(loopml.InvalidInput, match="no step call 'nope'"):
        steps.arithmetic.run(only="nope")
