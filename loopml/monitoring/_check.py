"""``check_monitor``: one look at a deployment's recent traffic, stored as a report.

A check reads the window of logged predictions (with feedback labels where they arrived),
runs drift (features, predictions, labels), data quality, performance on labelled rows and
the estimate from calibrated probabilities, stores the JSON and HTML report as blobs in
``monitor_reports`` (lineage deployment → report), updates the alert state and notifies.
An empty window is a result (``rows == 0``: what ``rows < 1`` fires on), not an error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat
import sqlalchemy as sa

from loopml.errors import InvalidInput, NotFound
from loopml.monitoring._alerts import (
    Alert,
    RuleResult,
    apply_rules,
    evaluate_rules,
    parse_rules,
)
from loopml.monitoring._drift import DriftReport, drift_report
from loopml.monitoring._monitor import Monitor, get_monitor
from loopml.monitoring._monitor_html import render_monitor_html
from loopml.monitoring._notify import AlertEvent, as_notifiers, dispatch
from loopml.monitoring._performance import (
    PerformanceReport,
    estimate_performance,
    performance_report,
)
from loopml.monitoring._quality import QualityReport, quality_report
from loopml.monitoring._summary import ColumnSummary, ReferenceSummary, column_kind, finite_values
from loopml.monitoring._tests import TESTS
from loopml.serving import labelled_predictions, read_errors
from loopml.serving._predread import TimeLike, to_ms
from loopml.store import Node, Workspace, add_edge, now_ms
from loopml.store.schema import monitor_reports, monitors

log = logging.getLogger("loopml.monitoring")
_HISTORY: Final = 50  # earlier reports drawn in the drift-over-time chart
_INPUT: Final = "input."
_PROBA: Final = "proba."


@dataclass(frozen=True)
class MonitorCheck:
    """What :func:`check_monitor` found and stored.

    Attributes
    ----------
    monitor, deployment : what was checked.
    report_id : the stored report (``get_report``, ``report_html``).
    rows, labelled_rows : predictions in the window, and those with a feedback label.
    window_start, window_end : the window read (None where open).
    drift, quality, performance : the engine's reports (None when there was nothing to
        compare: no traffic, no labels).
    estimated : accuracy / ROC AUC estimated from probabilities (classifiers).
    metrics : every measured figure by name, what the alert rules read.
    rules : each rule's value and whether it holds (None: not measured).
    fired, resolved : alerts that started firing / were resolved by this check.
    notify_failures : deliveries that failed (logged, never raised).
    skipped : columns left out of the drift tests, with why.
    errors : parts that could not be computed (e.g. labels whose type does not match the
        predictions), with why.
    """

    monitor: str
    deployment: str
    report_id: int
    rows: int
    labelled_rows: int
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    drift: DriftReport | None
    quality: QualityReport | None
    performance: PerformanceReport | None
    estimated: dict[str, float]
    metrics: dict[str, float]
    rules: list[RuleResult]
    fired: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    notify_failures: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def no_traffic(self) -> bool:
        """The window held no predictions."""
        return self.rows == 0


def _dt(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _window(m: Monitor, since: TimeLike, until: TimeLike) -> tuple[int | None, int | None]:
    lo, hi = to_ms(since, "since"), to_ms(until, "until")
    if m.window_ms is not None:
        hi = now_ms() if hi is None else hi
        lo = hi - m.window_ms if lo is None else lo
    if lo is not None and hi is not None and lo >= hi:
        raise InvalidInput(
            f"the window is empty: since ({_dt(lo)}) is not before until ({_dt(hi)})"
        )
    return lo, hi


def _current(m: Monitor, table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(inputs under their own names, the same plus prediction and label columns)."""
    inputs = {c[len(_INPUT) :]: table.column(c) for c in table.column_names if c.startswith(_INPUT)}
    full = dict(inputs)
    if m.prediction and "prediction" in table.column_names:
        full[m.prediction] = table.column("prediction")
    if m.label and "label" in table.column_names and table.column("label").null_count < len(table):
        full[m.label] = table.column("label")
    return pa.table(inputs), pa.table(full)


def _untestable(ref: ColumnSummary, column: pa.ChunkedArray) -> str | None:
    """Why ``column`` cannot be drift-tested against ``ref`` (None: it can)."""
    if column.null_count == len(column):
        return "all null in the window"
    try:
        kind = column_kind(ref.name, column.type)
    except InvalidInput as exc:
        return str(exc)
    if kind != ref.kind:
        return f"{kind} ({column.type}) now, {ref.kind} in the reference"
    if kind == "numeric" and finite_values(ref.name, column)[0].size == 0:
        return "no finite values in the window"
    return None


def _drift(
    m: Monitor, summary: ReferenceSummary, cur: pa.Table, skipped: dict[str, str]
) -> DriftReport | None:
    testable = []
    for name in [*m.features, *(c for c in (m.prediction, m.label) if c)]:
        if name not in cur.column_names or name not in summary.columns:
            if name in m.features:
                skipped[name] = "not in the logged inputs"
            continue
        why = _untestable(summary.columns[name], cur.column(name))
        if why is None:
            testable.append(name)
        else:
            skipped[name] = why
    features = [c for c in testable if c in m.features]
    if not testable:
        return None
    tested = set(testable)
    return drift_report(
        summary,
        cur,
        columns=features,
        tests={k: v for k, v in m.tests.items() if k in tested or k in ("numeric", "categorical")},
        thresholds={k: v for k, v in m.thresholds.items() if k in tested or k in TESTS},
        prediction_column=m.prediction if m.prediction in tested else None,
        label_column=m.label if m.label in tested else None,
        drift_share=m.drift_share,
    )


def _classes(names: Sequence[str], like: np.ndarray[Any, Any] | None) -> list[Any]:
    """Class labels from ``proba.<class>`` suffixes, typed like the labels when possible."""
    if like is None or like.dtype.kind not in "iufb":
        return list(names)
    try:
        if like.dtype.kind == "b":
            return [n == "True" for n in names]
        cast = int if like.dtype.kind in "iu" else float
        return [cast(n) for n in names]
    except ValueError:
        return list(names)


def _proba(table: pa.Table) -> tuple[list[str], np.ndarray[Any, Any] | None]:
    names = [c for c in table.column_names if c.startswith(_PROBA)]
    if not names or table.num_rows == 0:
        return [], None
    matrix = np.column_stack(
        [table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in names]
    )
    return [c[len(_PROBA) :] for c in names], matrix


def _performance(
    m: Monitor, table: pa.Table, errors: dict[str, str]
) -> tuple[PerformanceReport | None, int]:
    if "label" not in table.column_names:
        return None, 0
    labelled = table.filter(pc.is_valid(table.column("label")))
    if labelled.num_rows == 0:
        return None, 0
    y_true = labelled.column("label").to_numpy(zero_copy_only=False)
    y_pred = labelled.column("prediction").to_numpy(zero_copy_only=False)
    names, proba = _proba(labelled)
    if proba is not None and not np.isfinite(proba).all():
        proba = None
    try:
        classes = _classes(names, y_true) if proba is not None else None
        report = performance_report(y_true, y_pred, proba, m.task, labels=classes)
    except InvalidInput as exc:
        errors["performance"] = str(exc)
        return None, labelled.num_rows
    return report, labelled.num_rows


def _estimate(m: Monitor, table: pa.Table, errors: dict[str, str]) -> dict[str, float]:
    if m.task not in ("binary", "multiclass", None):
        return {}
    names, proba = _proba(table)
    if proba is None:
        return {}
    proba = proba[np.isfinite(proba).all(axis=1)]
    if proba.shape[0] == 0:
        return {}
    try:
        return estimate_performance(proba, names)
    except InvalidInput as exc:
        errors["estimated_performance"] = str(exc)
        return {}


def _errors(ws: Workspace, m: Monitor, table: pa.Table, lo: int | None, hi: int | None) -> int:
    """Requests answered with an error over the window's time span (from its first logged
    prediction when the window is a number of rows)."""
    if lo is None and table.num_rows:
        lo = int(pc.min(table.column("ts")).cast(pa.int64()).as_py())
    return int(read_errors(ws, m.deployment, since=_dt(lo), until=_dt(hi)).num_rows)


def _null_rate(column: pa.ChunkedArray) -> float:
    nulls = column.null_count
    if pat.is_floating(column.type):
        nulls += int(pc.sum(pc.is_nan(column.fill_null(0.0))).as_py() or 0)
    return nulls / len(column) if len(column) else 0.0


def _metrics(
    m: Monitor,
    rows: int,
    errors: int,
    labelled: int,
    table: pa.Table,
    inputs: pa.Table,
    drift: DriftReport | None,
    quality: QualityReport | None,
    performance: PerformanceReport | None,
    estimated: Mapping[str, float],
) -> dict[str, float]:
    out: dict[str, float] = {"rows": float(rows), "labelled_rows": float(labelled)}
    out["errors"] = float(errors)
    if rows + errors:
        out["error_rate"] = errors / (rows + errors)
    if rows == 0:
        return out
    if drift is not None:
        out["drift_share"] = drift.drift_share
        out["drifted_columns"] = float(len(drift.drifted_columns))
        out["dataset_drift"] = float(drift.dataset_drift)
        for key, result in (
            ("prediction_drift", drift.prediction_drift),
            ("label_drift", drift.label_drift),
        ):
            if result is not None:
                out[key] = float(result.drifted)
    features = [c for c in m.features if c in inputs.column_names]
    if features:
        out["null_rate"] = max(_null_rate(inputs.column(c)) for c in features)
    if quality is not None:
        out["quality_issues"] = float(len(quality.issues))
        for kind in ("unseen_categories", "out_of_range"):
            out[kind] = float(sum(i.count for i in quality.by_kind(kind)))
    if "latency_ms" in table.column_names:
        latency = table.column("latency_ms").to_numpy(zero_copy_only=False).astype(np.float64)
        latency = latency[np.isfinite(latency)]
        if latency.size:
            out["mean_latency_ms"] = float(latency.mean())
            for q in (50, 95, 99):
                out[f"p{q}_latency_ms"] = float(np.percentile(latency, q))
    if performance is not None:
        out.update(performance.overall)
    out.update({f"estimated_{k}": v for k, v in estimated.items()})
    return out


def _history(ws: Workspace, name: str) -> list[dict[str, Any]]:
    t = monitor_reports
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(t.c.summary)
            .where(t.c.monitor == name, t.c.drift_share.is_not(None))
            .order_by(t.c.created_at.desc(), t.c.id.desc())
            .limit(_HISTORY)
        ).scalars()
        return [dict(s) for s in reversed(list(rows))]


def check_monitor(
    ws: Workspace,
    name: str,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    notify: Sequence[object] | object | None = None,
) -> MonitorCheck:
    """Check monitor ``name`` now: compare its window of traffic with the reference.

    Parameters
    ----------
    ws : the workspace.
    name : the monitor.
    since, until : override the window (datetimes, ISO strings or durations back from now
        such as ``"2h"``); a time window's other end follows from its length.
    notify : extra notifiers for this check: callables ``fn(event)``, notifier objects, or
        spec strings; added to the monitor's own.

    Returns
    -------
    MonitorCheck

    Raises
    ------
    NotFound
        No such monitor.
    InvalidInput
        A malformed time, an empty window, or a bad notifier.

    Examples
    --------
    >>> result = check_monitor(ws, "churn", notify=lambda e: print(e.text))  # doctest: +SKIP
    >>> result.metrics["drift_share"], [a.rule for a in result.fired]  # doctest: +SKIP
    """
    m = get_monitor(ws, name)
    notifiers = as_notifiers(m.notify) + as_notifiers(notify)
    rules = parse_rules(m.rules)
    lo, hi = _window(m, since, until)
    table = labelled_predictions(
        ws, m.deployment, since=_dt(lo), until=_dt(hi), limit=m.window_rows, role=m.role
    )
    summary = m.summary(ws)
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    rows = table.num_rows
    inputs, cur = _current(m, table)
    drift = quality = performance = None
    estimated: dict[str, float] = {}
    labelled = 0
    if rows:
        drift = _drift(m, summary, cur, skipped)
        features = ReferenceSummary(
            summary.num_rows, {c: summary.columns[c] for c in m.features if c in summary.columns}
        )
        quality = quality_report(features, inputs) if inputs.num_columns else None
        performance, labelled = _performance(m, table, errors)
        estimated = _estimate(m, table, errors)
    failed = _errors(ws, m, table, lo, hi)
    metrics = _metrics(
        m, rows, failed, labelled, table, inputs, drift, quality, performance, estimated
    )
    results = evaluate_rules(rules, metrics)
    if rows and m.window_ms is None:  # a row window spans the rows read
        ts = table.column("ts").cast(pa.int64())
        lo = lo if lo is not None else int(pc.min(ts).as_py())
        hi = hi if hi is not None else int(pc.max(ts).as_py()) + 1
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report = {
        "monitor": m.name,
        "deployment": m.deployment,
        "reference": m.reference,
        "created_at": created,
        "window": {"start": lo, "end": hi, "window": m.window, "window_rows": m.window_rows},
        "rows": rows,
        "labelled_rows": labelled,
        "metrics": metrics,
        "rules": [r.to_dict() for r in results],
        "drift": drift.to_dict() if drift else None,
        "quality": quality.to_dict() if quality else None,
        "performance": performance.to_dict() if performance else None,
        "estimated_performance": estimated,
        "skipped_columns": skipped,
        "errors": errors,
    }
    page = render_monitor_html(report, _history(ws, m.name))
    report_digest = ws.blobs.put_bytes(json.dumps(report, ensure_ascii=False).encode())
    html_digest = ws.blobs.put_bytes(page.encode())
    headline = {
        "created_at": created,
        "rows": rows,
        "drift_share": drift.drift_share if drift else None,
        "drift_share_threshold": m.drift_share,
        "dataset_drift": drift.dataset_drift if drift else None,
        "drifted_columns": drift.drifted_columns if drift else [],
        "metrics": metrics,
    }
    with ws.db.write() as conn:
        # one check at a time per monitor (PostgreSQL row lock; SQLite's write lock already)
        locked = conn.execute(
            sa.select(monitors.c.name).where(monitors.c.name == m.name).with_for_update()
        ).first()
        if locked is None:
            raise NotFound(f"monitor {m.name!r} was deleted during the check")
        key = conn.execute(
            monitor_reports.insert().values(
                monitor=m.name,
                window_start=lo,
                window_end=hi,
                num_rows=rows,
                drift_share=headline["drift_share"],
                summary=headline,
                report_digest=report_digest,
                html_digest=html_digest,
                created_at=now_ms(),
            )
        ).inserted_primary_key
        assert key is not None
        report_id = int(key[0])
        add_edge(
            ws.db,
            conn,
            Node("deployment", m.deployment),
            Node("monitor_report", str(report_id)),
            "monitored",
        )
        changes = apply_rules(conn, m.name, results)
    events = [
        AlertEvent(
            m.name, m.deployment, a.rule, a.state, a.value, a.message, a.id, report_id, created
        )
        for a, _ in changes
    ]
    failures = dispatch(notifiers, events)
    return MonitorCheck(
        monitor=m.name,
        deployment=m.deployment,
        report_id=report_id,
        rows=rows,
        labelled_rows=labelled,
        window_start=_dt(lo),
        window_end=_dt(hi),
        drift=drift,
        quality=quality,
        performance=performance,
        estimated=estimated,
        metrics=metrics,
        rules=results,
        fired=[a for a, _ in changes if a.state == "firing"],
        resolved=[a for a, _ in changes if a.state == "resolved"],
        notify_failures=failures,
        skipped=skipped,
        errors=errors,
    )


__all__ = ["MonitorCheck", "check_monitor"]
