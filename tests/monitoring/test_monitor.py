"""Monitors on a real deployment: the reference found by lineage and summarised once,
checks that find drift only when there is drift, stored JSON + HTML reports with drift
over time, lineage, labels giving performance, an empty window, and precise errors."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from loopml.data import ingest
from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.monitoring import (
    Monitor,
    check_monitor,
    create_monitor,
    delete_monitor,
    get_monitor,
    get_report,
    list_monitors,
    list_reports,
    report_html,
)
from loopml.registry import register_model, set_alias
from loopml.serving import deploy
from loopml.store import Node, Workspace, now_ms, upstream
from tests.monitoring._deployed import FEATURES, customers, deployed, log_labels, log_traffic


@pytest.fixture
def churn(ws: Workspace) -> Workspace:
    deployed(ws)
    return ws


def test_create_finds_the_training_data_by_lineage_and_summarises_it_once(
    churn: Workspace,
) -> None:
    m = create_monitor(churn, "churn-mon", "churn", rules=["drift_share > 0.3"], notify=["log"])
    assert m.reference == {
        "dataset": "churn@1",
        "source": "lineage",
        "model_version": "churn/1",
        "run": m.reference["run"],
        "rows": 600,
    }
    assert (m.features, m.label, m.prediction, m.task) == (
        FEATURES,
        "churned",
        "prediction",
        "binary",
    )
    assert (m.window, m.window_rows, m.role) == ("1h", None, "primary")
    summary = m.summary(churn)
    assert list(summary.columns) == [*FEATURES, "churned", "prediction"]
    assert summary.columns["plan"].kind == "categorical" and summary.num_rows == 600
    assert get_monitor(churn, "churn-mon") == m
    assert [x.name for x in list_monitors(churn)] == ["churn-mon"]
    assert list_monitors(churn, deployment="other") == []
    edges = upstream(churn.db, Node("monitor", "churn-mon"), max_depth=1)
    assert {(str(e.src), e.role) for e in edges} == {
        ("dataset_version:churn@1", "reference"),
        ("deployment:churn", "watched_by"),
    }


def test_check_finds_drift_only_when_the_traffic_drifted(churn: Workspace) -> None:
    create_monitor(churn, "churn", "churn", window="1h")
    log_traffic(churn, customers(300, seed=2), "same")
    boundary = dt.datetime.fromtimestamp(now_ms() / 1000, tz=dt.UTC)
    while now_ms() <= int(boundary.timestamp() * 1000):  # the next batch gets a later ms
        pass
    calm = check_monitor(churn, "churn", until=boundary + dt.timedelta(milliseconds=1))
    assert calm.rows == 300 and calm.drift is not None
    assert calm.drift.drifted_columns == [] and not calm.drift.dataset_drift
    assert calm.drift.prediction_drift is not None and not calm.drift.prediction_drift.drifted
    assert calm.quality is not None and calm.quality.by_kind("unseen_categories") == []
    assert calm.metrics["drift_share"] == 0.0 and calm.performance is None

    log_traffic(churn, customers(300, seed=3, shifted=True), "older")
    drifted = check_monitor(churn, "churn", since=boundary + dt.timedelta(milliseconds=1))
    assert drifted.rows == 300
    assert drifted.drift is not None and drifted.drift.drifted_columns == ["age", "plan"]
    assert drifted.drift.prediction_drift is not None and drifted.drift.prediction_drift.drifted
    assert drifted.metrics["drifted_columns"] == 2.0 and drifted.metrics["dataset_drift"] == 1.0
    # classifier without labels: accuracy estimated from the logged probabilities
    assert 0.5 < drifted.estimated["accuracy"] <= 1.0 and "roc_auc" in drifted.estimated
    assert drifted.metrics["estimated_accuracy"] == drifted.estimated["accuracy"]
    assert drifted.metrics["p99_latency_ms"] == 2.0

    both = check_monitor(churn, "churn")  # the default window: the last hour holds both
    assert both.rows == 600


def test_reports_are_stored_with_html_drift_over_time_and_lineage(churn: Workspace) -> None:
    create_monitor(churn, "churn", "churn", window_rows=250)
    log_traffic(churn, customers(250, seed=2), "a")
    first = check_monitor(churn, "churn")
    log_traffic(churn, customers(250, seed=3, shifted=True), "b")
    second = check_monitor(churn, "churn")
    assert second.report_id > first.report_id

    stored = get_report(churn, second.report_id)
    assert stored["id"] == second.report_id and stored["rows"] == 250
    assert stored["drift"]["drifted_columns"] == ["age", "plan"]
    assert stored["metrics"] == second.metrics
    assert stored["window"]["window_rows"] == 250 and stored["window"]["start"] is not None

    page = report_html(churn, second.report_id)
    assert page.startswith("<!DOCTYPE html>") and "Drift share over time" in page
    assert "Monitor churn · deployment churn" in page and "<script" not in page
    for section in ("Window", "Data quality", "Performance", "Latency"):
        assert f"<h2>{section}</h2>" in page
    assert "Drift share over time" not in report_html(churn, first.report_id)  # no history yet

    listed = list_reports(churn, "churn")
    assert [r.id for r in listed] == [second.report_id, first.report_id]
    assert listed[0].drift_share == pytest.approx(2 / 3) and listed[1].drift_share == 0.0
    assert listed[0].rows == 250 and listed[0].summary["drifted_columns"] == ["age", "plan"]

    src = upstream(churn.db, Node("monitor_report", str(second.report_id)), max_depth=1)
    assert [(str(e.src), e.role) for e in src] == [("deployment:churn", "monitored")]


def test_labels_from_feedback_give_performance(churn: Workspace) -> None:
    create_monitor(churn, "churn", "churn", rules=["accuracy < 0.99", "label_drift > 0"])
    frame = customers(300, seed=3, shifted=True)
    ids = log_traffic(churn, frame, "r")
    log_labels(churn, ids[:200], frame["churned"][:200].tolist())
    result = check_monitor(churn, "churn")
    assert (result.rows, result.labelled_rows) == (300, 200)
    assert result.performance is not None and result.performance.task == "binary"
    predicted = result.performance.overall
    assert 0.5 < predicted["accuracy"] < 0.99 and "roc_auc" in predicted
    assert result.metrics["accuracy"] == predicted["accuracy"]
    assert result.drift is not None and result.drift.label_drift is not None
    assert result.drift.label_drift.current_rows == 200
    assert {a.rule for a in result.fired} == {"accuracy < 0.99", "label_drift > 0"}


def test_no_traffic_is_a_result_and_fires_the_rows_rule(churn: Workspace) -> None:
    create_monitor(churn, "churn", "churn", rules=["rows < 1", "drift_share > 0.3"])
    result = check_monitor(churn, "churn")
    assert result.no_traffic and result.drift is None and result.quality is None
    assert result.metrics == {"rows": 0.0, "labelled_rows": 0.0, "errors": 0.0}
    assert [a.rule for a in result.fired] == ["rows < 1"]
    assert [(r.rule, r.firing) for r in result.rules] == [
        ("rows < 1", True),
        ("drift_share > 0.3", None),
    ]
    page = report_html(churn, result.report_id)
    assert "No predictions in this window." in page
    assert get_report(churn, result.report_id)["drift"] is None


def test_a_null_feature_is_reported_not_a_crash(churn: Workspace) -> None:
    create_monitor(churn, "churn", "churn", rules=["null_rate > 0.5"])
    frame = customers(100, seed=2)
    frame["income"] = float("nan")
    log_traffic(churn, frame, "n")
    result = check_monitor(churn, "churn")
    assert result.skipped == {"income": "all null in the window"}
    assert result.drift is not None and "income" not in result.drift.columns
    assert result.metrics["null_rate"] == 1.0 and [a.rule for a in result.fired] == [
        "null_rate > 0.5"
    ]
    assert result.quality is not None and result.quality.by_kind("null_rate")[0].column == "income"


def test_given_reference_replace_and_delete(churn: Workspace) -> None:
    ingest(customers(400, seed=9), "fresh", workspace=churn)
    m = create_monitor(
        churn, "churn", "churn", reference="fresh@1", window_rows=50, label="churned"
    )
    assert m.reference["dataset"] == "fresh@1" and m.reference["source"] == "given"
    with pytest.raises(AlreadyExists, match="replace=True"):
        create_monitor(churn, "churn", "churn")
    replaced = create_monitor(churn, "churn", "churn", replace=True, rules=["rows < 1"])
    assert replaced.reference["dataset"] == "churn@1" and replaced.rules == ["rows < 1"]
    assert replaced.created_at == m.created_at
    check_monitor(churn, "churn")
    delete_monitor(churn, "churn")
    assert list_monitors(churn) == []
    with pytest.raises(NotFound, match="no monitor named 'churn'; none exist yet"):
        get_monitor(churn, "churn")


def test_bad_inputs_raise_precise_errors(churn: Workspace) -> None:
    with pytest.raises(NotFound, match="no deployment named 'nope'"):
        create_monitor(churn, "m", "nope")
    with pytest.raises(InvalidInput, match="monitor name 'bad name'"):
        create_monitor(churn, "bad name", "churn")
    with pytest.raises(InvalidInput, match="window '5 parsecs'"):
        create_monitor(churn, "m", "churn", window="5 parsecs")
    with pytest.raises(InvalidInput, match="not both"):
        create_monitor(churn, "m", "churn", window="1h", window_rows=10)
    with pytest.raises(InvalidInput, match="window_rows must be"):
        create_monitor(churn, "m", "churn", window_rows=0)
    with pytest.raises(InvalidInput, match="at position 12: expected an operator"):
        create_monitor(churn, "m", "churn", rules=["drift_share 0.3"])
    with pytest.raises(InvalidInput, match="notify 'email:x'"):
        create_monitor(churn, "m", "churn", notify=["email:x"])
    with pytest.raises(InvalidInput, match="thresholds: 'salary'"):
        create_monitor(churn, "m", "churn", thresholds={"salary": 0.2})
    with pytest.raises(InvalidInput, match="unknown drift test 'tt'"):
        create_monitor(churn, "m", "churn", tests={"age": "tt"})
    with pytest.raises(NotFound, match="no dataset named 'ghost'"):
        create_monitor(churn, "m", "churn", reference="ghost@1")
    ingest(customers(50, seed=1).drop(columns=["plan"]), "partial", workspace=churn)
    with pytest.raises(InvalidInput, match="reference partial@1 lacks the model's input column"):
        create_monitor(churn, "m", "churn", reference="partial@1")
    with pytest.raises(InvalidInput, match="label column 'target'"):
        create_monitor(churn, "m", "churn", label="target")
    assert list_monitors(churn) == []  # nothing half-created
    create_monitor(churn, "m", "churn")
    with pytest.raises(InvalidInput, match=r"since .* is not before until"):
        check_monitor(churn, "m", since="2026-01-02T00:00", until="2026-01-01T00:00")
    with pytest.raises(InvalidInput, match="until 'yesterday' is not a time"):
        check_monitor(churn, "m", until="yesterday")
    with pytest.raises(NotFound, match="no monitor named 'other'; monitors: 'm'"):
        check_monitor(churn, "other")
    with pytest.raises(NotFound, match="no monitor report with id 999"):
        get_report(churn, 999)
    with pytest.raises(InvalidInput, match="report id must be a positive integer"):
        report_html(churn, "1")  # type: ignore[arg-type]


def test_a_model_registered_without_a_run_needs_a_reference(ws: Workspace) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = customers(100, seed=1)
    X = frame[["age", "income"]]
    register_model(ws, LogisticRegression().fit(X, frame["churned"]), "bare", input_example=X)
    set_alias(ws, "bare", "production", 1)
    deploy(ws, "bare")
    with pytest.raises(NotFound, match="bare/1 has no run in its lineage"):
        create_monitor(ws, "bare", "bare")
    ingest(frame, "bare-data", workspace=ws)
    m = create_monitor(ws, "bare", "bare", reference="bare-data@1")
    assert isinstance(m, Monitor) and m.label is None and m.features == ["age", "income"]
    assert m.task is None and m.prediction == "prediction"
    assert pd.Series(m.summary(ws).columns).index.tolist() == ["age", "income", "prediction"]


def test_public_surface_of_monitors_and_alerts() -> None:
    import loopml.monitoring as mon

    added = {
        "ESTIMATED_METRICS", "METRICS", "PERFORMANCE_METRICS", "Alert", "AlertEvent",
        "CallbackNotifier", "LogNotifier", "Monitor", "MonitorCheck", "MonitorReport", "Notifier",
        "Rule", "RuleResult", "WebhookNotifier", "check_monitor", "create_monitor",
        "delete_monitor", "get_monitor", "get_report", "list_alerts", "list_monitors",
        "list_reports", "parse_rule", "report_html",
    }  # fmt: skip
    assert added <= set(mon.__all__)
    assert all(hasattr(mon, name) for name in mon.__all__)


def test_labels_of_another_type_are_reported_not_a_crash(sqlite_ws: Workspace) -> None:
    deployed(sqlite_ws)
    create_monitor(sqlite_ws, "churn", "churn")
    ids = log_traffic(sqlite_ws, customers(50, seed=2), "x")
    log_labels(sqlite_ws, ids, ["yes"] * 50)  # type: ignore[list-item]
    result = check_monitor(sqlite_ws, "churn")
    assert result.performance is None and "performance" in result.errors
    assert result.skipped["churned"] == "categorical (string) now, numeric in the reference"
    assert "<h2>Not compared</h2>" in report_html(sqlite_ws, result.report_id)


def test_error_rate_counts_requests_answered_with_an_error(churn: Workspace) -> None:
    from loopml.serving import PredictionLogger, read_errors

    create_monitor(churn, "churn", "churn", rules=["error_rate > 0.2"])
    log_traffic(churn, customers(60, seed=2), "ok")
    logger = PredictionLogger(churn)
    for i in range(20):
        logger.log_error("churn", f"bad-{i}", 422, "field 'age': expected int64")
    logger.close()
    assert read_errors(churn, "churn").column("status").to_pylist() == [422] * 20
    result = check_monitor(churn, "churn")
    assert result.metrics["errors"] == 20 and result.metrics["error_rate"] == 0.25
    assert [a.rule for a in result.fired] == ["error_rate > 0.2"]
