"""Prefect 3's side of benchmarks/pipelines.py, run in Prefect's own venv.

Per-step overhead of 200 trivial tasks, sequential and as 50 chains of 4 (a 50-wide
fan-out), on Prefect's local ephemeral server: (wall(200) - wall(1)) / 199, each wall
time the median of 3 runs. Prints JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

N, WIDTH, REPEATS = 200, 50, 3


@task
def inc(x: int) -> int:
    return x + 1


@flow
def sequential(n: int) -> int:
    x = 0
    for _ in range(n):
        x = inc(x)
    return x


@flow(task_runner=ThreadPoolTaskRunner(max_workers=WIDTH))
def fan_out(n: int) -> list[int]:
    width = min(n, WIDTH)
    wave = [inc.submit(i) for i in range(width)]
    for _ in range(n // width - 1):
        wave = [inc.submit(f) for f in wave]
    return [f.result() for f in wave]


def seconds(fn: object, n: int) -> float:
    """Median wall time of 3 runs of flow ``fn`` with ``n`` tasks."""
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn(n)  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    sequential(1)  # starts the ephemeral server and warms up
    fan_out(1)
    out = {}
    for name, fn in (("sequential", sequential), ("fan_out", fan_out)):
        one, many = seconds(fn, 1), seconds(fn, N)
        out[name] = {"one_s": one, "many_s": many, "per_step_ms": (many - one) / (N - 1) * 1e3}
    import prefect

    out["version"] = prefect.__version__
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
