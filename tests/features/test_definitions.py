"""Definitions: checks with precise errors, loading from Python and YAML, apply and its diff."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from loopml import data, features
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.store import Workspace
from tests.features.conftest import CUSTOMER, feature_rows, spend_view


@pytest.fixture
def spend_ws(ws: Workspace) -> Workspace:
    data.ingest(feature_rows(), name="spend", workspace=ws)
    return ws


def test_apply_versions_only_changes_and_reports_a_diff(spend_ws: Workspace) -> None:
    first = features.apply([CUSTOMER, spend_view()], workspace=spend_ws)
    assert [(c.kind, c.name, c.action, c.version) for c in first] == [
        ("entity", "customer", "create", 1),
        ("feature_view", "spend_stats", "create", 1),
    ]
    again = features.apply([CUSTOMER, spend_view()], workspace=spend_ws)
    assert [c.action for c in again] == ["unchanged", "unchanged"]

    changed = features.FeatureView(
        "spend_stats", ["customer"], "spend@latest", ttl="1d", features=["spend", "plan"]
    )
    dry = features.apply([changed], dry_run=True, workspace=spend_ws)
    assert dry[0].action == "update" and dry[0].version == 2
    assert features.get_definition("spend_stats", workspace=spend_ws).version == 1  # not written

    (change,) = features.apply([changed], workspace=spend_ws)
    assert change.action == "update" and change.version == 2
    assert "~ ttl_ms: 604800000 -> 86400000" in change.diff
    assert "+ feature plan (string)" in change.diff
    assert "- feature visits (int64)" in change.diff
    assert '~ owner: "growth" -> ""' in change.diff
    reg = features.get_definition("spend_stats", "feature_view", workspace=spend_ws)
    assert reg.version == 2 and reg.feature_names == ["spend", "plan"]
    old = features.get_definition("spend_stats", version=1, workspace=spend_ws)
    assert old.definition == features.FeatureView(
        "spend_stats",
        ["customer"],
        "spend@latest",
        "event_timestamp",
        timedelta(days=7),
        [features.Feature("spend", "float64"), features.Feature("visits", "int64")],
        owner="growth",
        tags={"team": "growth"},
    )
    listed = features.list_definitions(workspace=spend_ws)
    assert listed[["kind", "name", "version"]].values.tolist() == [
        ["entity", "customer", 1],
        ["feature_view", "spend_stats", 2],
    ]


def test_a_view_without_features_takes_every_other_column(sqlite_ws: Workspace) -> None:
    data.ingest(feature_rows(), name="spend", workspace=sqlite_ws)
    view = features.FeatureView("all_cols", [CUSTOMER], "spend@1")
    features.apply([CUSTOMER, view], workspace=sqlite_ws)
    reg = features.get_definition("all_cols", workspace=sqlite_ws)
    assert reg.feature_names == ["spend", "visits", "plan"]


@pytest.mark.parametrize(
    ("view", "message"),
    [
        (spend_view(ttl="7 fortnights"), "bad ttl '7 fortnights'"),
        (spend_view(ttl=-5), "ttl must be positive"),
        (
            features.FeatureView("v", [CUSTOMER], "spend@latest", features=["spend", "nope"]),
            "feature 'nope' is not a column of the source",
        ),
        (
            features.FeatureView("v", [CUSTOMER], "spend@latest", timestamp_field="ts"),
            "timestamp_field 'ts' is not a column",
        ),
        (
            features.FeatureView("v", [CUSTOMER], "spend@latest", timestamp_field="plan"),
            "timestamp_field 'plan' is string, not a timestamp",
        ),
        (
            features.FeatureView(
                "v", [CUSTOMER], "spend@latest", features=[features.Feature("spend", "int64")]
            ),
            "feature 'spend' is declared int64 but the source column is double",
        ),
        (
            features.FeatureView(
                "v", [CUSTOMER], "spend@latest", features=[features.Feature("spend", "decimal")]
            ),
            "unknown dtype 'decimal'",
        ),
        (features.FeatureView("v", [CUSTOMER], "nosuch@latest"), "no dataset named 'nosuch'"),
        (features.FeatureView("v", [CUSTOMER], "spend@9"), "has no version 9"),
        (
            features.FeatureView("v", [CUSTOMER], "select * from {spend@1} where nope > 1"),
            "the source query fails",
        ),
        (features.FeatureView("v", ["merchant"], "spend@1"), "no entity named 'merchant'"),
        (features.FeatureView("bad name", [CUSTOMER], "spend@1"), "invalid feature view name"),
        (
            features.FeatureView("v", [features.Entity("shop", ["shop_id"])], "spend@1"),
            "join key 'shop_id' is not a column of the source",
        ),
        (
            features.FeatureService("svc", ["spend_stats:nope"]),
            "view 'spend_stats' has no feature 'nope'",
        ),
        (features.FeatureService("svc", ["ghost:x"]), "no feature view or on demand"),
    ],
)
def test_bad_definitions_are_refused_with_a_precise_error(
    sqlite_ws: Workspace, view: features.FeatureView, message: str
) -> None:
    data.ingest(feature_rows(), name="spend", workspace=sqlite_ws)
    shop = features.Entity("shop", ["shop_id"])
    items = [CUSTOMER, shop, view]
    if isinstance(view, features.FeatureService):
        items.append(spend_view())
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("[", r"\[")):
        features.apply(items, workspace=sqlite_ws)
    assert features.list_definitions("feature_view", workspace=sqlite_ws).empty


def test_sql_sources_and_name_clashes(sqlite_ws: Workspace) -> None:
    data.ingest(feature_rows(), name="spend", workspace=sqlite_ws)
    sql_view = features.FeatureView(
        "big_spend",
        [CUSTOMER],
        "select customer_id, event_timestamp, spend * 2 as double_spend from {spend@latest}",
        ttl=timedelta(days=3),
    )
    features.apply([CUSTOMER, sql_view], workspace=sqlite_ws)
    assert features.get_definition("big_spend", workspace=sqlite_ws).feature_names == [
        "double_spend"
    ]

    def f(df):  # type: ignore[no-untyped-def]
        return df

    odfv = features.OnDemandFeatureView("big_spend", ["big_spend:double_spend"], ["x"], f)
    with pytest.raises(Conflict, match="already registered as a feature view"):
        features.apply([odfv], workspace=sqlite_ws)
    with pytest.raises(InvalidInput, match="defined twice"):
        features.apply([CUSTOMER, CUSTOMER], workspace=sqlite_ws)
    with pytest.raises(NotFound, match="no feature service named 'x'"):
        features.get_definition("x", "feature_service", workspace=sqlite_ws)
    with pytest.raises(InvalidInput, match="is not a feature definition"):
        features.apply(["customer"], workspace=sqlite_ws)  # type: ignore[list-item]


def test_definitions_load_from_python_and_yaml(sqlite_ws: Workspace, tmp_path: Path) -> None:
    data.ingest(feature_rows(), name="spend", workspace=sqlite_ws)
    (tmp_path / "defs.py").write_text(
        "from loopml.features import Entity, FeatureView, OnDemandFeatureView, FeatureService\n"
        "customer = Entity('customer', ['customer_id'])\n"
        "spend = FeatureView('spend_stats', [customer], 'spend@latest', ttl='7d',"
        " features=['spend', 'visits'])\n"
        "def ratio(df):\n"
        "    return pd.DataFrame({'spend_per_visit': df['spend'] / (df['visits'] + 1)})\n"
        "odfv = OnDemandFeatureView('derived', ['spend_stats:spend', 'spend_stats:visits'],"
        " ['spend_per_visit'], ratio)\n"
        "svc = FeatureService('churn', ['spend_stats:spend', odfv])\n"
    )
    (tmp_path / "more.yaml").write_text(
        "entities: [{name: shop, join_keys: [customer_id]}]\n"
        "feature_views:\n"
        "  - name: plans\n"
        "    entities: [shop]\n"
        "    source: spend@1\n"
        "    ttl: 30d\n"
        "    features: [plan, {name: visits, dtype: int64}]\n"
    )
    found = features.load_definitions(tmp_path)
    assert sorted(d.name for d in found) == [
        "churn",
        "customer",
        "derived",
        "plans",
        "shop",
        "spend_stats",
    ]
    changes = features.apply(found, workspace=sqlite_ws)
    assert {c.action for c in changes} == {"create"}
    svc = features.get_definition("churn", workspace=sqlite_ws)
    assert svc.spec["features"] == ["spend_stats:spend", "derived"]

    (tmp_path / "bad.yaml").write_text("feature_views: [{name: x, sorce: y}]\n")
    with pytest.raises(InvalidInput, match=r"feature_views\[0\]: unknown field\(s\) \['sorce'\]"):
        features.load_definitions(tmp_path / "bad.yaml")
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(InvalidInput, match="running the file failed"):
        features.load_definitions(tmp_path / "broken.py")
    with pytest.raises(NotFound):
        features.load_definitions(tmp_path / "missing.py")
