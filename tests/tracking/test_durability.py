"""No logged point is lost: at run end, on errors, at interpreter exit, under two writers."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loopml.errors import NotFound, StoreError
from loopml.store import Workspace
from loopml.tracking import MetricWriter, get_metric_history, get_run, search_runs, start_run


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out.strip()


def test_points_are_flushed_at_interpreter_exit(sqlite_ws: Workspace) -> None:
    code = """
        import sys
        from loopml.store import Workspace
        from loopml.tracking import start_run
        ws = Workspace.open(sys.argv[1], metric_flush_interval=3600)
        run = start_run("exit", workspace=ws)      # never ended, never flushed
        for i in range(20_000):
            run.log_metric("loss", i, step=i)
        print(run.id)
    """
    run_id = _finish(_python(code, str(sqlite_ws.home)))
    hist = get_metric_history(sqlite_ws, run_id, "loss")
    assert hist.step.tolist() == list(range(20_000))
    assert get_run(sqlite_ws, run_id).status == "FINISHED"


def test_an_uncaught_exception_marks_failed_and_keeps_points(sqlite_ws: Workspace) -> None:
    code = """
        import sys
        from loopml.store import Workspace
        from loopml.tracking import start_run
        ws = Workspace.open(sys.argv[1], metric_flush_interval=3600)
        with start_run("boom", workspace=ws) as run:
            print(run.id, flush=True)
            for i in range(5_000):
                run.log_metric("x", i)
            raise RuntimeError("diverged")
    """
    proc = _python(code, str(sqlite_ws.home))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "diverged" in err
    run = get_run(sqlite_ws, out.strip())
    assert run.status == "FAILED" and run.error is not None and "diverged" in run.error
    assert len(get_metric_history(sqlite_ws, run.id, "x")) == 5_000


def test_two_processes_log_to_one_sqlite_workspace(sqlite_ws: Workspace) -> None:
    with start_run("shared", workspace=sqlite_ws) as shared:
        pass
    code = """
        import sys
        from loopml.store import Workspace
        from loopml.tracking import start_run
        ws = Workspace.open(sys.argv[1], metric_flush_interval=0.01, metric_buffer_size=500)
        tag, shared_id = sys.argv[2], sys.argv[3]
        with start_run("mp", name=tag, workspace=ws) as run:
            shared = start_run(run_id=shared_id, workspace=ws)
            for i in range(30_000):
                run.log_metric("m", i)
                shared.log_metric(f"from_{tag}", i)
                if i % 1000 == 0:
                    run.log_params({f"p{i}": i})
            shared.end()
    """
    procs = [_python(code, str(sqlite_ws.home), tag, shared.id) for tag in ("a", "b")]
    for p in procs:
        _finish(p)
    runs = search_runs(sqlite_ws, "mp")
    assert sorted(runs.name) == ["a", "b"]
    for run_id in runs.run_id:
        assert get_metric_history(sqlite_ws, run_id, "m").step.tolist() == list(range(30_000))
        assert len(get_run(sqlite_ws, run_id).params) == 30
    for tag in ("a", "b"):
        assert len(get_metric_history(sqlite_ws, shared.id, f"from_{tag}")) == 30_000


def test_background_writer_flushes_without_being_asked(tmp_path: Path) -> None:
    with Workspace.init(tmp_path / "w", metric_flush_interval=0.05) as ws:
        run = start_run("bg", workspace=ws)
        run.log_metric("x", 1.0)
        with Workspace.open(tmp_path / "w") as reader:  # another connection, no flush of ours
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(NotFound):  # the run's row is queued until a flush too
                    if get_run(reader, run.id).metrics.get("x") == 1.0:
                        break
                assert time.monotonic() < deadline, "background writer never flushed"
                time.sleep(0.02)
        run.end()


def test_a_failed_write_keeps_the_points_for_the_next_flush(
    sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = start_run("retry", workspace=sqlite_ws)
    writer = sqlite_ws.component(MetricWriter)
    for i in range(100):
        run.log_metric("x", i)
    real_write = writer._write

    def broken(*args: object) -> None:
        raise StoreError("database is locked")

    monkeypatch.setattr(writer, "_write", broken)
    with pytest.raises(StoreError):
        run.flush()
    for i in range(100, 150):
        run.log_metric("x", i)  # logged while the first batch waits for a retry
    monkeypatch.setattr(writer, "_write", real_write)
    run.end()
    assert get_metric_history(sqlite_ws, run.id, "x").value.tolist() == list(range(150))
