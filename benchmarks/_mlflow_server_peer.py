"""MLflow's side of ``benchmarks/server.py``, run with MLflow's own python (``$PEERS_HOME/mlflow``).

``peer``: MLflow client -> ``mlflow server`` (sqlite backend, its default 4 workers, 127.0.0.1):

- ``log_metric_per_s``: single ``mlflow.log_metric`` calls/s over HTTP;
- ``search_runs_s``: ``mlflow.search_runs`` with ``metrics.m0 > 0.5`` over ``--runs`` runs of 5
  params + 5 metrics (the peer script's (d) data; written into the sqlite file with SQLAlchemy
  Core through MLflow's own table models before the server starts), seconds, median of 3;
- ``log_metric_per_s_1worker``: the first figure again against ``--workers 1`` (context; the
  peers README: the 4 workers' keep-alive sockets lack TCP_NODELAY, uvicorn issue #3149).

``local --runs N``: the same runs in a local sqlite store, then in-process ``mlflow.search_runs``
for the first 1,000 runs with ``metrics.m0 > 0.5`` by ``metrics.m0 DESC`` (what
``benchmarks/tracking.py`` sets beside loopml's at 100,000 runs), seconds, median of 3 (or
the one call, when it takes over 30 s).

``client --uri URL``: the unmodified ``mlflow`` client against any server (loopml's) at URL,
single ``log_metric`` calls/s; prints ``{"error": ...}`` if that server does not take them.

Each mode prints one final JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no internet here
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.dbmodels.models import (
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

PEERS = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "peers"
REPEATS = 3
SLOW_S = 30.0  # a search slower than this is timed once, not three times


def _load_common() -> ModuleType:
    """The peer scripts' helpers (``common.py``), imported by path."""
    spec = importlib.util.spec_from_file_location("peer_common", PEERS / "common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _load_common()


def search_data(n_runs: int) -> list[tuple[list[float], list[str]]]:
    """(5 metric values, 5 param values) per run, drawn as the peer script's (d) does."""
    rng = random.Random(0)
    return [
        ([rng.random() for _ in range(5)], [str(rng.randrange(100)) for _ in range(5)])
        for _ in range(n_runs)
    ]


def fill(db: str, artifacts: str, n_runs: int) -> tuple[str, int]:
    """Write ``n_runs`` finished runs into experiment ``search``; (its id, expected matches)."""
    store = SqlAlchemyStore(db, artifacts)
    exp_id = store.create_experiment("search")
    location = store.get_experiment(exp_id).artifact_location
    now = int(time.time() * 1000)
    rows: dict[Any, list[dict[str, Any]]] = {t: [] for t in (SqlRun, SqlTag, SqlParam)}
    metric_rows: list[dict[str, Any]] = []
    data = search_data(n_runs)
    for i, (values, params) in enumerate(data):
        run_id, name = uuid.uuid4().hex, f"run-{i}"
        rows[SqlRun].append(
            {
                "run_uuid": run_id,
                "name": name,
                "source_type": "UNKNOWN",
                "source_name": "",
                "entry_point_name": "",
                "user_id": "bench",
                "status": "FINISHED",
                "start_time": now,
                "end_time": now,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": f"{location}/{run_id}/artifacts",
                "experiment_id": int(exp_id),
            }
        )
        rows[SqlTag].append({"run_uuid": run_id, "key": "mlflow.runName", "value": name})
        rows[SqlParam] += [
            {"run_uuid": run_id, "key": f"p{j}", "value": v} for j, v in enumerate(params)
        ]
        metric_rows += [
            {
                "run_uuid": run_id,
                "key": f"m{j}",
                "value": v,
                "timestamp": now,
                "step": 0,
                "is_nan": False,
            }
            for j, v in enumerate(values)
        ]
    with store.engine.begin() as conn:
        for model, table_rows in rows.items():
            conn.execute(model.__table__.insert(), table_rows)
        conn.execute(SqlMetric.__table__.insert(), metric_rows)
        conn.execute(SqlLatestMetric.__table__.insert(), metric_rows)
    store.engine.dispose()
    return exp_id, sum(values[0] > 0.5 for values, _ in data)


def log_metric_rate(n: int) -> tuple[float, str]:
    """Single ``mlflow.log_metric`` calls/s over ``n`` calls in a fresh run; (rate, run id)."""
    mlflow.set_experiment("bench")
    with mlflow.start_run() as run:
        mlflow.log_metric("warmup", 0.0)
        t = time.perf_counter()
        for i in range(n):
            mlflow.log_metric("m", i * 1e-3, step=i)
        return n / (time.perf_counter() - t), run.info.run_id


def median_seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(REPEATS):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def with_server(tmp: str, workers: int | None) -> Any:
    """``mlflow server`` on ``tmp``'s sqlite file (default workers if None), started and quiet."""
    port, name = common.free_port(), f"server-{workers or 'default'}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
           "--default-artifact-root", f"{tmp}/artifacts"]  # fmt: skip
    server = common.start_server(
        cmd + (["--workers", str(workers)] if workers else []), f"{tmp}/{name}.log"
    )
    try:
        common.wait_http(f"http://127.0.0.1:{port}/health", server)
        common.wait_quiet(server)  # its job consumers keep both cores busy for a while at start
    except BaseException:
        common.stop_server(server)
        raise
    mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
    return server


def peer(n_calls: int, n_runs: int) -> dict[str, Any]:
    r: dict[str, Any] = {"peer": "mlflow", "version": mlflow.__version__, "store": "sqlite"}
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-server-") as tmp:
        t = time.perf_counter()
        exp_id, r["search_runs_expected"] = fill(f"sqlite:///{tmp}/mlflow.db", tmp, n_runs)
        r["fill_s"] = time.perf_counter() - t
        server = with_server(tmp, None)
        try:
            r["log_metric_per_s"], _ = log_metric_rate(n_calls)
            r["search_runs_s"], df = median_seconds(
                lambda: mlflow.search_runs(
                    experiment_ids=[exp_id], filter_string="metrics.m0 > 0.5"
                )
            )
            r["search_runs_matched"] = len(df)
        finally:
            common.stop_server(server)
        server = with_server(tmp, 1)
        try:
            r["log_metric_per_s_1worker"], _ = log_metric_rate(n_calls)
        finally:
            common.stop_server(server)
    r.update(log_metric_calls=n_calls, runs=n_runs, workers="default (4)")
    return r


def client(uri: str, n_calls: int) -> dict[str, Any]:
    mlflow.set_tracking_uri(uri)
    try:
        rate, run_id = log_metric_rate(n_calls)
    except MlflowException as exc:
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return {"log_metric_per_s": rate, "run_id": run_id, "log_metric_calls": n_calls}


def local(n_runs: int) -> dict[str, Any]:
    r: dict[str, Any] = {"peer": "mlflow", "version": mlflow.__version__, "runs": n_runs}
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-search-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        exp_id, _ = fill(uri, tmp, n_runs)
        mlflow.set_tracking_uri(uri)

        def search() -> Any:
            return mlflow.search_runs(
                [exp_id], "metrics.m0 > 0.5", order_by=["metrics.m0 DESC"], max_results=1000
            )

        t = time.perf_counter()
        found = search()
        first = time.perf_counter() - t
        if first < SLOW_S:
            r["search_runs_s"], found = median_seconds(search)
        else:  # minutes per call: one is figure enough
            r["search_runs_s"], r["search_runs_repeats"] = first, 1
        r["search_runs_rows"] = len(found)
        r["best_m0"] = float(found["metrics.m0"].iloc[0])
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["peer", "local", "client"])
    parser.add_argument("--uri", help="client mode: the server to log to")
    parser.add_argument("--calls", type=int, default=1_000, help="single log_metric calls")
    parser.add_argument("--runs", type=int, default=10_000, help="peer mode: runs searched")
    args = parser.parse_args()
    if args.mode == "peer":
        common.emit(peer(args.calls, args.runs))
    elif args.mode == "local":
        common.emit(local(args.runs))
    elif args.uri is None:
        parser.error("client mode needs --uri")
    else:
        common.emit(client(args.uri, args.calls))


if __name__ == "__main__":
    main()
