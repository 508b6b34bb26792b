"""The validation report: one result per check, and how it reads as text, JSON, a Rich table
and one self-contained HTML page (inline CSS, no script, no external URL; every name and
value from the data or the suite is escaped)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text

from loopml.data._check_base import Rows, Severity
from loopml.errors import InvalidInput

_SHOWN_ROWS = 5


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes
    ----------
    name, type, column, severity : the check's name, type (``"in_range"``...), column(s)
        (``None`` for table-level checks) and severity.
    passed : whether the check held.
    failing_count, failing_fraction : failing rows and their share of the table, for
        row-level checks; ``None`` for table-level checks and checks that could not run.
    message : what was found, e.g. ``"3 of 1,000 rows (0.3%) are outside [18, 120]"``.
    sample : a few failing rows as dicts of the check's columns, with ``"__row__"``, the
        0-based row number in the table.
    rows : every failing row number (sorted); not part of :meth:`to_dict`.
    """

    name: str
    type: str
    column: str | None
    severity: Severity
    passed: bool
    failing_count: int | None
    failing_fraction: float | None
    message: str
    sample: list[dict[str, Any]] = field(default_factory=list)
    rows: Rows = field(default_factory=lambda: np.empty(0, np.int64), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (without :attr:`rows`)."""
        return {
            "name": self.name,
            "type": self.type,
            "column": self.column,
            "severity": self.severity,
            "passed": self.passed,
            "failing_count": self.failing_count,
            "failing_fraction": self.failing_fraction,
            "message": self.message,
            "sample": self.sample,
        }

    def first_rows(self, n: int = _SHOWN_ROWS) -> str:
        """The first ``n`` failing row numbers, as ``"4, 17, 99, ..."`` (empty if none)."""
        shown = ", ".join(str(int(r)) for r in self.rows[:n])
        return shown + (", ..." if self.rows.size > n else "")


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`~loopml.data._validation.validate_table` found.

    Attributes
    ----------
    suite : the suite's name.
    num_rows : rows in the validated table.
    results : one :class:`CheckResult` per check, in suite order.
    seconds : how long the validation took.
    """

    suite: str
    num_rows: int
    results: list[CheckResult]
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """No check of severity ``"error"`` failed (failed warnings do not count)."""
        return not any(r.severity == "error" for r in self.failures)

    @property
    def failures(self) -> list[CheckResult]:
        """The results of the checks that failed, errors and warnings."""
        return [r for r in self.results if not r.passed]

    def failing_rows(self, severity: Severity = "error") -> Rows:
        """Row numbers failing a row-level check of ``severity`` or worse (for quarantine).

        ``"error"`` gives the rows failing error checks; ``"warning"`` adds warning checks.
        Rows of checks that passed within their allowed fraction are not included.
        """
        if severity not in ("error", "warning"):
            raise InvalidInput(f"severity must be 'error' or 'warning', not {severity!r}")
        wanted = ("error",) if severity == "error" else ("error", "warning")
        parts = [r.rows for r in self.failures if r.severity in wanted]
        return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "suite": self.suite,
            "passed": self.passed,
            "num_rows": self.num_rows,
            "seconds": round(self.seconds, 6),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def headline(self) -> str:
        """One line: the suite, passed or failed, and how many checks failed."""
        errors = sum(r.severity == "error" for r in self.failures)
        state = "passed" if self.passed else "FAILED"
        counts = f"{errors} error(s), {len(self.failures) - errors} warning(s)"
        return (
            f"suite {self.suite!r} {state}: {len(self.failures)} of {len(self.results)} checks "
            f"failed on {self.num_rows:,} rows ({counts})"
        )

    def summary(self) -> str:
        """The :meth:`headline`, then one line per failed check with its first failing rows."""
        lines = [self.headline()]
        for r in self.failures:
            rows = f" (rows {r.first_rows()})" if r.rows.size else ""
            lines.append(f"  {r.severity.upper():<8}{r.name}: {r.message}{rows}")
        return "\n".join(lines)

    def raise_for_errors(self) -> ValidationReport:
        """Raise if an error-severity check failed; return the report otherwise.

        Raises
        ------
        InvalidInput
            Lists each failed error check with its column, failing count and first rows.
        """
        if self.passed:
            return self
        lines = [f"validation failed: {self.headline()}"]
        for r in self.failures:
            if r.severity != "error":
                continue
            where = f" on column {r.column!r}" if r.column else ""
            rows = f"; first failing rows: {r.first_rows()}" if r.rows.size else ""
            lines.append(f"  - {r.name}{where}: {r.message}{rows}")
        raise InvalidInput("\n".join(lines))

    def to_rich(self) -> Table:
        """A Rich table of every result, failures in red (errors) or yellow (warnings)."""
        table = Table(title=Text(self.headline()), title_justify="left")
        for header in ("", "check", "column", "severity", "failing", "message"):
            table.add_column(header, overflow="fold")
        for r in self.results:
            style = "green" if r.passed else "red" if r.severity == "error" else "yellow"
            table.add_row(
                Text("✓" if r.passed else "✗", style=style),
                Text(r.name),
                Text(r.column or ""),
                Text(r.severity, style="" if r.passed else style),
                Text(_failing(r)),
                Text(r.message),
            )
        return table

    def to_html(self, title: str | None = None) -> str:
        """One self-contained HTML page of the report (inline CSS, nothing fetched)."""
        return render_html(self, title or f"Validation report: {self.suite}")


def _failing(result: CheckResult) -> str:
    if result.failing_count is None:
        return ""
    fraction = result.failing_fraction or 0.0
    return f"{result.failing_count:,} ({fraction:.1%})" if result.failing_count else "0"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.4rem;margin:0 0 .3rem}
.meta{color:#57606a;margin-bottom:1rem}
.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;font-weight:600;color:#fff}
.pass{background:#1a7f37}.fail{background:#cf222e}.warn{background:#9a6700}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
tr.error td:first-child{border-left:4px solid #cf222e}
tr.warning td:first-child{border-left:4px solid #9a6700}
tr.ok td:first-child{border-left:4px solid #1a7f37}
td.num{text-align:right;white-space:nowrap}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:0 .2rem}
details{margin:.3rem 0}
details table{width:auto;font-size:12px}
details td,details th{padding:.15rem .5rem}
""".strip()


def render_html(report: ValidationReport, title: str) -> str:
    """``report`` as one HTML page titled ``title``; everything user-supplied is escaped."""
    failures = report.failures
    errors = sum(r.severity == "error" for r in failures)
    badge = (
        '<span class="badge pass">passed</span>'
        if report.passed
        else '<span class="badge fail">failed</span>'
    )
    rows = "\n".join(_result_row(r) for r in report.results)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<div class="meta">{badge} suite <code>{_e(report.suite)}</code> &middot;
{report.num_rows:,} rows &middot; {len(report.results)} checks &middot;
{errors} failed error check(s) &middot; {len(failures) - errors} failed warning(s) &middot;
{report.seconds:.3f} s</div>
<table>
<thead><tr><th>status</th><th>check</th><th>type</th><th>column</th><th>severity</th>
<th>failing rows</th><th>message</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def _result_row(r: CheckResult) -> str:
    css = "ok" if r.passed else r.severity
    status = (
        '<span class="badge pass">pass</span>'
        if r.passed
        else f'<span class="badge {"fail" if r.severity == "error" else "warn"}">fail</span>'
    )
    detail = _e(r.message) + _sample_table(r)
    return (
        f'<tr class="{css}"><td>{status}</td><td>{_e(r.name)}</td><td>{_e(r.type)}</td>'
        f"<td>{_e(r.column or '')}</td><td>{_e(r.severity)}</td>"
        f'<td class="num">{_e(_failing(r))}</td><td>{detail}</td></tr>'
    )


def _sample_table(r: CheckResult) -> str:
    if not r.sample:
        return ""
    keys = list(dict.fromkeys(k for row in r.sample for k in row))
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_cell(row.get(k)))}</td>" for k in keys) + "</tr>"
        for row in r.sample
    )
    more = f"; first rows {_e(r.first_rows(10))}" if r.rows.size > len(r.sample) else ""
    return (
        f"<details><summary>{len(r.sample)} sample failing row(s){more}</summary>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>"
    )


def _cell(value: object) -> str:
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else str(value)
