"""Imputation: filling missing values in a DataFrame. :class:`Imputer` fills each column
with a statistic learnt at fit (mean, median, most frequent) or a constant, optionally adding
``<column>_missing`` indicator columns; :class:`KNNImputer` and :class:`IterativeImputer` run
scikit-learn's imputers of the same name on the numeric columns and keep the rest of the frame
around them. All follow the conventions of :mod:`loopml.data._frame`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from pandas.api import types as pdt
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers the class)
from sklearn.impute import IterativeImputer as _SkIterativeImputer
from sklearn.impute import KNNImputer as _SkKNNImputer

from loopml.data._frame import (
    Columns,
    Floats,
    _counts,
    _FrameTransformer,
    _is_numeric,
    _not_datetime,
    _numbers,
    _pick,
    _quoted,
    _sorted,
    _unique_names,
)
from loopml.errors import InvalidInput

_IMPUTE_STRATEGIES = ("mean", "median", "most_frequent", "constant")


def _mode(s: pd.Series) -> Any:
    """The most frequent non-missing value (the smallest on ties), or None if all missing."""
    counts = _counts(s)
    if not counts:
        return None
    top = max(counts.values())
    return _sorted(v for v, c in counts.items() if c == top)[0]


def _fills_in_place(dtype: Any, value: Any) -> bool:
    """Whether ``fillna(value)`` keeps ``dtype`` (pandas would otherwise warn or raise)."""
    if pdt.is_object_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return True
    if pdt.is_bool_dtype(dtype):
        return isinstance(value, bool | np.bool_)
    if pdt.is_numeric_dtype(dtype):
        return isinstance(value, int | float | np.number) and not isinstance(value, bool)
    if pdt.is_string_dtype(dtype):
        return isinstance(value, str)
    if isinstance(dtype, pd.DatetimeTZDtype) or pdt.is_datetime64_dtype(dtype):
        return isinstance(value, datetime)
    return False


class Imputer(_FrameTransformer):
    """Fill missing values with a per-column statistic or a constant.

    Parameters
    ----------
    strategy : ``"mean"``, ``"median"``, ``"most_frequent"`` (smallest value on ties) or
        ``"constant"``.
    fill_value : the constant for ``strategy="constant"``; None means ``0`` for numeric
        columns and ``"missing"`` for the others.
    columns : columns to impute; None means the numeric ones for mean/median and all but the
        datetime ones for the other strategies.
    add_indicator : also output ``<column>_missing`` (0/1) for every imputed column that had
        missing values at fit.

    Attributes
    ----------
    columns_ : list of str, the imputed columns.
    statistics_ : dict, column → fill value.
    indicator_columns_ : list of str, the columns that get an indicator.

    Raises
    ------
    InvalidInput
        At fit: an unknown strategy, a mean/median column that is not numeric, or a column
        with no observed value to learn from. At transform: a column seen at fit is missing.

    Notes
    -----
    Mean/median imputed columns come out as float64 whether or not they had gaps, so the
    output dtypes do not depend on the batch.

    Examples
    --------
    >>> Imputer(strategy="median").fit_transform(pd.DataFrame({"a": [1.0, None, 3.0]}))
         a
    0  1.0
    1  2.0
    2  3.0
    """

    def __init__(
        self,
        strategy: Literal["mean", "median", "most_frequent", "constant"] = "mean",
        fill_value: Any = None,
        columns: Columns = None,
        add_indicator: bool = False,
    ) -> None:
        self.strategy = strategy
        self.fill_value = fill_value
        self.columns = columns
        self.add_indicator = add_indicator

    def fit(self, X: Any, y: Any = None) -> Self:
        """Learn the fill value of each column."""
        if self.strategy not in _IMPUTE_STRATEGIES:
            raise InvalidInput(
                f"Imputer: strategy must be one of {_quoted(_IMPUTE_STRATEGIES)}, "
                f"not {self.strategy!r}"
            )
        frame = self._start_fit(X)
        numeric = self.strategy in ("mean", "median")
        default = _is_numeric if numeric else _not_datetime
        self.columns_ = _pick(frame, self.columns, default, "Imputer")
        self.statistics_: dict[str, Any] = {}
        for col in self.columns_:
            s = frame[col]
            if numeric:
                values = _numbers(s, col, "Imputer")
                value: Any = values.mean() if self.strategy == "mean" else values.median()
                value = None if pd.isna(value) else float(value)
            elif self.strategy == "most_frequent":
                value = _mode(s)
            elif self.fill_value is None:
                value = 0 if _is_numeric(s) else "missing"
            else:
                value = self.fill_value
            if value is None:
                raise InvalidInput(
                    f"Imputer: column {col!r} has no observed values to compute the "
                    f"{self.strategy.replace('_', ' ')} from; use strategy='constant'"
                )
            self.statistics_[col] = value
        self.indicator_columns_ = (
            [c for c in self.columns_ if frame[c].isna().any()] if self.add_indicator else []
        )
        _unique_names(self._names_out(), "Imputer")
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Fill the gaps of the fitted columns."""
        frame = self._start_transform(X)
        filled: dict[str, pd.Series] = {}
        for col in self.columns_:
            s, value = frame[col], self.statistics_[col]
            if self.strategy in ("mean", "median"):
                filled[col] = _numbers(s, col, "Imputer").fillna(value)
            elif not s.isna().any():
                continue
            elif isinstance(s.dtype, pd.CategoricalDtype):
                if value not in s.cat.categories:
                    s = s.cat.add_categories([value])
                filled[col] = s.fillna(value)
            elif _fills_in_place(s.dtype, value):
                filled[col] = s.fillna(value)
            else:
                filled[col] = s.astype(object).fillna(value)
        for col in self.indicator_columns_:
            filled[f"{col}_missing"] = frame[col].isna().astype("int64")
        return frame.assign(**filled) if filled else frame

    def _names_out(self) -> list[str]:
        return [*self.feature_names_in_, *(f"{c}_missing" for c in self.indicator_columns_)]


class _SklearnImputer(_FrameTransformer):
    """Runs a scikit-learn imputer on the numeric columns and keeps the frame around them."""

    columns: Columns

    def _make(self) -> Any:
        raise NotImplementedError

    def _matrix(self, frame: pd.DataFrame) -> Floats:
        owner = type(self).__name__
        return np.column_stack([_numbers(frame[c], c, owner).to_numpy() for c in self.columns_])

    def fit(self, X: Any, y: Any = None) -> Self:
        """Fit the wrapped imputer on the selected columns."""
        frame = self._start_fit(X)
        self.columns_ = _pick(frame, self.columns, _is_numeric, type(self).__name__)
        self.imputer_ = None
        if self.columns_:
            matrix = self._matrix(frame)
            empty = [c for i, c in enumerate(self.columns_) if np.isnan(matrix[:, i]).all()]
            if empty:
                raise InvalidInput(
                    f"{type(self).__name__}: column(s) {_quoted(empty)} have no observed values"
                )
            self.imputer_ = self._make().fit(matrix)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Impute the selected columns (as float64)."""
        frame = self._start_transform(X)
        if self.imputer_ is None:
            return frame
        imputed = self.imputer_.transform(self._matrix(frame))
        return frame.assign(
            **{c: pd.Series(imputed[:, i], index=frame.index) for i, c in enumerate(self.columns_)}
        )


class KNNImputer(_SklearnImputer):
    """scikit-learn's :class:`~sklearn.impute.KNNImputer` with DataFrame input and output.

    Parameters
    ----------
    n_neighbors : neighbours whose values fill a gap.
    weights : ``"uniform"`` or ``"distance"``.
    columns : columns to impute (and to measure distances on); None means the numeric ones.

    Attributes
    ----------
    columns_ : list of str.
    imputer_ : the fitted scikit-learn imputer (None when there is no column).
    """

    def __init__(
        self,
        n_neighbors: int = 5,
        weights: Literal["uniform", "distance"] = "uniform",
        columns: Columns = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.columns = columns

    def _make(self) -> Any:
        return _SkKNNImputer(n_neighbors=self.n_neighbors, weights=self.weights)


class IterativeImputer(_SklearnImputer):
    """scikit-learn's :class:`~sklearn.impute.IterativeImputer` with DataFrame input and output.

    Each column with gaps is modelled from the others, round robin, ``max_iter`` times.

    Parameters
    ----------
    estimator : the regressor (None: ``BayesianRidge``).
    max_iter, tol, initial_strategy, random_state : as in scikit-learn.
    columns : columns to impute (and to model from); None means the numeric ones.

    Attributes
    ----------
    columns_ : list of str.
    imputer_ : the fitted scikit-learn imputer (None when there is no column).
    """

    def __init__(
        self,
        estimator: Any = None,
        max_iter: int = 10,
        tol: float = 1e-3,
        initial_strategy: Literal["mean", "median", "most_frequent", "constant"] = "mean",
        random_state: int | None = 0,
        columns: Columns = None,
    ) -> None:
        self.estimator = estimator
        self.max_iter = max_iter
        self.tol = tol
        self.initial_strategy = initial_strategy
        self.random_state = random_state
        self.columns = columns

    def _make(self) -> Any:
        return _SkIterativeImputer(
            estimator=self.estimator,
            max_iter=self.max_iter,
            tol=self.tol,
            initial_strategy=self.initial_strategy,
            random_state=self.random_state,
        )


__all__ = [
    "Imputer",
    "IterativeImputer",
    "KNNImputer",
]
