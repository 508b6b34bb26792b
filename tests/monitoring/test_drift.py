"""drift_report: the test per column and its threshold, the right columns flagged, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

import loopml.monitoring as mon
from loopml.errors import InvalidInput
from loopml.store import Workspace

from .conftest import SHIFTED_CAT, SHIFTED_NUM, drift_frames

EXPECTED = SHIFTED_NUM + SHIFTED_CAT


def test_public_surface() -> None:
    assert set(mon.__all__) == {
        "ColumnDrift", "ColumnSummary", "DriftReport", "PerformanceReport", "QualityIssue",
        "QualityReport", "ReferenceSummary", "WindowPerformance", "drift_report",
        "estimate_performance", "performance_report", "quality_report",
        # monitors and alerts
        "ESTIMATED_METRICS", "METRICS", "PERFORMANCE_METRICS", "Alert", "AlertEvent",
        "CallbackNotifier", "LogNotifier", "Monitor", "MonitorCheck", "MonitorReport", "Notifier",
        "Rule", "RuleResult", "WebhookNotifier", "check_monitor", "create_monitor",
        "delete_monitor", "get_monitor", "get_report", "list_alerts", "list_monitors",
        "list_reports", "parse_rule", "report_html",
        # training/serving skew
        "FeatureSkew", "SkewReport", "skew_report",
    }  # fmt: skip


@pytest.mark.parametrize("n", [500, 2_000, 60_000])
def test_flags_exactly_the_shifted_columns(n: int) -> None:
    ref, cur = drift_frames(n)
    report = mon.drift_report(ref, cur)
    assert report.drifted_columns == EXPECTED
    assert report.drift_share == pytest.approx(5 / 16)
    assert not report.dataset_drift
    small = n <= 1_000
    assert report.columns["num0"].test == ("ks" if small else "wasserstein")
    assert report.columns["cat0"].test == ("chi2" if small else "jensenshannon")


@pytest.mark.parametrize("n", [500, 5_000, 60_000])
def test_no_false_alarm_on_the_same_distribution(n: int) -> None:
    ref, _ = drift_frames(n, seed=1)
    other, _ = drift_frames(n, seed=1)  # same generator parameters, fresh draws
    other = other.sample(frac=1.0, random_state=3).reset_index(drop=True)
    again, _ = drift_frames(n, seed=1)
    report = mon.drift_report(ref, again.iloc[::-1].reset_index(drop=True))
    assert report.drifted_columns == []
    assert mon.drift_report(ref, other).drifted_columns == []


def test_small_statistics_match_scipy() -> None:
    ref, cur = drift_frames(300, seed=4)
    report = mon.drift_report(ref, cur, tests={"cat1": "chi2", "num5": "wasserstein"})
    ks = stats.ks_2samp(ref["num1"], cur["num1"])
    assert report.columns["num1"].statistic == pytest.approx(ks.statistic)
    assert report.columns["num1"].p_value == pytest.approx(ks.pvalue)
    w = stats.wasserstein_distance(ref["num5"], cur["num5"]) / ref["num5"].std()
    assert report.columns["num5"].statistic == pytest.approx(w)
    levels = sorted(set(ref["cat1"]) | set(cur["cat1"]))
    table = np.array([[(ref["cat1"] == v).sum(), (cur["cat1"] == v).sum()] for v in levels]).T
    chi = stats.chi2_contingency(table, correction=False)
    assert report.columns["cat1"].statistic == pytest.approx(chi.statistic)
    assert report.columns["cat1"].p_value == pytest.approx(chi.pvalue)
    assert report.columns["num1"].threshold == pytest.approx(0.05 / 16)  # Bonferroni


def test_large_reference_approximations_are_close_to_scipy() -> None:
    ref, cur = drift_frames(40_000, seed=5)
    report = mon.drift_report(ref, cur, tests={"num2": "ks"})
    ks = stats.ks_2samp(ref["num2"], cur["num2"])
    assert report.columns["num2"].statistic == pytest.approx(ks.statistic, abs=2e-3)
    for col in ("num0", "num7"):
        w = stats.wasserstein_distance(ref[col], cur[col]) / ref[col].std()
        assert report.columns[col].statistic == pytest.approx(w, abs=5e-3)
    counts = pd.concat([ref["cat2"].value_counts(), cur["cat2"].value_counts()], axis=1)
    js = jensenshannon(counts.iloc[:, 0] / len(ref), counts.iloc[:, 1] / len(cur))
    assert report.columns["cat2"].statistic == pytest.approx(js)


def test_psi_against_a_direct_computation() -> None:
    ref, cur = drift_frames(5_000, seed=6)
    report = mon.drift_report(ref, cur, tests={"num0": "psi", "cat0": "psi"})
    edges = np.unique(np.quantile(ref["num0"], np.linspace(0.1, 0.9, 9)))
    r = np.diff(np.r_[0, np.searchsorted(np.sort(ref["num0"]), edges, "right"), 5_000]) / 5_000
    c = np.diff(np.r_[0, np.searchsorted(np.sort(cur["num0"]), edges, "right"), 5_000]) / 5_000
    assert report.columns["num0"].statistic == pytest.approx(np.sum((c - r) * np.log(c / r)))
    assert report.columns["num0"].drifted and report.columns["cat0"].drifted
    assert report.columns["num1"].test == "wasserstein"


def test_overrides_thresholds_prediction_and_label() -> None:
    ref, cur = drift_frames(3_000, seed=7)
    ref["pred"], cur["pred"] = ref["num0"] > 0, cur["num0"] > 0
    ref["y"], cur["y"] = ref["cat1"], cur["cat1"]
    report = mon.drift_report(
        ref, cur, columns=["num0", "num1"], prediction_column="pred", label_column="y",
        tests={"numeric": "ks"}, thresholds={"num0": 1e-300, "ks": 0.2},
    )  # fmt: skip
    assert list(report.columns) == ["num0", "num1", "pred", "y"]
    assert report.columns["num0"].threshold == 1e-300 and not report.columns["num0"].drifted
    assert report.columns["num1"].threshold == 0.2
    assert report.prediction_drift is not None and report.prediction_drift.kind == "categorical"
    assert report.label_drift is not None and not report.label_drift.drifted
    num1 = report.columns["num1"]
    assert num1.drifted == (num1.p_value is not None and num1.p_value < 0.2)
    assert report.prediction_drift.drifted  # num0 shifted, so did "num0 > 0"


def test_summary_and_arrow_inputs_give_the_same_report() -> None:
    ref, cur = drift_frames(20_000, seed=8)
    summary = mon.ReferenceSummary.from_bytes(mon.ReferenceSummary.summarize(ref).to_bytes())
    a = mon.drift_report(summary, pa.Table.from_pandas(cur))
    b = mon.drift_report(ref, cur)
    assert {c: r.statistic for c, r in a.columns.items()} == {
        c: r.statistic for c, r in b.columns.items()
    }
    back = mon.DriftReport.from_dict(a.to_dict())
    assert back.drifted_columns == a.drifted_columns == EXPECTED
    assert '"drift_share"' in a.to_json()


def test_dataset_reference_resolves_through_loopml_data(sqlite_ws: Workspace) -> None:
    from loopml import data

    ref, cur = drift_frames(2_000, seed=9)
    data.ingest(ref, name="drift_ref", workspace=sqlite_ws)
    report = mon.drift_report("drift_ref@1", cur, workspace=sqlite_ws)
    assert report.drifted_columns == EXPECTED


def test_nulls_nan_and_timestamps() -> None:
    n = 3_000
    rng = np.random.default_rng(10)
    x = rng.normal(size=n)
    x[::10] = np.nan
    t = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s")
    ref = pd.DataFrame({"x": x, "t": t, "flag": rng.random(n) > 0.5})
    cur = ref.copy()
    cur.loc[: n // 2, "x"] = None
    report = mon.drift_report(ref, cur)
    assert report.columns["x"].reference_null_fraction == pytest.approx(0.1)
    assert report.columns["x"].current_null_fraction > 0.5
    assert report.columns["t"].kind == "numeric" and report.columns["flag"].kind == "categorical"


@pytest.mark.parametrize(
    ("ref", "cur", "kwargs", "match"),
    [
        (pd.DataFrame({"a": []}), pd.DataFrame({"a": [1.0]}), {}, "reference has no rows"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": []}), {}, "current has no rows"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [1.0]}), {}, "share no column"),
        (pd.DataFrame({"a": [1.0, 2]}), pd.DataFrame({"a": [1.0]}), {"columns": ["z"]}, "'z'"),
        (pd.DataFrame({"a": [None, None]}), pd.DataFrame({"a": [1.0]}), {}, "'a' is all null"),
        (pd.DataFrame({"a": [1.0, 2]}), pd.DataFrame({"a": [np.nan]}), {}, "'a' is all null"),
        (pd.DataFrame({"a": [[1], [2]]}), pd.DataFrame({"a": [[1]]}), {}, "'a' has type list"),
        (pd.DataFrame({"a": [1.0, 2]}), pd.DataFrame({"a": ["x"]}), {}, "'a' is numeric in"),
        (pd.DataFrame({"a": ["x"]}), pd.DataFrame({"a": ["x"]}), {"tests": {"a": "ks"}}, "'a'"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0]}), {"tests": {"a": "t"}}, "'t'"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0]}), {"thresholds": {"a": -1}}, "'a'"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0]}), {"thresholds": {"q": 1}}, "'q'"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0]}), {"thresholds": {"ks": 2}}, "'a'"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0]}), {"drift_share": 0}, "share"),
        ([1, 2], pd.DataFrame({"a": [1.0]}), {}, "reference must be"),
    ],
)
def test_bad_input_names_the_problem(ref: object, cur: object, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        mon.drift_report(ref, cur, **kwargs)
