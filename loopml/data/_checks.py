"""The table and column checks a suite is made of, each a small frozen dataclass.

:class:`ColumnExists`, :class:`NotNull`, :class:`Unique`, :class:`InRange`, :class:`InSet`,
:class:`Matches`, :class:`SqlPredicate`, :class:`RowCount` and :class:`Fresh`. Checks
against a reference profile live in :mod:`loopml.data._drift_checks`.

The only SQL a user writes is the boolean expression of :class:`SqlPredicate`: one
expression, no statements, comments or subqueries, run on a connection that cannot read
files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import duckdb

from loopml.data._check_base import (
    NUMERIC,
    Check,
    Params,
    Plan,
    RowCheck,
    Scalar,
    Scan,
    Verdict,
    could_not_evaluate,
    dtype_matches,
    first_line,
    format_duration,
    fraction_field,
    missing,
    missing_column,
    non_empty,
    not_in,
    parse_duration,
    quote_ident,
    show,
    type_family,
)
from loopml.errors import InvalidInput

_STATEMENT = re.compile(
    r"select|insert|update|delete|drop|create|alter|attach|detach|copy|pragma|truncate|grant"
    r"|revoke|vacuum|install|checkpoint",
    re.I,
)
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[A-Za-z_][A-Za-z0-9_]*|--|/\*|.", re.S)


@dataclass(frozen=True)
class ColumnExists(Check):
    """The column exists, and has type ``dtype`` if given: a family (``"integer"``,
    ``"float"``, ``"numeric"``, ``"string"``, ``"boolean"``, ``"datetime"``), an Arrow alias
    (``"int64"``, ``"double"``) or an Arrow type string (``"timestamp[us, tz=UTC]"``)."""

    kind = "column_exists"
    column: str
    dtype: str | None = None

    def _validate(self) -> None:
        super()._validate()
        non_empty(self, "dtype")

    def problem(self, scan: Scan) -> str | None:
        return None

    def plan(self, scan: Scan, prefix: str) -> Plan:
        return Plan()

    def judge(self, values: Sequence[Any], scan: Scan) -> Verdict:
        actual = scan.schema.get(self.column)
        if actual is None:
            return Verdict(False, missing_column(self.column, scan))
        if self.dtype is None or dtype_matches(actual, self.dtype):
            return Verdict(True, f"column {self.column!r} is {actual}")
        return Verdict(False, f"column {self.column!r} is {actual}, expected {self.dtype}")


@dataclass(frozen=True)
class NotNull(RowCheck):
    """No value is null (or NaN), or at most ``max_fraction`` of the rows are."""

    kind = "not_null"
    column: str
    max_fraction: float = 0.0

    def _validate(self) -> None:
        super()._validate()
        fraction_field(self, "max_fraction")

    @property
    def allowed_fraction(self) -> float:
        return self.max_fraction

    def failure(self, scan: Scan, params: Params) -> str:
        return missing(scan, self.column)

    def describe(self, scan: Scan) -> str:
        nan = type_family(scan.schema[self.column]) == "float"
        return "are null or NaN" if nan else "are null"


@dataclass(frozen=True)
class Unique(RowCheck):
    """No two rows share a value of ``column`` (a name, or a tuple of names for a composite
    key). Every row of a duplicated value fails; rows with a null key are not compared."""

    kind = "unique"
    column: str | Sequence[str]

    def _validate(self) -> None:
        names = self.columns
        if not names or not all(names) or len(set(names)) != len(names):
            raise self._bad(f"field 'column' must name distinct columns, not {self.column!r}")

    def _duplicates(self, scan: Scan, select: str) -> str:
        keys = ", ".join(map(quote_ident, self.columns))
        known = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in self.columns)
        return (
            f"SELECT {select} FROM {scan.source} WHERE {known} GROUP BY {keys} HAVING count(*) > 1"
        )

    def failure(self, scan: Scan, params: Params) -> str:
        keys = ", ".join(map(quote_ident, self.columns))
        return f"({keys}) IN ({self._duplicates(scan, keys)})"

    def plan(self, scan: Scan, prefix: str) -> Plan:
        failure = self.failure(scan, Params(prefix))
        if len(self.columns) == 1 and scan.strictly_increasing(self.columns[0]):
            return Plan((), failure)  # sorted without ties: unique, nothing to count
        count = f"(SELECT coalesce(sum(n), 0) FROM ({self._duplicates(scan, 'count(*) AS n')}))"
        return Plan((count,), failure)

    def judge(self, values: Sequence[Any], scan: Scan) -> Verdict:
        return super().judge(values or (0,), scan)

    def describe(self, scan: Scan) -> str:
        what = "value" if len(self.columns) == 1 else f"({self.column_label})"
        return f"share a duplicated {what}"


@dataclass(frozen=True)
class InRange(RowCheck):
    """Values lie between ``min`` and ``max`` (either may be left open); nulls pass.

    Bounds are numbers for numeric columns; dates, datetimes or ISO strings for date and
    timestamp columns; strings for string columns. ``inclusive=False`` excludes the bounds.
    """

    kind = "in_range"
    column: str
    min: float | str | date | None = None
    max: float | str | date | None = None
    inclusive: bool = True

    def _validate(self) -> None:
        super()._validate()
        if self.min is None and self.max is None:
            raise self._bad("give 'min', 'max' or both")
        low, high = self.min, self.max
        for name, bound in (("min", low), ("max", high)):
            if isinstance(bound, float) and not math.isfinite(bound):
                raise self._bad(f"field {name!r} must be a finite number, not {bound!r}")
        numbers = isinstance(low, int | float) and isinstance(high, int | float) and low > high
        texts = isinstance(low, str) and isinstance(high, str) and low > high
        if numbers or texts:
            raise self._bad(f"'min' ({low!r}) is greater than 'max' ({high!r})")

    def problem(self, scan: Scan) -> str | None:
        problem = super().problem(scan)
        if problem is not None:
            return problem
        family = type_family(scan.schema[self.column])
        for bound in (self.min, self.max):
            if bound is None:
                continue
            number = isinstance(bound, int | float)
            if number and family not in NUMERIC:
                return f"bound {bound!r} is a number but column {self.column!r} is {family}"
            if not number and family not in ("datetime", "string"):
                return f"bound {bound!r} is not a number but column {self.column!r} is {family}"
            if isinstance(bound, str) and family == "datetime" and not _is_iso(bound):
                return f"bound {bound!r} is not an ISO date or datetime"
        return None

    def failure(self, scan: Scan, params: Params) -> str:
        c = quote_ident(self.column)
        below, above = ("<", ">") if self.inclusive else ("<=", ">=")
        parts = [] if self.min is None else [f"{c} {below} {params(self.min)}"]
        if self.max is not None:
            # NaN sorts above every number in DuckDB, but it is missing, not out of range
            nan = type_family(scan.schema[self.column]) == "float"
            parts.append(
                f"({c} {above} {params(self.max)} AND NOT isnan({c}))"
                if nan
                else f"{c} {above} {params(self.max)}"
            )
        return f"({' OR '.join(parts)})"

    def describe(self, scan: Scan) -> str:
        low, high = show(self.min), show(self.max)
        if self.min is not None and self.max is not None:
            left, right = "[]" if self.inclusive else "()"
            return f"are outside {left}{low}, {high}{right}"
        if self.min is not None:
            return f"are below {low}" if self.inclusive else f"are at or below {low}"
        return f"are above {high}" if self.inclusive else f"are at or above {high}"


@dataclass(frozen=True)
class InSet(RowCheck):
    """Every value is one of ``values``; nulls pass."""

    kind = "in_set"
    column: str
    values: Sequence[Scalar]

    def _validate(self) -> None:
        super()._validate()
        if not self.values:
            raise self._bad("field 'values' must not be empty")

    def failure(self, scan: Scan, params: Params) -> str:
        return not_in(scan, self.column, self.values, params)

    def describe(self, scan: Scan) -> str:
        shown = ", ".join(show(v) for v in self.values[:8])
        more = f", … ({len(self.values)} values)" if len(self.values) > 8 else ""
        return f"are not in {{{shown}{more}}}"


@dataclass(frozen=True)
class Matches(RowCheck):
    """Every value matches ``regex`` as a whole (RE2 syntax, DuckDB's
    ``regexp_full_match``); nulls pass, other types are matched as text."""

    kind = "matches"
    column: str
    regex: str

    def _validate(self) -> None:
        super()._validate()
        non_empty(self, "regex")

    def failure(self, scan: Scan, params: Params) -> str:
        c = quote_ident(self.column)
        text = c if type_family(scan.schema[self.column]) == "string" else f"CAST({c} AS VARCHAR)"
        return f"NOT regexp_full_match({text}, {params(self.regex)})"

    def describe(self, scan: Scan) -> str:
        return f"do not match /{self.regex}/"


@dataclass(frozen=True)
class SqlPredicate(RowCheck):
    """A DuckDB boolean expression over a row's columns that every row must satisfy,
    such as ``"price >= 0 or status = 'free'"``. Quote odd column names (``"unit price"``).

    Rows where the expression is NULL pass, as in a SQL ``CHECK`` constraint. Statements,
    comments, parameters and subqueries are refused.
    """

    kind = "sql"
    column: ClassVar[None] = None
    expression: str

    def _validate(self) -> None:
        try:
            check_expression(self.expression)
        except InvalidInput as exc:
            raise self._bad(f"field 'expression': {exc}") from None

    @property
    def default_name(self) -> str:
        text = " ".join(self.expression.split())
        return f"sql({text if len(text) <= 60 else text[:57] + '...'})"

    def problem(self, scan: Scan) -> str | None:
        try:
            tree = scan.parse(self.expression)
            problem = expression_problem(tree)
            kind = None if problem else scan.result_type(self.expression)
        except duckdb.Error as exc:
            return could_not_evaluate(exc)
        if kind is not None and kind != "BOOLEAN":
            problem = f"the expression gives {kind}, not BOOLEAN"
        return problem

    def sample_columns(self, scan: Scan) -> tuple[str, ...]:
        try:
            refs = {name.lower() for name in _column_refs(scan.parse(self.expression))}
        except duckdb.Error:
            refs = set()
        found = tuple(c for c in scan.schema if c.lower() in refs)
        return found or tuple(scan.schema)

    def failure(self, scan: Scan, params: Params) -> str:
        return f"NOT (\n{self.expression}\n)"

    def describe(self, scan: Scan) -> str:
        return f"violate {' '.join(self.expression.split())}"


@dataclass(frozen=True)
class RowCount(Check):
    """The table has at least ``min`` and at most ``max`` rows."""

    kind = "row_count"
    column: ClassVar[None] = None
    min: int | None = None
    max: int | None = None

    def _validate(self) -> None:
        if self.min is None and self.max is None:
            raise self._bad("give 'min', 'max' or both")
        if any(b is not None and b < 0 for b in (self.min, self.max)):
            raise self._bad("'min' and 'max' must not be negative")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise self._bad(f"'min' ({self.min}) is greater than 'max' ({self.max})")

    def plan(self, scan: Scan, prefix: str) -> Plan:
        return Plan()

    def judge(self, values: Sequence[Any], scan: Scan) -> Verdict:
        n = scan.num_rows
        if self.min is not None and n < self.min:
            return Verdict(False, f"{n:,} rows; at least {self.min:,} expected")
        if self.max is not None and n > self.max:
            return Verdict(False, f"{n:,} rows; at most {self.max:,} expected")
        return Verdict(True, f"{n:,} rows")


@dataclass(frozen=True)
class Fresh(Check):
    """The newest value of a date or timestamp column is at most ``max_age`` old.

    ``max_age`` is a timedelta or a string such as ``"7d"``, ``"12h"`` or ``"1d12h"``;
    ``now`` (a datetime or ISO string) defaults to the time of the check. Naive timestamps
    are taken as UTC.
    """

    kind = "fresh"
    column: str
    max_age: timedelta | str
    now: datetime | str | None = None

    def _validate(self) -> None:
        super()._validate()
        try:
            age = self.max_age_delta
        except InvalidInput as exc:
            raise self._bad(f"field 'max_age': {exc}") from None
        if age <= timedelta(0):
            raise self._bad("field 'max_age' must be positive")
        if isinstance(self.now, str) and not _is_iso(self.now):
            raise self._bad(f"field 'now' must be an ISO datetime, not {self.now!r}")

    @property
    def max_age_delta(self) -> timedelta:
        """``max_age`` as a timedelta."""
        age = self.max_age
        return age if isinstance(age, timedelta) else parse_duration(age)

    def problem(self, scan: Scan) -> str | None:
        problem = super().problem(scan)
        if problem is None and type_family(scan.schema[self.column]) != "datetime":
            problem = f"column {self.column!r} is {scan.schema[self.column]}, not a date or time"
        return problem

    def plan(self, scan: Scan, prefix: str) -> Plan:
        return Plan((f"epoch(max({quote_ident(self.column)}))",))

    def judge(self, values: Sequence[Any], scan: Scan) -> Verdict:
        if values[0] is None:
            return Verdict(False, f"column {self.column!r} has no values")
        newest = datetime.fromtimestamp(float(values[0]), UTC)
        now = datetime.fromisoformat(self.now) if isinstance(self.now, str) else self.now
        now = now or datetime.now(UTC)
        age = (now if now.tzinfo else now.replace(tzinfo=UTC)) - newest
        message = f"newest value {newest.isoformat()} is {_show_age(age)} old"
        if age <= self.max_age_delta:
            return Verdict(True, message)
        return Verdict(False, f"{message}; at most {format_duration(self.max_age_delta)} allowed")


def check_expression(expression: str) -> None:
    """Refuse what cannot be a plain boolean expression over a row.

    Raises
    ------
    InvalidInput
        Empty, several statements (``;``), comments, parameters, statement keywords
        (``DROP``, ``SELECT``...) or a text DuckDB cannot parse as one expression.
    """
    if not expression.strip():
        raise InvalidInput("the expression is empty")
    for token in _TOKEN.findall(expression):
        if token == ";":
            raise InvalidInput(f"{expression!r} is not one expression: ';' ends a statement")
        if token in ("--", "/*"):
            raise InvalidInput(f"{expression!r}: comments are not allowed")
        if token in ("$", "?", "`", "\\"):
            raise InvalidInput(f"{expression!r}: {token!r} is not allowed outside quotes")
        if _STATEMENT.fullmatch(token):
            raise InvalidInput(
                f"{expression!r} must be a boolean expression over the row's columns, not a "
                f"statement or subquery ({token.upper()}); quote a column of that name"
            )
    try:
        duckdb.SQLExpression(expression)
    except (duckdb.Error, ValueError) as exc:
        raise InvalidInput(
            f"{expression!r} is not a DuckDB expression: {first_line(exc)}"
        ) from None


def expression_problem(tree: Mapping[str, Any]) -> str | None:
    """Why DuckDB's parse tree of ``SELECT <expression>`` is not one plain expression."""
    if tree.get("error"):
        return f"the expression does not parse: {tree.get('error_message', '')}"
    statements = tree.get("statements") or []
    node = statements[0].get("node", {}) if len(statements) == 1 else {}
    plain = (
        node.get("type") == "SELECT_NODE"
        and len(node.get("select_list") or []) == 1
        and (node.get("from_table") or {}).get("type") == "EMPTY"
        and not any(node.get(k) for k in ("modifiers", "where_clause", "group_expressions"))
        and not any(node.get(k) for k in ("group_sets", "having", "sample", "qualify"))
        and not (node.get("cte_map") or {}).get("map")
    )
    if not plain:
        return "the expression must be one expression over the row, nothing more"
    if _has_class(node, "SUBQUERY"):
        return "subqueries are not allowed in a sql check"
    return None


def _has_class(node: object, cls: str) -> bool:
    if isinstance(node, Mapping):
        return node.get("class") == cls or any(_has_class(v, cls) for v in node.values())
    return isinstance(node, list) and any(_has_class(v, cls) for v in node)


def _column_refs(node: object) -> list[str]:
    if isinstance(node, Mapping):
        names = node.get("column_names") if node.get("class") == "COLUMN_REF" else None
        found = [str(names[-1])] if isinstance(names, list) and names else []
        return found + [r for v in node.values() for r in _column_refs(v)]
    return [r for v in node for r in _column_refs(v)] if isinstance(node, list) else []


def _show_age(age: timedelta) -> str:
    """An age in hours, or in days past two days."""
    seconds = age.total_seconds()
    if abs(seconds) >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds / 3600:.1f} hours"


def _is_iso(text: str) -> bool:
    """Whether ``text`` is an ISO date or datetime."""
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
