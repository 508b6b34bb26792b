"""Suggest a suite from a profile: the checks that the profiled data passes, to edit and keep.

:func:`suggest_suite` reads a profile dict (:func:`loopml.data.profile_table`) and proposes,
for every column, that it exists with its type family and is not null (or not more null
than it was); ranges for numeric columns, the set of values for small categoricals,
uniqueness for identifiers, and a minimum row count of half the profiled rows. Its
``to_yaml()`` is what ``loopml`` prints for users to edit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from loopml.data._check_base import Check, Scalar
from loopml.data._checks import ColumnExists, InRange, InSet, NotNull, RowCount, Unique
from loopml.data._suite import Suite
from loopml.errors import InvalidInput

MAX_SET_SIZE = 50
_EXACT_INT = 2**53


def suggest_suite(
    profile: Mapping[str, Any], *, name: str = "suggested", null_slack: float = 0.0
) -> Suite:
    """Checks that data like the profiled data should pass.

    Parameters
    ----------
    profile : a profile dict, ``{"num_rows": int, "columns": {name: stats}}``.
    name : the suite's name.
    null_slack : added to each column's observed null fraction to give its allowed one;
        0 (the default) allows no more nulls than were seen.

    Returns
    -------
    Suite
        Per column, in profile order: ``column_exists`` with the type family (``integer``,
        ``float``, ``numeric``, ``string``, ``boolean``, ``datetime``, else the Arrow type);
        ``not_null`` (with ``max_fraction`` if nulls were seen or allowed); ``in_range``
        from min/max for numeric columns; ``in_set`` for categoricals of at most 50
        distinct values whose ``top_values`` cover every non-null row; ``unique`` for
        identifiers. First, ``row_count`` with a minimum of half the rows.

    Raises
    ------
    InvalidInput
        ``profile`` is not a profile, or ``null_slack`` is not in [0, 1].

    Examples
    --------
    >>> profile = {"num_rows": 4, "columns": {"age": {
    ...     "name": "age", "arrow_type": "int64", "kind": "numeric", "count": 4, "nulls": 0,
    ...     "null_fraction": 0.0, "distinct": 4, "min": 18.0, "max": 64.0}}}
    >>> print(suggest_suite(profile).to_yaml(), end="")
    name: suggested
    checks:
      - {check: row_count, min: 2}
      - {check: column_exists, column: age, dtype: integer}
      - {check: not_null, column: age}
      - {check: in_range, column: age, min: 18, max: 64}
    """
    columns = profile.get("columns") if isinstance(profile, Mapping) else None
    if not isinstance(columns, Mapping):
        raise InvalidInput("profile must be a profile dict with a 'columns' mapping")
    if isinstance(null_slack, bool) or not isinstance(null_slack, int | float):
        raise InvalidInput(f"null_slack must be a number, not {null_slack!r}")
    if not 0 <= null_slack <= 1:
        raise InvalidInput(f"null_slack must be between 0 and 1, not {null_slack!r}")
    checks: list[Check] = []
    num_rows = profile.get("num_rows")
    if isinstance(num_rows, int) and num_rows // 2 > 0:
        checks.append(RowCount(min=num_rows // 2))
    for column, stats in columns.items():
        if isinstance(stats, Mapping):
            checks += _column_checks(str(column), stats, num_rows, null_slack)
    return Suite(checks, name=name)


def _column_checks(
    column: str, stats: Mapping[str, Any], num_rows: object, null_slack: float
) -> list[Check]:
    arrow_type = str(stats.get("arrow_type") or "")
    kind = stats.get("kind")
    checks: list[Check] = [ColumnExists(column, dtype=_family(arrow_type) or arrow_type or None)]
    allowed = float(stats.get("null_fraction") or 0.0) + null_slack
    if allowed <= 0:
        checks.append(NotNull(column))
    elif allowed < 1:
        checks.append(NotNull(column, max_fraction=math.ceil(allowed * 1e6) / 1e6))
    if kind == "numeric" and not stats.get("infinite"):
        low, high = _finite(stats.get("min")), _finite(stats.get("max"))
        if low is not None and high is not None:
            integer = _family(arrow_type) == "integer"
            checks.append(InRange(column, _bound(low, integer, -1), _bound(high, integer, 1)))
    if kind == "categorical":
        values = _all_values(stats, num_rows, integer=_family(arrow_type) == "integer")
        if values:
            checks.append(InSet(column, values))
    if kind == "identifier":
        checks.append(Unique(column))
    return checks


def _family(arrow_type: str) -> str | None:
    """The type family of an Arrow type string, as :class:`ColumnExists` takes it."""
    t = arrow_type.lower()
    if t.startswith("dictionary<values="):
        t = t.removeprefix("dictionary<values=")
    if t.startswith(("int", "uint")):
        return "integer"
    if t.startswith(("halffloat", "float", "double")):
        return "float"
    if t.startswith("decimal"):
        return "numeric"
    if t.startswith(("string", "large_string", "utf8", "large_utf8")):
        return "string"
    if t.startswith("bool"):
        return "boolean"
    if t.startswith(("timestamp", "date")):
        return "datetime"
    return None


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _bound(value: float, integer: bool, direction: int) -> float | int:
    """A profile's min or max as a bound: whole for integer columns, and widened by one
    unit in the last place where a float cannot hold the integer exactly."""
    if abs(value) >= _EXACT_INT:
        value += direction * math.ulp(value)
    if not integer:
        return value
    return math.floor(value) if direction < 0 else math.ceil(value)


def _all_values(stats: Mapping[str, Any], num_rows: object, *, integer: bool) -> list[Scalar]:
    """The categorical's values, if ``top_values`` lists all of them and they are few."""
    top = stats.get("top_values")
    distinct = stats.get("distinct")
    if not isinstance(top, list) or not top or len(top) > MAX_SET_SIZE:
        return []
    if isinstance(distinct, int) and distinct > MAX_SET_SIZE:
        return []
    nulls, non_null = stats.get("nulls"), stats.get("count")
    if isinstance(num_rows, int) and isinstance(nulls, int):
        non_null = num_rows - nulls
    entries = [t for t in top if isinstance(t, Mapping) and t.get("value") is not None]
    covered = sum(int(t.get("count") or 0) for t in entries)
    if not isinstance(non_null, int) or covered < non_null:
        return []
    values: list[Scalar] = []
    for entry in entries:
        value: Any = entry["value"]
        if integer and isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        values.append(value if isinstance(value, str | int | float | bool) else str(value))
    return values
