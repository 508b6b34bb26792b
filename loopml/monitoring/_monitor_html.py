"""A monitor report as one self-contained HTML page: the drift page (headline, drift share
over time, per-column reference-vs-current charts) followed by the window, alert rules,
data quality, performance and latency. No script, no URL; every data string is escaped."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from typing import Any, Final

from loopml.monitoring._drift import DriftReport

_CSS: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:0 0 .5rem}
section.mon{border:1px solid #d1d9e0;border-radius:.5rem;padding:1rem;margin:0 0 1rem}
table.mon{border-collapse:collapse}
.mon th,.mon td{padding:.3rem .7rem;border-bottom:1px solid #d1d9e0;text-align:left}
.mon th{background:#f6f8fa}.mon td.num{text-align:right;font-variant-numeric:tabular-nums}
.firing{color:#cf222e;font-weight:600}.quiet{color:#59636e}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _when(ms: Any) -> str:
    if ms is None:
        return "open"
    return dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``rows`` are already-escaped cells."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="mon"><thead><tr>{th}</tr></thead><tbody>\n{body}\n</tbody></table>'


def _section(title: str, body: str) -> str:
    return f'<section class="mon"><h2>{_e(title)}</h2>\n{body}\n</section>'


def _sections(report: Mapping[str, Any]) -> str:
    w = report["window"]
    span = f"{_when(w.get('start'))} → {_when(w.get('end'))}"
    size = f"last {w['window']}" if w.get("window") else f"newest {w.get('window_rows')} rows"
    parts = [
        _section(
            "Window",
            f"<p>{_e(size)}: {_e(span)} &middot; {report['rows']:,} predictions, "
            f"{report['labelled_rows']:,} with labels &middot; reference "
            f"{_e(report['reference'].get('dataset'))}</p>",
        )
    ]
    rules = report.get("rules") or []
    if rules:
        rows = []
        for r in rules:
            state = {True: '<span class="firing">holds</span>', False: "no"}.get(
                r["firing"], '<span class="quiet">not measured</span>'
            )
            rows.append([_e(r["rule"]), _e(_num(r["value"])), state])
        parts.append(_section("Alert rules", _table(["rule", "value", "holds"], rows)))
    quality = report.get("quality")
    if quality is not None:
        issues = quality["issues"]
        body = (
            _table(
                ["column", "issue", "rows", "share", "detail"],
                [
                    [
                        _e(i["column"]),
                        _e(i["kind"]),
                        _e(f"{i['count']:,}"),
                        _e(f"{i['fraction']:.1%}"),
                        _e(i["message"]),
                    ]
                    for i in issues
                ],
            )
            if issues
            else "<p>No issues.</p>"
        )
        parts.append(_section("Data quality", body))
    perf, est = report.get("performance"), report.get("estimated_performance") or {}
    if perf is not None or est:
        names = sorted({*(perf["overall"] if perf else {}), *est})
        rows = [
            [
                _e(n),
                _e(_num((perf or {}).get("overall", {}).get(n))),
                _e(_num(est.get(n))),
            ]
            for n in names
        ]
        note = "" if perf else "<p>No labels in this window yet: estimates only.</p>"
        parts.append(
            _section("Performance", note + _table(["metric", "measured", "estimated"], rows))
        )
    metrics = report.get("metrics", {})
    latency = [k for k in ("mean_latency_ms", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms")]
    if any(k in metrics for k in latency):
        rows = [[_e(k), _e(_num(metrics.get(k)))] for k in latency]
        parts.append(_section("Latency", _table(["figure", "ms"], rows)))
    skipped = report.get("skipped_columns") or {}
    errors = report.get("errors") or {}
    if skipped or errors:
        rows = [[_e(k), _e(v)] for k, v in {**skipped, **errors}.items()]
        parts.append(_section("Not compared", _table(["column or part", "why"], rows)))
    return "\n".join(parts)


def render_monitor_html(report: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> str:
    """The page of one check's ``report`` (the stored JSON); ``history`` holds earlier
    reports' headlines (``drift_share``, ``drift_share_threshold``, ``dataset_drift``,
    ``created_at``), oldest first, for the drift-over-time chart."""
    title = f"Monitor {report['monitor']} · deployment {report['deployment']}"
    extra = f"<style>{_CSS}</style>\n{_sections(report)}\n"
    if report.get("drift") is not None:
        page = DriftReport.from_dict(report["drift"]).to_html(title=title, history=history)
        head, _, tail = page.rpartition("</body>")
        return f"{head}{extra}</body>{tail}"
    why = "No predictions in this window." if not report["rows"] else "No column to compare."
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n</head>\n<body>\n<h1>{_e(title)}</h1>\n"
        f"<p>{_e(report['created_at'])} &middot; {_e(why)}</p>\n{extra}</body>\n</html>\n"
    )


__all__ = ["render_monitor_html"]
