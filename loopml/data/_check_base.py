"""The machinery every check shares: the :class:`Check` base, the :class:`Scan` it runs on,
and the SQL, type and message helpers.

A check runs against a :class:`Scan` — one table readable with SQL — in two steps, so that a
whole suite is answered by one pass over the table:

1. :meth:`Check.plan` gives SQL aggregates over the table and, for a row-level check, the
   predicate that holds on a failing row;
2. :meth:`Check.judge` turns the values of those aggregates into a :class:`Verdict`.

:meth:`Check.evaluate` does both for one check alone and returns its failing row numbers.
Column names are always quoted identifiers (:func:`quote_ident`) and values always bound
parameters (:class:`Params`). Float NaN counts as null, as in :func:`loopml.data.profile_table`.
"""

from __future__ import annotations

import difflib
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from functools import cache
from types import NoneType, UnionType
from typing import Any, ClassVar, Literal, Protocol, get_args, get_origin, get_type_hints

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from loopml.errors import InvalidInput

Severity = Literal["error", "warning"]
Scalar = str | int | float | bool  # a value of an in_set check
Rows = npt.NDArray[np.int64]
TYPE_FAMILIES = ("integer", "float", "numeric", "string", "boolean", "datetime")
NUMERIC = ("integer", "float", "numeric")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])", re.I)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_NAMES: dict[Any, str] = {
    str: "a string",
    float: "a number",
    int: "an integer",
    bool: "true or false",
    NoneType: "null",
    date: "a date",
    datetime: "a datetime",
    timedelta: "a duration",
}
_PLURALS: dict[Any, str] = {str: "strings", float: "numbers", int: "integers", bool: "booleans"}


class Scan(Protocol):
    """What a check evaluates against: one table, readable with SQL as ``source``.

    :class:`loopml.data._validation.TableScan` is the implementation (DuckDB over Arrow).
    """

    @property
    def source(self) -> str:
        """The table's name in SQL."""

    @property
    def num_rows(self) -> int:
        """Rows in the table."""

    @property
    def schema(self) -> Mapping[str, pa.DataType]:
        """Column names and Arrow types, in table order."""

    def reference(self, column: str) -> Mapping[str, Any] | None:
        """The reference profile's statistics of ``column``, if there is a reference."""

    @property
    def has_reference(self) -> bool:
        """Whether a reference profile was given."""

    def aggregate(self, expressions: Sequence[str], params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The values of SQL aggregate ``expressions`` over the whole table, in one pass."""

    def failing_rows(self, predicates: Sequence[str], params: Mapping[str, Any]) -> list[Rows]:
        """For each predicate, the sorted row numbers where it holds, in one pass."""

    def strictly_increasing(self, column: str) -> bool:
        """Whether ``column`` has no nulls and each value exceeds the one before it."""

    def parse(self, expression: str) -> Mapping[str, Any]:
        """DuckDB's parse tree (``json_serialize_sql``) of ``SELECT <expression>``."""

    def result_type(self, expression: str) -> str:
        """The DuckDB type of ``expression`` over the table's rows (binds, does not run)."""


@dataclass(frozen=True)
class Plan:
    """A check's SQL: aggregates over the table, and the predicate true on a failing row."""

    aggregates: tuple[str, ...] = ()
    failure: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """Whether a check passed, why, and how many rows failed it (row-level checks only)."""

    passed: bool
    message: str
    failing_count: int | None = None


class Params:
    """Bound parameters of one check's SQL, named ``$<prefix>_<n>`` so that the SQL of many
    checks can share one statement."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> str:
        key = f"{self.prefix}_{len(self.values)}"
        self.values[key] = value
        return "$" + key


def quote_ident(name: str) -> str:
    """``name`` as a SQL identifier: in double quotes, inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def type_family(arrow_type: pa.DataType) -> str | None:
    """The family of an Arrow type (one of :data:`TYPE_FAMILIES`), ``None`` for others.

    Dictionary columns take their values' family; decimals are ``"numeric"``.
    """
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime"
    return None


def dtype_matches(arrow_type: pa.DataType, dtype: str) -> bool:
    """Whether ``arrow_type`` is ``dtype``: a family name, an Arrow alias or a type string."""
    family = type_family(arrow_type)
    if dtype == "numeric":
        return family in NUMERIC
    if dtype in TYPE_FAMILIES:
        return family == dtype
    types = [arrow_type]
    if pa.types.is_dictionary(arrow_type):
        types.append(arrow_type.value_type)
    try:
        wanted = pa.type_for_alias(dtype)
    except ValueError:
        return any(str(t) == dtype for t in types)
    return any(t == wanted for t in types)


def parse_duration(text: str) -> timedelta:
    """``"7d"``, ``"12h"``, ``"1d12h"``, ``"30m"``, ``"45s"`` or ``"2w"`` as a timedelta.

    Raises
    ------
    InvalidInput
        ``text`` is not such a duration.
    """
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise InvalidInput(f"{text!r} is not a duration such as '7d', '12h', '30m' or '1d12h'")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in parts))


def format_duration(delta: timedelta) -> str:
    """``delta`` in the largest unit that holds it whole (``"7d"``, ``"90m"``, ``"1.5s"``)."""
    seconds = delta.total_seconds()
    for unit in "wdhm":
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{int(seconds // _UNIT_SECONDS[unit])}{unit}"
    return f"{seconds:g}s"


class BadField(InvalidInput):
    """A check field with a wrong value; ``detail`` names the field and says why."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.detail = detail


@dataclass(frozen=True, kw_only=True)
class Check(ABC):
    """What must hold of a table; the base of every check.

    Parameters
    ----------
    name : shown in reports; defaults to ``kind(column)``.
    severity : ``"error"`` (the default) fails a validation; ``"warning"`` is only reported.
    """

    kind: ClassVar[str]
    name: str = ""
    severity: Severity = "error"

    def __post_init__(self) -> None:
        _conform_fields(self)
        self._validate()
        if not self.name:
            object.__setattr__(self, "name", self.default_name)

    def _validate(self) -> None:
        """Raise :class:`BadField` for values of the right type that make no sense."""
        if not all(self.columns):
            raise self._bad("field 'column' must not be empty")

    def _bad(self, detail: str) -> BadField:
        return BadField(self.kind, detail)

    @property
    def columns(self) -> tuple[str, ...]:
        """The table columns this check reads (none for table-level checks)."""
        column: object = getattr(self, "column", None)
        if isinstance(column, str):
            return (column,)
        return column if isinstance(column, tuple) else ()

    @property
    def column_label(self) -> str | None:
        """The column(s) as shown in reports, or ``None``."""
        return ", ".join(self.columns) or None

    @property
    def default_name(self) -> str:
        """The name used when none is given: ``kind(column)``."""
        label = self.column_label
        return f"{self.kind}({label})" if label else self.kind

    def problem(self, scan: Scan) -> str | None:
        """Why this check cannot run on ``scan`` (a missing column...), or ``None``."""
        for column in self.columns:
            if column not in scan.schema:
                return missing_column(column, scan)
        return None

    def sample_columns(self, scan: Scan) -> tuple[str, ...]:
        """The columns shown beside the row number in a sample of failing rows."""
        return self.columns

    @abstractmethod
    def plan(self, scan: Scan, prefix: str) -> Plan:
        """The check's SQL over ``scan.source``, parameters named ``$<prefix>_<n>``."""

    @abstractmethod
    def judge(self, values: Sequence[Any], scan: Scan) -> Verdict:
        """The verdict, given the values of the :meth:`plan`'s aggregates."""

    def evaluate(self, scan: Scan) -> tuple[Verdict, Rows]:
        """Run this check alone: its verdict and, if it failed row by row, the failing rows.

        Returns
        -------
        tuple[Verdict, numpy.ndarray]
            The verdict and the sorted 0-based row numbers that fail it (empty for a passed
            or table-level check). SQL errors give a failed verdict, never an exception.
        """
        no_rows: Rows = np.empty(0, dtype=np.int64)
        problem = self.problem(scan)
        if problem is not None:
            return Verdict(False, problem), no_rows
        try:
            plan = self.plan(scan, "p")
            params = plan.params
            values = scan.aggregate(plan.aggregates, params) if plan.aggregates else ()
            verdict = self.judge(values, scan)
            if verdict.passed or plan.failure is None:
                return verdict, no_rows
            (rows,) = scan.failing_rows([plan.failure], params)
        except duckdb.Error as exc:
            return Verdict(False, could_not_evaluate(exc)), no_rows
        return verdict, rows

    def to_dict(self) -> dict[str, Any]:
        """``{"check": kind, field: value, ...}`` without fields left at their defaults."""
        out: dict[str, Any] = {"check": self.kind}
        own = [f for f in fields(self) if f.name not in ("name", "severity")]
        for f in [*own, *(f for f in fields(self) if f.name in ("name", "severity"))]:
            value = getattr(self, f.name)
            default = self.default_name if f.name == "name" else f.default
            if value == default and type(value) is type(default):
                continue
            if isinstance(value, timedelta):
                value = format_duration(value)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


class RowCheck(Check):
    """A check judged row by row: it fails on the rows where :meth:`failure` holds."""

    @property
    def allowed_fraction(self) -> float:
        """The share of failing rows that still passes (0 unless the check says otherwise)."""
        return 0.0

    @abstractmethod
    def failure(self, scan: Scan, params: Params) -> str:
        """SQL that is true on a failing row (NULL counts as passing)."""

    @abstractmethod
    def describe(self, scan: Scan) -> str:
        """What failing rows do, after "3 of 10 rows": ``"are null"``."""

    def plan(self, scan: Scan, prefix: str) -> Plan:
        params = Params(prefix)
        failure = self.failure(scan, params)
        return Plan((f"count(*) FILTER (WHERE {failure})",), failure, params.values)

    def judge(self, values: Sequence[Any], scan: Scan) -> Verdict:
        count, total = int(values[0] or 0), scan.num_rows
        allowed = self.allowed_fraction
        passed = count == 0 or count / total <= allowed
        message = f"{_of_rows(count, total)} {self.describe(scan)}"
        if allowed > 0:
            message += f"; at most {pct(allowed)} allowed"
        return Verdict(passed, message, count)


# --- SQL pieces -------------------------------------------------------------------------


def missing(scan: Scan, column: str) -> str:
    """SQL true where ``column`` is null, or NaN in a float column."""
    c = quote_ident(column)
    nan = type_family(scan.schema[column]) == "float"
    return f"({c} IS NULL OR isnan({c}))" if nan else f"{c} IS NULL"


def not_in(scan: Scan, column: str, values: Sequence[Any], params: Params) -> str:
    """SQL true where ``column`` holds a value outside ``values`` (nulls and NaN excepted).

    Values compare natively when their Python type suits the column (numbers with numbers,
    strings with strings); otherwise both sides compare as text, as profiles list them.
    """
    c = quote_ident(column)
    family = type_family(scan.schema[column])
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    native = (
        (family in NUMERIC and numbers)
        or (family == "boolean" and all(isinstance(v, bool) for v in values))
        or (family == "string" and all(isinstance(v, str) for v in values))
    )
    if native:
        test = f"{c} NOT IN ({', '.join(params(v) for v in values)})" if values else "true"
    else:
        texts = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        listed = ", ".join(params(t) for t in texts)
        test = f"CAST({c} AS VARCHAR) NOT IN ({listed})" if texts else "true"
    if family == "float":  # NaN is missing, not a value outside the set
        return f"({test} AND NOT isnan({c}))"
    return f"({test})"  # NULL NOT IN (...) is NULL: nulls pass


# --- messages and field checks -----------------------------------------------------------


def missing_column(column: str, scan: Scan) -> str:
    """``column 'x' not found`` with the nearest names, for reports."""
    names = list(scan.schema)
    shown = ", ".join(map(repr, names[:12])) + (", ..." if len(names) > 12 else "")
    return f"column {column!r} not found{did_you_mean(column, names)}; the table has: {shown}"


def could_not_evaluate(exc: BaseException) -> str:
    """The report message for a check whose SQL failed."""
    return f"could not evaluate: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def did_you_mean(word: object, known: Sequence[str] | Mapping[str, Any]) -> str:
    """`` (did you mean 'x'?)`` for the nearest known name, else an empty string."""
    close = difflib.get_close_matches(str(word), list(known), n=1) if isinstance(word, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _of_rows(count: int, total: int) -> str:
    if count == 0:
        return f"0 of {total:,} rows"
    return f"{count:,} of {total:,} rows ({pct(count / total)})"


def pct(fraction: float) -> str:
    """A fraction as a percentage with one decimal."""
    return "<0.1%" if 0 < fraction < 0.001 else f"{fraction:.1%}"


def show(value: object) -> str:
    """A value as shown in messages."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def non_empty(check: Check, *names: str) -> None:
    """Refuse empty strings in the named fields."""
    for name in names:
        if getattr(check, name) == "":
            raise check._bad(f"field {name!r} must not be empty")


def fraction_field(check: Check, name: str) -> None:
    """Refuse a value outside [0, 1] in the named field."""
    value = getattr(check, name)
    if not 0 <= value <= 1:
        raise check._bad(f"field {name!r} must be between 0 and 1, not {value!r}")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _conform_fields(check: Check) -> None:
    """Check each field's value against its annotation; lists become tuples."""
    hints = _hints(type(check))
    for f in fields(check):
        value = _plain(getattr(check, f.name))
        if not _conforms(value, hints[f.name]):
            described = _describe(hints[f.name])
            raise check._bad(f"field {f.name!r} must be {described}, not {value!r}")
        object.__setattr__(check, f.name, value)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def _conforms(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin is UnionType:
        return any(_conforms(value, arm) for arm in get_args(hint))
    if origin is Literal:
        return value in get_args(hint)
    if origin in (tuple, Sequence):
        return isinstance(value, tuple) and all(_conforms(v, get_args(hint)[0]) for v in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is NoneType:
        return value is None
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is UnionType:
        arms = [_describe(arm) for arm in get_args(hint)]
        return ", ".join(arms[:-1]) + " or " + arms[-1]
    if origin is Literal:
        return " or ".join(map(repr, get_args(hint)))
    if origin in (tuple, Sequence):
        items = get_args(get_args(hint)[0]) or get_args(hint)[:1]
        plural = [_PLURALS.get(a, "values") for a in items if a is not int or float not in items]
        listed = ", ".join(plural[:-1]) + " or " + plural[-1] if len(plural) > 1 else plural[0]
        return "a list of " + listed
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))
