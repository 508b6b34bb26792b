"""A feature store end to end: definitions, a point-in-time training set, online lookups.

generate transactions -> ingest as a dataset -> apply an entity, a feature view, an
on-demand view and a feature service -> a point-in-time-correct training set (a dataset
version with lineage) -> materialize into the online store -> look features up by key.

    python examples/feature_store.py
"""

import os
import tempfile

import numpy as np
import pandas as pd

import loopml
from loopml import data, features
from loopml.store import upstream

if "LOOPML_HOME" not in os.environ:
    loopml.use_workspace(loopml.init(tempfile.mkdtemp(prefix="loopml-example-")))

# per-customer spending stats, recomputed at random times over 60 days
rng = np.random.default_rng(0)
t0 = pd.Timestamp("2025-01-01", tz="UTC")
n = 2_000
stats = pd.DataFrame(
    {
        "customer_id": rng.integers(0, 200, n),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 60 * 24 * 60, n), unit="min"),
        "spend_7d": rng.gamma(2.0, 30.0, n).round(2),
        "orders_7d": rng.integers(0, 12, n),
    }
)
data.ingest(stats, name="customer_stats")

customer = features.Entity("customer", ["customer_id"])
spend = features.FeatureView(
    "customer_spend",
    [customer],
    source="customer_stats@latest",
    timestamp_field="event_timestamp",
    ttl="7d",  # older values are not used
    features=["spend_7d", "orders_7d"],
    owner="growth",
)


def basket(df: pd.DataFrame) -> pd.DataFrame:
    """Average basket, scaled by the request's currency rate."""
    return pd.DataFrame({"avg_basket": df["spend_7d"] / (df["orders_7d"] + 1) * df["fx_rate"]})


avg_basket = features.OnDemandFeatureView(
    "basket",
    sources=["customer_spend:spend_7d", "customer_spend:orders_7d"],
    features=["avg_basket"],
    function=basket,
    request_fields={"fx_rate": "float64"},
)
churn_features = features.FeatureService("churn", ["customer_spend", avg_basket])
for change in features.apply([customer, spend, avg_basket, churn_features]):
    print(change)

# labels observed at various times: each row gets the values known at that moment
labels = pd.DataFrame(
    {
        "customer_id": rng.integers(0, 220, 500),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 60 * 24 * 60, 500), unit="min"),
        "fx_rate": 1.0,
        "churned": rng.integers(0, 2, 500),
    }
)
train = features.training_set(labels, "churn", name="churn_train")
frame = train.to_pandas()
print(f"{train.ref}: {train.num_rows} rows (every label row), columns {list(frame.columns)}")
print(f"rows without a value within the TTL: {frame['spend_7d'].isna().sum()}")
for edge in upstream(train.ws.db, train.lineage_node):  # the views and source versions it used
    print("lineage:", edge)

# the online store (SQLite in the workspace by default; LOOPML_ONLINE_STORE=redis://...)
end = t0 + pd.Timedelta(days=60)
for result in features.materialize(end=end):
    print(f"materialized {result.view}: {result.rows} customers")
online = features.get_online_features(
    [{"customer_id": 7, "fx_rate": 1.1}, {"customer_id": 999, "fx_rate": 1.0}], "churn", at=end
)
print(online)
assert online.loc[1, "spend_7d"] is None or np.isnan(online.loc[1, "spend_7d"])  # unknown key
