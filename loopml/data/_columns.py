"""Column-wise cleaning steps that neither impute nor encode: clipping outliers to bounds
learnt at fit (:class:`Winsorizer` at quantiles, :class:`IQRClipper` at Tukey's fences),
centring and scaling numbers (:class:`Scaler`), splitting timestamps into calendar parts
(:class:`DatetimeFeatures`), casting columns back to their training dtypes
(:class:`TypeCoercer`) and dropping duplicate training rows (:class:`Deduplicator`). All
follow the conventions of :mod:`loopml.data._frame`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from loopml.data._frame import (
    Columns,
    _any,
    _assemble,
    _first_bad,
    _FrameTransformer,
    _is_datetime,
    _is_numeric,
    _is_real,
    _numbers,
    _pick,
    _plain,
    _quoted,
    _to_datetimes,
    _unique_names,
)
from loopml.errors import InvalidInput

# ---------------------------------------------------------------------------------------------
# Outliers and scaling
# ---------------------------------------------------------------------------------------------


class _Clipper(_FrameTransformer):
    """Clips numeric columns to per-column bounds learnt at fit."""

    columns: Columns

    def _bounds(self, values: pd.Series) -> tuple[float, float]:
        raise NotImplementedError

    def _validate(self) -> None:
        raise NotImplementedError

    def fit(self, X: Any, y: Any = None) -> Self:
        """Learn the lower and upper bound of each column."""
        self._validate()
        owner = type(self).__name__
        frame = self._start_fit(X)
        self.columns_ = _pick(frame, self.columns, _is_numeric, owner)
        self.lower_bounds_: dict[str, float] = {}
        self.upper_bounds_: dict[str, float] = {}
        for col in self.columns_:
            low, high = self._bounds(_numbers(frame[col], col, owner))
            self.lower_bounds_[col], self.upper_bounds_[col] = low, high
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Clip the fitted columns (as float64); missing values stay missing."""
        frame = self._start_transform(X)
        owner = type(self).__name__
        return frame.assign(
            **{
                c: _numbers(frame[c], c, owner).clip(self.lower_bounds_[c], self.upper_bounds_[c])
                for c in self.columns_
            }
        )


class Winsorizer(_Clipper):
    """Clip numeric columns at quantiles learnt at fit.

    Parameters
    ----------
    lower, upper : quantiles in [0, 1], ``lower < upper`` (linear interpolation, as
        ``numpy.quantile``; missing values ignored).
    columns : columns to clip; None means the numeric ones.

    Attributes
    ----------
    columns_ : list of str.
    lower_bounds_, upper_bounds_ : dict, column → bound (NaN when the column had no values,
        which disables clipping).
    """

    def __init__(self, lower: float = 0.01, upper: float = 0.99, columns: Columns = None) -> None:
        self.lower = lower
        self.upper = upper
        self.columns = columns

    def _validate(self) -> None:
        if not (
            _is_real(self.lower) and _is_real(self.upper) and 0 <= self.lower < self.upper <= 1
        ):
            raise InvalidInput(
                f"Winsorizer: need 0 <= lower < upper <= 1, got lower={self.lower!r}, "
                f"upper={self.upper!r}"
            )

    def _bounds(self, values: pd.Series) -> tuple[float, float]:
        q = values.quantile([self.lower, self.upper])
        return float(q.iloc[0]), float(q.iloc[1])


class IQRClipper(_Clipper):
    """Clip numeric columns to ``[Q1 - factor·IQR, Q3 + factor·IQR]`` learnt at fit.

    Parameters
    ----------
    factor : non-negative multiple of the interquartile range (Tukey's fences: 1.5).
    columns : columns to clip; None means the numeric ones.

    Attributes
    ----------
    columns_ : list of str.
    lower_bounds_, upper_bounds_ : dict, column → bound.
    """

    def __init__(self, factor: float = 1.5, columns: Columns = None) -> None:
        self.factor = factor
        self.columns = columns

    def _validate(self) -> None:
        if not (_is_real(self.factor) and self.factor >= 0):
            raise InvalidInput(f"IQRClipper: factor must be >= 0, not {self.factor!r}")

    def _bounds(self, values: pd.Series) -> tuple[float, float]:
        q1, q3 = values.quantile([0.25, 0.75])
        iqr = q3 - q1
        return float(q1 - self.factor * iqr), float(q3 + self.factor * iqr)


_SCALE_METHODS = ("standard", "minmax", "robust")


class Scaler(_FrameTransformer):
    """Centre and scale numeric columns: ``(x - center_) / scale_``.

    Parameters
    ----------
    method : ``"standard"`` (mean, population standard deviation), ``"minmax"`` (min,
        max - min: fitted range maps to [0, 1]) or ``"robust"`` (median, interquartile range).
    columns : columns to scale; None means the numeric ones.

    Attributes
    ----------
    columns_ : list of str.
    center_, scale_ : dict, column → value. A zero or undefined scale is stored as 1.0 (a
        constant column is only centred), as scikit-learn does.
    """

    def __init__(
        self,
        method: Literal["standard", "minmax", "robust"] = "standard",
        columns: Columns = None,
    ) -> None:
        self.method = method
        self.columns = columns

    def fit(self, X: Any, y: Any = None) -> Self:
        """Learn the centre and scale of each column."""
        if self.method not in _SCALE_METHODS:
            raise InvalidInput(
                f"Scaler: method must be one of {_quoted(_SCALE_METHODS)}, not {self.method!r}"
            )
        frame = self._start_fit(X)
        self.columns_ = _pick(frame, self.columns, _is_numeric, "Scaler")
        self.center_: dict[str, float] = {}
        self.scale_: dict[str, float] = {}
        for col in self.columns_:
            v = _numbers(frame[col], col, "Scaler")
            if self.method == "standard":
                center, scale = v.mean(), v.std(ddof=0)
            elif self.method == "minmax":
                center, scale = v.min(), v.max() - v.min()
            else:
                q1, q3 = v.quantile([0.25, 0.75])
                center, scale = v.median(), q3 - q1
            self.center_[col] = 0.0 if pd.isna(center) else float(center)
            self.scale_[col] = 1.0 if pd.isna(scale) or scale == 0 else float(scale)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Scale the fitted columns (as float64)."""
        frame = self._start_transform(X)
        return frame.assign(
            **{
                c: (_numbers(frame[c], c, "Scaler") - self.center_[c]) / self.scale_[c]
                for c in self.columns_
            }
        )


# ---------------------------------------------------------------------------------------------
# Dates, types, duplicates
# ---------------------------------------------------------------------------------------------

_DATE_PARTS: dict[str, Callable[[Any], Any]] = {
    "year": lambda d: d.year,
    "quarter": lambda d: d.quarter,
    "month": lambda d: d.month,
    "week": lambda d: d.isocalendar().week,
    "day": lambda d: d.day,
    "dayofweek": lambda d: d.day_of_week,
    "dayofyear": lambda d: d.day_of_year,
    "hour": lambda d: d.hour,
    "minute": lambda d: d.minute,
    "second": lambda d: d.second,
}


class DatetimeFeatures(_FrameTransformer):
    """Split timestamps into integer calendar parts, ``<column>_<part>``.

    Parameters
    ----------
    columns : columns to split; None means the datetime ones (naive or tz-aware). Other
        columns given here are parsed from text (ISO-like formats, offsets allowed).
    parts : any of ``year, quarter, month, week`` (ISO week), ``day, dayofweek`` (Monday=0),
        ``dayofyear, hour, minute, second``.
    drop : drop the original column (else it is kept, before its parts).

    Attributes
    ----------
    columns_ : list of str.
    tz_ : dict, column → the time zone seen at fit (None: naive).

    Notes
    -----
    Parts are read in the zone seen at fit: tz-aware input in another zone is converted to
    it, naive input is read as UTC; for a naive fit, tz-aware input is converted to UTC. Parts
    are nullable ``Int64``: a missing timestamp gives missing parts.

    Raises
    ------
    InvalidInput
        Unknown parts, or text that does not parse as a timestamp (naming column and value).
    """

    def __init__(
        self,
        columns: Columns = None,
        parts: Sequence[str] = ("year", "month", "day", "dayofweek", "hour"),
        drop: bool = True,
    ) -> None:
        self.columns = columns
        self.parts = parts
        self.drop = drop

    def fit(self, X: Any, y: Any = None) -> Self:
        """Record the columns and their time zones."""
        parts = [self.parts] if isinstance(self.parts, str) else list(self.parts)
        unknown = [p for p in parts if p not in _DATE_PARTS]
        if unknown or not parts or len(set(parts)) != len(parts):
            raise InvalidInput(
                f"DatetimeFeatures: parts must be distinct names among {_quoted(_DATE_PARTS)}; "
                f"got {self.parts!r}"
            )
        self.parts_ = parts
        frame = self._start_fit(X)
        self.columns_ = _pick(frame, self.columns, _is_datetime, "DatetimeFeatures")
        self.tz_: dict[str, tzinfo | None] = {}
        for col in self.columns_:
            s = frame[col]
            self.tz_[col] = s.dt.tz if _is_datetime(s) else None
            self._stamps(col, s)
        _unique_names(self._names_out(), "DatetimeFeatures")
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Replace each fitted column by its parts."""
        frame = self._start_transform(X)
        replaced: dict[str, pd.DataFrame] = {}
        for col in self.columns_:
            stamps = self._stamps(col, frame[col])
            parts = {f"{col}_{p}": _DATE_PARTS[p](stamps.dt).astype("Int64") for p in self.parts_}
            piece = pd.DataFrame(parts, index=frame.index)
            replaced[col] = piece if self.drop else pd.concat([frame[[col]], piece], axis=1)
        return _assemble(frame, replaced)

    def _stamps(self, col: str, s: pd.Series) -> pd.Series:
        stamps = _to_datetimes(s, self.tz_[col])
        bad = stamps.isna() & s.notna()
        if bad.any():
            raise InvalidInput(
                f"DatetimeFeatures: column {col!r} must hold timestamps; {_first_bad(bad, s)}"
            )
        return stamps

    def _names_out(self) -> list[str]:
        out: list[str] = []
        for col in self.feature_names_in_:
            if col in self.tz_:
                out.extend([] if self.drop else [col])
                out.extend(f"{col}_{p}" for p in self.parts_)
            else:
                out.append(col)
        return out


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.number) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"not a boolean: {value!r}")


def _cast(s: pd.Series, dtype: Any) -> pd.Series:
    """``s`` as ``dtype``; raises TypeError/ValueError/OverflowError when a value does not fit."""
    if s.dtype == dtype:
        return s
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pdt.is_bool_dtype(dtype):
        parsed = s.map(_parse_bool, na_action="ignore")
        if isinstance(dtype, np.dtype) and parsed.isna().any():
            raise ValueError("a missing value cannot be a bool")
        return parsed.astype(dtype)
    if pdt.is_numeric_dtype(dtype):
        numbers = s if pdt.is_numeric_dtype(s.dtype) else pd.to_numeric(s, errors="raise")
        if pdt.is_integer_dtype(dtype) and pdt.is_float_dtype(numbers.dtype):
            present = numbers.dropna()
            if (present != np.round(present)).any():
                raise ValueError("not an integer")
        return numbers.astype(dtype)
    if isinstance(dtype, pd.DatetimeTZDtype) or pdt.is_datetime64_dtype(dtype):
        stamps = _to_datetimes(s, getattr(dtype, "tz", None))
        if (stamps.isna() & s.notna()).any():
            raise ValueError("not a timestamp")
        return stamps.astype(dtype)
    return s.astype(dtype)


def _cast_fails(s: pd.Series, dtype: Any) -> bool:
    try:
        _cast(s, dtype)
    except (TypeError, ValueError, OverflowError):
        return True
    return False


class TypeCoercer(_FrameTransformer):
    """Cast every column to the dtype it had at fit (or the one given).

    Serving input often arrives as JSON text (``"42"``) or with drifted dtypes; this step puts
    each column back to its training dtype and says which value does not fit.

    Parameters
    ----------
    dtypes : column → dtype name (``"int64"``, ``"float64"``, ``"bool"``, ``"str"``,
        ``"category"``, ``"datetime64[ns]"``, ``"datetime64[ns, UTC]"``, ``"Int64"``, ...)
        overriding the dtype recorded at fit; the data are cast at fit too.

    Attributes
    ----------
    dtypes_ : dict, column → dtype name applied at transform.

    Notes
    -----
    Booleans accept ``true/false, t/f, yes/no, y/n, 1/0`` (any case) and 0/1. A missing value
    cannot be cast to ``int64`` or ``bool``: declare ``"Int64"``/``"boolean"`` or
    ``"float64"`` for columns that may have gaps.

    Raises
    ------
    InvalidInput
        A dtype name pandas does not know, a column of ``dtypes`` not in X, or a value that
        cannot be cast (naming the column, the row label and the value).
    """

    def __init__(self, dtypes: dict[str, str] | None = None) -> None:
        self.dtypes = dtypes

    def fit(self, X: Any, y: Any = None) -> Self:
        """Record the dtype of each column (given ones take precedence)."""
        frame = self._start_fit(X)
        given = dict(self.dtypes or {})
        absent = [c for c in given if c not in frame.columns]
        if absent:
            raise InvalidInput(f"TypeCoercer: column(s) {_quoted(absent)} in dtypes are not in X")
        self.dtypes_: dict[str, str] = {}
        for col in frame.columns:
            if col in given:
                try:
                    dtype = pdt.pandas_dtype(given[col])
                except (TypeError, ValueError) as exc:
                    raise InvalidInput(
                        f"TypeCoercer: unknown dtype {given[col]!r} for column {col!r}"
                    ) from exc
            else:
                dtype = frame[col].dtype
            self.dtypes_[col] = str(dtype)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Cast each column to its recorded dtype."""
        frame = self._start_transform(X)
        cast: dict[str, pd.Series] = {}
        for col, name in self.dtypes_.items():
            s, dtype = frame[col], pdt.pandas_dtype(name)
            try:
                cast[col] = _cast(s, dtype)
            except (TypeError, ValueError, OverflowError) as exc:
                culprit = self._culprit(s, dtype)
                raise InvalidInput(
                    f"TypeCoercer: column {col!r} cannot be cast to {name}: {culprit}"
                ) from exc
        return frame.assign(**cast)

    @staticmethod
    def _culprit(s: pd.Series, dtype: Any) -> str:
        """``row <label> has <value>`` for the first value that fails on its own (bisection)."""
        lo, hi = 0, len(s)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _cast_fails(s.iloc[lo:mid], dtype):
                hi = mid
            else:
                lo = mid
        if hi - lo == 1 and _cast_fails(s.iloc[lo:hi], dtype):
            label, value = _plain(s.index[lo]), _plain(s.iloc[lo])
            return f"row {label!r} is missing" if pd.isna(value) else f"row {label!r} has {value!r}"
        return "the values do not fit together"


class Deduplicator(_FrameTransformer):
    """Drop duplicate rows when training; pass rows through when serving.

    ``fit_transform`` (what a ``Pipeline`` calls on training data) drops duplicates and keeps
    the original index labels, so the target can follow with ``y.loc[X_out.index]``.
    ``transform`` (serving, evaluation) never drops a row: each request must get exactly one
    prediction. Because scikit-learn steps cannot drop rows of ``y``, use it on the training
    frame before separating the target, or as a standalone step rather than inside a
    ``Pipeline`` with a model.

    Parameters
    ----------
    subset : columns that define a duplicate; None means all columns.
    keep : ``"first"``, ``"last"`` or ``False`` (drop every copy).

    Attributes
    ----------
    subset_ : list of str.
    n_duplicates_ : int, rows dropped by the last ``fit_transform``.
    """

    def __init__(
        self, subset: Columns = None, keep: Literal["first", "last", False] = "first"
    ) -> None:
        self.subset = subset
        self.keep = keep

    def fit(self, X: Any, y: Any = None) -> Self:
        """Check ``subset`` and ``keep``; nothing is learnt."""
        if self.keep not in ("first", "last") and self.keep is not False:
            raise InvalidInput(
                f"Deduplicator: keep must be 'first', 'last' or False, not {self.keep!r}"
            )
        frame = self._start_fit(X)
        self.subset_ = _pick(frame, self.subset, _any, "Deduplicator")
        self.n_duplicates_ = 0
        return self

    def fit_transform(self, X: Any, y: Any = None) -> pd.DataFrame:
        """Fit, then return the rows without duplicates (index labels kept)."""
        self.fit(X)
        frame = self._start_transform(X)
        kept = frame.drop_duplicates(subset=self.subset_, keep=self.keep)
        self.n_duplicates_ = len(frame) - len(kept)
        return kept

    def transform(self, X: Any) -> pd.DataFrame:
        """Return every row (a no-op apart from the column check)."""
        return self._start_transform(X)


__all__ = [
    "DatetimeFeatures",
    "Deduplicator",
    "IQRClipper",
    "Scaler",
    "TypeCoercer",
    "Winsorizer",
]
