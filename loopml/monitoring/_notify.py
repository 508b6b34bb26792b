"""Where alert events go: Python logging, a webhook (JSON POST, optionally Slack's
``{"text": ...}``), or a Python callback.

A notifier never raises into the check that fired it: a webhook that fails (refused,
timed out, a non-2xx answer) is logged and counted in :attr:`WebhookNotifier.failures`.
A monitor's config names notifiers as strings (``"log"``, ``"webhook:https://..."``,
``"slack:https://..."``); callbacks are passed in Python at check time.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from loopml.errors import InvalidInput

log = logging.getLogger("loopml.monitoring")
State = Literal["firing", "resolved"]


@dataclass(frozen=True)
class AlertEvent:
    """A rule that started firing, or stopped.

    Attributes
    ----------
    monitor, deployment : what was watched.
    rule : the rule's text, e.g. ``"drift_share > 0.3"``.
    state : ``"firing"`` (the rule became true) or ``"resolved"`` (it became false again).
    value : the metric's value at this check.
    message : one line for people.
    alert_id : the row in the ``alerts`` table.
    report_id : the monitor report the check stored.
    at : when, ISO-8601 UTC.
    """

    monitor: str
    deployment: str
    rule: str
    state: State
    value: float | None
    message: str
    alert_id: int
    report_id: int
    at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (the webhook payload)."""
        return {
            "monitor": self.monitor,
            "deployment": self.deployment,
            "rule": self.rule,
            "state": self.state,
            "value": self.value,
            "message": self.message,
            "alert_id": self.alert_id,
            "report_id": self.report_id,
            "at": self.at,
        }

    @property
    def text(self) -> str:
        """The one-line text of a Slack message or a log line."""
        mark = "FIRING" if self.state == "firing" else "RESOLVED"
        return f"[loopml] {mark} {self.monitor} ({self.deployment}): {self.message}"


class Notifier(Protocol):
    """Anything with ``notify(event)``; it must not raise."""

    def notify(self, event: AlertEvent) -> None: ...


class LogNotifier:
    """Logs each event on logger ``loopml.monitoring`` (WARNING when firing, INFO resolved)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    def __repr__(self) -> str:
        return "LogNotifier()"

    def notify(self, event: AlertEvent) -> None:
        """Write one log line."""
        level = logging.WARNING if event.state == "firing" else logging.INFO
        self.logger.log(level, "%s", event.text)


def check_url(url: object, what: str = "webhook") -> str:
    """``url`` if it is an http(s) URL with a host; raise InvalidInput otherwise."""
    if not isinstance(url, str):
        raise InvalidInput(f"{what} URL must be a string, not {type(url).__name__}")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInput(f"{what} URL {url!r} is not an http:// or https:// URL with a host")
    return url


class WebhookNotifier:
    """POSTs each event as JSON to ``url``.

    Parameters
    ----------
    url : http(s) URL.
    slack : send Slack's incoming-webhook payload ``{"text": ...}`` instead of the event.
    timeout : seconds to wait for the receiver.

    Attributes
    ----------
    sent, failures : deliveries that succeeded / failed.
    last_error : the latest failure's message, or None.
    """

    def __init__(self, url: str, *, slack: bool = False, timeout: float = 5.0) -> None:
        self.url = check_url(url, "slack" if slack else "webhook")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidInput(f"webhook timeout must be a positive number, not {timeout!r}")
        self.slack = slack
        self.timeout = float(timeout)
        self.sent = 0
        self.failures = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.url!r}, slack={self.slack})"

    def payload(self, event: AlertEvent) -> dict[str, Any]:
        """What is POSTed for ``event``."""
        return {"text": event.text} if self.slack else event.to_dict()

    def notify(self, event: AlertEvent) -> None:
        """POST the event; a failure is logged and counted, never raised."""
        body = json.dumps(self.payload(event)).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "loopml-monitor"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failures += 1
            self.last_error = f"webhook {self.url} failed: {exc}"
            log.warning("%s (alert %s %s)", self.last_error, event.rule, event.state)
            return
        self.sent += 1


class CallbackNotifier:
    """Calls ``fn(event)``; an exception from ``fn`` is logged and counted in ``failures``."""

    def __init__(self, fn: Callable[[AlertEvent], object]) -> None:
        if not callable(fn):
            raise InvalidInput(f"a callback notifier needs a callable, not {fn!r}")
        self.fn = fn
        self.failures = 0

    def __repr__(self) -> str:
        return f"CallbackNotifier({getattr(self.fn, '__name__', self.fn)!r})"

    def notify(self, event: AlertEvent) -> None:
        """Call the function."""
        try:
            self.fn(event)
        except Exception:
            self.failures += 1
            log.exception("alert callback %r failed on %s %s", self.fn, event.rule, event.state)


def parse_notify(spec: object) -> str:
    """A notify spec in its stored form, checked: ``log``, ``webhook:URL`` or ``slack:URL``.

    Raises
    ------
    InvalidInput
        Anything else (the message shows the accepted forms).
    """
    if not isinstance(spec, str):
        raise InvalidInput(f"notify entries must be strings, not {type(spec).__name__}")
    text = spec.strip()
    if text == "log":
        return text
    kind, _, url = text.partition(":")
    if kind in ("webhook", "slack") and url:
        check_url(url, kind)
        return f"{kind}:{url}"
    raise InvalidInput(
        f"notify {spec!r} is not 'log', 'webhook:https://...' or 'slack:https://...'"
    )


def notifier_for(spec: str) -> Notifier:
    """The notifier a stored spec names."""
    spec = parse_notify(spec)
    if spec == "log":
        return LogNotifier()
    kind, _, url = spec.partition(":")
    return WebhookNotifier(url, slack=kind == "slack")


def as_notifiers(given: Sequence[object] | object | None) -> list[Notifier]:
    """Notifiers from a mix of specs (strings), notifier objects and plain callables."""
    if given is None:
        return []
    items = list(given) if isinstance(given, list | tuple) else [given]
    out: list[Notifier] = []
    for item in items:
        if isinstance(item, str):
            out.append(notifier_for(item))
        elif callable(getattr(item, "notify", None)):
            out.append(item)  # type: ignore[arg-type]
        elif callable(item):
            out.append(CallbackNotifier(item))
        else:
            raise InvalidInput(
                f"notify: {item!r} is neither a spec string, a notifier nor a callable"
            )
    return out


def dispatch(notifiers: Sequence[Notifier], events: Sequence[AlertEvent]) -> int:
    """Send every event to every notifier; return the deliveries that failed."""
    failed = 0
    for notifier in notifiers:
        before = getattr(notifier, "failures", 0)
        for event in events:
            try:
                notifier.notify(event)
            except Exception:  # a third-party notifier broke its contract: log, go on
                failed += 1
                log.exception("notifier %r failed on %s %s", notifier, event.rule, event.state)
        failed += int(getattr(notifier, "failures", 0)) - int(before)
    return failed


__all__ = [
    "AlertEvent",
    "CallbackNotifier",
    "LogNotifier",
    "Notifier",
    "WebhookNotifier",
    "as_notifiers",
    "dispatch",
    "notifier_for",
    "parse_notify",
]
