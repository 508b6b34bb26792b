"""loopml's platform server vs ``mlflow server`` (MLflow 3.17.2), same machine, one invocation.

Runs ``benchmarks/_mlflow_server_peer.py`` in MLflow's own venv (``$PEERS_HOME/mlflow``, made
by ``setup_peers.sh`` if missing), then starts ``loopml server`` (1 worker unless
``--workers``) on a fresh SQLite workspace in a child process and measures, over HTTP on
127.0.0.1:

1. loopml's remote client (``Workspace.open(tracking_uri=...)``) -> loopml server: single
   ``run.log_metric`` calls/s, including the final flush; vs the ``mlflow`` client -> ``mlflow
   server`` (sqlite backend, its default 4 workers).
2. the unmodified ``mlflow`` client (MLflow's venv, ``MLFLOW_TRACKING_URI`` = the loopml
   server) -> loopml's MLflow-compatible API: the same single ``log_metric`` calls/s, checked
   back point by point; vs the same MLflow baseline. Shown as unavailable, with the reason,
   when that API does not take them.
3. ``search_runs`` with ``metrics.m0 > 0.5`` over 10,000 runs of 5 params + 5 metrics (one
   data set, drawn as the peer script's (d) does): loopml's remote client (runs logged through
   it) vs ``mlflow.search_runs`` against ``mlflow server`` (its sqlite file filled directly
   before the server starts), seconds, median of 3.
4. load: ``--procs`` client processes x ``--clients`` workspaces each (default 4 x 8 = 32
   clients, each its own ``Workspace.open(tracking_uri=...)``, run and background sender), each
   logging ``--rate`` points/s for ``--duration`` s (default 60). Points sent; points stored,
   counted back per run (lost, duplicated, wrong values); errors (non-2xx answers, requests
   that got no answer, segments refused, loopml warnings); p50/p99 latency per ``POST
   /api/v1/batches``, timed in the client processes by httpx event hooks on each workspace's
   HTTP client (request sent -> answer body read; loopml itself is not instrumented).

Usage: ``python benchmarks/server.py [--skip-peer] [--duration S]``. Prints a table and one
JSON line. Figures are noisy on a shared 2-core machine: rerun before trusting a gap.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from loopml.store import Workspace
from loopml.tracking import flush, get_metric_history, search_runs, start_run

HERE = Path(__file__).resolve().parent
PEERS = HERE.parents[1] / "shared" / "bench" / "peers"
PEERS_HOME = Path(os.environ.get("PEERS_HOME", Path.home() / ".cache" / "bench-peers"))
PEER_SCRIPT = HERE / "_mlflow_server_peer.py"
N_REMOTE, N_MLFLOW_CLIENT, N_RUNS, REPEATS = 200_000, 1_000, 10_000, 3
PEER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true"}

# figure: (loopml key, mlflow key, higher is better, target ratio)
FIGURES = [
    ("1_remote_log_metric_per_s", "log_metric_per_s", True, 100),
    ("2_mlflow_client_log_metric_per_s", "log_metric_per_s", True, 5),
    ("3_search_runs_10k_s", "search_runs_s", False, 20),
]
# figure 4: (key, what it must be: "zero" or "sent")
LOAD_CHECKS = [
    ("4_points_sent", None),
    ("4_points_stored", "sent"),
    ("4_points_lost", "zero"),
    ("4_points_duplicated", "zero"),
    ("4_points_wrong_value", "zero"),
    ("4_errors", "zero"),
    ("4_batch_requests", None),
    ("4_batch_p50_ms", None),
    ("4_batch_p99_ms", None),
]


def _load_common() -> ModuleType:
    """The peer scripts' helpers (``common.py``: servers, ports, percentiles), by path."""
    spec = importlib.util.spec_from_file_location("peer_common", PEERS / "common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _load_common()


def search_data(n_runs: int) -> list[tuple[list[float], list[str]]]:
    """(5 metric values, 5 param values) per run; the same draws as the peer side's."""
    rng = random.Random(0)
    return [
        ([rng.random() for _ in range(5)], [str(rng.randrange(100)) for _ in range(5)])
        for _ in range(n_runs)
    ]


def median_seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(REPEATS):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


# -- MLflow's venv -------------------------------------------------------------------------
def mlflow_python() -> Path:
    python = PEERS_HOME / "mlflow" / "bin" / "python"
    if not python.exists():
        subprocess.run(["bash", str(PEERS / "setup_peers.sh")], check=True)
    return python


def run_peer(args: list[str], timeout_s: float) -> dict[str, Any]:
    """Run the peer script in MLflow's venv; its JSON line, or ``{"error": reason}``."""
    try:
        out = subprocess.run(
            [str(mlflow_python()), str(PEER_SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, **PEER_ENV},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"peer script exceeded {timeout_s:.0f} s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"peer script exited with {out.returncode}: {tail[0][:300]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- the loopml server ---------------------------------------------------------------------
class LoopmlServer:
    """``loopml server`` on a fresh SQLite workspace under ``tmp``, in its own process group."""

    def __init__(self, tmp: Path, workers: int) -> None:
        home = tmp / "server-ws"
        Workspace.init(home).close()
        port = common.free_port()
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "loopml", "-w", str(home), "server",
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "LOOPML_TRACKING_URI"}
        self.proc = common.start_server(cmd, str(tmp / "loopml-server.log"), env=env)
        try:
            common.wait_http(f"{self.url}/readyz", self.proc)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        common.stop_server(self.proc)


def remote_log_metric_rate(url: str) -> dict[str, Any]:
    """Figure 1: single ``run.log_metric`` calls/s through the remote client, with the flush."""
    with Workspace.open(tracking_uri=url) as ws, start_run("bench", workspace=ws) as run:
        run.log_metric("warmup", 0.0)
        run.flush()
        t = time.perf_counter()
        for i in range(N_REMOTE):
            run.log_metric("m", i * 1e-3, step=i)
        run.flush()
        rate = N_REMOTE / (time.perf_counter() - t)
        stored = len(get_metric_history(ws, run.id, "m"))
    return {"1_remote_log_metric_per_s": rate, "1_calls": N_REMOTE, "1_stored": stored}


def mlflow_client_rate(url: str) -> dict[str, Any]:
    """Figure 2: the ``mlflow`` client's single log_metric calls/s to the loopml server."""
    answer = run_peer(["client", "--uri", url, "--calls", str(N_MLFLOW_CLIENT)], 600)
    if "error" in answer:
        return {"2_unavailable": answer["error"]}
    with Workspace.open(tracking_uri=url) as ws:
        history = get_metric_history(ws, answer["run_id"], "m")
    expected = [i * 1e-3 for i in range(N_MLFLOW_CLIENT)]
    return {
        "2_mlflow_client_log_metric_per_s": answer["log_metric_per_s"],
        "2_calls": N_MLFLOW_CLIENT,
        "2_stored_ok": history["step"].tolist() == list(range(N_MLFLOW_CLIENT))
        and history["value"].tolist() == expected,
    }


def search_figure(url: str) -> dict[str, Any]:
    """Figure 3: log the runs through the remote client, then time ``search_runs``."""
    data = search_data(N_RUNS)
    with Workspace.open(tracking_uri=url) as ws:
        t = time.perf_counter()
        for values, params in data:
            with start_run("search", workspace=ws) as run:
                run.log_params({f"p{j}": v for j, v in enumerate(params)})
                run.log_metrics({f"m{j}": v for j, v in enumerate(values)}, step=0)
        flush(ws)
        fill_s = time.perf_counter() - t
        seconds, df = median_seconds(
            lambda: search_runs(ws, "search", "metrics.m0 > 0.5", max_results=N_RUNS)
        )
    return {
        "3_search_runs_10k_s": seconds,
        "3_matched": len(df),
        "3_expected": sum(values[0] > 0.5 for values, _ in data),
        "3_fill_s": fill_s,
    }


# -- figure 4: load ------------------------------------------------------------------------
class BatchTimer:
    """httpx event hooks timing each ``POST /api/v1/batches`` (request sent -> body read)."""

    def __init__(self) -> None:
        self.started: dict[int, tuple[httpx.Request, float]] = {}
        self.seconds: list[float] = []
        self.http_errors = 0
        self.refused_segments = 0

    def on_request(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/api/v1/batches"):
            self.started[id(request)] = (request, time.perf_counter())

    def on_response(self, response: httpx.Response) -> None:
        entry = self.started.pop(id(response.request), None)
        if entry is None:
            return
        response.read()
        self.seconds.append(time.perf_counter() - entry[1])
        if response.status_code >= 400:
            self.http_errors += 1
        else:
            self.refused_segments += len(response.json().get("errors", []))


class WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage()[:200])


def load_client(url: str, clients: int, duration: float, rate: float, start_at: float) -> None:
    """One client process of figure 4: prints its runs, points and batch timings as JSON."""
    warnings = WarningCounter()
    logging.getLogger("loopml").addHandler(warnings)
    timers, workspaces = [BatchTimer() for _ in range(clients)], []
    for timer in timers:
        ws = Workspace.open(tracking_uri=url)
        assert ws.remote is not None
        ws.remote._http.event_hooks = {
            "request": [timer.on_request],
            "response": [timer.on_response],
        }
        workspaces.append(ws)
    sent: dict[str, int] = {}
    failures: list[str] = []
    cap = int(rate * duration) + 1

    def log(ws: Workspace) -> None:
        try:
            with start_run("load", workspace=ws) as run:
                time.sleep(max(0.0, start_at - time.time()))
                t0, i = time.monotonic(), 0
                while i < cap and time.monotonic() - t0 < duration:
                    time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                    run.log_metric("loss", i * 1e-3, step=i)
                    i += 1
                sent[run.id] = i
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=log, args=(ws,), daemon=True) for ws in workspaces]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + max(0.0, start_at - time.time()) + duration + 60
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    failures += [f"{t.name} still logging at the deadline" for t in threads if t.is_alive()]
    t = time.perf_counter()
    for ws in workspaces:
        ws.close()  # sends what is still queued
    report = {
        "sent": sent,
        "seconds": [s for timer in timers for s in timer.seconds],
        "unanswered": sum(len(timer.started) for timer in timers),
        "http_errors": sum(timer.http_errors for timer in timers),
        "refused_segments": sum(timer.refused_segments for timer in timers),
        "warnings": warnings.messages[:20],
        "n_warnings": len(warnings.messages),
        "failures": failures,
        "close_s": time.perf_counter() - t,
    }
    print(json.dumps(report), flush=True)


def load_figure(url: str, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Figure 4: start the client processes together, then count every point back."""
    start_at = time.time() + 10  # after every process has imported loopml and opened its runs
    cmd = [sys.executable, str(Path(__file__).resolve()), "--load-client", url,
           "--clients", str(args.clients), "--duration", str(args.duration),
           "--rate", str(args.rate), "--start-at", str(start_at)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "LOOPML_TRACKING_URI"}
    procs = [
        subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(args.procs)
    ]
    reports, problems = [], []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=args.duration + 240)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            problems.append(f"client process exited with {proc.returncode}")
        else:
            reports.append(json.loads(lines[-1]))
    sent = {run_id: n for r in reports for run_id, n in r["sent"].items()}
    stored = lost = duplicated = wrong = 0
    with Workspace.open(tracking_uri=url) as ws:
        for run_id, n in sent.items():
            history = get_metric_history(ws, run_id, "loss")
            steps, values = history["step"].tolist(), history["value"].tolist()
            unique = dict(zip(steps, values, strict=True))
            stored += len(steps)
            duplicated += len(steps) - len(unique)
            lost += sum(1 for i in range(n) if i not in unique)
            wrong += sum(1 for s, v in unique.items() if not (0 <= s < n and v == s * 1e-3))
    seconds = [s for r in reports for s in r["seconds"]]
    failures = problems + [f for r in reports for f in r["failures"]]
    errors = len(failures) + sum(
        r["unanswered"] + r["http_errors"] + r["refused_segments"] + r["n_warnings"]
        for r in reports
    )
    timing = common.percentiles_ms(seconds) if seconds else {"p50_ms": None, "p99_ms": None}
    return {
        "4_clients": args.procs * args.clients,
        "4_runs": len(sent),
        "4_points_sent": sum(sent.values()),
        "4_points_stored": stored,
        "4_points_lost": lost,
        "4_points_duplicated": duplicated,
        "4_points_wrong_value": wrong,
        "4_errors": errors,
        "4_error_detail": failures + [w for r in reports for w in r["warnings"]],
        "4_batch_requests": len(seconds),
        "4_batch_p50_ms": timing["p50_ms"],
        "4_batch_p99_ms": timing["p99_ms"],
        "4_batch_max_ms": round(1000 * max(seconds), 3) if seconds else None,
        "4_close_s_max": max((r["close_s"] for r in reports), default=None),
        "4_duration_s": args.duration,
        "4_rate_per_client": args.rate,
    }


def run_loopml(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    server = LoopmlServer(tmp, args.workers)
    r: dict[str, Any] = {"peer": "loopml", "store": "sqlite", "server_workers": args.workers}
    try:
        print("[bench] 1: remote log_metric ...", flush=True)
        r.update(remote_log_metric_rate(server.url))
        if args.skip_peer:
            r["2_unavailable"] = "--skip-peer (needs MLflow's venv)"
        else:
            print("[bench] 2: mlflow client -> loopml server ...", flush=True)
            r.update(mlflow_client_rate(server.url))
        print(f"[bench] 3: logging {N_RUNS:,} runs, then search_runs ...", flush=True)
        r.update(search_figure(server.url))
        clients = args.procs * args.clients
        print(f"[bench] 4: {clients} clients for {args.duration:.0f} s ...", flush=True)
        r.update(load_figure(server.url, tmp, args))
    finally:
        server.stop()
    return r


def _fmt(value: Any) -> str:
    if value is None:
        return f"{'-':>14}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!s:>14}"
    return f"{value:>14,.3f}" if isinstance(value, float) else f"{value:>14,}"


def print_table(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, float]:
    print(f"\n{'figure':<36}{'loopml':>14}{'mlflow':>14}{'ratio':>10}{'target':>9}")
    ratios = {}
    for key, peer_key, higher, target in FIGURES:
        mine, theirs = ours.get(key), peer.get(peer_key)
        ratio = None
        if mine and theirs:
            ratio = mine / theirs if higher else theirs / mine
            ratios[key] = round(ratio, 1)
        shown = f"{ratio:>9.1f}x" if ratio else f"{'-':>10}"
        ok = "" if ratio is None else (" ok" if ratio >= target else " MISS")
        print(f"{key:<36}{_fmt(mine)}{_fmt(theirs)}{shown}{target:>8}x{ok}")
    for key, must in LOAD_CHECKS:
        value = ours.get(key)
        want = {"zero": 0, "sent": ours.get("4_points_sent"), None: None}[must]
        ok = "" if must is None else (" ok" if value == want else " MISS")
        wanted = f"{'':>9}" if must is None else f"{'= ' + must:>9}"
        print(f"{key:<36}{_fmt(value)}{_fmt(None)}{'':>10}{wanted}{ok}")
    notes = []
    if ours.get("1_stored") != ours.get("1_calls"):
        notes.append(f"figure 1 stored {ours.get('1_stored')} of {ours.get('1_calls')} points")
    if ours.get("2_stored_ok") is False:
        notes.append("figure 2: the points read back differ from those the mlflow client logged")
    if "2_unavailable" in ours:
        notes.append(f"figure 2 unavailable: {ours['2_unavailable']}")
    if "error" in peer:
        notes.append(f"mlflow side unavailable: {peer['error']}")
    if ours.get("3_matched") != ours.get("3_expected"):
        notes.append(
            f"loopml search matched {ours.get('3_matched')}, expected {ours['3_expected']}"
        )
    if (
        "search_runs_matched" in peer
        and peer["search_runs_matched"] != peer["search_runs_expected"]
    ):
        notes.append(
            f"mlflow search matched {peer['search_runs_matched']}, "
            f"expected {peer['search_runs_expected']}"
        )
    if peer.get("log_metric_per_s_1worker"):
        notes.append(
            f"mlflow server --workers 1: {peer['log_metric_per_s_1worker']:,.1f} log_metric/s"
        )
    for note in notes:
        print(f"  note: {note}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-peer", action="store_true", help="measure loopml only")
    parser.add_argument("--duration", type=float, default=60.0, help="figure 4 seconds")
    parser.add_argument("--procs", type=int, default=4, help="figure 4 client processes")
    parser.add_argument("--clients", type=int, default=8, help="figure 4 clients per process")
    parser.add_argument("--rate", type=float, default=100.0, help="points/s per client")
    parser.add_argument("--workers", type=int, default=1, help="loopml server processes")
    parser.add_argument("--load-client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_client:
        load_client(args.load_client, args.clients, args.duration, args.rate, args.start_at)
        return
    peer: dict[str, Any] = {}
    if not args.skip_peer:
        print(
            "[bench] MLflow: filling sqlite, then `mlflow server` (about 2 minutes) ...", flush=True
        )
        peer = run_peer(["peer", "--calls", str(N_MLFLOW_CLIENT), "--runs", str(N_RUNS)], 1200)
    with tempfile.TemporaryDirectory(prefix="bench-loopml-server-") as tmp:
        ours = run_loopml(Path(tmp), args)
    ratios = print_table(ours, peer)
    print(json.dumps({"loopml": ours, "mlflow": peer, "ratios": ratios, "host": common.host()}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
