"""Checks against a reference profile: has the data drifted from what it was?

The reference is the dict :func:`loopml.data.profile_table` returns (``{"num_rows",
"columns": {name: stats}}``), passed to the validation as ``reference_profile``.
:class:`MeanWithin`, :class:`StdWithin` and :class:`QuantileWithin` compare a statistic of a
numeric column with the reference's; :class:`NoNewCategories` finds values the reference
never listed. Without a reference, or when it lacks the statistic, the check fails and says
why.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from loopml.data._check_base import (
    NUMERIC,
    Check,
    Params,
    Plan,
    RowCheck,
    Scan,
    Verdict,
    fraction_field,
    not_in,
    pct,
    quote_ident,
    show,
    type_family,
)


class _Drift(Check):
    """A statistic of a numeric column compared with the reference profile's."""

    statistic: ClassVar[str]
    column: str
    tolerance: float
    relative: bool

    def _validate(self) -> None:
        super()._validate()
        if not math.isfinite(self.tolerance) or self.tolerance < 0:
            raise self._bad(f"field 'tolerance' must be >= 0, not {self.tolerance!r}")

    def reference_value(self, stats: Mapping[str, Any]) -> Any:
        """The reference statistic, from the column's profile."""
        return stats.get(self.statistic)

    @abstractmethod
    def aggregate(self, values: str) -> str:
        """SQL of the statistic over ``values`` (the column's finite values as DOUBLE)."""

    def problem(self, scan: Scan) -> str | None:
        problem = super().problem(scan) or _numeric_problem(scan, self.column)
        if problem is not None:
            return problem
        stats, problem = _reference_stats(scan, self.column)
        if stats is not None and not _is_number(self.reference_value(stats)):
            problem = f"the reference profile has no {self.statistic} for {self.column!r}"
        return problem

    def plan(self, scan: Scan, prefix: str) -> Plan:
        return Plan((self.aggregate(_finite(scan, self.column)),))

    def judge(self, values: Sequence[Any], scan: Scan) -> Verdict:
        stats = scan.reference(self.column) or {}
        expected = float(self.reference_value(stats))
        what = f"{self.statistic} of {self.column!r}"
        if values[0] is None:
            return Verdict(False, f"{what} is undefined (no finite values)")
        actual = float(values[0])
        off = abs(actual - expected)
        limit = self.tolerance * abs(expected) if self.relative else self.tolerance
        passed = off <= limit or math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
        if self.relative:
            shown = pct(off / abs(expected)) if expected else f"{show(off)} (reference is 0)"
            allowed = pct(self.tolerance)
        else:
            shown, allowed = show(off), show(self.tolerance)
        return Verdict(
            passed,
            f"{what} is {show(actual)}, reference {show(expected)}: off by {shown}, "
            f"at most {allowed} allowed",
        )


@dataclass(frozen=True)
class MeanWithin(_Drift):
    """The mean is within ``tolerance`` of the reference mean (a fraction of it if
    ``relative``, else in the column's units). Needs a reference profile."""

    kind = "mean_within"
    statistic = "mean"
    column: str
    tolerance: float
    relative: bool = True

    def aggregate(self, values: str) -> str:
        return f"avg({values})"


@dataclass(frozen=True)
class StdWithin(_Drift):
    """The (sample) standard deviation is within ``tolerance`` of the reference's."""

    kind = "std_within"
    statistic = "std"
    column: str
    tolerance: float
    relative: bool = True

    def aggregate(self, values: str) -> str:
        return f"stddev_samp({values})"


@dataclass(frozen=True)
class QuantileWithin(_Drift):
    """Quantile ``q`` (one the reference profile has, e.g. 0.5 or 0.99) is within
    ``tolerance`` of the reference's."""

    kind = "quantile_within"
    statistic = "quantile"
    column: str
    q: float
    tolerance: float
    relative: bool = True

    def _validate(self) -> None:
        super()._validate()
        if not 0 < self.q < 1:
            raise self._bad(f"field 'q' must be between 0 and 1, not {self.q!r}")

    @property
    def default_name(self) -> str:
        return f"{self.kind}({self.column}, {self.q:g})"

    def reference_value(self, stats: Mapping[str, Any]) -> Any:
        quantiles = stats.get("quantiles")
        if not isinstance(quantiles, Mapping):
            return None
        for key, value in quantiles.items():
            numeric = _is_number(key) or (isinstance(key, str) and _is_float(key))
            if numeric and math.isclose(float(key), self.q):
                return value
        return None

    def aggregate(self, values: str) -> str:
        return f"quantile_cont({values}, {float(self.q)!r})"


@dataclass(frozen=True)
class NoNewCategories(RowCheck):
    """Values are among the reference profile's categories (its ``levels``, else its
    ``top_values``); at most ``max_new_fraction`` of the rows may hold others. Nulls pass."""

    kind = "no_new_categories"
    column: str
    max_new_fraction: float = 0.0

    def _validate(self) -> None:
        super()._validate()
        fraction_field(self, "max_new_fraction")

    @property
    def allowed_fraction(self) -> float:
        return self.max_new_fraction

    def problem(self, scan: Scan) -> str | None:
        problem = super().problem(scan)
        if problem is not None:
            return problem
        stats, problem = _reference_stats(scan, self.column)
        if stats is not None and reference_categories(stats) is None:
            problem = f"the reference profile lists no categories for {self.column!r}"
        return problem

    def failure(self, scan: Scan, params: Params) -> str:
        known = reference_categories(scan.reference(self.column) or {}) or []
        return not_in(scan, self.column, known, params)

    def describe(self, scan: Scan) -> str:
        return "hold a category absent from the reference"


def reference_categories(stats: Mapping[str, Any]) -> list[Any] | None:
    """A reference column's categories: its ``levels``, else its ``top_values``' values."""
    levels = stats.get("levels")
    if isinstance(levels, list):
        return [v for v in levels if v is not None]
    top = stats.get("top_values")
    if isinstance(top, list):
        return [t["value"] for t in top if isinstance(t, Mapping) and t.get("value") is not None]
    return None


def _reference_stats(scan: Scan, column: str) -> tuple[Mapping[str, Any] | None, str | None]:
    if not scan.has_reference:
        return None, "needs a reference profile (pass reference_profile=...)"
    stats = scan.reference(column)
    if stats is None:
        return None, f"column {column!r} is not in the reference profile"
    return stats, None


def _numeric_problem(scan: Scan, column: str) -> str | None:
    if type_family(scan.schema[column]) in NUMERIC:
        return None
    return f"column {column!r} is {scan.schema[column]}, not numeric"


def _finite(scan: Scan, column: str) -> str:
    """SQL of a numeric column's finite values as DOUBLE (NULL elsewhere)."""
    c = quote_ident(column)
    if type_family(scan.schema[column]) == "integer":
        return f"CAST({c} AS DOUBLE)"
    return f"CASE WHEN isfinite({c}) THEN CAST({c} AS DOUBLE) END"


def _is_number(value: object) -> bool:
    """Whether ``value`` is a finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_float(text: str) -> bool:
    """Whether ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True
