"""Drift side by side: loopml.monitoring.drift_report vs Evidently's DataDriftPreset (W_drift).

W_drift comes from ``../shared/bench/peers/data.py`` (numpy seed 0): reference and current
frames of 1,000,000 rows x 50 columns (40 float, 10 string categoricals); num0-num9 shifted
by 0.5 std and cat0-cat2 level frequencies reversed, so exactly 13 columns drift. In one
invocation this prints:

- loopml on the full 1M vs 1M: seconds to read both Parquet files, seconds for the report,
  rows compared per second, peak RSS (Linux VmHWM, reset before reading the inputs, so it
  includes them), and whether the drifted columns are exactly the 13 expected;
- Evidently on 100,000-row samples of both frames (its full size takes ~4 min and 3.8 GB
  here), through the peer script's ``--child 100000`` in the peer venv
  (``~/.cache/bench-peers/evidently``; create it with ``bash setup_peers.sh``);
- the throughput ratio (rows per second, loopml / Evidently; target >= 30).

Usage: ``python benchmarks/drift.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

PEERS = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "peers"
sys.path.insert(0, str(PEERS))
from common import peak_rss_mb, reset_peak_rss  # noqa: E402
from data import DRIFT_SHIFTED_CATS, DRIFT_SHIFTED_FLOATS, ensure  # noqa: E402

from loopml.monitoring import drift_report  # noqa: E402

PEER_PYTHON = Path(os.environ.get("PEERS_HOME", Path.home() / ".cache" / "bench-peers"))
SAMPLE_ROWS = 100_000
EXPECTED = DRIFT_SHIFTED_FLOATS + DRIFT_SHIFTED_CATS


def run_loopml(paths: dict[str, str]) -> dict[str, Any]:
    """Read both frames and compare them; peak memory includes the inputs."""
    reset_peak_rss()
    t = time.perf_counter()
    reference = pq.read_table(paths["reference"])
    current = pq.read_table(paths["current"])
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    report = drift_report(reference, current)
    report_s = time.perf_counter() - t
    return {
        "rows_each": current.num_rows,
        "columns": current.num_columns,
        "read_s": round(read_s, 2),
        "report_s": round(report_s, 2),
        "rows_per_s": round(current.num_rows / report_s),
        "rows_per_s_incl_read": round(current.num_rows / (report_s + read_s)),
        "peak_rss_mb": peak_rss_mb(),
        "tests": sorted({c.test for c in report.columns.values()}),
        "drifted_columns": len(report.drifted_columns),
        "drifted_exactly_expected": report.drifted_columns == EXPECTED,
    }


def run_evidently() -> dict[str, Any]:
    """The peer script's ``--child 100000`` in the Evidently venv; its JSON line."""
    python = PEER_PYTHON / "evidently" / "bin" / "python"
    if not python.exists():
        return {"error": f"{python} missing; run: bash {PEERS / 'setup_peers.sh'}"}
    script = PEERS / "evidently_drift.py"
    proc = subprocess.run(
        [str(python), str(script), "--child", str(SAMPLE_ROWS)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr[-500:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["rows_per_s"] = round(result["rows_each"] / result["report_s"])
    return result


def main() -> None:
    paths = ensure("W_drift")
    print("[bench] loopml drift_report, 1,000,000 vs 1,000,000 rows ...", flush=True)
    ours = run_loopml(paths)
    print(json.dumps({"loopml": ours}), flush=True)
    print(f"[bench] Evidently DataDriftPreset on {SAMPLE_ROWS:,}-row samples ...", flush=True)
    peer = run_evidently()
    print(json.dumps({"evidently": peer}), flush=True)
    summary: dict[str, Any] = {"workload": "W_drift", "expected_drifted": len(EXPECTED)}
    if "rows_per_s" in peer:
        ratio = ours["rows_per_s"] / peer["rows_per_s"]
        summary["throughput_ratio"] = round(ratio, 1)
        summary["target_30x_met"] = ratio >= 30
    summary["loopml_peak_under_2_5gb"] = ours["peak_rss_mb"] < 2_500
    summary["loopml_exact_13"] = ours["drifted_exactly_expected"]
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
