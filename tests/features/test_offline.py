"""Point-in-time training sets, checked against a pandas merge_asof reference."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from loopml import data, features
from loopml.errors import InvalidInput
from loopml.store import Node, Workspace, upstream
from tests.features.conftest import CUSTOMER, entity_rows, feature_rows, spend_view


def reference(
    entities: pd.DataFrame, rows: pd.DataFrame, cols: list[str], ttl: timedelta | None
) -> pd.DataFrame:
    """The expected answer by pandas.merge_asof, back in the entity rows' order."""
    feats = rows[["customer_id", "event_timestamp", *cols]].rename(
        columns={"event_timestamp": "feature_ts"}
    )
    merged = pd.merge_asof(
        entities.reset_index().sort_values("event_timestamp"),
        feats.sort_values("feature_ts"),
        by="customer_id",
        left_on="event_timestamp",
        right_on="feature_ts",
        tolerance=ttl,
    )
    return merged.sort_values("index").drop(columns=["index", "feature_ts"]).reset_index(drop=True)


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for col in want.columns:
        a, b = got[col].to_numpy(), want[col].to_numpy()
        if pd.api.types.is_float_dtype(want[col].dtype):
            assert np.allclose(a.astype(float), b.astype(float), equal_nan=True), col
        else:
            assert (got[col].astype(str).to_numpy() == want[col].astype(str).to_numpy()).all(), col


def test_training_set_matches_merge_asof_with_ttl(ws: Workspace) -> None:
    rows = feature_rows()
    data.ingest(rows, name="spend", workspace=ws)
    features.apply([CUSTOMER, spend_view(ttl="7d")], workspace=ws)
    entities = entity_rows()
    dv = features.training_set(
        entities, ["spend_stats:spend", "spend_stats:visits"], name="train", workspace=ws
    )
    got = dv.to_pandas()
    want = reference(entities, rows, ["spend", "visits"], timedelta(days=7))
    assert_same(got, want)
    # the data exercise every case: values found, expired by the TTL, no row at all
    no_ttl = reference(entities, rows, ["spend"], None)
    expired = want["spend"].isna() & no_ttl["spend"].notna()
    unknown = ~entities["customer_id"].isin(rows["customer_id"])
    assert want["spend"].notna().sum() > 50 and expired.sum() > 20 and unknown.sum() > 10
    assert dv.ref == "train@1" and dv.num_rows == len(entities)

    edges = {str(e) for e in upstream(ws.db, dv.lineage_node)}
    assert "feature_view:spend_stats@1 --features--> dataset_version:train@1" in edges
    assert "dataset_version:spend@1 --derived_from--> dataset_version:train@1" in edges


def test_several_views_on_demand_and_a_service(sqlite_ws: Workspace) -> None:
    rows = feature_rows()
    data.ingest(rows, name="spend", workspace=sqlite_ws)
    plans = features.FeatureView(
        "plans",
        ["customer"],
        "select customer_id, event_timestamp, plan, visits from {spend@latest}",
        features=["plan", "visits"],
    )

    def per_visit(df):  # type: ignore[no-untyped-def]
        return pd.DataFrame({"spend_per_visit": df["spend"] / (df["visits"] + 1) * df["boost"]})

    odfv = features.OnDemandFeatureView(
        "derived",
        ["spend_stats:spend", "spend_stats:visits"],
        ["spend_per_visit"],
        per_visit,
        request_fields={"boost": "float64"},
    )
    svc = features.FeatureService("churn", ["spend_stats:spend", "plans", odfv])
    features.apply([CUSTOMER, spend_view(ttl="7d"), plans, odfv, svc], workspace=sqlite_ws)
    entities = entity_rows().assign(boost=2.0)

    got = features.training_set(
        entities, "churn", full_feature_names=True, workspace=sqlite_ws
    ).to_pandas()
    assert list(got.columns) == [
        *entities.columns,
        "spend_stats__spend",
        "plans__plan",
        "plans__visits",
        "derived__spend_per_visit",
    ]
    short = reference(entities, rows, ["spend", "visits"], timedelta(days=7))
    forever = reference(entities, rows, ["plan", "visits"], None)
    assert np.allclose(got["spend_stats__spend"], short["spend"], equal_nan=True)
    assert (got["plans__plan"].fillna("-") == forever["plan"].fillna("-")).all()
    assert np.allclose(got["plans__visits"], forever["visits"], equal_nan=True)
    expected = short["spend"] / (short["visits"] + 1) * 2.0
    assert np.allclose(got["derived__spend_per_visit"], expected, equal_nan=True)

    # the same names without prefixes clash: visits comes from two views
    with pytest.raises(InvalidInput, match="both be column 'visits'"):
        features.training_set(entities, ["spend_stats:visits", "plans:visits"], workspace=sqlite_ws)
    # the lineage names the service
    dv = features.training_set(entities, "churn", full_feature_names=True, workspace=sqlite_ws)
    sources = {e.src for e in upstream(sqlite_ws.db, dv.lineage_node)}
    assert Node("feature_service", "churn@1") in sources
    assert Node("feature_view", "derived@1") in sources


def test_entity_rows_from_a_dataset_and_bad_entity_rows(fs_ws: Workspace) -> None:
    entities = entity_rows(50)
    labels = data.ingest(entities, name="labels", workspace=fs_ws)
    dv = features.training_set("labels@1", ["spend_stats:spend"], workspace=fs_ws)
    assert dv.num_rows == 50
    assert any(
        str(e) == "dataset_version:labels@1 --derived_from--> dataset_version:training_set@1"
        for e in upstream(fs_ws.db, dv.lineage_node)
    )
    assert labels.ref == "labels@1"

    feats = ["spend_stats:spend"]
    with pytest.raises(InvalidInput, match="entity_df has no column 'customer_id'"):
        features.training_set(entities.drop(columns="customer_id"), feats, workspace=fs_ws)
    with pytest.raises(InvalidInput, match="has no column 'event_timestamp'"):
        features.training_set(entities.drop(columns="event_timestamp"), feats, workspace=fs_ws)
    bad_ts = entities.assign(event_timestamp="yesterday")
    with pytest.raises(InvalidInput, match="'event_timestamp' is large_string, not a timestamp"):
        features.training_set(bad_ts, feats, workspace=fs_ws)
    nulls = entities.copy()
    nulls.loc[7, "event_timestamp"] = pd.NaT
    with pytest.raises(InvalidInput, match="'event_timestamp' is null in row 7"):
        features.training_set(nulls, feats, workspace=fs_ws)
    with pytest.raises(InvalidInput, match="already has column"):
        features.training_set(entities.assign(spend=1.0), feats, workspace=fs_ws)
    with pytest.raises(InvalidInput, match="has no feature 'nope'"):
        features.training_set(entities, ["spend_stats:nope"], workspace=fs_ws)
    with pytest.raises(InvalidInput, match="not a feature reference"):
        features.training_set(entities, ["a:b:c"], workspace=fs_ws)
    with pytest.raises(InvalidInput, match="entity_df must be"):
        features.training_set([1, 2], feats, workspace=fs_ws)


def test_naive_and_aware_timestamps_meet_in_utc(sqlite_ws: Workspace) -> None:
    rows = feature_rows()
    naive = rows.assign(event_timestamp=rows["event_timestamp"].dt.tz_localize(None))
    data.ingest(naive, name="spend", workspace=sqlite_ws)
    features.apply([CUSTOMER, spend_view(ttl="7d")], workspace=sqlite_ws)
    entities = entity_rows()  # tz-aware
    got = features.training_set(entities, ["spend_stats:spend"], workspace=sqlite_ws).to_pandas()
    want = reference(entities, rows, ["spend"], timedelta(days=7))
    assert np.allclose(got["spend"], want["spend"], equal_nan=True)
    # and naive entity rows against the naive source
    naive_entities = entities.assign(
        event_timestamp=entities["event_timestamp"].dt.tz_localize(None)
    )
    again = features.training_set(naive_entities, ["spend_stats:spend"], workspace=sqlite_ws)
    assert np.allclose(again.to_pandas()["spend"], want["spend"], equal_nan=True)
