"""Alert rules: the grammar, state in the alerts table (fire once, de-duplicate, resolve),
and notifiers: log, a real webhook receiver on loopback (JSON and Slack payloads), a
failing webhook and a failing callback that never break the check."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from loopml.errors import InvalidInput
from loopml.monitoring import (
    AlertEvent,
    CallbackNotifier,
    LogNotifier,
    Rule,
    WebhookNotifier,
    check_monitor,
    create_monitor,
    list_alerts,
    parse_rule,
)
from loopml.monitoring._alerts import evaluate_rules, parse_rules
from loopml.monitoring._notify import as_notifiers, parse_notify
from loopml.store import Workspace
from tests.monitoring._deployed import customers, deployed, log_traffic


# -- the grammar ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("drift_share > 0.3", Rule("drift_share", ">", 0.3)),
        ("  accuracy<0.8 ", Rule("accuracy", "<", 0.8)),
        ("p99_latency_ms >= 250", Rule("p99_latency_ms", ">=", 250.0)),
        ("rows < 1", Rule("rows", "<", 1.0)),
        ("estimated_accuracy <= .75", Rule("estimated_accuracy", "<=", 0.75)),
        ("r2 != -1e-3", Rule("r2", "!=", -0.001)),
        ("dataset_drift == 1", Rule("dataset_drift", "==", 1.0)),
    ],
)
def test_rules_parse(text: str, rule: Rule) -> None:
    assert parse_rule(text) == rule
    assert parse_rule(str(rule)) == rule  # the stored form parses back


@pytest.mark.parametrize(
    ("text", "position", "what"),
    [
        ("", 0, "expected a metric name"),
        ("> 0.3", 0, "expected a metric name"),
        ("drift_share 0.3", 12, "expected an operator"),
        ("drift_share => 0.3", 12, "expected an operator"),
        ("drift_share > high", 14, "expected a number"),
        ("drift_share > 0.3 and rows < 1", 18, "unexpected 'and rows < 1'"),
        ("drift > 0.3", 0, "unknown metric 'drift'"),
        ("error_rate >", 12, "expected a number"),
    ],
)
def test_bad_rules_name_the_position(text: str, position: int, what: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_rule(text)
    message = str(info.value)
    assert f"at position {position}:" in message and what in message
    assert message.endswith(" " * position + "^")  # a pointer under the offending character


def test_rules_lists_are_checked() -> None:
    with pytest.raises(InvalidInput, match="must be a list"):
        parse_rules("rows < 1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="given twice"):
        parse_rules(["rows < 1", "rows<1"])
    with pytest.raises(InvalidInput, match="must be a string"):
        parse_rule(3)


def test_rules_without_a_measurement_are_not_evaluated() -> None:
    rules = parse_rules(["drift_share > 0.3", "rows < 1", "accuracy < 0.8"])
    results = evaluate_rules(rules, {"rows": 0.0})
    assert [(r.value, r.firing) for r in results] == [(None, None), (0.0, True), (None, None)]
    results = evaluate_rules(rules, {"rows": 10.0, "drift_share": 0.5, "accuracy": 0.9})
    assert [r.firing for r in results] == [True, False, False]


def test_notify_specs() -> None:
    assert parse_notify(" log ") == "log"
    assert parse_notify("slack:https://hooks.example/T1") == "slack:https://hooks.example/T1"
    for bad in ("email:me@example.com", "webhook:", "webhook:ftp://x", "webhook:http://"):
        with pytest.raises(InvalidInput):
            parse_notify(bad)
    with pytest.raises(InvalidInput, match="neither a spec string"):
        as_notifiers([42])
    with pytest.raises(InvalidInput, match="timeout"):
        WebhookNotifier("http://127.0.0.1:1/", timeout=0)


# -- a real webhook receiver on loopback ---------------------------------------------------
class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, json.loads(body)))  # type: ignore[attr-defined]
        self.send_response(500 if self.path == "/broken" else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.received  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event(state: str = "firing") -> AlertEvent:
    return AlertEvent("m", "d", "rows < 1", state, 0.0, "rows < 1 (now 0)", 1, 2, "2026-01-01")  # type: ignore[arg-type]


def test_webhook_posts_json_and_slack_text(receiver: tuple[str, list[tuple[str, Any]]]) -> None:
    url, received = receiver
    plain, slack = WebhookNotifier(url + "/hook"), WebhookNotifier(url + "/slack", slack=True)
    plain.notify(_event())
    slack.notify(_event("resolved"))
    assert received[0] == ("/hook", _event().to_dict())
    assert received[1] == ("/slack", {"text": "[loopml] RESOLVED m (d): rows < 1 (now 0)"})
    assert (plain.sent, plain.failures, slack.sent) == (1, 0, 1)


def test_failing_webhooks_and_callbacks_are_logged_not_raised(
    receiver: tuple[str, list[tuple[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = receiver
    broken = WebhookNotifier(url + "/broken")
    refused = WebhookNotifier(f"http://127.0.0.1:{_closed_port()}/", timeout=2)

    def boom(event: AlertEvent) -> None:
        raise RuntimeError("callback bug")

    callback = CallbackNotifier(boom)
    with caplog.at_level(logging.WARNING, "loopml.monitoring"):
        for n in (broken, refused, callback):
            n.notify(_event())
    assert (broken.failures, refused.failures, callback.failures) == (1, 1, 1)
    assert broken.last_error is not None and "500" in broken.last_error
    assert sum("failed" in r.getMessage() for r in caplog.records) == 3


# -- state in the alerts table, through real checks ----------------------------------------
def test_alert_fires_once_stays_deduplicated_and_resolves(
    ws: Workspace,
    receiver: tuple[str, list[tuple[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, received = receiver
    deployed(ws)
    create_monitor(
        ws,
        "churn",
        "churn",
        window_rows=200,
        rules=["drift_share > 0.3", "rows < 1"],
        notify=["log", f"webhook:{url}/hook", f"slack:{url}/slack"],
    )
    events: list[AlertEvent] = []
    with caplog.at_level(logging.INFO, "loopml.monitoring"):
        empty = check_monitor(ws, "churn", notify=events.append)
    assert [a.rule for a in empty.fired] == ["rows < 1"] and empty.notify_failures == 0
    assert "FIRING churn (churn): rows < 1 (now 0)" in caplog.text

    log_traffic(ws, customers(200, seed=3, shifted=True), "drifted-1")
    first = check_monitor(ws, "churn", notify=events.append)
    assert [a.rule for a in first.fired] == ["drift_share > 0.3"]
    assert [a.rule for a in first.resolved] == ["rows < 1"]

    log_traffic(ws, customers(200, seed=4, shifted=True), "drifted-2")
    again = check_monitor(ws, "churn", notify=events.append)
    assert again.fired == [] and again.resolved == []  # still true: no new row, no message
    firing = list_alerts(ws, source="churn")
    assert [(a.rule, a.state) for a in firing] == [("drift_share > 0.3", "firing")]
    assert firing[0].updated_at >= firing[0].fired_at

    log_traffic(ws, customers(200, seed=5), "fine")
    calm = check_monitor(ws, "churn", notify=events.append)
    assert [a.rule for a in calm.resolved] == ["drift_share > 0.3"] and calm.fired == []
    assert list_alerts(ws, source="churn") == []
    history = list_alerts(ws, source="churn", state=None)
    assert sorted((a.rule, a.state) for a in history) == [
        ("drift_share > 0.3", "resolved"),
        ("rows < 1", "resolved"),
    ]
    assert all(a.resolved_at is not None for a in history)

    expected = [  # in the order the checks made them (rules in their given order)
        ("rows < 1", "firing"),
        ("drift_share > 0.3", "firing"),
        ("rows < 1", "resolved"),
        ("drift_share > 0.3", "resolved"),
    ]
    assert [(e.rule, e.state) for e in events] == expected
    assert [e.report_id for e in events] == [
        empty.report_id,
        *[first.report_id] * 2,
        calm.report_id,
    ]
    hooks = [body for path, body in received if path == "/hook"]
    slacks = [body for path, body in received if path == "/slack"]
    assert len(hooks) == len(slacks) == 4  # one per transition, none for the repeat
    assert {(h["rule"], h["state"]) for h in hooks} == set(expected)
    assert all(h["monitor"] == "churn" and h["deployment"] == "churn" for h in hooks)
    assert any("FIRING churn (churn): drift_share > 0.3" in s["text"] for s in slacks)


def test_a_failing_webhook_does_not_break_the_check(
    ws: Workspace, receiver: tuple[str, list[tuple[str, Any]]]
) -> None:
    url, received = receiver
    deployed(ws)
    dead = f"webhook:http://127.0.0.1:{_closed_port()}/"
    create_monitor(ws, "churn", "churn", rules=["rows < 1"], notify=[dead, f"webhook:{url}/broken"])
    seen: list[AlertEvent] = []
    result = check_monitor(ws, "churn", notify=[seen.append, lambda e: 1 / 0])
    assert [a.rule for a in result.fired] == ["rows < 1"]
    assert result.notify_failures == 3  # refused, HTTP 500, the raising callback
    assert [e.rule for e in seen] == ["rows < 1"]  # the other notifiers still ran
    assert [path for path, _ in received] == ["/broken"]
    assert [a.rule for a in list_alerts(ws)] == ["rows < 1"]


def test_log_notifier_levels(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "loopml.monitoring"):
        LogNotifier().notify(_event())
        LogNotifier().notify(_event("resolved"))
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]


def test_list_alerts_checks_its_arguments(sqlite_ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="state must be"):
        list_alerts(sqlite_ws, state="open")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="limit"):
        list_alerts(sqlite_ws, limit=0)
