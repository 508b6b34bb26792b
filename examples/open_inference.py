"""Serve a model with two workers, call it with the standard Open Inference Protocol client
(tritonclient, binary tensors), read the metrics summed over both workers, and compact the
prediction log.

    python examples/open_inference.py
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
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier

import loopml
from loopml.registry import register_model, set_alias
from loopml.serving import compact_predictions, read_predictions

home = Path(tempfile.mkdtemp(prefix="loopml-v2-"))
ws = loopml.init(home)
X, y = make_classification(n_samples=500, n_features=4, random_state=0)
X = pd.DataFrame(X, columns=["age", "income", "tenure", "usage"])
model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)
register_model(ws, model, "churn", input_example=X.head(5))
set_alias(ws, "churn", "production", 1)

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
url = f"http://127.0.0.1:{port}"
loopml_cli = str(Path(sys.executable).with_name("loopml"))
cmd = [loopml_cli, "-w", str(home), "serve", "churn@production", "--port", str(port)]
server = subprocess.Popen([*cmd, "--workers", "2"])
try:
    for _ in range(600):  # wait for the workers to load the model (at most ~60 s)
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)

    try:
        import tritonclient.http as triton
    except ImportError:
        triton = None
        print('(pip install "tritonclient[http]" to call the server with tritonclient)')
    if triton is not None:
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        rows = X.head(8).to_numpy(np.float32)
        tensor = triton.InferInput("input-0", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)  # the binary tensor extension
        wanted = [triton.InferRequestedOutput(n) for n in ("predict", "predict_proba")]
        result = client.infer("churn", [tensor], outputs=wanted)
        print("tritonclient predict:", result.as_numpy("predict").tolist())
        print("expected:            ", model.predict(X.head(8)).tolist())
        client.close()

    records = X.head(3).to_dict("records")
    for _ in range(20):  # new connections: both workers answer some
        httpx.post(f"{url}/v1/models/churn/predict", json=records).raise_for_status()
    metrics = httpx.get(f"{url}/metrics").text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('loopml_requests_total{endpoint="churn"')
    )
    print("requests counted over both workers:", total)
finally:
    server.terminate()  # drains, flushes the prediction log
    server.wait(60)

result = compact_predictions(ws, "churn")  # each worker flushed its own file
if result.hours:
    print(f"compacted {result.files_before} log files into {result.files_after}")
else:
    print("one log file already (one worker logged everything): nothing to compact")
print("logged rows:", read_predictions(ws, "churn").num_rows)
ws.close()
