"""The feature store side by side with Feast 0.67 (W_pit), plus streaming figures.

W_pit comes from ``../shared/bench/peers/data.py`` (numpy seed 0): 1,000,000 feature rows
(10,000 entities x 100 timestamps, 10 float features) and 100,000 entity rows; TTL 30 days.
In one invocation this prints:

1. training set: ``loopml.features.training_set`` on all 100,000 entity rows, in a child
   process: the median of 3 calls (each stored as a new dataset version), the child's peak
   RSS (Linux VmHWM of the whole process, as the peer measures it), rows back, and a
   check of every value of all 10 features against the pandas ``merge_asof`` reference
   (rows missing, values wrong);
2. online: ``materialize`` into SQLite and into Redis (127.0.0.1:6379, a unique key
   prefix, deleted afterwards), then 2,000 in-process ``get_online_features`` calls of
   1 entity x 10 features each, returning a DataFrame and (``to="dict"``, the shape the
   Feast peer times: ``.to_dict()``) a dict of lists: p50/p99 per store and output, and
   how many answers were wrong;
3. Feast: ``feast_pit.py`` (dask offline store, sqlite online store) in its own venv
   (``$PEERS_HOME/feast``; installed by ``setup_peers.sh`` if missing);
4. streaming from Redis Streams: a backlog of 50,000 events drained into the SQLite online
   store and the offline dataset (events/s), then events produced at a steady 2,000/s for
   5 s while the consumer runs (freshness: stream id time -> online write, p50/p99);
5. ratios: Feast seconds / loopml seconds (target >= 20), loopml peak / Feast peak
   (target <= 0.2), loopml SQLite online p99 (dict output) / Feast p99 (target <= 0.5).

Usage: ``python benchmarks/features.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PEERS = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "peers"
PEERS_HOME = Path(os.environ.get("PEERS_HOME", Path.home() / ".cache" / "bench-peers"))
sys.path.insert(0, str(PEERS))
import data as workloads  # noqa: E402
from common import peak_rss_mb, percentiles_ms, rss_mb  # noqa: E402

from loopml import data, features  # noqa: E402
from loopml.store import Workspace  # noqa: E402

REDIS_URL = os.environ.get("LOOPML_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
FEATURES = [f"pit:{f}" for f in workloads.PIT_FEATURES]
END = workloads.START + timedelta(days=workloads.SPAN_DAYS)
N_ONLINE, N_BACKLOG, RATE, PACED_S, REPEATS = 2_000, 50_000, 2_000, 5.0, 3


def setup(home: Path, paths: dict[str, str]) -> None:
    """A workspace with the W_pit features as dataset ``pit_features`` and view ``pit``."""
    with Workspace.init(home) as ws:
        data.ingest(paths["features"], name="pit_features", workspace=ws)
        entity = features.Entity("entity", ["entity_id"])
        view = features.FeatureView(
            "pit", [entity], "pit_features@latest", ttl=timedelta(days=workloads.TTL_DAYS)
        )
        features.apply([entity, view], workspace=ws)


def reference(entities: pd.DataFrame, features_path: str) -> pd.DataFrame:
    """The expected answer, by pandas.merge_asof, in the entity rows' order."""
    feats = pd.read_parquet(features_path).rename(columns={"event_timestamp": "feature_ts"})
    merged = pd.merge_asof(
        entities.reset_index().sort_values("event_timestamp"),
        feats.sort_values("feature_ts"),
        by="entity_id",
        left_on="event_timestamp",
        right_on="feature_ts",
        tolerance=timedelta(days=workloads.TTL_DAYS),
    )
    return merged.sort_values("index").drop(columns=["index", "feature_ts"]).reset_index(drop=True)


def pit_child(home: str) -> None:
    """Child process: one timed training_set call, then a check of every value."""
    paths = workloads.ensure("W_pit")
    entities = pd.read_parquet(paths["entities"])
    with Workspace.open(home) as ws:
        rss_before = rss_mb()
        times = []
        for i in range(REPEATS):  # a new dataset each time, so each is stored in full
            t = time.perf_counter()
            dv = features.training_set(entities, FEATURES, name=f"pit_train_{i}", workspace=ws)
            times.append(time.perf_counter() - t)
        peak = peak_rss_mb()
        got = dv.to_pandas()
    secs = sorted(times)[len(times) // 2]
    want = reference(entities, paths["features"])
    same_keys = bool(
        (got["entity_id"].to_numpy() == want["entity_id"].to_numpy()).all()
        and (got["event_timestamp"].to_numpy() == want["event_timestamp"].to_numpy()).all()
    )
    wrong = sum(
        int((~np.isclose(got[f], want[f], equal_nan=True)).sum()) for f in workloads.PIT_FEATURES
    )
    print(
        json.dumps(
            {
                "entity_rows": len(entities),
                "seconds": round(secs, 3),
                "seconds_each": [round(x, 3) for x in times],
                "peak_rss_mb": peak,
                "rss_before_call_mb": rss_before,
                "rows_returned": len(got),
                "rows_in_order": same_keys,
                "rows_with_features": int(got["f0"].notna().sum()),
                "rows_expected_with_features": int(want["f0"].notna().sum()),
                "values_wrong": wrong,
                "stored_as": dv.ref,
            }
        ),
        flush=True,
    )


def run_pit(home: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--pit", str(home)], capture_output=True, text=True, timeout=600
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr[-800:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def expected_online(paths: dict[str, str]) -> pd.DataFrame:
    """Each entity's latest row, with its f0 nulled where older than the TTL at END."""
    feats = pd.read_parquet(paths["features"], columns=["entity_id", "event_timestamp", "f0"])
    latest = feats.loc[feats.groupby("entity_id")["event_timestamp"].idxmax()].set_index(
        "entity_id"
    )
    stale = latest["event_timestamp"] < END - timedelta(days=workloads.TTL_DAYS)
    latest.loc[stale, "f0"] = np.nan
    return latest


def run_online(ws: Workspace, store: features.OnlineStore, latest: pd.DataFrame) -> dict[str, Any]:
    t = time.perf_counter()
    (result,) = features.materialize(workloads.START, END, store=store, workspace=ws)
    materialize_s = time.perf_counter() - t
    ids = np.random.default_rng(0).integers(0, 10_000, N_ONLINE).tolist()
    at = END.to_pydatetime()
    out: dict[str, Any] = {
        "store": type(store).__name__,
        "materialize_s": round(materialize_s, 2),
        "rows_materialized": result.rows,
        "calls": N_ONLINE,
        "entities_per_call": 1,
        "features": len(FEATURES),
    }
    for to in ("pandas", "dict"):
        features.get_online_features(
            [{"entity_id": 0}], FEATURES, at=at, store=store, to=to, workspace=ws
        )
        lat, wrong = [], 0
        for e in ids:
            t = time.perf_counter()
            found = features.get_online_features(
                [{"entity_id": e}], FEATURES, at=at, store=store, to=to, workspace=ws
            )
            lat.append(time.perf_counter() - t)
            got, want = found["f0"][0], latest.loc[e, "f0"]
            wrong += not (got == want or (pd.isna(got) and pd.isna(want)))
        out[to] = {"wrong_or_missing": wrong, **percentiles_ms(lat)}
    return out


def run_feast() -> dict[str, Any]:
    python = PEERS_HOME / "feast" / "bin" / "python"
    if not python.exists():
        subprocess.run(["bash", str(PEERS / "setup_peers.sh")], check=True)
    proc = subprocess.run(
        [str(python), str(PEERS / "feast_pit.py")],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=PEERS,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr[-800:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def stream_event(i: int) -> bytes:
    ts = workloads.START + timedelta(seconds=i)
    row = {"entity_id": i % 10_000, "event_timestamp": int(ts.timestamp() * 1000)}
    row.update({f: float(i % 97) for f in workloads.PIT_FEATURES})
    return json.dumps(row).encode()


def run_stream(ws: Workspace) -> dict[str, Any]:
    """Drain a backlog, then follow a steady producer; the Redis keys are deleted after."""
    import redis

    seed = pd.read_parquet(workloads.ensure("W_pit")["features"]).head(1)
    data.ingest(seed, name="stream_features", workspace=ws)
    entity = features.Entity("entity", ["entity_id"])
    view = features.FeatureView("stream_pit", [entity], "stream_features@latest", ttl="30d")
    features.apply([entity, view], workspace=ws)
    client = redis.Redis.from_url(REDIS_URL)
    stream = f"loopml-bench-{uuid.uuid4().hex[:8]}"
    try:
        for start in range(0, N_BACKLOG, 1_000):
            pipe = client.pipeline()
            for i in range(start, start + 1_000):
                pipe.xadd(stream, {"data": stream_event(i)})
            pipe.execute()
        t = time.perf_counter()
        backlog = features.ingest_stream(
            "stream_pit", stream=stream, url=REDIS_URL, max_events=N_BACKLOG, workspace=ws
        )
        drain_s = time.perf_counter() - t

        stop = threading.Event()

        def produce() -> None:
            n, begin = N_BACKLOG, time.perf_counter()
            while time.perf_counter() - begin < PACED_S:
                due = int((time.perf_counter() - begin) * RATE)
                pipe = client.pipeline()
                for i in range(n, N_BACKLOG + due):
                    pipe.xadd(stream, {"data": stream_event(i)})
                pipe.execute()
                n = N_BACKLOG + due
                time.sleep(0.005)
            time.sleep(1.5)
            stop.set()

        producer = threading.Thread(target=produce)
        producer.start()
        paced = features.ingest_stream(
            "stream_pit", stream=stream, url=REDIS_URL, stop_event=stop, workspace=ws
        )
        producer.join()
    finally:
        client.delete(stream)
        client.close()
    summary = paced.summary()
    return {
        "broker": "redis streams",
        "online_store": "sqlite",
        "backlog_events": backlog.events,
        "backlog_offline_rows": backlog.offline_rows,
        "backlog_seconds": round(drain_s, 2),
        "events_per_s": round(backlog.events / drain_s),
        "paced_rate_per_s": RATE,
        "paced_events": paced.events,
        "freshness_p50_ms": summary.get("freshness_p50_ms"),
        "freshness_p99_ms": summary.get("freshness_p99_ms"),
    }


def main() -> None:
    paths = workloads.ensure("W_pit")
    out: dict[str, Any] = {"workload": "W_pit"}
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        home = Path(tmp) / "ws"
        print("[bench] ingesting W_pit's 1,000,000 feature rows (setup, not timed) ...", flush=True)
        setup(home, paths)
        print("[bench] loopml training_set, 100,000 entity rows (child process) ...", flush=True)
        out["loopml_pit"] = run_pit(home)
        print(json.dumps({"loopml_pit": out["loopml_pit"]}), flush=True)
        latest = expected_online(paths)
        with Workspace.open(home) as ws:
            sqlite_store = features.SqliteOnlineStore(home / "online.db")
            out["loopml_online_sqlite"] = run_online(ws, sqlite_store, latest)
            sqlite_store.close()
            print(json.dumps({"loopml_online_sqlite": out["loopml_online_sqlite"]}), flush=True)
            prefix = f"loopml-bench-{uuid.uuid4().hex[:8]}:"
            redis_store = features.RedisOnlineStore(REDIS_URL, prefix=prefix)
            try:
                out["loopml_online_redis"] = run_online(ws, redis_store, latest)
            finally:
                redis_store.delete_view("pit")
                redis_store.close()
            print(json.dumps({"loopml_online_redis": out["loopml_online_redis"]}), flush=True)
            print("[bench] streaming from Redis Streams ...", flush=True)
            out["loopml_stream"] = run_stream(ws)
            print(json.dumps({"loopml_stream": out["loopml_stream"]}), flush=True)
    print("[bench] Feast 0.67 (its venv; dask offline store, sqlite online) ...", flush=True)
    out["feast"] = run_feast()
    print(json.dumps({"feast": out["feast"]}), flush=True)
    print(json.dumps(summary(out)), flush=True)


def summary(out: dict[str, Any]) -> dict[str, Any]:
    ours, peer = out["loopml_pit"], out["feast"].get("pit", {})
    s: dict[str, Any] = {"summary": "W_pit"}
    if "seconds" in ours and "seconds" in peer:
        same_rows = peer.get("entity_rows") == ours["entity_rows"]
        s["feast_entity_rows"] = peer.get("entity_rows")
        s["speedup_vs_feast"] = round(peer["seconds"] / ours["seconds"], 1)
        s["peak_rss_ratio"] = round(ours["peak_rss_mb"] / peer["peak_rss_mb"], 3)
        s["target_20x_met"] = same_rows and s["speedup_vs_feast"] >= 20
        s["target_one_fifth_memory_met"] = s["peak_rss_ratio"] <= 0.2
        s["feast_rows_missing"] = peer.get("rows_missing")
    s["loopml_rows_returned"] = ours.get("rows_returned")
    s["loopml_values_wrong"] = ours.get("values_wrong")
    online = out["feast"].get("online", {})
    if "p99_ms" in online:
        s["feast_online_p99_ms"] = online["p99_ms"]
        for store in ("sqlite", "redis"):
            for to in ("pandas", "dict"):
                mine = out[f"loopml_online_{store}"][to]["p99_ms"]
                s[f"online_p99_ratio_{store}_{to}"] = round(mine / online["p99_ms"], 3)
        # Feast's figure is get_online_features(...).to_dict(): compare with to="dict"
        s["target_online_half_met"] = s["online_p99_ratio_sqlite_dict"] <= 0.5
    return s


if __name__ == "__main__":
    if sys.argv[1:2] == ["--pit"]:
        pit_child(sys.argv[2])
    else:
        main()
