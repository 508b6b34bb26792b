"""Runs: params, metrics, tags, artifacts, inputs, statuses, nesting, the active-run stack."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.store import Node, Workspace, upstream
from loopml.tracking import (
    active_run,
    download_artifacts,
    flush,
    get_metric_history,
    get_run,
    list_artifacts,
    list_experiments,
    start_run,
)


def test_a_run_records_params_metrics_tags(ws: Workspace) -> None:
    with start_run("churn", name="first", workspace=ws, tags={"team": "risk"}) as run:
        run.log_params({"alpha": 0.1, "layers": [3, 4], "model": "xgb"})
        run.log_param("alpha", 0.1)  # same value again: fine
        for step in range(5):
            run.log_metric("loss", 1 / (step + 1))
        run.log_metrics({"auc": 0.9, "f1": 0.7}, step=3)
        run.set_tag("stage", "dev")
    rec = get_run(ws, run.id)
    assert rec.status == "FINISHED" and rec.end_time is not None and rec.name == "first"
    assert rec.experiment == "churn"
    assert rec.params == {"alpha": "0.1", "layers": "[3, 4]", "model": "xgb"}
    assert rec.metrics == {"loss": 0.2, "auc": 0.9, "f1": 0.7}
    assert rec.tags == {"team": "risk", "stage": "dev"}
    assert rec.source_entry_point
    hist = get_metric_history(ws, run.id, "loss")
    assert hist.step.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(hist.value, [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert str(hist.timestamp.dtype).startswith("datetime64")
    assert [(e.name, n) for e, n in list_experiments(ws)] == [("churn", 1)]


def test_params_are_immutable(ws: Workspace) -> None:
    with start_run("e", workspace=ws) as run:
        run.log_param("alpha", 0.1)
        with pytest.raises(Conflict, match="alpha"):
            run.log_param("alpha", 0.2)
    # also across handles: resuming the run does not allow a change either
    with start_run(run_id=run.id, workspace=ws) as again, pytest.raises(Conflict):
        again.log_param("alpha", 0.3)
    assert get_run(ws, run.id).params == {"alpha": "0.1"}


def test_latest_metric_is_the_highest_step_and_nan_survives(ws: Workspace) -> None:
    with start_run("e", workspace=ws) as run:
        run.log_metric("m", 5.0, step=10)
        run.log_metric("m", 1.0, step=2)  # late point for an earlier step
        run.log_metric("n", float("nan"))
        run.log_metric("inf", float("inf"))
    rec = get_run(ws, run.id)
    assert rec.metrics["m"] == 5.0 and rec.metrics["inf"] == float("inf")
    assert np.isnan(rec.metrics["n"])
    assert np.isnan(get_metric_history(ws, run.id, "n").value[0])
    assert get_metric_history(ws, run.id, "m").step.tolist() == [2, 10]


def test_failed_block_marks_failed_and_keeps_points(ws: Workspace) -> None:
    with pytest.raises(ZeroDivisionError), start_run("e", workspace=ws) as run:
        for i in range(1000):
            run.log_metric("x", i)
        _ = 1 / 0
    rec = get_run(ws, run.id)
    assert rec.status == "FAILED"
    assert rec.error is not None and "ZeroDivisionError" in rec.error
    assert len(get_metric_history(ws, run.id, "x")) == 1000


def test_nested_runs_and_the_active_stack(ws: Workspace) -> None:
    assert active_run() is None
    with start_run("tune", workspace=ws) as parent:
        assert active_run() is parent
        with start_run("tune", nested=True, workspace=ws) as child:
            assert active_run() is child
        assert active_run() is parent
    assert active_run() is None
    assert get_run(ws, child.id).parent_id == parent.id
    with pytest.raises(InvalidInput, match="active run"):
        start_run("tune", nested=True, workspace=ws)
    with pytest.raises(NotFound, match="parent"):
        start_run("tune", parent="nope", workspace=ws)


def test_active_run_is_per_thread(ws: Workspace) -> None:
    seen: list[object] = []
    with start_run("e", workspace=ws):
        t = threading.Thread(target=lambda: seen.append(active_run()))
        t.start()
        t.join()
    assert seen == [None]


def test_artifacts_round_trip(ws: Workspace, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "a.txt").write_text("alpha")
    (tmp_path / "report" / "sub").mkdir()
    (tmp_path / "report" / "sub" / "b.txt").write_text("beta")
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    with start_run("e", workspace=ws) as run:
        run.log_artifact(tmp_path / "report")
        run.log_artifact(tmp_path / "report" / "a.txt", artifact_path="single")
        run.log_dict({"k": [1, 2]}, "config.json")
        run.log_figure(fig, "curve.png")
        with pytest.raises(NotFound):
            run.log_artifact(tmp_path / "missing.txt")
        with pytest.raises(InvalidInput, match="Figure"):
            run.log_figure("not a figure", "x.png")
    plt.close(fig)
    table = list_artifacts(ws, run.id)
    assert set(table.path) == {"a.txt", "sub/b.txt", "single/a.txt", "config.json", "curve.png"}
    out = download_artifacts(ws, run.id, "sub", tmp_path / "dl")
    assert (out / "b.txt").read_text() == "beta"
    png = download_artifacts(ws, run.id, "curve.png", tmp_path / "dl")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(NotFound, match=r"config\.json"):
        download_artifacts(ws, run.id, "nope", tmp_path / "dl")


def test_log_input_records_lineage(ws: Workspace, db_ws: Workspace) -> None:
    with start_run("e", workspace=ws) as run:
        run.log_input("churn@3")
        with pytest.raises(InvalidInput, match="name@version"):
            run.log_input(42)
    flush(ws)  # a client's writes are sent in the background; reads through the API flush
    edges = upstream(db_ws.db, Node("run", run.id))
    assert [(str(e.src), e.role) for e in edges] == [("dataset_version:churn@3", "training")]


def test_bad_input_is_rejected_clearly(ws: Workspace) -> None:
    with start_run("e", workspace=ws) as run:
        with pytest.raises(InvalidInput, match="not a number"):
            run.log_metric("loss", "high")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="metric key"):
            run.log_metric("", 1.0)
        with pytest.raises(InvalidInput, match="step"):
            run.log_metric("loss", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="end status"):
            run.end("DONE")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="experiment name"):
        start_run("", workspace=ws)
    with pytest.raises(NotFound, match="no run"):
        get_run(ws, "0" * 32)
    with pytest.raises(NotFound, match="its metrics: loss"):
        with start_run("e", workspace=ws) as other:
            other.log_metric("loss", 1)
        get_metric_history(ws, other.id, "los")


def test_log_batch_appends_a_whole_curve(ws: Workspace) -> None:
    with start_run("e", workspace=ws) as run:
        run.log_metric("loss", 9.0)  # step 0
        run.log_batch("loss", np.linspace(1, 0, 1000))  # steps 1..1000
        run.log_batch("acc", [0.5, 0.6], steps=[10, 20], timestamps=[1000, 2000])
        with pytest.raises(InvalidInput, match="steps"):
            run.log_batch("acc", [0.1, 0.2], steps=[1])
    hist = get_metric_history(ws, run.id, "loss")
    assert hist.step.tolist() == list(range(1001))
    assert get_run(ws, run.id).metrics == {"loss": 0.0, "acc": 0.6}
