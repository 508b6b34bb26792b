"""Dtype names used in signatures, and the safe conversions allowed when input is checked.

A signature names each column's dtype with a short string: the numpy/pandas name for
numbers, booleans and datetimes (``int64``, ``float32``, ``bool``, ``datetime64[ns]``,
``datetime64[ns, UTC]``, nullable ``Int64``...), plus ``string``, ``category`` and ``object``.

Input whose dtype differs is converted only when nothing is lost: integers to floats that
hold them exactly, integral floats to integers, datetimes to another unit without
truncation, and ``object`` columns whose every value converts. Numeric strings are never
parsed. When a value blocks the conversion, :func:`conform` says which one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopml.errors import InvalidInput

STRING = "string"
CATEGORY = "category"
OBJECT = "object"

BoolMask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Unconvertible:
    """Why a column cannot be converted: the first blocking row (position) and its value."""

    row: int | None = None
    value: Any = None


def normalize_dtype(name: str) -> str:
    """The canonical spelling of dtype ``name`` (``"int"`` → ``"int64"``, ``"str"`` → ``"string"``).

    Raises
    ------
    InvalidInput
        ``name`` is not a dtype numpy or pandas knows.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"dtype must be a non-empty string, not {name!r}")
    try:
        dtype = pd.api.types.pandas_dtype(name)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"unknown dtype {name!r}; use a numpy/pandas dtype name such as int64, float64, "
            "bool, string, datetime64[ns], category or object"
        ) from exc
    return _name_of(dtype)


def _name_of(dtype: Any) -> str:
    if isinstance(dtype, pd.CategoricalDtype):
        return CATEGORY
    if dtype != np.dtype(object) and pd.api.types.is_string_dtype(dtype):
        return STRING
    return str(dtype)


def dtype_name(column: pd.Series) -> str:
    """The signature dtype of ``column``; an ``object`` column of only strings is ``string``."""
    name = _name_of(column.dtype)
    if name == OBJECT and pd.api.types.infer_dtype(column, skipna=True) == "string":
        return STRING
    return name


def conform(column: pd.Series, expected: str) -> pd.Series | Unconvertible:
    """``column`` converted to dtype ``expected``, or where the conversion is blocked.

    ``expected`` must be canonical (see :func:`normalize_dtype`).
    """
    if expected == OBJECT or dtype_name(column) == expected:
        return column
    rule = _rule_for(expected)
    if column.dtype == np.dtype(object):
        bad: BoolMask | None = np.fromiter(
            (not rule.accepts(v) for v in column), dtype=np.bool_, count=len(column)
        )
    else:
        bad = rule.check(column)
    if bad is None:
        present = np.flatnonzero(column.notna().to_numpy())
        row = int(present[0]) if len(present) else None
        return Unconvertible(row, None if row is None else column.iloc[row])
    if bad.any():
        row = int(np.argmax(bad))
        return Unconvertible(row, column.iloc[row])
    try:
        return rule.cast(column)
    except (TypeError, ValueError, OverflowError):
        return Unconvertible()


@dataclass(frozen=True)
class _Rule:
    """How to convert towards one target dtype.

    ``accepts`` judges one value of an ``object`` column; ``check`` returns, for a typed
    column, the mask of rows that would not survive (``None``: the dtype never converts);
    ``cast`` performs the conversion once every row is known to survive.
    """

    accepts: Callable[[Any], bool]
    check: Callable[[pd.Series], BoolMask | None]
    cast: Callable[[pd.Series], pd.Series]


def _missing(value: Any) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float | np.floating) and math.isnan(value))
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _kind(column: pd.Series) -> str:
    return str(getattr(column.dtype, "kind", "O"))


def _integers(column: pd.Series) -> npt.NDArray[Any]:
    """An integer column's values as a numpy array, missing ones (nullable dtypes) as 0."""
    return np.asarray(column.to_numpy(dtype=getattr(column.dtype, "numpy_dtype", None), na_value=0))


def _int_rule(target: np.dtype[Any]) -> _Rule:
    info = np.iinfo(target)

    def accepts(v: Any) -> bool:
        if _is_int(v):
            return bool(info.min <= int(v) <= info.max)
        if isinstance(v, float | np.floating):
            f = float(v)
            return math.isfinite(f) and f.is_integer() and info.min <= f <= info.max
        return False

    def check(column: pd.Series) -> BoolMask | None:
        if _kind(column) in "iu":
            values = _integers(column)
            missing = column.isna().to_numpy()
            return np.asarray(missing | (values < info.min) | (values > info.max))
        if _kind(column) == "f":
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                ok = np.isfinite(values) & (values == np.floor(values))
                ok &= (values >= float(info.min)) & (values < float(info.max) + 1)
            return np.asarray(~ok)
        return None

    return _Rule(accepts, check, lambda column: column.astype(target))


def _float_rule(target: np.dtype[Any]) -> _Rule:
    exact = 1 << (int(np.finfo(target).nmant) + 1)  # integers a float of this width holds exactly

    def accepts(v: Any) -> bool:
        if _is_int(v):
            return -exact <= int(v) <= exact
        if isinstance(v, float | np.floating):
            with np.errstate(over="ignore"):
                return not math.isfinite(v) or float(target.type(v)) == float(v)
        return _missing(v)

    def check(column: pd.Series) -> BoolMask | None:
        if _kind(column) in "iu":
            values = _integers(column)
            return np.asarray((values < -exact) | (values > exact))
        if _kind(column) == "f":
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(over="ignore", invalid="ignore"):
                back = values.astype(target).astype(np.float64)
            return np.asarray((back != values) & np.isfinite(values))
        return None

    return _Rule(accepts, check, lambda column: column.astype(target))


def _bool_rule() -> _Rule:
    def check(column: pd.Series) -> BoolMask | None:
        return np.asarray(column.isna().to_numpy()) if _kind(column) == "b" else None

    return _Rule(
        lambda v: isinstance(v, bool | np.bool_), check, lambda column: column.astype(bool)
    )


def _datetime_rule(target: Any) -> _Rule:
    tz = getattr(target, "tz", None)

    def accepts(v: Any) -> bool:
        if v is pd.NaT or v is None:
            return True
        if isinstance(v, dt.datetime):
            return (v.tzinfo is None) == (tz is None)
        return isinstance(v, np.datetime64) and tz is None

    def cast(column: pd.Series) -> pd.Series:
        if column.dtype == np.dtype(object):
            column = pd.to_datetime(column, utc=tz is not None)
        if tz is not None:
            column = column.dt.tz_convert(tz)
        return column.astype(target)

    def check(column: pd.Series) -> BoolMask | None:
        if _kind(column) != "M" or (getattr(column.dtype, "tz", None) is None) != (tz is None):
            return None
        back = cast(column).astype(column.dtype)
        return np.asarray((back != column).to_numpy() & column.notna().to_numpy())

    return _Rule(accepts, check, cast)


def _string_rule() -> _Rule:
    return _Rule(
        lambda v: isinstance(v, str) or _missing(v), lambda column: None, lambda column: column
    )


def _category_rule() -> _Rule:
    def check(column: pd.Series) -> BoolMask | None:
        if dtype_name(column) == STRING:
            return np.zeros(len(column), dtype=np.bool_)
        return None

    return _Rule(
        lambda v: isinstance(v, str | int | float | np.number | np.bool_) or _missing(v),
        check,
        lambda column: column.astype(CATEGORY),
    )


def _extension_rule(target: Any) -> _Rule:
    """Nullable and other pandas dtypes: pandas' own safe cast, from numbers and booleans."""

    def check(column: pd.Series) -> BoolMask | None:
        return np.zeros(len(column), dtype=np.bool_) if _kind(column) in "biuf" else None

    return _Rule(lambda v: False, check, lambda column: column.astype(target))


def _rule_for(expected: str) -> _Rule:
    if expected == STRING:
        return _string_rule()
    if expected == CATEGORY:
        return _category_rule()
    target = pd.api.types.pandas_dtype(expected)
    if isinstance(target, np.dtype):
        if target.kind in "iu":
            return _int_rule(target)
        if target.kind == "f":
            return _float_rule(target)
        if target.kind == "b":
            return _bool_rule()
    if getattr(target, "kind", None) == "M":
        return _datetime_rule(target)
    return _extension_rule(target)
