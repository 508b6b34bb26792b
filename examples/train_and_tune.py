"""Train, compare and tune models on a dataset version, then promote the better one.

python examples/train_and_tune.py
"""

import os
import tempfile

from sklearn.datasets import load_wine

import loopml
from loopml import data
from loopml.training import paired_bootstrap, train, tune

if "LOOPML_HOME" not in os.environ:
    loopml.use_workspace(loopml.init(tempfile.mkdtemp(prefix="loopml-example-")))

frame = load_wine(as_frame=True).frame
rows = frame.sample(60, random_state=1)  # rows no model sees before the A/B test
wine = data.ingest(frame.drop(index=rows.index), name="wine")
holdout = data.ingest(rows, name="wine-holdout").to_pandas()

baseline = train(wine, "target", model="linear", split="stratified")
forest = train(
    wine, "target", model="random_forest", params={"n_estimators": 100}, split="stratified"
)
print(
    f"linear accuracy {baseline.metrics['accuracy']:.3f}, "
    f"forest accuracy {forest.metrics['accuracy']:.3f}"
)

# the offline A/B test: the same held-out rows scored by both models
X, y = holdout.drop(columns=["target"]), holdout["target"]
ab = paired_bootstrap(
    y, baseline.model.predict(X), forest.model.predict(X), "accuracy", task="multiclass"
)
print(f"forest - linear accuracy: {ab.diff:+.3f} (95% CI {ab.ci_low:+.3f} .. {ab.ci_high:+.3f})")

search = tune(
    wine,
    "target",
    model="random_forest",
    strategy="tpe",
    n_trials=4,
    search_space={
        "max_depth": {"type": "int", "low": 2, "high": 8},
        "min_samples_leaf": [1, 3, 10],
    },
    params={"n_estimators": 50},
)
print(search.leaderboard[["trial", "accuracy", "params.max_depth"]])
mv = search.register("wine", alias="production")
print(f"registered {mv.uri} as wine@production; best params {search.best_params}")
