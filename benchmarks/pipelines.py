"""Pipelines side by side: loopml vs Prefect 3, and loopml on Ray; one invocation.

(a) per-step overhead over 200 trivial steps, sequential (a chain) and as a 50-wide fan-out
    (50 chains of 4): ``(wall(200 steps) - wall(1 step)) / 199`` (each the median of 3
    runs), so start-up is left out on both sides; also ``wall(200 steps) / 200``, the cost
    per step with the run's own start and end shared out. loopml runs each step as a
    tracked child run with a cache key, a stored output blob and lineage (the cache is off,
    so every step executes), on its process
    executor (2 workers, the default) and its thread executor; Prefect 3 runs tasks on its
    local ephemeral server (``benchmarks/_prefect_peer.py`` in the venv
    ``$PEERS_HOME/prefect``, made here if missing). Target: loopml <= 1/10 of Prefect's.
(b) Ray: 200 steps of 1 s of CPU each on the 2 local cores with ``executor="ray"``; ideal
    wall time 100 s. Target: <= 1.15 x ideal. Takes about two minutes.

Usage: ``python benchmarks/pipelines.py [--skip-peer] [--skip-ray]``. Prints a table and
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import loopml
from loopml import pipelines
from loopml.store import Workspace

HERE = Path(__file__).resolve().parent
PEERS_HOME = Path(os.environ.get("PEERS_HOME", Path.home() / ".cache" / "bench-peers"))
PREFECT = "prefect==3.9.1"
N, WIDTH, RAY_STEPS, RAY_CPUS, REPEATS = 200, 50, 200, 2, 3


@loopml.step(cache=False)
def inc(x: int) -> int:
    return x + 1


@loopml.pipeline
def sequential(n: int) -> int:
    x: Any = 0
    for _ in range(n):
        x = inc(x)
    return x  # type: ignore[no-any-return]


@loopml.pipeline
def fan_out(n: int) -> list[int]:
    width = min(n, WIDTH)
    wave: list[Any] = [inc(i) for i in range(width)]
    for _ in range(n // width - 1):
        wave = [inc(x) for x in wave]
    return wave


@loopml.step(cache=False, cpus=1)
def burn(i: int, seconds: float = 1.0) -> int:
    """About ``seconds`` of CPU time."""
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        n += 1
    return i


@loopml.pipeline(executor="ray")
def trials(n: int) -> list[int]:
    return [burn(i) for i in range(n)]


def per_step(ws: Workspace, flow: pipelines.Pipeline[Any], executor: Any) -> dict[str, float]:
    flow.run({"n": 1}, workspace=ws, executor=executor)  # warm: workers started

    def seconds(n: int) -> float:
        times = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            flow.run({"n": n}, workspace=ws, executor=executor)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    one, many = seconds(1), seconds(N)
    return {"one_s": one, "many_s": many, "per_step_ms": (many - one) / (N - 1) * 1e3}


def run_loopml(home: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Workspace.init(home) as ws:
        for name, executor in (
            ("process", pipelines.ProcessExecutor(2)),
            ("thread", pipelines.ThreadExecutor(WIDTH)),
        ):
            for flow in (sequential, fan_out):
                out[f"{name}_{flow.name}"] = per_step(ws, flow, executor)
            executor.close()
    return out


def run_ray(home: Path) -> dict[str, Any]:
    import ray

    ray.init(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False)
    try:
        with Workspace.init(home) as ws:
            executor = pipelines.RayExecutor()
            trials.run({"n": 2}, workspace=ws, executor=executor)  # warm: workers up
            t = time.perf_counter()
            trials.run({"n": RAY_STEPS}, workspace=ws, executor=executor)
            wall = time.perf_counter() - t
    finally:
        ray.shutdown()
    ideal = RAY_STEPS * 1.0 / RAY_CPUS
    return {
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": wall / ideal,
        "overhead_s": wall - ideal,
        "load_average_1min_after": os.getloadavg()[0],  # other work on the 2 shared cores
    }


def prefect_python() -> Path:
    venv = PEERS_HOME / "prefect"
    python = venv / "bin" / "python"
    marker = venv / ".requirements"
    if not (python.exists() and marker.exists() and marker.read_text().strip() == PREFECT):
        print(f"[bench] installing {PREFECT} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PREFECT], check=True)
        marker.write_text(PREFECT + "\n")
    return python


def run_prefect() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-prefect-") as home:
        env = {**os.environ, "PREFECT_HOME": home, "PREFECT_LOGGING_LEVEL": "WARNING"}
        env.pop("PREFECT_API_URL", None)
        done = subprocess.run(
            [str(prefect_python()), str(HERE / "_prefect_peer.py")],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
        )
    if done.returncode != 0:
        raise SystemExit(f"the Prefect peer failed:\n{done.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(
        [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-peer", action="store_true", help="measure loopml only")
    parser.add_argument("--skip-ray", action="store_true", help="leave out the Ray figure")
    args = parser.parse_args()
    peer: dict[str, Any] = {}
    if not args.skip_peer:
        print("[bench] Prefect 3: 200 trivial tasks, sequential and fanned out ...", flush=True)
        peer = run_prefect()
    print("[bench] loopml: the same on the process and thread executors ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-loopml-") as tmp:
        ours = run_loopml(Path(tmp) / "ws")
        ray_figures = None
        if not args.skip_ray:
            print(f"[bench] loopml on Ray: {RAY_STEPS} x 1 s CPU steps on {RAY_CPUS} cores ...")
            ray_figures = run_ray(Path(tmp) / "ray-ws")
    print(f"\n{'per-step overhead, ms':<34}{'loopml':>10}{'prefect':>10}{'ratio':>9}{'target':>9}")
    ratios: dict[str, float] = {}
    for shape in ("sequential", "fan_out"):
        theirs_all = peer.get(shape, {}).get("many_s")
        for executor in ("process", "thread"):
            mine_all = ours[f"{executor}_{shape}"]["many_s"]
            ratio = theirs_all / mine_all if theirs_all else None
            if ratio:
                ratios[f"{executor}_{shape}_per_run_step"] = round(ratio, 1)
            print(
                f"{shape + ' (' + executor + '), wall/200':<34}{mine_all / N * 1e3:>10.2f}"
                + (f"{theirs_all / N * 1e3:>10.2f}{ratio:>8.1f}x" if ratio else f"{'-':>19}")
                + f"{'>=10x':>9}"
            )
    for shape in ("sequential", "fan_out"):
        theirs = peer.get(shape, {}).get("per_step_ms")
        for executor in ("process", "thread"):
            mine = ours[f"{executor}_{shape}"]["per_step_ms"]
            ratio = theirs / mine if theirs else None
            if ratio:
                ratios[f"{executor}_{shape}"] = round(ratio, 1)
            shown = f"{ratio:>8.1f}x" if ratio else f"{'-':>9}"
            peer_shown = f"{theirs:>10.2f}" if theirs else f"{'-':>10}"
            print(
                f"{shape + ' (' + executor + ')':<34}{mine:>10.2f}{peer_shown}{shown}{'>=10x':>9}"
            )
    if ray_figures:
        print(
            f"\nRay: {RAY_STEPS} x 1 s CPU on {RAY_CPUS} cores: "
            f"wall {ray_figures['wall_s']:.1f} s, ideal {ray_figures['ideal_s']:.0f} s, "
            f"ratio {ray_figures['ratio']:.3f} "
            f"(target <= 1.15), scheduling overhead {ray_figures['overhead_s']:.1f} s; "
            f"load average {ray_figures['load_average_1min_after']:.1f} (the machine's, "
            "all processes)"
        )
    print(json.dumps({"loopml": ours, "prefect": peer, "ratios": ratios, "ray": ray_figures}))


if __name__ == "__main__":
    main()
