"""``quality_report``: is live traffic still well-formed, judged against the reference summary?

Four kinds of issue, each with a count, the share of rows and a few example values:

- ``missing_column`` / ``extra_column`` / ``type_mismatch``: the schema differs from the
  reference's (a numeric column now holding strings, say);
- ``null_rate``: the share of nulls grew by more than ``null_rate_tolerance``;
- ``out_of_range``: numeric values below the reference's min or above its max;
- ``unseen_categories``: categorical values the reference never held (not judged when the
  reference pooled rare levels, as it then does not know them all).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa

from loopml.errors import InvalidInput
from loopml.monitoring._summary import (
    ColumnSummary,
    ReferenceSummary,
    as_table,
    column_kind,
    finite_values,
    level_counts,
)

_EXAMPLES: Final = 5


@dataclass(frozen=True)
class QualityIssue:
    """One problem found in the current data.

    Attributes
    ----------
    column : the column concerned.
    kind : ``missing_column``, ``extra_column``, ``type_mismatch``, ``null_rate``,
        ``out_of_range`` or ``unseen_categories``.
    count : rows concerned (0 for schema issues that are not about rows).
    fraction : ``count`` as a share of the current rows.
    examples : a few offending values (as JSON-ready scalars).
    message : what was found, in words.
    """

    column: str
    kind: str
    count: int
    fraction: float
    message: str
    examples: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "column": self.column,
            "kind": self.kind,
            "count": self.count,
            "fraction": self.fraction,
            "message": self.message,
            "examples": self.examples,
        }


@dataclass(frozen=True)
class QualityReport:
    """What :func:`quality_report` found: ``issues`` in column order; ``num_rows`` checked."""

    num_rows: int
    issues: list[QualityIssue]

    @property
    def passed(self) -> bool:
        """No issue was found."""
        return not self.issues

    def by_kind(self, kind: str) -> list[QualityIssue]:
        """The issues of one kind."""
        return [i for i in self.issues if i.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "num_rows": self.num_rows,
            "passed": self.passed,
            "issues": [i.to_dict() for i in self.issues],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def quality_report(
    summary: ReferenceSummary | object,
    current: object,
    *,
    null_rate_tolerance: float = 0.05,
) -> QualityReport:
    """Check ``current`` against the reference ``summary``.

    Parameters
    ----------
    summary : ReferenceSummary, or a reference DataFrame / Arrow table to summarise.
    current : DataFrame or Arrow table of live traffic.
    null_rate_tolerance : how much the share of nulls may grow before it is an issue.

    Returns
    -------
    QualityReport

    Raises
    ------
    InvalidInput
        An empty ``current``, a bad tolerance, or a reference that cannot be summarised.

    Examples
    --------
    >>> import pandas as pd
    >>> ref = ReferenceSummary.summarize(pd.DataFrame({"age": [20, 30, 40]}))
    >>> quality_report(ref, pd.DataFrame({"age": [25, 99]})).issues[0].kind
    'out_of_range'
    """
    if not isinstance(null_rate_tolerance, int | float) or not 0 <= null_rate_tolerance <= 1:
        raise InvalidInput(f"null_rate_tolerance must be in [0, 1], not {null_rate_tolerance!r}")
    if not isinstance(summary, ReferenceSummary):
        summary = ReferenceSummary.summarize(summary)
    table = as_table(current, "current")
    n = table.num_rows
    issues: list[QualityIssue] = []
    for name, ref in summary.columns.items():
        if name not in table.column_names:
            msg = f"column {name!r} of the reference is missing"
            issues.append(QualityIssue(name, "missing_column", 0, 0.0, msg))
            continue
        issues.extend(_column_issues(ref, table.column(name), n, null_rate_tolerance))
    for name in table.column_names:
        if name not in summary.columns:
            msg = f"column {name!r} is not in the reference"
            issues.append(QualityIssue(name, "extra_column", 0, 0.0, msg))
    return QualityReport(num_rows=n, issues=issues)


def _column_issues(
    ref: ColumnSummary, column: pa.ChunkedArray, n: int, tolerance: float
) -> list[QualityIssue]:
    name = ref.name
    kind: str | None = None
    if column.null_count < n:
        try:
            kind = column_kind(name, column.type)
        except InvalidInput:
            kind = "unsupported"
    if kind is not None and kind != ref.kind:
        msg = f"column {name!r} is {column.type} ({kind}); the reference's is {ref.arrow_type}"
        return [QualityIssue(name, "type_mismatch", n, 1.0, msg)]
    out = []
    nulls = column.null_count
    if kind == "numeric":
        values, nulls, _ = finite_values(name, column)
        out.extend(_out_of_range(ref, values, n))
    elif kind == "categorical":
        out.extend(_unseen(ref, column, n))
    rate = nulls / n
    if rate - ref.null_fraction > tolerance:
        msg = (
            f"{rate:.1%} of {name!r} is null ({nulls:,} rows), "
            f"{ref.null_fraction:.1%} in the reference"
        )
        out.insert(0, QualityIssue(name, "null_rate", nulls, rate, msg))
    return out


def _out_of_range(ref: ColumnSummary, values: np.ndarray[Any, Any], n: int) -> list[QualityIssue]:
    assert ref.min is not None and ref.max is not None
    outside = (values < ref.min) | (values > ref.max)
    count = int(outside.sum())
    if not count:
        return []
    examples = [float(v) for v in values[outside][:_EXAMPLES]]
    msg = (
        f"{count:,} value(s) of {ref.name!r} ({count / n:.1%}) outside the reference's range "
        f"[{ref.min:g}, {ref.max:g}], e.g. {', '.join(f'{v:g}' for v in examples)}"
    )
    return [QualityIssue(ref.name, "out_of_range", count, count / n, msg, examples)]


def _unseen(ref: ColumnSummary, column: pa.ChunkedArray, n: int) -> list[QualityIssue]:
    if ref.other or ref.levels is None:
        return []
    counts = level_counts(column)
    new = {k: v for k, v in counts.items() if k not in ref.levels}
    if not new:
        return []
    count = sum(new.values())
    examples = list(new)[:_EXAMPLES]
    msg = (
        f"{count:,} value(s) of {ref.name!r} ({count / n:.1%}) in {len(new)} categor(ies) the "
        f"reference never held, e.g. {', '.join(map(repr, examples))}"
    )
    return [QualityIssue(ref.name, "unseen_categories", count, count / n, msg, examples)]
