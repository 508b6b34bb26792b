"""Alert rules and their state.

A rule is ``<metric> <op> <number>``, e.g. ``drift_share > 0.3``, ``accuracy < 0.8``,
``p99_latency_ms > 250`` or ``rows < 1`` (missing traffic); ``op`` is one of
``> >= < <= == !=``. The metrics are those a monitor check measures (:data:`METRICS`).

State lives in the ``alerts`` table, one row per firing episode: a rule that becomes true
opens one ``firing`` row; while it stays true, later checks only refresh its value (no new
row, no repeated notification); when it becomes false the row is marked ``resolved``. A
rule whose metric was not measured (no traffic, no labels yet) keeps its state.

``error_rate`` counts the requests the server answered with an error (4xx/5xx for a
served model or deployment), which it logs beside the predictions.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.errors import InvalidInput
from loopml.monitoring._notify import State
from loopml.store import Workspace, now_ms
from loopml.store.schema import alerts as alerts_table

#: what a check measures, metric -> meaning
METRICS: Final[dict[str, str]] = {
    "rows": "predictions in the window (rows < 1 fires on missing traffic)",
    "errors": "requests in the window answered with an error",
    "error_rate": "share of requests in the window answered with an error",
    "drift_share": "share of feature columns that drifted",
    "drifted_columns": "number of feature columns that drifted",
    "dataset_drift": "1 when the drift share reached the monitor's drift_share, else 0",
    "prediction_drift": "1 when the prediction column drifted, else 0",
    "label_drift": "1 when the feedback labels drifted from the reference target, else 0",
    "null_rate": "the largest share of nulls in any feature column",
    "unseen_categories": "rows with a category the reference never held",
    "out_of_range": "numeric values outside the reference's range",
    "quality_issues": "number of data-quality issues found",
    "labelled_rows": "predictions in the window with a feedback label",
    "mean_latency_ms": "mean prediction latency",
    "p50_latency_ms": "median prediction latency",
    "p95_latency_ms": "95th percentile of prediction latency",
    "p99_latency_ms": "99th percentile of prediction latency",
}
#: performance metrics measured on labelled rows (as loopml.training.evaluate names them)
PERFORMANCE_METRICS: Final = frozenset(
    {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "roc_auc_ovr",
        "rmse",
        "mae",
        "r2",
        "mape",
        *(
            f"{m}_{a}"
            for m in ("precision", "recall", "f1")
            for a in ("micro", "macro", "weighted")
        ),
    }
)
#: estimated without labels from calibrated probabilities (classifiers)
ESTIMATED_METRICS: Final = frozenset(
    {"estimated_accuracy", "estimated_roc_auc", "estimated_roc_auc_ovr"}
)
OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_MAX_RULE = 512  # alerts.rule


def known_metric(name: str) -> bool:
    """Whether rules may use ``name``."""
    return name in METRICS or name in PERFORMANCE_METRICS or name in ESTIMATED_METRICS


@dataclass(frozen=True)
class Rule:
    """A parsed rule: fires when ``metric op threshold`` holds."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    def holds(self, value: float) -> bool:
        """Whether the rule is true for ``value``."""
        return OPS[self.op](value, self.threshold)


def _error(text: str, pos: int, what: str) -> InvalidInput:
    pointer = f"{text}\n{' ' * pos}^"
    return InvalidInput(f"alert rule {text!r}: at position {pos}: {what}\n{pointer}")


def parse_rule(text: object) -> Rule:
    """Parse ``<metric> <op> <number>``.

    Raises
    ------
    InvalidInput
        Not a string, an unknown metric, a missing or unknown operator, a bad number or
        trailing text; the message gives the position (0-based) and points at it.

    Examples
    --------
    >>> parse_rule("drift_share > 0.3")
    Rule(metric='drift_share', op='>', threshold=0.3)
    """
    if not isinstance(text, str):
        raise InvalidInput(f"an alert rule must be a string, not {type(text).__name__}")
    if len(text) > _MAX_RULE:
        raise InvalidInput(f"alert rule is longer than {_MAX_RULE} characters")
    pos = len(text) - len(text.lstrip())
    ident = _IDENT.match(text, pos)
    if ident is None:
        raise _error(text, pos, "expected a metric name, e.g. drift_share")
    metric = ident.group()
    if not known_metric(metric):
        names = ", ".join(sorted(METRICS))
        raise _error(
            text,
            pos,
            f"unknown metric {metric!r}; use one of {names}, a performance metric "
            "(accuracy, f1, roc_auc, rmse, ...) or estimated_accuracy / estimated_roc_auc",
        )
    pos = _skip(text, ident.end())
    op = next((o for o in OPS if text.startswith(o, pos)), None)  # two-char ops first
    if op is None:
        raise _error(text, pos, f"expected an operator ({' '.join(OPS)})")
    pos = _skip(text, pos + len(op))
    number = _NUMBER.match(text, pos)
    if number is None:
        raise _error(text, pos, "expected a number")
    value = float(number.group())
    if not math.isfinite(value):
        raise _error(text, pos, "the threshold must be finite")
    end = _skip(text, number.end())
    if end != len(text):
        raise _error(text, end, f"unexpected {text[end:]!r} after the number")
    return Rule(metric, op, value)


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def parse_rules(rules: Sequence[object] | None) -> list[Rule]:
    """Parse a list of rules (a single string is refused: pass a list)."""
    if rules is None:
        return []
    if isinstance(rules, str):
        raise InvalidInput(f"rules must be a list of rule strings, e.g. [{rules!r}]")
    parsed = [parse_rule(r) for r in rules]
    seen: set[str] = set()
    for r in parsed:
        if str(r) in seen:
            raise InvalidInput(f"alert rule {str(r)!r} is given twice")
        seen.add(str(r))
    return parsed


@dataclass(frozen=True)
class RuleResult:
    """One rule at one check: ``value`` (None when not measured) and whether it held."""

    rule: str
    metric: str
    value: float | None
    firing: bool | None  # None: not evaluated (the metric was not measured)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "rule": self.rule,
            "metric": self.metric,
            "value": self.value,
            "firing": self.firing,
        }


def evaluate_rules(rules: Sequence[Rule], metrics: Mapping[str, float]) -> list[RuleResult]:
    """Each rule against the measured ``metrics`` (pure: no state)."""
    out = []
    for r in rules:
        value = metrics.get(r.metric)
        if value is None or not math.isfinite(value):
            out.append(RuleResult(str(r), r.metric, None, None))
        else:
            out.append(RuleResult(str(r), r.metric, float(value), r.holds(float(value))))
    return out


@dataclass(frozen=True)
class Alert:
    """A row of the ``alerts`` table: one firing episode of a rule of ``source``."""

    id: int
    source: str
    rule: str
    state: State
    value: float | None
    message: str
    fired_at: dt.datetime
    resolved_at: dt.datetime | None
    updated_at: dt.datetime


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _alert(r: Any) -> Alert:
    fired, updated = _time(r.fired_at), _time(r.updated_at)
    assert fired is not None and updated is not None
    return Alert(
        r.id, r.source, r.rule, r.state, r.value, r.message, fired, _time(r.resolved_at), updated
    )


def message_for(result: RuleResult, state: State) -> str:
    """The human line of a transition."""
    value = "n/a" if result.value is None else f"{result.value:.6g}"
    if state == "firing":
        return f"{result.rule} (now {value})"
    return f"{result.rule} no longer holds (now {value})"


def apply_rules(
    conn: Connection, source: str, results: Sequence[RuleResult]
) -> list[tuple[Alert, RuleResult]]:
    """Update the alert state of ``source`` inside the caller's write transaction.

    Returns the transitions: newly firing and newly resolved alerts (with their result).
    Rules that keep firing only get their value and ``updated_at`` refreshed.
    """
    t = alerts_table
    now = now_ms()
    open_rows = {
        r.rule: r
        for r in conn.execute(sa.select(t).where(t.c.source == source, t.c.state == "firing"))
    }
    changed: list[tuple[int, RuleResult]] = []
    for res in results:
        current = open_rows.get(res.rule)
        if res.firing is None:
            continue
        if res.firing and current is None:
            row = {
                "source": source,
                "rule": res.rule,
                "state": "firing",
                "value": res.value,
                "message": message_for(res, "firing"),
                "fired_at": now,
                "resolved_at": None,
                "updated_at": now,
            }
            key = conn.execute(t.insert().values(**row)).inserted_primary_key
            assert key is not None
            changed.append((int(key[0]), res))
        elif res.firing and current is not None:
            conn.execute(
                t.update()
                .where(t.c.id == current.id)
                .values(value=res.value, updated_at=now, message=message_for(res, "firing"))
            )
        elif not res.firing and current is not None:
            conn.execute(
                t.update()
                .where(t.c.id == current.id)
                .values(
                    state="resolved",
                    value=res.value,
                    resolved_at=now,
                    updated_at=now,
                    message=message_for(res, "resolved"),
                )
            )
            changed.append((int(current.id), res))
    if not changed:
        return []
    ids = [i for i, _ in changed]
    rows = {r.id: _alert(r) for r in conn.execute(sa.select(t).where(t.c.id.in_(ids)))}
    return [(rows[i], res) for i, res in changed]


def list_alerts(
    ws: Workspace, *, source: str | None = None, state: State | None = "firing", limit: int = 1000
) -> list[Alert]:
    """Alerts, newest first.

    Parameters
    ----------
    source : only this monitor's.
    state : ``"firing"`` (default), ``"resolved"``, or None for every alert.
    limit : at most this many.

    Raises
    ------
    InvalidInput
        An unknown state or a bad limit.
    """
    if state not in ("firing", "resolved", None):
        raise InvalidInput(f"state must be 'firing', 'resolved' or None, not {state!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive integer, not {limit!r}")
    t = alerts_table
    query = sa.select(t)
    if source is not None:
        query = query.where(t.c.source == source)
    if state is not None:
        query = query.where(t.c.state == state)
    with ws.db.read() as conn:
        rows = conn.execute(query.order_by(t.c.updated_at.desc(), t.c.id.desc()).limit(limit))
        return [_alert(r) for r in rows]


__all__ = [
    "ESTIMATED_METRICS",
    "METRICS",
    "OPS",
    "PERFORMANCE_METRICS",
    "Alert",
    "Rule",
    "RuleResult",
    "apply_rules",
    "evaluate_rules",
    "known_metric",
    "list_alerts",
    "message_for",
    "parse_rule",
    "parse_rules",
]
