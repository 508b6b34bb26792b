"""The closed loop in Python, without a server: champion → drifted traffic → challenger.

A model trained on the first half-year is deployed; predictions on the drifted later
quarter are logged (as the server would) with their true labels; a monitor finds the drift
and fires its alert; ``loop.run_once`` retrains from the champion's recipe, compares on
fresh rows and promotes the challenger.
"""

import tempfile

from loopml import data, loop, monitoring, registry, serving
from loopml.store import Workspace
from loopml.training import train

FEATURES = ["tenure_months", "monthly_fee", "support_calls", "plan", "region", "payment"]

with tempfile.TemporaryDirectory() as home, Workspace.init(home) as ws:
    before = data.demo_churn(3000, period="before")
    dv = data.ingest(before[[*FEATURES, "churned"]], name="churn", workspace=ws)
    champion = train(dv, "churned", model="linear", workspace=ws)
    champion.register("churn", alias="production")
    serving.deploy(ws, "churn", model="churn", primary="@production")
    monitoring.create_monitor(ws, "churn", "churn", rules=["drift_share > 0.3"])

    # what `loopml serve` logs for each request, and what POST /v1/feedback adds
    later = data.demo_churn(800, period="after")
    model = registry.load_model(ws, "models:/churn@production")
    ids = later["customer_id"].tolist()
    log = serving.PredictionLogger(ws)
    inputs = later[FEATURES]
    log.log("churn", "churn", 1, "primary", ids, inputs, model.predict(inputs), None, None, 2.0)
    log.log_feedback("churn", ids, later["churned"].tolist())
    log.close()

    decision = loop.run_once(ws, loop.Policy("churn", monitor="churn"))
    print(decision.decision, "-", decision.reason)
    assert decision.trigger == "alert" and decision.decision == "promoted"
    assert registry.get_model_version(ws, "models:/churn@production").version == 2
    for past in loop.history(ws, "churn"):
        print(past.id, past.decision, past.evidence["comparison"]["improvement_low"])
