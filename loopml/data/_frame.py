"""The private base class of the DataFrame transformers and the helpers they share.
:class:`_FrameTransformer` records the fit-time columns (``feature_names_in_``), checks them
at transform, answers ``get_feature_names_out`` and tells scikit-learn that missing values
are allowed; the helpers turn input into a DataFrame with unique string column names, pick
the columns of the right kind, convert values to numbers, object arrays or datetimes, build
error messages that name the column and value, and splice replaced columns back in place.
The transformers themselves live in ``_impute``, ``_encode`` and ``_columns``.
"""

# The contract of every transformer built on _FrameTransformer (the public classes of _impute,
# _encode and _columns).
#
# Every transformer follows the scikit-learn contract: the constructor only stores its
# arguments, ``fit`` validates them and learns state with a trailing underscore, and
# ``transform`` checks the input against the columns seen at fit (``feature_names_in_``).
# They clone, pickle with joblib, support ``set_output`` and work inside ``Pipeline`` and
# ``ColumnTransformer``.
#
# Shared conventions:
#
# - Input is a DataFrame; a 2-D numpy array is accepted and gets the names ``x0, x1, ...`` at
#   fit (at transform an array is read positionally against the names seen at fit).
# - Output has the columns of :meth:`get_feature_names_out`, always in the same order: the fit
#   columns with the transformed ones replaced in place. Columns not seen at fit are dropped.
# - A transformer with a ``columns`` argument touches only those columns (by default the ones
#   of the right kind: numbers for numeric steps, strings/categories/booleans for encoders)
#   and passes the others through unchanged.
# - Bad input raises :class:`loopml.errors.InvalidInput` naming the column (and the value),
#   never a bare ``KeyError`` or ``ValueError`` from pandas.
# - The encoders treat a missing value as "no category": all zeros (one-hot), the
#   ``unknown_value`` (ordinal) or the target mean (target encoding). Impute first with
#   ``Imputer(strategy="constant")`` to make missingness a category of its own.

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import tzinfo
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api import types as pdt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from loopml.errors import InvalidInput

Columns = Sequence[str] | str | None
Objects = npt.NDArray[np.object_]
Floats = npt.NDArray[np.float64]

# ---------------------------------------------------------------------------------------------
# Helpers: frames, column picking, value conversion
# ---------------------------------------------------------------------------------------------


def _to_frame(X: Any, names: list[str] | None, owner: str) -> pd.DataFrame:
    """``X`` as a DataFrame with unique string column names.

    An array gets ``names`` (the fit-time names) when given, else ``x0, x1, ...``.
    """
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        cols = [str(c) for c in X.columns]
        if len(set(cols)) != len(cols):
            dupes = sorted({c for c in cols if cols.count(c) > 1})
            raise InvalidInput(f"{owner}: duplicate column(s) {_quoted(dupes)}")
        return X if cols == list(X.columns) else X.set_axis(cols, axis=1)
    try:
        array = np.asarray(X)
    except ValueError as exc:
        raise InvalidInput(f"{owner}: cannot read input of type {type(X).__name__}") from exc
    if array.ndim != 2:
        raise InvalidInput(f"{owner}: expected a DataFrame or a 2-D array, got {array.ndim}-D")
    if names is None:
        names = [f"x{i}" for i in range(array.shape[1])]
    elif len(names) != array.shape[1]:
        raise InvalidInput(
            f"{owner}: expected {len(names)} columns as at fit, got {array.shape[1]}"
        )
    return pd.DataFrame(array, columns=names)


def _quoted(names: Iterable[Any]) -> str:
    return ", ".join(repr(n) for n in names)


def _any(s: pd.Series) -> bool:
    return True


def _is_real(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def _is_numeric(s: pd.Series) -> bool:
    return bool(pdt.is_numeric_dtype(s.dtype) and not pdt.is_bool_dtype(s.dtype))


def _is_datetime(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.DatetimeTZDtype) or bool(pdt.is_datetime64_dtype(s.dtype))


def _not_datetime(s: pd.Series) -> bool:
    return not _is_datetime(s)


def _is_categorical(s: pd.Series) -> bool:
    dtype = s.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or bool(pdt.is_bool_dtype(dtype))
        or bool(pdt.is_object_dtype(dtype))
        or bool(pdt.is_string_dtype(dtype))
    )


def _pick(
    frame: pd.DataFrame, columns: Columns, default: Callable[[pd.Series], bool], owner: str
) -> list[str]:
    """The columns to work on, in frame order: ``columns`` or those ``default`` accepts."""
    if columns is None:
        return [c for c in frame.columns if default(frame[c])]
    wanted = [columns] if isinstance(columns, str) else [str(c) for c in columns]
    absent = [c for c in wanted if c not in frame.columns]
    if absent:
        raise InvalidInput(f"{owner}: column(s) {_quoted(absent)} given in columns are not in X")
    chosen = set(wanted)
    return [c for c in frame.columns if c in chosen]


def _unique_names(names: list[str], owner: str) -> list[str]:
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise InvalidInput(f"{owner}: output column name(s) {_quoted(clash)} would be duplicated")
    return names


def _first_bad(bad: pd.Series, values: pd.Series) -> str:
    """``row <label> has <value>`` for the first True of ``bad``."""
    pos = int(np.argmax(bad.to_numpy()))
    return f"row {_plain(values.index[pos])!r} has {_plain(values.iloc[pos])!r}"


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds (for readable messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _numbers(s: pd.Series, column: str, owner: str) -> pd.Series:
    """``s`` as float64; strings must parse as numbers."""
    dtype = s.dtype
    if pdt.is_numeric_dtype(dtype) or pdt.is_bool_dtype(dtype):
        return s.astype("float64")
    if isinstance(dtype, pd.CategoricalDtype):
        s = s.astype(object)
        dtype = s.dtype
    if pdt.is_object_dtype(dtype) or pdt.is_string_dtype(dtype):
        parsed = pd.to_numeric(s, errors="coerce")
        bad = parsed.isna() & s.notna()
        if bad.any():
            raise InvalidInput(
                f"{owner}: column {column!r} must hold numbers; {_first_bad(bad, s)}"
            )
        return parsed.astype("float64")
    raise InvalidInput(f"{owner}: column {column!r} has dtype {dtype}, not numbers")


def _objects(s: pd.Series) -> Objects:
    """The values of ``s`` as an object array, every missing value as ``nan``."""
    return np.asarray(s.to_numpy(dtype=object, na_value=np.nan), dtype=object)


def _sorted(values: Iterable[Any]) -> list[Any]:
    """Values in natural order, or by (type name, text) when they do not compare."""
    items = list(values)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda v: (type(v).__name__, str(v)))


def _counts(s: pd.Series) -> dict[Any, int]:
    """Occurrences of each non-missing value of ``s``."""
    counts = s.value_counts(dropna=True)
    return {k: int(c) for k, c in zip(counts.index.tolist(), counts.tolist(), strict=True) if c}


def _assemble(frame: pd.DataFrame, replaced: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``frame`` with each column of ``replaced`` swapped, in place, for its new columns."""
    if not replaced:
        return frame
    pieces: list[pd.DataFrame] = []
    run: list[str] = []
    for col in frame.columns:
        if col in replaced:
            if run:
                pieces.append(frame[run])
                run = []
            pieces.append(replaced[col])
        else:
            run.append(col)
    if run:
        pieces.append(frame[run])
    return pd.concat(pieces, axis=1)


def _to_datetimes(s: pd.Series, tz: tzinfo | None) -> pd.Series:
    """``s`` as datetimes in zone ``tz``, or naive when ``tz`` is None.

    Text is parsed (any ISO-like format, offsets allowed); unparsable values become NaT.
    Naive values are read as UTC when a zone is wanted; aware values are converted to UTC
    and made naive when none is.
    """
    if not _is_datetime(s):
        s = pd.to_datetime(s, utc=True, format="mixed", errors="coerce")
    aware = isinstance(s.dtype, pd.DatetimeTZDtype)
    if tz is None:
        return s.dt.tz_convert("UTC").dt.tz_localize(None) if aware else s
    return s.dt.tz_convert(tz) if aware else s.dt.tz_localize("UTC").dt.tz_convert(tz)


# ---------------------------------------------------------------------------------------------
# The base class
# ---------------------------------------------------------------------------------------------


class _FrameTransformer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """DataFrame in, DataFrame out; the fit-time columns are checked at transform."""

    feature_names_in_: Objects
    n_features_in_: int

    def _start_fit(self, X: Any) -> pd.DataFrame:
        frame = _to_frame(X, None, type(self).__name__)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        return frame

    def _start_transform(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self, "feature_names_in_")
        owner = type(self).__name__
        names = list(self.feature_names_in_)
        frame = _to_frame(X, names, owner)
        missing = [n for n in names if n not in frame.columns]
        if len(missing) == 1:
            raise InvalidInput(f"{owner}: column {missing[0]!r} seen at fit is missing")
        if missing:
            raise InvalidInput(f"{owner}: columns {_quoted(missing)} seen at fit are missing")
        return frame[names]  # a new frame (copy-on-write): the caller's is never modified

    def _names_out(self) -> list[str]:
        return list(self.feature_names_in_)

    def get_feature_names_out(self, input_features: Any = None) -> Objects:
        """Names of the output columns.

        Parameters
        ----------
        input_features : ignored unless given, in which case it must equal
            ``feature_names_in_``.

        Returns
        -------
        numpy.ndarray of str
        """
        check_is_fitted(self, "feature_names_in_")
        if input_features is not None and list(input_features) != list(self.feature_names_in_):
            raise InvalidInput(
                f"{type(self).__name__}: input_features differ from the columns seen at fit"
            )
        return np.asarray(self._names_out(), dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
