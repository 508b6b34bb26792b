"""Track a training run, register the model, promote it and load it back by alias.

Run it anywhere: it makes a throw-away workspace unless LOOPML_HOME points at one.
    python examples/track_and_register.py
"""

import os
import tempfile

from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

import loopml

if "LOOPML_HOME" not in os.environ:
    loopml.use_workspace(loopml.init(tempfile.mkdtemp(prefix="loopml-example-")))

X, y = load_wine(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)

with loopml.start_run(experiment="wine", name="forest") as run:
    params = {"n_estimators": 200, "max_depth": 6, "random_state": 0}
    run.log_params(params)
    model = RandomForestClassifier(**params).fit(X_train, y_train)
    for i, tree in enumerate(model.estimators_[:50]):  # a curve: accuracy of single trees
        loopml.log_metric(
            "tree_accuracy", accuracy_score(y_test, tree.predict(X_test.values)), step=i
        )
    run.log_metric("accuracy", accuracy_score(y_test, model.predict(X_test)))
    mv = loopml.register_model(model, "wine", input_example=X_train.head())

loopml.set_alias("wine", "production", mv.version)
served = loopml.load_model("models:/wine@production")
print("accuracy of models:/wine@production:", accuracy_score(y_test, served.predict(X_test)))

try:
    served.predict(X_test.drop(columns=["alcohol"]))
except loopml.InvalidInput as exc:
    print("a request without 'alcohol' is refused:", exc)

best = loopml.search_runs(
    "wine", filter="metrics.accuracy > 0.9", order_by=["metrics.accuracy DESC"]
)
print(best[["run_id", "name", "metrics.accuracy", "params.n_estimators"]])
print(loopml.get_metric_history(run.id, "tree_accuracy").head())
for edge in loopml.lineage("models:/wine@production"):
    print("lineage:", edge)
