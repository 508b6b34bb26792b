"""The drift report as one self-contained HTML page: inline CSS and SVG, no script, no URL.

It reads only the report's dict (:meth:`DriftReport.to_dict`), so a report loaded back from
JSON renders the same. Sections: a headline, a drift-share-over-time chart when earlier
reports are given, a table of every column's test, then one reference-vs-current chart per
column (histogram bars for numbers, level bars for categories). Every string that came from
the data (column names, levels, the title) is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any, Final

from loopml.data._profile_html import format_value

_REF: Final = "#54aeff"
_CUR: Final = "#fb8f44"
_LABEL_CHARS: Final = 24

_CSS: Final = f"""
body{{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1f2328}}
h1{{font-size:1.5rem;margin:0 0 .25rem}}h2{{font-size:1.1rem;margin:0 0 .5rem}}
.meta{{color:#59636e;margin:0 0 1.5rem}}
.badge{{display:inline-block;padding:0 .55rem;border-radius:1rem;font-weight:600;color:#fff}}
.drift{{background:#cf222e}}.ok{{background:#1a7f37}}
table.summary{{border-collapse:collapse;margin-bottom:2rem}}
.summary th,.summary td{{padding:.3rem .7rem;border-bottom:1px solid #d1d9e0;text-align:left}}
.summary th{{background:#f6f8fa}}
.summary td.num{{text-align:right;font-variant-numeric:tabular-nums}}
section{{border:1px solid #d1d9e0;border-radius:.5rem;padding:1rem;margin:0 0 1rem}}
.kind{{display:inline-block;padding:0 .45rem;border-radius:1rem;background:#ddf4ff;
color:#0550ae;font-size:.8rem;font-weight:normal}}
.legend span{{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem;
vertical-align:middle}}
svg text{{font:11px system-ui,sans-serif;fill:#59636e}}
.ref{{fill:{_REF}}}.cur{{fill:{_CUR}}}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _short(value: str) -> str:
    return value if len(value) <= _LABEL_CHARS else value[: _LABEL_CHARS - 1] + "…"


def _badge(drifted: bool) -> str:
    return (
        '<span class="badge drift">drift</span>' if drifted else '<span class="badge ok">ok</span>'
    )


def render_drift_html(
    report: Mapping[str, Any], title: str, history: Sequence[Mapping[str, Any]] = ()
) -> str:
    """``report`` (a :meth:`DriftReport.to_dict`) as an HTML page titled ``title``.

    ``history`` is earlier reports' dicts, oldest first, for the drift-over-time chart.
    """
    cols = list(report["columns"])
    features = [c for c in cols if c["role"] == "feature"]
    drifted = sum(bool(c["drifted"]) for c in features)
    meta = (
        f"{_badge(bool(report['dataset_drift']))} {drifted} of {len(features)} feature columns "
        f"drifted ({report['drift_share']:.0%}; dataset drift from "
        f"{report['drift_share_threshold']:.0%}) &middot; reference "
        f"{report['reference_rows']:,} rows &middot; current {report['current_rows']:,} rows "
        f"&middot; {_e(report['created_at'])}"
    )
    over_time = ""
    if history:
        over_time = (
            "<section><h2>Drift share over time</h2>"
            + _timeline_svg([*history, report])
            + "</section>\n"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("column", "role", "kind", "test", "statistic", "p-value", "threshold", "")
    )
    rows = "\n".join(_row(i, c) for i, c in enumerate(cols))
    sections = "\n".join(_section(i, c) for i, c in enumerate(cols))
    legend = (
        f'<p class="legend"><span style="background:{_REF}"></span>reference'
        f'<span style="background:{_CUR}"></span>current</p>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{_e(title)}</h1>\n<p class="meta">{meta}</p>\n{over_time}'
        f'<table class="summary">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n'
        f"</tbody>\n</table>\n{legend}\n{sections}\n</body>\n</html>\n"
    )


def _row(index: int, c: Mapping[str, Any]) -> str:
    cells = [f'<a href="#col-{index}">{_e(c["column"])}</a>', _e(c["role"]), _e(c["kind"])]
    cells.append(_e(c["test"]))
    nums = [format_value(c["statistic"]), format_value(c["p_value"]), format_value(c["threshold"])]
    return (
        "<tr>"
        + "".join(f"<td>{x}</td>" for x in cells)
        + "".join(f'<td class="num">{_e(x)}</td>' for x in nums)
        + f"<td>{_badge(bool(c['drifted']))}</td></tr>"
    )


def _section(index: int, c: Mapping[str, Any]) -> str:
    plot = c.get("plot") or {}
    if "edges" in plot:
        chart = _histogram_svg(plot["edges"], plot["reference"], plot["current"])
    elif "levels" in plot:
        chart = _levels_svg(plot["levels"], plot["reference"], plot["current"])
    else:
        chart = ""
    p = "" if c["p_value"] is None else f", p = {format_value(c['p_value'])}"
    nulls = f"nulls {c['reference_null_fraction']:.1%} → {c['current_null_fraction']:.1%}"
    return (
        f'<section id="col-{index}">\n<h2>{_e(c["column"])} <span class="kind">{_e(c["kind"])}'
        f"</span> {_badge(bool(c['drifted']))}</h2>\n"
        f'<p class="meta">{_e(c["test"])} = {_e(format_value(c["statistic"]))}{_e(p)} '
        f"(threshold {_e(format_value(c['threshold']))}); {_e(nulls)}</p>\n{chart}\n</section>"
    )


def _histogram_svg(edges: Sequence[float], ref: Sequence[float], cur: Sequence[float]) -> str:
    """Two bars per bin (reference, current), heights as shares of each side."""
    width, height, axis = 480, 140, 16
    tallest = max([*ref, *cur, 0.0]) or 1.0
    step = width / max(len(ref), 1)
    bars = []
    for k, (r, c) in enumerate(zip(ref, cur, strict=True)):
        tip = f"[{format_value(edges[k])}, {format_value(edges[k + 1])}): "
        for j, (share, css) in enumerate(((r, "ref"), (c, "cur"))):
            h = (height - axis) * share / tallest
            x = k * step + j * step / 2 + 0.5
            bars.append(
                f'<rect class="{css}" x="{x:.1f}" y="{height - axis - h:.1f}" '
                f'width="{max(step / 2 - 1, 0.5):.1f}" height="{h:.1f}">'
                f"<title>{_e(tip)}{css} {share:.2%}</title></rect>"
            )
    first, last = _e(format_value(edges[0])), _e(format_value(edges[-1]))
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="reference and current histograms">'
        + "".join(bars)
        + f'<text x="0" y="{height - 3}">{first}</text>'
        f'<text x="{width}" y="{height - 3}" text-anchor="end">{last}</text></svg>'
    )


def _levels_svg(levels: Sequence[str], ref: Sequence[float], cur: Sequence[float]) -> str:
    """Two horizontal bars per level (reference above current), as shares."""
    label_w, bar_w, row_h = 170, 260, 22
    widest = max([*ref, *cur, 0.0]) or 1.0
    rows = []
    for k, (level, r, c) in enumerate(zip(levels, ref, cur, strict=True)):
        y = k * row_h
        rows.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{_e(_short(str(level)))}'
            f"<title>{_e(level)}</title></text>"
        )
        for j, (share, css) in enumerate(((r, "ref"), (c, "cur"))):
            w = bar_w * share / widest
            rows.append(
                f'<rect class="{css}" x="{label_w}" y="{y + 2 + j * 9}" width="{max(w, 0.5):.1f}" '
                f'height="8"><title>{css} {share:.2%}</title></rect>'
            )
        rows.append(f'<text x="{label_w + bar_w + 6}" y="{y + 15}">{r:.1%} → {c:.1%}</text>')
    width, height = label_w + bar_w + 110, row_h * max(len(levels), 1)
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="reference and current level shares">' + "".join(rows) + "</svg>"
    )


def _dot(drifted: bool) -> str:
    return "#cf222e" if drifted else "#1a7f37"


def _timeline_svg(reports: Sequence[Mapping[str, Any]]) -> str:
    """Drift share per report as a line with points; the dataset-drift threshold dashed."""
    width, height, pad = 560, 160, 24
    n = len(reports)
    xs = [pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]

    def y(share: float) -> float:
        return height - pad - (height - 2 * pad) * share

    shares = [float(r["drift_share"]) for r in reports]
    line = " ".join(f"{x:.1f},{y(s):.1f}" for x, s in zip(xs, shares, strict=True))
    limit = y(float(reports[-1]["drift_share_threshold"]))
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y(s):.1f}" r="4" fill="{_dot(bool(r["dataset_drift"]))}">'
        f"<title>{_e(r['created_at'])}: {s:.0%} drifted</title></circle>"
        for x, s, r in zip(xs, shares, reports, strict=True)
    )
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="drift share over time">'
        f'<line x1="{pad}" x2="{width - pad}" y1="{limit:.1f}" y2="{limit:.1f}" '
        'stroke="#cf222e" stroke-dasharray="4 3"/>'
        f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="2"/>{dots}'
        f'<text x="0" y="{y(1.0) + 4:.1f}">100%</text><text x="0" y="{y(0.0) + 4:.1f}">0%</text>'
        f'<text x="{pad}" y="{height - 4}">{_e(reports[0]["created_at"])}</text>'
        f'<text x="{width - pad}" y="{height - 4}" text-anchor="end">'
        f"{_e(reports[-1]['created_at'])}</text></svg>"
    )
