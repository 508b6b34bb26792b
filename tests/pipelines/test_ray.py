"""The Ray executor (steps, and batch prediction over partitions) against a local Ray that
this module starts once (it is slow to start).

Under CI=true a missing Ray fails these tests instead of skipping them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml import pipelines, registry, serving
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


# -- batch prediction over partitions ---------------------------------------------------
def _model_and_input(ws: Workspace, folder: Path, rows: int = 1000) -> Path:
    """A registered classifier (``churn``) and a Parquet input of ``rows`` rows in row
    groups of 100."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.integers(18, 80, rows),
            "income": rng.normal(1000, 150, rows),
        }
    )
    y = (frame.age > 45).astype(int)
    model = LogisticRegression(max_iter=500).fit(frame[["age", "income"]], y)
    registry.register_model(ws, model, "churn", input_example=frame[["age", "income"]].head(3))
    registry.set_alias(ws, "churn", "production", 1)
    folder.mkdir()
    path = folder / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=100)
    return path


def test_partitions_predicted_as_ray_tasks_match_the_local_path(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    tmp_path = tmp_path / "io"  # beside the workspace
    src = _model_and_input(sqlite_ws, tmp_path)
    local = serving.predict_file(sqlite_ws, "churn@production", src, tmp_path / "local.parquet")
    seen: list[tuple[int, int | None]] = []
    done = pipelines.predict_partitions(
        sqlite_ws,
        "churn@production",
        src,
        tmp_path / "ray.parquet",
        partitions=4,
        proba=True,
        progress=lambda rows, total: seen.append((rows, total)),
    )
    assert done.rows == 1000 and done.model_uri == local.model_uri
    assert seen[-1] == (1000, 1000) and len(seen) == 4  # one call per partition
    ray_out = pd.read_parquet(tmp_path / "ray.parquet")
    pd.testing.assert_frame_equal(
        ray_out.drop(columns=["proba.0", "proba.1"]), pd.read_parquet(local.output)
    )
    assert np.allclose(ray_out["proba.0"] + ray_out["proba.1"], 1.0)
    as_csv = pipelines.predict_partitions(
        sqlite_ws, "churn/1", src, tmp_path / "ray.csv", columns=["id"]
    )  # one partition per row group by default
    csv = pd.read_csv(as_csv.output)
    assert list(csv.columns) == ["id", "prediction"] and csv.id.tolist() == list(range(1000))
    assert (csv.prediction.to_numpy() == pd.read_parquet(local.output).prediction).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["in.parquet", "local.parquet", "ray.parquet", "ray.csv"]
    )  # no part files left behind


def test_a_bad_partition_names_its_rows_and_leaves_no_output(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    tmp_path = tmp_path / "io"  # beside the workspace
    src = _model_and_input(sqlite_ws, tmp_path, rows=300)
    frame = pd.read_parquet(src)
    frame.loc[250, "income"] = np.nan
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), bad, row_group_size=100)
    with pytest.raises(loopml.InvalidInput, match=r"^rows 200-299: the model failed"):
        pipelines.predict_partitions(sqlite_ws, "churn", bad, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "in.parquet"]
