"""Features inside serving: a deployment looks its feature service up, then a skew check.

feature rows -> a feature view and service -> a point-in-time training set -> a model ->
materialize online -> `deploy(..., features="activity")` -> `loopml serve` answers requests
that carry only the customer id -> a wrong value written online -> `skew_report` finds it.

    python examples/feature_serving.py
"""

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

import loopml
from loopml import data, features, monitoring, serving
from loopml.features import open_online_store
from loopml.registry import register_model, set_alias

home = Path(tempfile.mkdtemp(prefix="loopml-fs-"))
ws = loopml.init(home)
rng = np.random.default_rng(0)
now = pd.Timestamp.now(tz="UTC").floor("s")
n = 600
rows = pd.DataFrame(
    {
        "customer_id": rng.integers(0, 50, n),
        "event_timestamp": now - pd.to_timedelta(rng.integers(60, 3 * 24 * 3600, n), unit="s"),
        "spend": rng.gamma(2.0, 30.0, n).round(2),
        "visits": rng.integers(0, 20, n).astype(float),
    }
)
data.ingest(rows, name="activity_rows", workspace=ws)
customer = features.Entity("customer", ["customer_id"])
view = features.FeatureView("activity", [customer], "activity_rows@latest", ttl="7d")
service = features.FeatureService("scoring", ["activity:spend", "activity:visits"])
features.apply([customer, view, service], workspace=ws)

labels = pd.DataFrame({"customer_id": rng.integers(0, 50, 300)})
labels["event_timestamp"] = now - pd.to_timedelta(rng.integers(0, 2 * 24 * 3600, 300), unit="s")
train = features.training_set(labels, "scoring", name="scoring_train", workspace=ws).to_pandas()
y = train["spend"].fillna(0) / 10 + train["visits"].fillna(0)
model = HistGradientBoostingRegressor(max_iter=20).fit(train[["spend", "visits"]], y)
register_model(ws, model, "scorer", input_example=train[["spend", "visits"]].head(5))
set_alias(ws, "scorer", "production", 1)

features.materialize(end=now + pd.Timedelta(seconds=1), workspace=ws)
serving.deploy(ws, "scorer-live", model="scorer", features="scoring")

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
url = f"http://127.0.0.1:{port}/v1/models/scorer-live/predict"
loopml_cli = str(Path(sys.executable).with_name("loopml"))
cmd = [loopml_cli, "-w", str(home), "serve", "-d", "scorer-live", "--port", str(port)]
server = subprocess.Popen(cmd)
try:
    for _ in range(600):  # wait for the model to load (at most ~60 s)
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    answer = httpx.post(url, json=[{"customer_id": 7}, {"customer_id": 999}])
    print("predictions for customers 7 and 999 (unknown):", answer.json()["predictions"])
    missing = httpx.post(url, json=[{"id": 7}])
    print(missing.status_code, missing.json()["error"])
    for c in range(20):
        httpx.post(url, json=[{"customer_id": c}]).raise_for_status()

    # a bad value written to the online store behind the feature store's back
    current = features.get_online_features([{"customer_id": 3}], "scoring", workspace=ws)
    bad = {"spend": 1e6, "visits": float(current.loc[0, "visits"])}  # only spend is wrong
    store = open_online_store(ws)
    store.write("activity", [("[3]", int(time.time() * 1000), bad)])
    store.close()
    for c in range(20):
        httpx.post(url, json=[{"customer_id": c}]).raise_for_status()
finally:
    server.terminate()  # drains, flushes the prediction log
    server.wait(60)

report = monitoring.skew_report(ws, "scorer-live")
print(report.to_pandas())
assert report.skewed == ["spend"]  # the one request for customer 3 after the bad write
print("the same from the shell: loopml -w", home, "monitor skew scorer-live")
