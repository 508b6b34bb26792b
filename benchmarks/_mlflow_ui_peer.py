"""MLflow's side of ``benchmarks/ui.py``, run with MLflow's own python (``$PEERS_HOME/mlflow``).

Fills MLflow's sqlite with ``--runs`` runs of 5 params + 5 metrics (``_mlflow_server_peer.fill``),
starts ``mlflow server`` (its default workers) and times the runs table's first page: a
``runs/search`` POST with ``max_results=50`` ordered by ``metrics.m0 DESC``, from request to
the whole response, median of 5 (after one warm-up), or the first call alone when it takes
over 30 s. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import mlflow
import requests
from _mlflow_server_peer import common, fill, with_server  # the same directory

REPEATS = 5
SLOW_S = 30.0  # a first page slower than this is the figure itself (no warm-up, no repeats)


def page(n_runs: int) -> dict[str, object]:
    r: dict[str, object] = {"peer": "mlflow", "version": mlflow.__version__, "runs": n_runs}
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-ui-") as tmp:
        t = time.perf_counter()
        exp_id, _ = fill(f"sqlite:///{tmp}/mlflow.db", tmp, n_runs)
        r["fill_s"] = time.perf_counter() - t
        server = with_server(tmp, None)
        try:
            url = f"{mlflow.get_tracking_uri()}/api/2.0/mlflow/runs/search"
            body = {"experiment_ids": [exp_id], "max_results": 50, "order_by": ["metrics.m0 DESC"]}
            times, found = [], 0
            with requests.Session() as session:
                for i in range(REPEATS + 1):
                    t = time.perf_counter()
                    answer = session.post(url, json=body, timeout=1500)
                    answer.raise_for_status()
                    found = len(answer.json()["runs"])
                    if i:  # the first call warms the server up
                        times.append(time.perf_counter() - t)
                    elif time.perf_counter() - t > SLOW_S:  # minutes a page: once is enough
                        times.append(time.perf_counter() - t)
                        r["repeats"] = 1
                        break
            r["page_ms"] = statistics.median(times) * 1e3
            r["page_rows"] = found
        finally:
            common.stop_server(server)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    common.emit(page(parser.parse_args().runs))


if __name__ == "__main__":
    main()
