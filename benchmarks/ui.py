"""The web UI's runs table over 100,000 runs, beside MLflow's server ``search_runs``.

loopml: ``loopml server`` on a SQLite workspace with 100,000 finished runs of 5 params +
5 metrics in one experiment (written straight through the store's row writers, the same
draws as ``benchmarks/server.py``); the first page ``GET /experiments/page?order=metrics.m0
DESC`` (50 rows, the 5 metric + 5 param columns), timed from request to the whole HTML,
median of 5 after one warm-up, and the handler's own time from its ``Server-Timing`` header.

MLflow: ``benchmarks/_mlflow_ui_peer.py`` in MLflow's venv, the same page through
``mlflow server``'s ``runs/search`` (``max_results=50``, ``order_by metrics.m0 DESC``).

Usage: ``python benchmarks/ui.py [--runs N] [--skip-peer]``. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from server import PEER_ENV, common, mlflow_python, search_data  # benchmarks/server.py

from loopml.store import Workspace
from loopml.store.schema import experiments, params, runs
from loopml.tracking import start_run
from loopml.tracking._writer import Series, write_series

HERE = Path(__file__).resolve().parent
REPEATS, BATCH, TARGET_MS = 5, 10_000, 200.0


def fill(ws: Workspace, n_runs: int) -> None:
    """``n_runs`` finished runs of 5 params + 5 metrics in experiment ``page``."""
    with start_run("page", "seed", workspace=ws):
        pass  # creates the experiment as a user would
    with ws.db.read() as conn:
        exp_id = conn.execute(
            sa.select(experiments.c.id).where(experiments.c.name == "page")
        ).scalar_one()
    now = int(time.time() * 1000)
    data = search_data(n_runs)
    for start in range(0, n_runs, BATCH):
        run_rows, param_rows, series = [], [], {}
        for i, (values, drawn) in enumerate(data[start : start + BATCH], start):
            run_id = uuid.uuid4().hex
            run_rows.append(
                {
                    "id": run_id,
                    "experiment_id": exp_id,
                    "name": f"run-{i}",
                    "status": "FINISHED",
                    "start_time": now + i,
                    "end_time": now + i,
                }
            )
            param_rows += [
                {"run_id": run_id, "key": f"p{j}", "value": v} for j, v in enumerate(drawn)
            ]
            for j, v in enumerate(values):
                series[(run_id, f"m{j}")] = Series([0], [v], [now])
        with ws.db.write() as conn:
            conn.execute(runs.insert(), run_rows)
            conn.execute(params.insert(), param_rows)
            write_series(ws.db, conn, series)


def handler_ms(header: str) -> float:
    """The sum of a ``Server-Timing`` header's durations, in ms."""
    return sum(float(d) for d in re.findall(r"dur=([0-9.]+)", header))


def loopml_page(home: Path, tmp: Path) -> dict[str, Any]:
    """The runs table's first page served by ``loopml server`` over ``home``."""
    port = common.free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "loopml",
        "-w",
        str(home),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = common.start_server(cmd, str(tmp / "loopml-server.log"))
    try:
        common.wait_http(f"{url}/readyz", proc)
        totals, handlers, rows = [], [], 0
        query = {"order": "metrics.m0 DESC"}
        with httpx.Client(base_url=url, timeout=300) as client:
            for i in range(REPEATS + 1):
                t = time.perf_counter()
                answer = client.get("/experiments/page", params=query)
                answer.raise_for_status()
                if i:  # the first call warms the server up
                    totals.append((time.perf_counter() - t) * 1e3)
                    handlers.append(handler_ms(answer.headers["server-timing"]))
                rows = answer.text.count('name="runs" value=')
            columns = len(re.findall(r'<th class="n?" title="(?:metrics|params)\.', answer.text))
    finally:
        common.stop_server(proc)
    return {
        "page_ms": statistics.median(totals),
        "handler_ms": statistics.median(handlers),
        "page_rows": rows,
        "columns": columns,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as name:
        tmp = Path(name)
        with Workspace.init(tmp / "ws") as ws:
            t = time.perf_counter()
            fill(ws, args.runs)
            fill_s = time.perf_counter() - t
        ours = {**loopml_page(tmp / "ws", tmp), "fill_s": fill_s}
    peer = {} if args.skip_peer else run_peer_page(args.runs)
    ratio = peer["page_ms"] / ours["page_ms"] if "page_ms" in peer else None
    print(f"runs table, first page of 50 over {args.runs:,} runs (median of {REPEATS}, ms)")
    print(f"  {'':34}{'loopml':>10}{'mlflow':>10}")
    theirs = peer.get("page_ms", float("nan"))
    print(f"  {'HTTP response, server time':34}{ours['page_ms']:>10.1f}{theirs:>10.1f}")
    print(f"  {'inside the handler (Server-Timing)':34}{ours['handler_ms']:>10.1f}{'':>10}")
    print(
        f"  rows {ours['page_rows']} / columns {ours['columns']}; fill {fill_s:.1f} s; "
        f"target < {TARGET_MS:.0f} ms: {'met' if ours['page_ms'] < TARGET_MS else 'MISSED'}"
    )
    if ratio is not None:
        print(f"  mlflow / loopml: {ratio:.2f}x")
    elif peer:
        print(f"  mlflow: {peer.get('error')}")
    print(json.dumps({"loopml": ours, "mlflow": peer, "mlflow_over_loopml": ratio}))


def run_peer_page(n_runs: int) -> dict[str, Any]:
    """MLflow's figure from its venv; its JSON line, or ``{"error": reason}``."""
    cmd = [str(mlflow_python()), str(HERE / "_mlflow_ui_peer.py"), "--runs", str(n_runs)]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=1800, env={**os.environ, **PEER_ENV}
        )
    except subprocess.TimeoutExpired:
        return {"error": "peer script exceeded 1800 s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"peer script exited with {out.returncode}: {tail[0][:300]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


if __name__ == "__main__":
    main()
