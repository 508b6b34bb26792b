"""Prediction-log compaction: files and read time before and after, for 1M logged rows.

A busy endpoint's logger writes one Parquet file per flush and hour. This logs ``--rows``
rows (default 1,000,000) through a real :class:`PredictionLogger` in flushes of
``--rows-per-flush`` rows (default 500, about what a 250 req/s endpoint logs in one 2-second
flush), spread over ``--hours`` hours (default 2), into a fresh workspace. Then, in one
invocation, it prints:

- files in ``log_partitions`` and bytes on disk, before and after compaction;
- ``read_predictions`` of every row (median of ``--repeat`` reads, each through a freshly
  opened workspace, so per-process blob checks are included), and of the newest 1,000 rows;
- the seconds compaction took;
- the ratios (before / after) of files and read times — the uncompacted log is the peer.

Usage: ``python benchmarks/predlog.py [--rows 1000000] [--out result.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

import loopml.serving._predlog as predlog
from loopml.serving import PredictionLogger, compact_predictions, read_predictions
from loopml.store import Workspace
from loopml.store.schema import log_partitions

START = 1_767_225_600_000  # 2026-01-01 00:00 UTC: whole hours, whatever the wall clock says


def fill(ws: Workspace, rows: int, per_flush: int, hours: int) -> None:
    """Log ``rows`` rows of a 4-feature classifier in flushes of ``per_flush`` rows."""
    rng = np.random.default_rng(0)
    flushes = -(-rows // per_flush)
    step = hours * predlog.HOUR_MS // flushes
    clock = {"now": START}
    predlog.now_ms = lambda: clock["now"]  # log time: spread over the hours
    logger = PredictionLogger(ws, max_buffer_rows=10 * per_flush, flush_interval=3600)
    done = 0
    for i in range(flushes):
        n = min(per_flush, rows - done)
        frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=["age", "income", "tenure", "usage"])
        proba = rng.random((n, 1))
        ids = [f"{i:06d}-{j:04d}" for j in range(n)]
        clock["now"] = START + i * step
        logger.log(
            "churn",
            "churn",
            1,
            "primary",
            ids,
            frame,
            (proba[:, 0] > 0.5).astype(int),
            np.hstack([1 - proba, proba]),
            [0, 1],
            1.5,
        )
        logger.flush()
        done += n
    logger.close()


def files(ws: Workspace) -> tuple[int, int]:
    t = log_partitions
    with ws.db.read() as conn:
        digests = list(conn.execute(sa.select(t.c.digest)).scalars())
    size = sum(Path(ws.blobs.path(d)).stat().st_size for d in digests)
    return len(digests), size


def reads(home: Path, repeat: int) -> dict[str, float]:
    """Median seconds of a full read and of the newest 1,000 rows, each in a fresh workspace."""
    full, newest, rows = [], [], 0
    for _ in range(repeat):
        with Workspace.open(home) as ws:
            t = time.perf_counter()
            rows = read_predictions(ws, "churn").num_rows
            full.append(time.perf_counter() - t)
        with Workspace.open(home) as ws:
            t = time.perf_counter()
            read_predictions(ws, "churn", limit=1000)
            newest.append(time.perf_counter() - t)
    return {
        "rows": rows,
        "read_all_s": round(statistics.median(full), 3),
        "read_newest_1000_s": round(statistics.median(newest), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-flush", type=int, default=500)
    parser.add_argument("--hours", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loopml-bench-predlog-") as tmp:
        home = Path(tmp) / "ws"
        with Workspace.init(home) as ws:
            t = time.perf_counter()
            fill(ws, args.rows, args.rows_per_flush, args.hours)
            log_s = time.perf_counter() - t
            before_files, before_bytes = files(ws)
        before = reads(home, args.repeat)
        with Workspace.open(home) as ws:
            t = time.perf_counter()
            result = compact_predictions(ws, "churn")
            compact_s = time.perf_counter() - t
            after_files, after_bytes = files(ws)
        after = reads(home, args.repeat)
    assert before["rows"] == after["rows"] == args.rows, (before, after)
    out: dict[str, Any] = {
        "rows": args.rows,
        "rows_per_flush": args.rows_per_flush,
        "hours": args.hours,
        "log_s": round(log_s, 1),
        "before": {"files": before_files, "bytes": before_bytes, **before},
        "compaction_s": round(compact_s, 2),
        "compacted_hours": result.hours,
        "after": {"files": after_files, "bytes": after_bytes, **after},
        "ratio_files": round(before_files / after_files, 1),
        "ratio_read_all": round(before["read_all_s"] / after["read_all_s"], 1),
        "ratio_read_newest_1000": round(
            before["read_newest_1000_s"] / after["read_newest_1000_s"], 1
        ),
    }
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
