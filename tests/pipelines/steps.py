"""Steps and pipelines the pipeline tests run (module level, so worker processes import them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

import loopml
from loopml import data


@loopml.step
def numbers(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": list(range(n))})


@loopml.step
def double(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(x=frame.x * 2)


@loopml.step
def total(frame: pd.DataFrame, offset: float = 0.0) -> dict[str, float]:
    return {"total": float(frame.x.sum()) + offset}


@loopml.step
def combine(a: dict[str, float], b: dict[str, float]) -> float:
    return a["total"] + b["total"]


@loopml.pipeline(executor="thread")
def arithmetic(n: int = 4, offset: float = 0.5) -> dict[str, object]:
    frame = numbers(n)
    doubled = double(frame)
    return {"plain": total(frame), "doubled": total(doubled, offset=offset)}


def _bump(counter: Path) -> int:
    seen = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(seen))
    return seen


@loopml.step(retries=2, retry_delay=0.01, backoff=2.0)
def flaky(counter: str, fail_times: int) -> int:
    """Fails the first ``fail_times`` calls (counted in a file)."""
    seen = _bump(Path(counter))
    if seen <= fail_times:
        raise RuntimeError(f"flaky failure {seen}")
    return seen


@loopml.step
def fails_if_flag(flag: str, value: int) -> int:
    if Path(flag).exists():
        raise ValueError("the flag file says fail")
    return value + 1


@loopml.step
def count_calls(counter: str, value: int) -> int:
    _bump(Path(counter))
    return value


@loopml.pipeline(executor="thread")
def resumable(flag: str, counter: str) -> int:
    first = count_calls(counter, 1)
    second = fails_if_flag(flag, first)
    return count_calls(counter, second)


@loopml.step(timeout=0.5)
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@loopml.step
def rendezvous(me: str, other: str, folder: str) -> str:
    """Finishes only if ``other`` runs at the same time (each waits for the other's file)."""
    Path(folder, me).touch()
    deadline = time.monotonic() + 20
    while not Path(folder, other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} did not run alongside {me}")
        time.sleep(0.01)
    return me


@loopml.pipeline
def side_by_side(folder: str) -> list[str]:
    return [rendezvous("a", "b", folder), rendezvous("b", "a", folder)]


@loopml.step
def pid() -> int:
    return os.getpid()


@loopml.step
def ingest_frame(rows: int) -> data.DatasetVersion:
    frame = pd.DataFrame({"a": range(rows), "b": [i % 2 for i in range(rows)]})
    return data.ingest(frame, name="pipeline-data")


@loopml.step
def row_count(dataset: data.DatasetVersion) -> int:
    return dataset.num_rows


@loopml.pipeline(executor="thread")
def by_reference(rows: int = 10) -> int:
    return row_count(ingest_frame(rows))


@loopml.step(cache=False)
def record_slot(folder: str, slot: str) -> str:
    """Leaves one file per slot; a slot run twice fails (its file exists)."""
    Path(folder).mkdir(exist_ok=True)
    Path(folder, slot.replace(":", "-")).touch(exist_ok=False)
    return slot


@loopml.pipeline(executor="thread")
def hourly(folder: str, slot: str) -> str:
    return record_slot(folder, slot)
