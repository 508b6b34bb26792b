"""The Ray executor against a local Ray that this module starts once (it is slow to start).

Under CI=true a missing Ray fails these tests instead of skipping them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import loopml
from loopml import pipelines
from loopml.pipelines._ray import import_ray
from loopml.store import Workspace

from . import steps

try:
    import ray
except ImportError:  # pragma: no cover - CI installs the dev extra, which has ray
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("ray is not installed (pip install 'loopml[ray]')", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@loopml.step(cpus=1, retries=1, retry_delay=0.01)
def worker_pid(counter: str) -> int:
    steps._bump(Path(counter))
    if Path(counter).read_text() == "1":
        raise RuntimeError("first attempt fails")
    return os.getpid()


@loopml.pipeline(executor="ray")
def on_ray(n: int, counter: str, folder: str) -> dict[str, Any]:
    frame = steps.numbers(n)
    return {
        "totals": [steps.total(steps.double(frame), offset=float(i)) for i in range(3)],
        "pid": worker_pid(counter),
        "together": [steps.rendezvous("a", "b", folder), steps.rendezvous("b", "a", folder)],
        "rows": steps.row_count(steps.ingest_frame(n)),
    }


def test_steps_run_as_ray_tasks(sqlite_ws: Workspace, tmp_path: Path) -> None:
    params = {"n": 4, "counter": str(tmp_path / "calls"), "folder": str(tmp_path)}
    run = on_ray.run(params, workspace=sqlite_ws)
    out = run.output
    assert out["totals"] == [{"total": 12.0}, {"total": 13.0}, {"total": 14.0}]
    assert out["pid"] != os.getpid()  # ran in a Ray worker process, after one retry
    assert out["together"] == ["a", "b"]  # two tasks at once on the 2 CPUs
    assert out["rows"] == 4  # a DatasetVersion passed by reference between Ray tasks
    table = run.steps.set_index("node")
    assert table.loc["worker_pid", "attempts"] == 2
    assert pipelines.get_pipeline_run(sqlite_ws, run.id).executor == "ray"


def test_a_timed_out_ray_task_is_cancelled(sqlite_ws: Workspace) -> None:
    @loopml.pipeline(executor="ray")
    def slow() -> float:
        return steps.sleepy(60)

    with pytest.raises(pipelines.PipelineFailed, match=r"timed out after 0\.5 s"):
        slow.run(workspace=sqlite_ws)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(loopml.MissingDependency, match=r'pip install "loopml\[ray\]"'):
        import_ray()
