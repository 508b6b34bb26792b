"""A pipeline end to end: steps, a DAG with a fan-out, caching, a failure and its resume.

generate data -> ingest it as a dataset version -> train two models in parallel (worker
processes) -> pick the better one -> register it. The second run comes from the cache; a
step that fails is resumed after the cause is fixed, reusing everything that finished.

    python examples/pipeline.py
"""

import os
import tempfile
from pathlib import Path

import pandas as pd

import loopml
from loopml import data, pipelines


@loopml.step
def generate(rows: int) -> pd.DataFrame:
    return data.demo_churn(rows, period="before").drop(columns=["customer_id", "event_time"])


@loopml.step
def ingest(frame: pd.DataFrame) -> data.DatasetVersion:
    return data.ingest(frame, name="churn")  # passed on by reference: churn@1


@loopml.step(retries=1, retry_delay=0.1)
def train(dataset: data.DatasetVersion, model: str) -> dict:
    from loopml.training import train as fit

    result = fit(dataset, "churned", model=model, plots=False)
    return {"model": result.model, "auc": result.metrics["roc_auc"], "run_id": result.run_id}


@loopml.step
def best(candidates: list, gate: str) -> dict:
    if Path(gate).exists():
        raise RuntimeError(f"release gate closed: remove {gate} to continue")
    return max(candidates, key=lambda c: c["auc"])


@loopml.step
def register(chosen: dict, example: pd.DataFrame) -> loopml.registry.ModelVersion:
    return loopml.register_model(
        chosen["model"], "churn", run=chosen["run_id"], input_example=example.head()
    )


@loopml.pipeline
def churn(rows: int = 1000, gate: str = "gate.closed") -> loopml.registry.ModelVersion:
    frame = generate(rows)
    dataset = ingest(frame)
    candidates = [train(dataset, m) for m in ("linear", "random_forest")]  # run side by side
    return register(best(candidates, gate), frame)


def main() -> None:
    if "LOOPML_HOME" not in os.environ:
        loopml.use_workspace(loopml.init(tempfile.mkdtemp(prefix="loopml-example-")))
    gate = Path(tempfile.mkdtemp()) / "gate.closed"
    workers = pipelines.ProcessExecutor(max_workers=2)  # one pool for all the runs below

    first = churn.run({"gate": str(gate)}, executor=workers)
    print(f"run {first.id[:8]}: {first.status}, registered {first.output.uri}")
    print(first.steps[["node", "status", "cache_hit", "attempts"]].to_string(index=False))

    again = churn.run({"gate": str(gate)}, executor=workers)
    print(
        f"run {again.id[:8]}: {int(again.steps.cache_hit.sum())} of {len(again.steps)} steps cached"
    )

    gate.touch()
    try:
        churn.run({"rows": 800, "gate": str(gate)}, executor=workers)
    except pipelines.PipelineFailed as failed:
        print(f"failed as expected: {failed}")
        gate.unlink()
        resumed = pipelines.resume(failed.run.id, executor=workers)
        reused = (resumed.steps.status == "FINISHED").sum()
        print(f"resumed {resumed.id[:8]}: {resumed.status} ({reused} steps), {resumed.output.uri}")
    workers.close()


if __name__ == "__main__":  # worker processes import this file: run only when executed
    main()
