"""Rendering a :class:`~loopml.data._profile.Profile`: a rich table, a self-contained HTML page.

Both read only the profile dict, so a profile loaded back from JSON renders the same.
Every string that came from the data (column names, values, the title) is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Final

from rich.table import Table
from rich.text import Text

from loopml.data._profile import ColumnProfile, Profile

_DASH: Final = "—"
_SHOWN_TOP: Final = 3  # top values listed in a table cell
_LABEL_CHARS: Final = 28  # longest value label in a bar chart

_CSS: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:0 0 .5rem}
.meta{color:#59636e;margin:0 0 1.5rem}
table.summary{border-collapse:collapse;margin-bottom:2rem}
.summary th,.summary td{padding:.3rem .7rem;border-bottom:1px solid #d1d9e0;text-align:left}
.summary td.num{text-align:right;font-variant-numeric:tabular-nums}
.kind{display:inline-block;padding:0 .45rem;border-radius:1rem;background:#ddf4ff;
color:#0550ae;font-size:.8rem;font-weight:normal}
section{border:1px solid #d1d9e0;border-radius:.5rem;padding:1rem;margin:0 0 1rem}
.body{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-start}
dl{display:grid;grid-template-columns:auto auto;gap:.1rem 1rem;margin:0}
dt{color:#59636e}dd{margin:0;font-variant-numeric:tabular-nums}
svg text{font:11px system-ui,sans-serif;fill:#59636e}
.bar{fill:#54aeff}.bar:hover{fill:#0969da}
"""


def format_value(value: object) -> str:
    """A statistic as short text: ``—`` for ``None``, grouped ints, 4 significant digits."""
    if value is None:
        return _DASH
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def _short(value: str) -> str:
    return value if len(value) <= _LABEL_CHARS else value[: _LABEL_CHARS - 1] + "…"


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else _DASH


def _distinct(col: ColumnProfile) -> str:
    text = format_value(col["distinct"])
    return text if col["distinct_exact"] or col["distinct"] is None else f"≈{text}"


def _top_summary(col: ColumnProfile) -> str:
    """``a (40.0%), b (30.0%), …`` for the first few frequent values."""
    top = col.get("top_values")
    if not top:
        return _DASH if top is not None else ""
    shown = [
        f"{_short(t['value'])} ({_percent(t['count'], col['count'])})" for t in top[:_SHOWN_TOP]
    ]
    more = ", …" if (col["distinct"] or 0) > len(shown) else ""
    return ", ".join(shown) + more


def _min_mean_max(col: ColumnProfile) -> tuple[str, str, str]:
    """The min / mean / max cells; strings and booleans put their top values under max."""
    if "min" not in col:
        return "", "", _top_summary(col)
    mean = format_value(col.get("mean")) if "mean" in col else ""
    return format_value(col.get("min")), mean, format_value(col.get("max"))


def profile_to_rich(profile: Profile) -> Table:
    """A ``rich`` table with one row per column, for the terminal.

    Parameters
    ----------
    profile : a profile from :func:`~loopml.data._profile.profile_table`.

    Returns
    -------
    rich.table.Table
        Columns: column, kind, type, nulls %, distinct (``≈`` when estimated), min, mean,
        and max — or the top values of categorical, text and boolean columns.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from rich.console import Console
    >>> from loopml.data._profile import profile_table
    >>> Console().print(profile_to_rich(profile_table(pa.table({"x": [1, 2]}))))  # doctest: +SKIP
    """
    num_rows = profile["num_rows"]
    table = Table(title=f"{num_rows:,} rows, {len(profile['columns'])} columns")
    table.add_column("column", style="bold")
    table.add_column("kind")
    table.add_column("type", style="dim")
    for header in ("nulls %", "distinct", "min", "mean"):
        table.add_column(header, justify="right")
    table.add_column("max / top values")
    for col in profile["columns"].values():
        low, mean, high = _min_mean_max(col)
        cells = [col["name"], col["kind"], col["arrow_type"]]
        cells += [_percent(col["nulls"], num_rows), _distinct(col), low, mean, high]
        table.add_row(*(Text(cell) for cell in cells))  # Text: no rich markup from the data
    return table


def profile_to_html(profile: Profile, title: str) -> str:
    """One self-contained HTML page: a summary table, then a section per column.

    Numeric and datetime columns get an inline SVG histogram, the others a horizontal bar
    chart of their top values. The page has inline CSS and no scripts or external URLs;
    the title, column names and values are HTML-escaped.

    Parameters
    ----------
    profile : a profile from :func:`~loopml.data._profile.profile_table`.
    title : the page heading and ``<title>``.

    Returns
    -------
    str
        The HTML document.
    """
    e = html.escape
    columns = list(profile["columns"].values())
    num_rows = profile["num_rows"]
    rows = []
    for i, col in enumerate(columns):
        low, mean, high = _min_mean_max(col)
        cells = [f'<a href="#col-{i}">{e(col["name"])}</a>', e(col["kind"]), e(col["arrow_type"])]
        nums = [_percent(col["nulls"], num_rows), _distinct(col), low, mean]
        row = "".join(f"<td>{c}</td>" for c in cells)
        row += "".join(f'<td class="num">{e(c)}</td>' for c in nums) + f"<td>{e(high)}</td>"
        rows.append(f"<tr>{row}</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in ("column", "kind", "type", "nulls %", "distinct", "min", "mean", "max / top")
    )
    sections = "\n".join(_section(i, col, num_rows) for i, col in enumerate(columns))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{e(title)}</h1>\n"
        f'<p class="meta">{num_rows:,} rows, {len(columns)} columns</p>\n'
        f'<table class="summary">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + f"\n</tbody>\n</table>\n{sections}\n</body>\n</html>\n"
    )


def _section(index: int, col: ColumnProfile, num_rows: int) -> str:
    e = html.escape
    stats: list[tuple[str, str]] = [
        ("count", format_value(col["count"])),
        ("nulls", f"{format_value(col['nulls'])} ({_percent(col['nulls'], num_rows)})"),
        ("distinct", _distinct(col)),
    ]
    for key in ("min", "max", "mean", "std", "zeros", "negatives", "infinite", "true_count"):
        if key in col:
            stats.append((key.replace("_", " "), format_value(col.get(key))))
    for q, value in (col.get("quantiles") or {}).items():
        if q in ("0.05", "0.25", "0.5", "0.75", "0.95"):
            stats.append((f"p{round(float(q) * 100)}", format_value(value)))
    for key in ("min_length", "mean_length", "max_length"):
        if key in col:
            stats.append((key.replace("_", " "), format_value(col.get(key))))
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in stats)
    histogram, top = col.get("histogram"), col.get("top_values")
    chart = ""
    if histogram is not None:
        chart = _histogram_svg(histogram["edges"], histogram["counts"])
    elif top:
        chart = _bars_svg([(t["value"], t["count"]) for t in top], col["count"])
    return (
        f'<section id="col-{index}">\n<h2>{e(col["name"])} <span class="kind">'
        f"{e(col['kind'])}</span></h2>\n"
        f'<div class="body"><dl>{items}</dl>{chart}</div>\n</section>'
    )


def _histogram_svg(edges: Sequence[float | str], counts: Sequence[int]) -> str:
    """Vertical bars, one per bin, with the outer edges written under the axis."""
    width, height, axis = 360, 120, 16
    tallest = max(counts, default=0) or 1
    step = width / max(len(counts), 1)
    bars = []
    for k, n in enumerate(counts):
        h = (height - axis) * n / tallest
        tip = f"[{format_value(edges[k])}, {format_value(edges[k + 1])}): {n:,}"
        bars.append(
            f'<rect class="bar" x="{k * step + 0.5:.1f}" y="{height - axis - h:.1f}" '
            f'width="{max(step - 1, 0.5):.1f}" height="{h:.1f}">'
            f"<title>{html.escape(tip)}</title></rect>"
        )
    first, last = html.escape(format_value(edges[0])), html.escape(format_value(edges[-1]))
    return (
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="histogram">'
        + "".join(bars)
        + f'<text x="0" y="{height - 3}">{first}</text>'
        f'<text x="{width}" y="{height - 3}" text-anchor="end">{last}</text></svg>'
    )


def _bars_svg(values: Sequence[tuple[str, int]], total: int) -> str:
    """Horizontal bars, one per frequent value, labelled with the value and its share."""
    label_w, bar_w, row_h = 190, 200, 18
    widest = max((n for _, n in values), default=0) or 1
    rows = []
    for k, (value, n) in enumerate(values):
        y = k * row_h
        short = _short(value)
        w = bar_w * n / widest
        rows.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{html.escape(short)}'
            f"<title>{html.escape(value)}</title></text>"
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{max(w, 0.5):.1f}" '
            f'height="{row_h - 5}"><title>{n:,}</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{_percent(n, total)}</text>'
        )
    width, height = label_w + bar_w + 50, row_h * len(values)
    return (
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="top values">'
        + "".join(rows)
        + "</svg>"
    )
