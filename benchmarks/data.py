"""Data layer side by side: ingest, profile and validate 1,000,000 rows x 50 columns.

The data is W_drift's reference frame from ``../shared/bench/peers/data.py`` (numpy seed 0:
40 float columns, 10 string categoricals of 5-20 levels), also written once as CSV. In one
invocation this prints, each with its peak memory (Linux VmHWM, reset per phase):

- loopml ingest from CSV and from Parquet (read, canonical hash, profile, Parquet zstd);
- profiling: ``loopml.data.profile_table`` vs pandas ``describe()`` + ``value_counts()``
  of every column (target: loopml <= pandas);
- validation of the same 20-check suite: ``loopml.data.validate_table`` vs pandera's
  ``DataFrameSchema.validate(lazy=True)`` (target: loopml >= 10x faster).

Usage: ``python benchmarks/data.py`` (pandera comes with ``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

PEERS = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "peers"
sys.path.insert(0, str(PEERS))
from common import peak_rss_mb, reset_peak_rss  # noqa: E402
from data import DRIFT_CATS, DRIFT_FLOATS, ensure  # noqa: E402

from loopml import data  # noqa: E402
from loopml.store import Workspace  # noqa: E402

LEVEL_CATS = DRIFT_CATS[:5]


def measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(seconds, peak RSS MB during the call, result)."""
    reset_peak_rss()
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, peak_rss_mb(), result


def suite_spec(levels: dict[str, list[str]]) -> dict[str, Any]:
    """The 20 checks, as loopml's suite format."""
    checks: list[dict[str, Any]] = []
    checks += [{"check": "not_null", "column": c} for c in DRIFT_FLOATS[:5]]
    checks += [
        {"check": "in_range", "column": c, "min": -1000.0, "max": 1000.0}
        for c in DRIFT_FLOATS[5:10]
    ]
    checks += [{"check": "in_set", "column": c, "values": levels[c]} for c in LEVEL_CATS]
    checks += [{"check": "not_null", "column": c} for c in DRIFT_CATS[5:7]]
    checks += [{"check": "matches", "column": "cat7", "regex": r"cat7_v\d+"}]
    checks += [
        {"check": "sql", "name": "num10_or_num11", "expression": "num10 > -1000 or num11 < 1000"}
    ]
    checks += [{"check": "row_count", "min": 1, "max": 2_000_000}]
    assert len(checks) == 20
    return {"name": "bench", "checks": checks}


def pandera_schema(levels: dict[str, list[str]]) -> Any:
    """The same 20 checks for pandera."""
    import pandera.pandas as pa

    columns: dict[str, Any] = {}
    for c in DRIFT_FLOATS[:5]:
        columns[c] = pa.Column(float, nullable=False)
    for c in DRIFT_FLOATS[5:10]:
        columns[c] = pa.Column(float, pa.Check.in_range(-1000.0, 1000.0), nullable=True)
    for c in LEVEL_CATS:
        columns[c] = pa.Column(str, pa.Check.isin(levels[c]), nullable=True)
    for c in DRIFT_CATS[5:7]:
        columns[c] = pa.Column(str, nullable=False)
    columns["cat7"] = pa.Column(str, pa.Check.str_matches(r"cat7_v\d+"), nullable=True)
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(
                lambda df: (df["num10"] > -1000) | (df["num11"] < 1000), name="num10_or_num11"
            ),
            pa.Check(lambda df: 1 <= len(df) <= 2_000_000, name="row_count"),
        ],
    )


def pandas_profile(frame: pd.DataFrame) -> Any:
    described = frame.describe(include="all")
    counts = {c: frame[c].value_counts() for c in frame.columns}
    return described, counts


def main() -> None:
    parquet = Path(ensure("W_drift")["reference"])
    csv = parquet.with_suffix(".csv")
    if not csv.exists():
        print("[bench] writing the CSV copy once ...", flush=True)
        pcsv.write_csv(pq.read_table(parquet), csv)
    r: dict[str, Any] = {"rows": 1_000_000, "columns": 50}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        for label, path in (("csv", csv), ("parquet", parquet)):
            s, mb, dv = measure(lambda p=path, n=f"w_{label}": data.ingest(p, name=n, workspace=ws))
            r[f"ingest_{label}_s"], r[f"ingest_{label}_peak_mb"] = round(s, 2), round(mb)
        table = dv.to_arrow()
        frame = table.to_pandas()
        levels = {c: sorted(frame[c].unique().tolist()) for c in LEVEL_CATS}

        s, mb, _ = measure(lambda: data.profile_table(table))
        r["profile_loopml_s"], r["profile_loopml_peak_mb"] = round(s, 2), round(mb)
        s, mb, _ = measure(lambda: pandas_profile(frame))
        r["profile_pandas_s"], r["profile_pandas_peak_mb"] = round(s, 2), round(mb)

        suite = data.Suite.from_dict(suite_spec(levels))
        s, mb, report = measure(lambda: data.validate_table(table, suite))
        r["validate_loopml_s"], r["validate_loopml_peak_mb"] = round(s, 2), round(mb)
        r["validate_loopml_passed"] = report.passed
        schema = pandera_schema(levels)
        s, mb, _ = measure(lambda: schema.validate(frame, lazy=True))
        r["validate_pandera_s"], r["validate_pandera_peak_mb"] = round(s, 2), round(mb)
        ws.close()

    r["profile_ratio"] = round(r["profile_pandas_s"] / r["profile_loopml_s"], 2)
    r["validate_ratio"] = round(r["validate_pandera_s"] / r["validate_loopml_s"], 1)
    print(
        f"\n{'step':<22}{'loopml s':>10}{'peak MB':>9}{'peer s':>10}{'peak MB':>9}"
        f"{'ratio':>8}  target"
    )
    print(f"{'ingest CSV':<22}{r['ingest_csv_s']:>10}{r['ingest_csv_peak_mb']:>9}")
    print(f"{'ingest Parquet':<22}{r['ingest_parquet_s']:>10}{r['ingest_parquet_peak_mb']:>9}")
    print(
        f"{'profile vs pandas':<22}{r['profile_loopml_s']:>10}{r['profile_loopml_peak_mb']:>9}"
        f"{r['profile_pandas_s']:>10}{r['profile_pandas_peak_mb']:>9}"
        f"{r['profile_ratio']:>7}x  >= 1x"
    )
    print(
        f"{'validate vs pandera':<22}{r['validate_loopml_s']:>10}"
        f"{r['validate_loopml_peak_mb']:>9}{r['validate_pandera_s']:>10}"
        f"{r['validate_pandera_peak_mb']:>9}{r['validate_ratio']:>7}x  >= 10x"
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()
