"""W_serve side by side: ``loopml serve`` vs ``mlflow models serve`` vs a bare Starlette ceiling.

Same model (the W_serve HistGradientBoostingClassifier of ``../shared/bench/peers/data.py``),
same load generator (``loadgen.py``: closed loop, aiohttp), same single-row
``dataframe_split`` JSON bodies to ``/invocations``, same machine, one invocation:

- MLflow 3.17.2 through its peer script ``mlflow_serving.py`` in its own venv
  (``$PEERS_HOME/mlflow``, made by ``setup_peers.sh`` if missing);
- loopml: the model registered in a fresh workspace, served by ``loopml.serving.serve``
  (one uvicorn process, micro-batching on), without prediction logging (as MLflow serves)
  and again with it;
- a bare Starlette endpoint returning a constant under the same uvicorn settings (what
  this machine can do at all).

Each point runs 10 s after a 1 s warm-up at concurrency 1 and 32; the table shows
requests/s, p50 and p99 and the ratios the targets are written in. ``--soak`` adds 60 s
at concurrency 64 against loopml, reporting errors and the server's memory before/after.
``--onnx`` registers the model with ``onnx=True`` and adds loopml serving its ONNX export
(``runtime="onnx"``, onnxruntime, one intra-op thread like the native model's one OpenMP
thread) next to a second native server, the two loaded in alternating slices at c=1 and
c=32 so that both see the same machine load; and the in-process cost of one model call on
1 and 32 rows for each (alternating too).

Usage: ``python benchmarks/serving.py [--skip-peer] [--soak] [--onnx] [--duration S]
[--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

PEERS = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "peers"
PEERS_HOME = Path(os.environ.get("PEERS_HOME", Path.home() / ".cache" / "bench-peers"))
sys.path.insert(0, str(PEERS))

import data as peer_data  # noqa: E402
import loadgen  # noqa: E402
from common import free_port, start_server, stop_server, wait_http, wait_quiet  # noqa: E402

CONCURRENCY = (1, 32)
SOAK_CONCURRENCY, SOAK_S = 64, 60.0

_SERVE_LOOPML = """
import sys
from loopml.serving import serve
from loopml.store import Workspace
from loopml.serving import ServeConfig
serve(Workspace.open(sys.argv[1]), [sys.argv[2]], host="127.0.0.1", port=int(sys.argv[3]),
      log_predictions=sys.argv[4] == "log", config=ServeConfig(runtime=sys.argv[5]))
"""

_SERVE_BARE = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def invocations(request):
    await request.body()
    return Response(b'{"predictions":[0]}', media_type="application/json")

async def ping(request):
    return Response(b"ok")

app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            access_log=False, log_level="warning")
"""


def _payloads(rows: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(rows.columns)
    return [{"dataframe_split": {"columns": cols, "data": [row]}} for row in rows.values.tolist()]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def _load(
    url: str, payloads: list[dict[str, Any]], concurrency: int, seconds: float
) -> dict[str, Any]:
    result: dict[str, Any] = loadgen.run(url, loadgen.json_bodies(payloads), concurrency, seconds)
    return result


def _serve_and_load(
    cmd: list[str],
    port: int,
    log: str,
    payloads: list[dict[str, Any]],
    seconds: float,
    check: Any = None,
    soak: bool = False,
) -> dict[str, Any]:
    server = start_server(cmd, log)
    out: dict[str, Any] = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", server)
        wait_quiet(server)
        url = f"http://127.0.0.1:{port}/invocations"
        if check is not None:
            check(url)
        out["load"] = [_load(url, payloads, c, seconds) for c in CONCURRENCY]
        if soak:
            out["soak"] = _soak(server.pid, url, payloads)
    finally:
        stop_server(server)
    return out


def _soak(pid: int, url: str, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            samples.append(round(_rss_mb(pid), 1))

    before = _rss_mb(pid)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    result = _load(url, payloads, SOAK_CONCURRENCY, SOAK_S)
    done.set()
    thread.join()
    after = _rss_mb(pid)
    return {
        **result,
        "rss_mb_before": round(before, 1),
        "rss_mb_after": round(after, 1),
        "rss_mb_samples": samples,
    }


def run_loopml(
    tmp: Path,
    rows: pd.DataFrame,
    seconds: float,
    soak: bool,
    log: bool,
    runtime: str = "native",
    onnx: bool = False,
) -> dict[str, Any]:
    from loopml.registry import register_model, set_alias
    from loopml.store import Workspace

    model = peer_data.train_serve_model()
    if not (tmp / "ws").exists():
        print("[bench] registering the W_serve model in a fresh loopml workspace ...", flush=True)
        with Workspace.init(tmp / "ws") as ws:
            register_model(ws, model, "wserve", input_example=rows.head(200), onnx=onnx)
            set_alias(ws, "wserve", "production", 1)
    expected = model.predict(rows.head(1)).tolist()

    def check(url: str) -> None:
        import urllib.request

        body = json.dumps(_payloads(rows.head(1))[0]).encode()
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        got = json.load(urllib.request.urlopen(req, timeout=30))["predictions"]
        assert got == expected, (got, expected)

    port = free_port()
    flag = "log" if log else "nolog"
    cmd = [
        sys.executable,
        "-c",
        _SERVE_LOOPML,
        str(tmp / "ws"),
        "wserve@production",
        str(port),
        flag,
        runtime,
    ]
    print(
        f"[bench] loopml serve (runtime {runtime}, prediction log {'on' if log else 'off'}) ...",
        flush=True,
    )
    r = _serve_and_load(
        cmd, port, str(tmp / f"loopml-{runtime}-{flag}.log"), _payloads(rows), seconds, check, soak
    )
    return {
        "peer": "loopml",
        "server": f"loopml serve (runtime {runtime}, uvicorn+uvloop+httptools, 1 process, "
        f"micro-batching, prediction log {'on' if log else 'off'})",
        **r,
    }


def run_onnx_pair(tmp: Path, rows: pd.DataFrame, seconds: float) -> dict[str, Any]:
    """loopml serving the native model and its ONNX export at once (two processes, log off),
    loaded in alternating slices of ``seconds / 5`` so that both see the same machine load
    (this machine is shared): per concurrency, requests/s over all slices and the median
    of the slices' p50 and p99."""
    expected = peer_data.train_serve_model().predict(rows.head(1)).tolist()
    servers, urls = {}, {}
    try:
        for runtime in ("native", "onnx"):
            port = free_port()
            cmd = [sys.executable, "-c", _SERVE_LOOPML, str(tmp / "ws"), "wserve@production"]
            cmd += [str(port), "nolog", runtime]
            servers[runtime] = start_server(cmd, str(tmp / f"pair-{runtime}.log"))
            wait_http(f"http://127.0.0.1:{port}/ping", servers[runtime])
            urls[runtime] = f"http://127.0.0.1:{port}/invocations"
        for server in servers.values():
            wait_quiet(server)
        for url in urls.values():
            import urllib.request

            body = json.dumps(_payloads(rows.head(1))[0]).encode()
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            got = json.load(urllib.request.urlopen(req, timeout=30))["predictions"]
            assert got == expected, (got, expected)
        print("[bench] native and onnx servers side by side, alternating slices ...", flush=True)
        bodies = loadgen.json_bodies(_payloads(rows))
        out: dict[str, Any] = {"native": [], "onnx": []}
        for c in CONCURRENCY:
            slices: dict[str, list[dict[str, Any]]] = {"native": [], "onnx": []}
            for _ in range(5):
                for runtime, url in urls.items():
                    slices[runtime].append(loadgen.run(url, bodies, c, seconds / 5, warmup_s=0.3))
            for runtime, parts in slices.items():
                mid = len(parts) // 2
                out[runtime].append(
                    {
                        "concurrency": c,
                        "seconds": round(sum(p["seconds"] for p in parts), 2),
                        "requests": sum(p["requests"] for p in parts),
                        "errors": sum(p["errors"] for p in parts),
                        "rps": round(
                            sum(p["requests"] for p in parts) / sum(p["seconds"] for p in parts), 1
                        ),
                        "p50_ms": sorted(p.get("p50_ms", 0) for p in parts)[mid],
                        "p99_ms": sorted(p.get("p99_ms", 0) for p in parts)[mid],
                        "client_cpu_cores": sorted(p["client_cpu_cores"] for p in parts)[mid],
                    }
                )
        return {"load": out["onnx"], "native_load": out["native"]}
    finally:
        for server in servers.values():
            stop_server(server)


def model_calls(tmp: Path, rows: pd.DataFrame) -> dict[str, Any]:
    """In-process cost of one model call, native vs onnxruntime, on the arrays the server
    hands the model (1 row: a c=1 request; 32 rows: a full c=32 batch), one thread each.
    The two sides alternate in 50 ms slices, so both see the same machine load."""
    from threadpoolctl import threadpool_limits

    from loopml.registry import load_model
    from loopml.serving._pool import numpy_estimator
    from loopml.store import Workspace

    with Workspace.open(tmp / "ws") as ws:
        native = load_model(ws, "wserve/1")
        onnx = load_model(ws, "wserve/1", runtime="onnx", threads=1)
    names = [c.name for c in native.signature.inputs]
    models = {
        "native": numpy_estimator(native, names, True) or native.native,
        "onnx": numpy_estimator(onnx, names, True) or onnx.native,
    }
    out: dict[str, Any] = {}
    with threadpool_limits(1):
        for n in (1, 32):
            X = rows[names].head(n).to_numpy(dtype="float64")
            per_call: dict[str, list[float]] = {k: [] for k in models}
            for _ in range(20):
                for name, model in models.items():
                    calls, start = 0, time.perf_counter()
                    while time.perf_counter() - start < 0.05:
                        model.predict(X)
                        calls += 1
                    per_call[name].append((time.perf_counter() - start) / calls * 1000)
            med = {k: sorted(v)[len(v) // 2] for k, v in per_call.items()}
            out[f"rows_{n}"] = {"native_ms": med["native"], "onnx_ms": med["onnx"]}
    return out


def run_bare(tmp: Path, rows: pd.DataFrame, seconds: float) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, "-c", _SERVE_BARE, str(port)]
    print("[bench] bare Starlette ceiling ...", flush=True)
    r = _serve_and_load(cmd, port, str(tmp / "bare.log"), _payloads(rows), seconds)
    return {"peer": "starlette-constant", "server": "Starlette, constant JSON, same uvicorn", **r}


def run_mlflow() -> dict[str, Any]:
    python = PEERS_HOME / "mlflow" / "bin" / "python"
    if not python.exists():
        subprocess.run(["bash", str(PEERS / "setup_peers.sh")], check=True)
    print("[bench] mlflow models serve (peer script, ~1-2 min) ...", flush=True)
    out = subprocess.run(
        [str(python), "mlflow_serving.py"], cwd=PEERS, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, Any] = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    return result


def _by_c(result: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(p["concurrency"]): p for p in result.get("load", [])}


def _load_avg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def report(
    ours: dict[str, Any],
    logged: dict[str, Any],
    mlflow: dict[str, Any],
    bare: dict[str, Any],
    onnx: dict[str, Any],
) -> dict[str, Any]:
    mine, theirs, ceiling, ort = _by_c(ours), _by_c(mlflow), _by_c(bare), _by_c(onnx)
    paired = {int(p["concurrency"]): p for p in onnx.get("native_load", [])}
    print(f"\n{'':<24}{'c':>4}{'rps':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'client cpu':>12}")
    rows = (
        ("loopml", mine),
        ("loopml + prediction log", _by_c(logged)),
        ("paired: native", paired),
        ("paired: onnxruntime", ort),
        ("mlflow 3.17.2", theirs),
        ("bare starlette", ceiling),
    )
    for label, points in rows:
        for c, p in sorted(points.items()):
            print(
                f"{label:<24}{c:>4}{p['rps']:>10,.1f}{p.get('p50_ms', 0):>9.2f}"
                f"{p.get('p99_ms', 0):>9.2f}{p['errors']:>8}{p['client_cpu_cores']:>12}"
            )
    ratios: dict[str, float] = {}
    targets = []
    if 32 in mine and 32 in theirs:
        ratios["rps_c32_vs_mlflow"] = mine[32]["rps"] / theirs[32]["rps"]
        ratios["p99_c32_mlflow_over_loopml"] = theirs[32]["p99_ms"] / mine[32]["p99_ms"]
        targets += [("rps c=32 vs mlflow", ratios["rps_c32_vs_mlflow"], 20.0)]
        targets += [("p99 c=32 (mlflow/loopml)", ratios["p99_c32_mlflow_over_loopml"], 5.0)]
    if 1 in mine and 1 in theirs:
        ratios["p50_c1_mlflow_over_loopml"] = theirs[1]["p50_ms"] / mine[1]["p50_ms"]
        targets += [("p50 c=1 (mlflow/loopml)", ratios["p50_c1_mlflow_over_loopml"], 3.0)]
    if 32 in mine and 32 in ceiling:
        ratios["rps_c32_share_of_ceiling"] = mine[32]["rps"] / ceiling[32]["rps"]
        targets += [("rps c=32 share of bare", ratios["rps_c32_share_of_ceiling"], 0.5)]
    if 1 in mine and 1 in ceiling:
        ratios["rps_c1_share_of_ceiling"] = mine[1]["rps"] / ceiling[1]["rps"]
    for c in sorted(set(paired) & set(ort)):
        ratios[f"rps_c{c}_onnx_over_native"] = ort[c]["rps"] / paired[c]["rps"]
        ratios[f"p50_c{c}_native_over_onnx"] = paired[c]["p50_ms"] / ort[c]["p50_ms"]
    for n, call in onnx.get("model_calls", {}).items():
        ratios[f"model_call_{n}_native_over_onnx"] = call["native_ms"] / call["onnx_ms"]
        print(
            f"model call, {n.replace('_', ' ')}: native {call['native_ms']:.3f} ms, "
            f"onnxruntime {call['onnx_ms']:.3f} ms"
        )
    onnx_ratios = [(k, v) for k, v in ratios.items() if "onnx" in k]
    if onnx_ratios:
        print(f"\n{'onnxruntime vs native':<34}{'value':>10}")
        for name, value in onnx_ratios:
            print(f"{name:<34}{value:>10.2f}")
    print(f"\n{'ratio':<28}{'value':>10}{'target':>10}")
    for name, value, target in targets:
        print(f"{name:<28}{value:>10.2f}{target:>10.2f}{'  ok' if value >= target else '  MISS'}")
    if "soak" in ours:
        s = ours["soak"]
        print(
            f"\nsoak c={s['concurrency']} {s['seconds']} s: {s['requests']:,} requests, "
            f"{s['errors']} errors, {s['rps']:,.0f} rps, p99 {s.get('p99_ms')} ms, "
            f"RSS {s['rss_mb_before']} -> {s['rss_mb_after']} MB (samples {s['rss_mb_samples']})"
        )
    return {k: round(v, 3) for k, v in ratios.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-peer", action="store_true", help="do not run MLflow")
    parser.add_argument("--soak", action="store_true", help="add 60 s at concurrency 64")
    parser.add_argument("--onnx", action="store_true", help="add loopml with runtime onnx")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point")
    parser.add_argument("--out", default="benchmarks/serving-results.json", help="JSON output")
    args = parser.parse_args()
    load_before = _load_avg()
    rows = pd.read_parquet(peer_data.ensure("W_serve")["requests"])
    mlflow = {} if args.skip_peer else run_mlflow()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        ours = run_loopml(Path(tmp), rows, args.duration, args.soak, log=False, onnx=args.onnx)
        logged = run_loopml(Path(tmp), rows, args.duration, False, log=True)
        onnx: dict[str, Any] = {}
        if args.onnx:
            onnx = run_onnx_pair(Path(tmp), rows, args.duration)
            onnx["model_calls"] = model_calls(Path(tmp), rows)
        bare = run_bare(Path(tmp), rows, args.duration)
    ratios = report(ours, logged, mlflow, bare, onnx)
    result = {
        "loopml": ours,
        "loopml_with_prediction_log": logged,
        "loopml_onnx": onnx,
        "mlflow": mlflow,
        "bare_starlette": bare,
        "ratios": ratios,
        "loadavg_before": load_before,
        "loadavg_after": _load_avg(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(f"\nload average before/after: {load_before} / {_load_avg()}; written to {args.out}")


if __name__ == "__main__":
    main()
