"""Pipelines: DAGs from step calls, validation, caching, retries, timeouts, resume,
parallelism, tracking and lineage — on a real workspace (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import loopml
from loopml import pipelines, tracking
from loopml.store import Node, Workspace, upstream

from . import steps


@pytest.fixture
def default_ws(ws: Workspace) -> Iterator[Workspace]:
    """``ws`` as the process default too (thread steps that call loopml use it)."""
    loopml.use_workspace(ws)
    yield ws


def test_step_calls_build_a_dag_and_outputs_are_stored(default_ws: Workspace) -> None:
    result = steps.arithmetic.run({"n": 4}, workspace=default_ws)
    assert result.status == "FINISHED"
    assert result.output == {"plain": {"total": 6.0}, "doubled": {"total": 12.5}}
    table = result.steps.set_index("node")
    assert set(table.index) == {"numbers", "double", "total", "total-2"}
    assert (table.status == "FINISHED").all() and not table.cache_hit.any()
    assert table.loc["numbers", "output_kind"] == "parquet"
    assert table.loc["total", "output_kind"] == "json"
    frame = result.value("double")
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"x": [0, 2, 4, 6]}))
    # stored content-addressed: the blob is the Parquet of the frame, under its sha256
    assert default_ws.blobs.exists(table.loc["numbers", "output_digest"])


def test_a_step_outside_a_pipeline_is_the_plain_function() -> None:
    assert steps.total(pd.DataFrame({"x": [1, 2]}), offset=1.0) == {"total": 4.0}


def test_parameters_are_validated_before_anything_runs(sqlite_ws: Workspace) -> None:
    with pytest.raises(loopml.InvalidInput, match=r"parameter 'n': .*integer.*'many'"):
        steps.arithmetic.run({"n": "many"}, workspace=sqlite_ws)
    with pytest.raises(loopml.InvalidInput, match="parameter 'nn': unknown parameter"):
        steps.arithmetic.run({"nn": 3}, workspace=sqlite_ws)
    with pytest.raises(loopml.InvalidInput, match="parameter 'flag': Field required"):
        steps.resumable.run({"counter": "c"}, workspace=sqlite_ws)
    assert pipelines.list_pipeline_runs(sqlite_ws) == []  # nothing was recorded
    assert steps.arithmetic.run({"n": "3"}, workspace=sqlite_ws).output["plain"] == {
        "total": 3.0
    }  # coerced like any pydantic field


def test_step_options_and_calls_are_checked() -> None:
    with pytest.raises(loopml.InvalidInput, match="option 'retries'"):
        loopml.step(retries=-1)(lambda: 1)
    with pytest.raises(loopml.InvalidInput, match="option 'timeout'"):
        loopml.step(timeout=0)(lambda: 1)
    with pytest.raises(loopml.InvalidInput, match="option 'on_failure'"):
        loopml.step(on_failure="email me")(lambda: 1)

    @loopml.pipeline(executor="thread")
    def wrong_call() -> Any:
        return steps.total()  # type: ignore[call-arg]

    with pytest.raises(loopml.InvalidInput, match="step 'total': missing a required argument"):
        wrong_call.build(wrong_call.validate({}))


def test_a_second_run_hits_the_cache_and_records_it(sqlite_ws: Workspace) -> None:
    first = steps.arithmetic.run({"n": 5}, workspace=sqlite_ws)
    second = steps.arithmetic.run({"n": 5}, workspace=sqlite_ws)
    table = second.steps.set_index("node")
    assert table.cache_hit.all() and (table.status == "FINISHED").all()
    assert second.output == first.output
    assert (table.cache_key == first.steps.set_index("node").cache_key).all()
    # the step run records the hit as a tag
    record = tracking.get_run(sqlite_ws, table.loc["double", "run_id"])
    assert record.tags["loopml.cache_hit"] == "true"
    # a changed argument misses from that step on; the unchanged branch still hits
    third = steps.arithmetic.run({"n": 5, "offset": 1.5}, workspace=sqlite_ws).steps
    hits = dict(zip(third.node, third.cache_hit, strict=True))
    assert hits == {"numbers": True, "double": True, "total": True, "total-2": False}
    # cache=False per run re-runs everything
    fresh = steps.arithmetic.run({"n": 5}, workspace=sqlite_ws, cache=False).steps
    assert not fresh.cache_hit.any()


def test_declared_dependencies_and_cache_false_steps(sqlite_ws: Workspace, tmp_path: Path) -> None:
    config = tmp_path / "config.txt"
    config.write_text("v1")
    counter = tmp_path / "calls"

    @loopml.step(deps=[config])
    def read_config(counter: str) -> str:
        steps._bump(Path(counter))
        return config.read_text()

    @loopml.step(cache=False)
    def always(value: str, counter: str) -> str:
        steps._bump(Path(counter))
        return value.upper()

    @loopml.pipeline(executor="thread")
    def configured(counter: str) -> str:
        return always(read_config(counter), counter)

    assert configured.run({"counter": str(counter)}, workspace=sqlite_ws).output == "V1"
    assert configured.run({"counter": str(counter)}, workspace=sqlite_ws).output == "V1"
    assert counter.read_text() == "3"  # read_config once (then cached), always twice
    config.write_text("v2")
    assert configured.run({"counter": str(counter)}, workspace=sqlite_ws).output == "V2"
    config.unlink()
    with pytest.raises(pipelines.PipelineFailed, match="read_config"):
        configured.run({"counter": str(counter)}, workspace=sqlite_ws)


def test_retries_with_backoff_then_success(sqlite_ws: Workspace, tmp_path: Path) -> None:
    events: list[pipelines.StepEvent] = []

    @loopml.pipeline(executor="thread")
    def retried(counter: str, fail_times: int) -> int:
        return steps.flaky(counter, fail_times)

    counter = str(tmp_path / "n")
    result = retried.run(
        {"counter": counter, "fail_times": 2}, workspace=sqlite_ws, on_event=events.append
    )
    assert result.output == 3
    assert [e.status for e in events] == [
        "running",
        "retrying",
        "running",
        "retrying",
        "running",
        "finished",
    ]
    assert int(result.steps.attempts.iloc[0]) == 3
    # one more failure than retries allow: the step fails, with the error recorded
    with pytest.raises(pipelines.PipelineFailed, match="flaky failure 3") as failed:
        retried.run({"counter": str(tmp_path / "m"), "fail_times": 3}, workspace=sqlite_ws)
    row = failed.value.run.steps.iloc[0]
    assert row.status == "FAILED" and row.attempts == 3 and "RuntimeError" in row.error
    parent = tracking.get_run(sqlite_ws, failed.value.run.run_id)
    assert parent.status == "FAILED"


def test_on_failure_hook_and_downstream_steps_skipped(sqlite_ws: Workspace, tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    @loopml.step(on_failure=lambda node, exc: seen.append((node, str(exc))))
    def broken(value: int) -> int:
        raise ValueError(f"bad value {value}")

    @loopml.pipeline(executor="thread")
    def branches() -> list[int]:
        return [
            steps.count_calls(str(tmp_path / "c"), broken(1)),
            steps.count_calls(str(tmp_path / "d"), 7),
        ]

    run = branches.run(workspace=sqlite_ws, raise_on_failure=False)
    assert run.status == "FAILED" and seen == [("broken", "bad value 1")]
    status = dict(zip(run.steps.node, run.steps.status, strict=True))
    assert status == {"broken": "FAILED", "count_calls": "SKIPPED", "count_calls-2": "FINISHED"}


def test_resume_reruns_from_the_failed_step(default_ws: Workspace, tmp_path: Path) -> None:
    flag, counter = tmp_path / "fail", tmp_path / "calls"
    flag.touch()
    params = {"flag": str(flag), "counter": str(counter)}
    with pytest.raises(pipelines.PipelineFailed, match="resume it with") as failed:
        steps.resumable.run(params, workspace=default_ws)
    run_id = failed.value.run.id
    assert counter.read_text() == "1"
    flag.unlink()
    resumed = pipelines.resume(run_id, workspace=default_ws)
    assert resumed.id == run_id and resumed.status == "FINISHED" and resumed.output == 2
    assert counter.read_text() == "2"  # the first step was reused, not run again
    record = pipelines.get_pipeline_run(default_ws, run_id)
    assert record.status == "FINISHED" and record.error is None
    with pytest.raises(loopml.InvalidInput, match="nothing to resume"):
        pipelines.resume(run_id, workspace=default_ws)
    with pytest.raises(loopml.NotFound):
        pipelines.resume("0" * 32, workspace=default_ws)


def test_timeouts_fail_the_attempt(sqlite_ws: Workspace) -> None:
    @loopml.pipeline
    def slow(seconds: float) -> float:
        return steps.sleepy(seconds)

    with pytest.raises(pipelines.PipelineFailed, match=r"timed out after 0\.5 s"):
        slow.run({"seconds": 30}, workspace=sqlite_ws, executor="process", max_workers=1)
    with pytest.raises(pipelines.PipelineFailed, match=r"timed out after 0\.5 s"):
        slow.run({"seconds": 3}, workspace=sqlite_ws, executor="thread")
    assert slow.run({"seconds": 0.01}, workspace=sqlite_ws, executor="thread").output == 0.01


def test_independent_steps_run_in_parallel_in_worker_processes(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    """Each step waits for the other's file: it finishes only if both run at once."""
    run = steps.side_by_side.run({"folder": str(tmp_path)}, workspace=sqlite_ws, max_workers=2)
    assert run.output == ["a", "b"]


def test_tracking_parent_and_child_runs_with_lineage(default_ws: Workspace) -> None:
    run = steps.by_reference.run({"rows": 12}, workspace=default_ws)
    assert run.output == 12
    table = run.steps.set_index("node")
    assert table.loc["ingest_frame", "output_kind"] == "ref"  # by reference, not a copy
    children = tracking.search_runs(
        default_ws, "by_reference", f"attributes.parent_run_id = '{run.run_id}'"
    )
    assert sorted(children.name) == ["ingest_frame", "row_count"]
    assert set(children.status) == {"FINISHED"}
    assert "metrics.duration_s" in children.columns
    # lineage: row_count's output <- its run <- pipeline-data@1 <- ingest_frame's run
    out = Node("step_output", table.loc["row_count", "output_digest"])
    edges = {str(e) for e in upstream(default_ws.db, out)}
    reader, writer = table.loc["row_count", "run_id"], table.loc["ingest_frame", "run_id"]
    assert f"run:{reader} --produced--> {out}" in edges
    assert f"dataset_version:pipeline-data@1 --input--> run:{reader}" in edges
    assert f"run:{writer} --produced--> dataset_version:pipeline-data@1" in edges


def test_unstorable_outputs_and_local_steps_in_processes_fail_clearly(
    sqlite_ws: Workspace,
) -> None:
    @loopml.step
    def local_step() -> int:
        return 1

    @loopml.pipeline
    def local() -> int:
        return local_step()

    with pytest.raises(pipelines.PipelineFailed, match="defined inside a function"):
        local.run(workspace=sqlite_ws, executor="process", max_workers=1)

    @loopml.step
    def generator() -> Any:
        return (i for i in range(3))

    @loopml.pipeline(executor="thread")
    def unstorable() -> Any:
        return generator()

    with pytest.raises(pipelines.PipelineFailed, match="output of type generator cannot be"):
        unstorable.run(workspace=sqlite_ws)


def test_bad_executor_and_pipeline_sources(sqlite_ws: Workspace) -> None:
    with pytest.raises(loopml.InvalidInput, match="executor must be"):
        steps.arithmetic.run(workspace=sqlite_ws, executor="gpu-farm")
    with pytest.raises(loopml.InvalidInput, match="expected 'module:name'"):
        pipelines.load_pipeline("nothing")
    with pytest.raises(loopml.InvalidInput, match=r"is not a @loopml\.pipeline"):
        pipelines.load_pipeline(f"{steps.__name__}:numbers")
    assert pipelines.load_pipeline(f"{steps.__name__}:arithmetic") is steps.arithmetic


# -- batch prediction over partitions (the Ray path is in test_ray.py) ------------------
def test_row_groups_split_into_balanced_contiguous_partitions() -> None:
    from loopml.pipelines._batch import split_row_groups

    assert split_row_groups([100] * 10, 4) == [[0, 1, 2], [3, 4], [5, 6, 7], [8, 9]]
    assert split_row_groups([100] * 3, 8) == [[0], [1], [2]]
    assert split_row_groups([5, 0, 5], 1) == [[0, 2]]  # empty row groups are left out
    assert split_row_groups([1000, 1, 1, 1], 2) == [[0], [1, 2, 3]]


def test_predict_partitions_checks_its_input(sqlite_ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pd.DataFrame({"a": [1.0]}).to_parquet(src)
    cases = [
        ({"input_path": tmp_path / "in.csv"}, loopml.InvalidInput, "reads a .parquet file"),
        ({"input_path": tmp_path / "no.parquet"}, loopml.NotFound, "does not exist"),
        ({"output_path": tmp_path / "o.txt"}, loopml.InvalidInput, "use a .csv or .parquet"),
        ({"output_path": src}, loopml.InvalidInput, "would overwrite the input"),
        ({"partitions": 0}, loopml.InvalidInput, "partitions must be a positive integer"),
        ({"chunk_rows": "x"}, loopml.InvalidInput, "chunk_rows must be"),
        ({"columns": "a"}, loopml.InvalidInput, "columns must be a list"),
        ({}, loopml.NotFound, "churn"),  # no such model
    ]
    for change, error, message in cases:
        kwargs: dict[str, Any] = {
            "input_path": src,
            "output_path": tmp_path / "out.parquet",
            "executor": "thread",
            **change,
        }
        with pytest.raises(error, match=message):
            pipelines.predict_partitions(sqlite_ws, "churn", **kwargs)


def test_predict_partitions_on_threads_matches_predict_file(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    from sklearn.linear_model import LinearRegression

    from loopml import registry, serving

    frame = pd.DataFrame({"a": [float(i) for i in range(50)], "b": [i % 7 for i in range(50)]})
    model = LinearRegression().fit(frame, frame.a * 2 + frame.b)
    registry.register_model(sqlite_ws, model, "lin", input_example=frame.head(2))
    src = tmp_path / "in.parquet"
    frame.to_parquet(src, row_group_size=10)
    local = serving.predict_file(sqlite_ws, "lin", src, tmp_path / "local.parquet")
    parts = pipelines.predict_partitions(
        sqlite_ws, "lin", src, tmp_path / "parts.parquet", partitions=3, executor="thread"
    )
    assert parts.rows == 50
    pd.testing.assert_frame_equal(pd.read_parquet(parts.output), pd.read_parquet(local.output))
