"""W_track side by side: loopml tracking vs MLflow 3.17.2, same machine, one invocation.

Runs the peer script ``../shared/bench/peers/mlflow_tracking.py`` in MLflow's own venv
(``$PEERS_HOME/mlflow``, made by ``setup_peers.sh`` if missing), then the same workload on
loopml with a fresh SQLite workspace, and prints each figure with the ratio:

(a) single ``log_metric`` calls/s (including the final flush to disk)
(b) 100,000 points in batches of 1,000 (``run.log_batch``), points/s
(c) reading that 100,000-point history back, seconds (median of 3)
(d) creating 2,000 runs with 5 params + 5 metrics each, runs/s; then ``search_runs`` with
    ``metrics.m0 > 0.5`` over them, seconds (median of 3)
(e) ``search_runs`` over 100,000 runs of 5 params + 5 metrics (written straight into each
    side's sqlite, as ``benchmarks/ui.py`` and ``benchmarks/_mlflow_server_peer.py`` do):
    the first 1,000 with ``metrics.m0 > 0.5`` by ``metrics.m0 DESC``, seconds (median of 3)

Usage: ``python benchmarks/tracking.py [--skip-peer]``. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ui import fill  # benchmarks/ui.py: 100,000 runs written through the row writers

from loopml.store import Workspace
from loopml.tracking import get_metric_history, search_runs, start_run

HERE = Path(__file__).resolve().parent
PEERS = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "peers"
PEERS_HOME = Path(os.environ.get("PEERS_HOME", Path.home() / ".cache" / "bench-peers"))
N_SINGLE, N_POINTS, BATCH, N_RUNS, REPEATS = 200_000, 100_000, 1_000, 2_000, 3
N_MANY = 100_000  # runs searched in (e)

# figure: (loopml key, mlflow key, higher is better, target ratio)
FIGURES = [
    ("a_log_metric_per_s", "a_log_metric_per_s", True, 500),
    ("b_log_batch_metrics_per_s", "b_log_batch_metrics_per_s", True, 50),
    ("c_get_metric_history_s", "c_get_metric_history_s", False, 50),
    ("d_create_runs_per_s", "d_create_runs_per_s", True, 20),
    ("d_search_runs_s", "d_search_runs_s", False, 20),
    ("e_search_runs_100k_s", "e_search_runs_100k_s", False, 20),
]


def median_seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(REPEATS):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def run_loopml(tmp: Path) -> dict[str, Any]:
    r: dict[str, Any] = {"peer": "loopml", "store": "sqlite (local file)"}
    with Workspace.init(tmp / "ws") as ws:
        with start_run("bench", workspace=ws) as run:
            run.log_metric("warmup", 0.0)
            t = time.perf_counter()
            for i in range(N_SINGLE):
                run.log_metric("m", i * 1e-3, step=i)
            run.flush()
            r["a_log_metric_per_s"] = N_SINGLE / (time.perf_counter() - t)

        with start_run("bench", workspace=ws) as run:
            t = time.perf_counter()
            for b in range(0, N_POINTS, BATCH):
                steps = range(b, b + BATCH)
                run.log_batch("loss", [s * 1e-5 for s in steps], steps=list(steps))
            run.flush()
            r["b_log_batch_metrics_per_s"] = N_POINTS / (time.perf_counter() - t)
        r["c_get_metric_history_s"], hist = median_seconds(
            lambda: get_metric_history(ws, run.id, "loss")
        )
        assert len(hist) == N_POINTS, len(hist)

        rng = random.Random(0)
        t = time.perf_counter()
        for _ in range(N_RUNS):
            with start_run("search", workspace=ws) as run:
                run.log_params({f"p{j}": rng.randrange(100) for j in range(5)})
                run.log_metrics({f"m{j}": rng.random() for j in range(5)}, step=0)
        r["d_create_runs_per_s"] = N_RUNS / (time.perf_counter() - t)
        r["d_search_runs_s"], df = median_seconds(
            lambda: search_runs(ws, "search", "metrics.m0 > 0.5", max_results=N_RUNS)
        )
        r["d_search_runs_matched"] = len(df)

        fill(ws, N_MANY)
        r["e_search_runs_100k_s"], df = median_seconds(
            lambda: search_runs(
                ws, "page", "metrics.m0 > 0.5", ["metrics.m0 DESC"], max_results=1000
            )
        )
        r["e_search_runs_rows"], r["e_best_m0"] = len(df), float(df["metrics.m0"].iloc[0])
    return r


def run_mlflow() -> dict[str, Any]:
    python = PEERS_HOME / "mlflow" / "bin" / "python"
    if not python.exists():
        subprocess.run(["bash", str(PEERS / "setup_peers.sh")], check=True)
    out = subprocess.run(
        [str(python), "mlflow_tracking.py"],
        cwd=PEERS,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(
        [line for line in out.splitlines() if line.startswith("{")][-1]
    )
    many = subprocess.run(
        [str(python), str(HERE / "_mlflow_server_peer.py"), "local", "--runs", str(N_MANY)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    ).stdout
    found = json.loads([line for line in many.splitlines() if line.startswith("{")][-1])
    result["e_search_runs_100k_s"] = found["search_runs_s"]
    result["e_search_runs_rows"], result["e_best_m0"] = found["search_runs_rows"], found["best_m0"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-peer", action="store_true", help="measure loopml only")
    args = parser.parse_args()
    peer: dict[str, Any] = {}
    if not args.skip_peer:
        print("[bench] running MLflow's W_track script (takes a minute or two) ...", flush=True)
        peer = run_mlflow()
    print("[bench] running loopml's W_track ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-loopml-") as tmp:
        ours = run_loopml(Path(tmp))
    print(f"\n{'figure':<28}{'loopml':>14}{'mlflow':>14}{'ratio':>10}{'target':>9}")
    ratios = {}
    for key, peer_key, higher, target in FIGURES:
        mine, theirs = ours[key], peer.get(peer_key)
        ratio = None
        if theirs:
            ratio = mine / theirs if higher else theirs / mine
            ratios[key] = round(ratio, 1)
        shown = f"{ratio:>9.1f}x" if ratio else f"{'-':>10}"
        theirs_s = f"{theirs:>14,.3f}" if theirs else f"{'-':>14}"
        ok = "" if ratio is None else (" ok" if ratio >= target else " MISS")
        print(f"{key:<28}{mine:>14,.3f}{theirs_s}{shown}{target:>8}x{ok}")
    print(json.dumps({"loopml": ours, "mlflow": peer, "ratios": ratios}, default=str))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
