"""A team server: start `loopml server`, then log, register and load through it, from
loopml's own API and from an unmodified MLflow client.

    python examples/team_server.py
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.tracking import search_runs

home = Path(tempfile.mkdtemp(prefix="loopml-team-"))
loopml.init(home).close()
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
url = f"http://127.0.0.1:{port}"
loopml_cli = str(Path(sys.executable).with_name("loopml"))
server = subprocess.Popen([loopml_cli, "-w", str(home), "server", "--port", str(port)])
try:
    for _ in range(300):  # wait for the server to answer (at most ~30 s)
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)

    # loopml's API, over HTTP: the same calls as on a local workspace
    ws = loopml.Workspace.open(tracking_uri=url)
    X, y = load_wine(return_X_y=True, as_frame=True)
    with loopml.start_run("wine", name="logreg", workspace=ws) as run:
        run.log_params({"C": 0.5})
        model = LogisticRegression(C=0.5, max_iter=5000).fit(X, y)
        for step in range(100):
            run.log_metric("loss", 1 / (step + 1), step=step)  # queued, sent in batches
        run.log_metric("accuracy", model.score(X, y))
    mv = loopml.register_model(model, "wine", input_example=X.head(), workspace=ws)
    loopml.set_alias("wine", "production", mv.version, workspace=ws)
    served = loopml.load_model("models:/wine@production", workspace=ws)
    print("predictions from models:/wine@production:", served.predict(X.head(3)).tolist())

    # an unmodified MLflow client, if installed, logs into the same store
    try:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow
    except ImportError:
        print("(pip install mlflow-skinny to see an MLflow client log here too)")
    else:
        mlflow.set_tracking_uri(url)
        mlflow.set_experiment("wine")
        with mlflow.start_run(run_name="from-mlflow"):
            mlflow.log_param("C", 1.0)
            mlflow.log_metric("accuracy", 0.97)

    runs = search_runs(ws, "wine", order_by=["metrics.accuracy DESC"])
    print(runs[["name", "status", "metrics.accuracy"]].to_string(index=False))
    ws.close()
finally:
    server.terminate()
    server.wait(30)
