"""The closed loop as a pipeline, batch prediction on Ray, and pipeline runs over HTTP.

A deployed champion gets drifted, labelled traffic; ``pipelines.closed_loop`` runs the
loop's stages (check → retrain → evaluate → conclude) as steps and promotes a challenger;
``pipelines.predict_partitions`` scores a Parquet file's partitions as Ray tasks; the
platform server lists the pipeline run with its steps.
"""

import json
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import uvicorn

from loopml import data, monitoring, pipelines, registry, serving
from loopml.server import create_app
from loopml.store import Workspace
from loopml.training import train

FEATURES = ["tenure_months", "monthly_fee", "support_calls", "plan", "region", "payment"]

with tempfile.TemporaryDirectory() as home, Workspace.init(Path(home) / "ws") as ws:
    dv = data.ingest(data.demo_churn(3000)[[*FEATURES, "churned"]], name="churn", workspace=ws)
    train(dv, "churned", model="linear", workspace=ws).register("churn", alias="production")
    serving.deploy(ws, "churn", model="churn", primary="@production")
    monitoring.create_monitor(ws, "churn", "churn", rules=["drift_share > 0.3"])

    later = data.demo_churn(800, period="after")  # logged as `loopml serve` would
    model = registry.load_model(ws, "models:/churn@production")
    ids = later["customer_id"].tolist()
    log = serving.PredictionLogger(ws)
    inputs = later[FEATURES]
    log.log("churn", "churn", 1, "primary", ids, inputs, model.predict(inputs), None, None, 2.0)
    log.log_feedback("churn", ids, later["churned"].tolist())
    log.close()

    run = pipelines.closed_loop.run({"deployment": "churn", "monitor": "churn"}, workspace=ws)
    print(run.output["decision"], "-", run.output["reason"])
    print(run.steps[["node", "status", "cache_hit", "attempts"]].to_string(index=False))
    assert run.output["decision"] == "promoted"

    scored = Path(home) / "later.parquet"
    later[["customer_id", *FEATURES]].to_parquet(scored, row_group_size=200)
    done = pipelines.predict_partitions(
        ws, "churn@production", scored, Path(home) / "scores.parquet", partitions=4
    )
    local = serving.predict_file(ws, "churn@production", scored, Path(home) / "local.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(done.output), pd.read_parquet(local.output))
    print(f"{done.rows} rows scored on Ray by {done.model_uri}, same as predict_file")

    config = uvicorn.Config(create_app(ws), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v1/pipelines/runs/{run.id}"
    with urllib.request.urlopen(url) as answer:
        shown = json.load(answer)["run"]
    print(shown["pipeline"], shown["status"], [s["node"] for s in shown["steps"]])
    server.should_exit = True
    thread.join()
