"""From a CSV file to a served model, with every step recorded.

ingest -> validate (quarantine bad rows) -> profile-driven preprocessing -> train a pipeline
in a tracked run that records its input -> register -> predict on raw rows -> lineage.

    python examples/data_to_model.py
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import loopml
from loopml import data

if "LOOPML_HOME" not in os.environ:
    loopml.use_workspace(loopml.init(tempfile.mkdtemp(prefix="loopml-example-")))

# a small churn table with a few bad rows: an impossible age and a missing customer id
rng = np.random.default_rng(0)
n = 400
frame = pd.DataFrame(
    {
        "customer_id": [f"c{i:04d}" for i in range(n)],
        "age": rng.integers(18, 90, n),
        "plan": rng.choice(["basic", "pro", "max"], n),
        "monthly_fee": rng.gamma(2.0, 20.0, n).round(2),
        "signup": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
    }
)
frame["churned"] = (frame.monthly_fee > 50) ^ (rng.random(n) < 0.1)
frame.loc[[3, 7], "age"] = 150
frame.loc[11, "customer_id"] = None
csv = Path(tempfile.mkdtemp()) / "customers.csv"
frame.to_csv(csv, index=False)

raw = data.ingest(csv, name="churn")
print(
    f"ingested {raw.ref}: {raw.num_rows} rows;",
    ", ".join(f"{c.name}={c.kind}" for c in raw.columns),
)

suite = """
name: churn
checks:
  - {check: not_null, column: customer_id}
  - {check: in_range, column: age, min: 18, max: 120}
  - {check: in_set, column: plan, values: [basic, pro, max]}
  - {check: row_count, min: 100}
"""
checked = data.validate(raw, suite, on_fail="quarantine")
assert checked.clean is not None and checked.quarantined is not None
print(
    f"validation: {checked.quarantined.num_rows} rows quarantined to {checked.quarantined.ref},"
    f" {checked.clean.num_rows} clean rows in {checked.clean.ref}"
)

train = checked.clean
X = train.to_pandas().drop(columns=["churned"])
y = train.to_pandas()["churned"]
pipeline = make_pipeline(
    data.Preprocessor.from_profile(train, target="churned"), LogisticRegression(max_iter=1000)
)
with loopml.start_run(experiment="churn", name="logreg") as run:
    run.log_input(train)
    pipeline.fit(X, y)
    run.log_metric("train_accuracy", pipeline.score(X, y))
    print("\n".join(pipeline[0].describe()))
    mv = loopml.register_model(pipeline, "churn", input_example=X.head())

served = loopml.load_model(mv.uri)
print("predictions for 3 raw rows:", served.predict(X.head(3)).tolist())
for edge in loopml.lineage(mv.uri):
    print("lineage:", edge)
