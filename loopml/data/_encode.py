"""Encoding of categorical columns as numbers. :class:`OneHotEncoder` gives one 0/1 column
per category (rare and unseen ones optionally grouped as infrequent), :class:`OrdinalEncoder`
an integer code per category, and :class:`TargetEncoder` a smoothed mean of the target per
category, cross-fitted at ``fit_transform``. A missing value is "no category": all zeros
(one-hot), the ``unknown_value`` (ordinal) or the target mean (target encoding); impute first
with ``Imputer(strategy="constant")`` to make missingness a category of its own. All follow
the conventions of :mod:`loopml.data._frame`.
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from pandas.api import types as pdt
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils.multiclass import type_of_target

from loopml.data._frame import (
    Columns,
    Floats,
    Objects,
    _assemble,
    _counts,
    _FrameTransformer,
    _is_categorical,
    _is_real,
    _objects,
    _pick,
    _plain,
    _sorted,
    _unique_names,
)
from loopml.errors import InvalidInput


def _lookup(categories: list[Any], values: Objects) -> np.ndarray[Any, np.dtype[np.intp]]:
    """Position of each value in ``categories``, -1 when absent or missing."""
    codes = pd.Index(categories, dtype=object).get_indexer(values)
    codes[pd.isna(values)] = -1
    return np.asarray(codes, dtype=np.intp)


class OneHotEncoder(_FrameTransformer):
    """One 0/1 column per category, named ``<column>_<category>``.

    Parameters
    ----------
    columns : columns to encode; None means the string, category and boolean ones.
    handle_unknown : what a category unseen at fit becomes at transform:
        ``"ignore"`` → an all-zero row; ``"error"`` → :class:`InvalidInput` naming the column
        and the value; ``"infrequent"`` → a 1 in ``<column>_infrequent``, a column every
        encoded feature then has.
    min_frequency : categories seen fewer times than this (an int count, or a float fraction
        of the rows) at fit are grouped into ``<column>_infrequent``.
    max_categories : at most this many output columns per feature, the infrequent column
        included; the most frequent categories are kept (ties: natural order).

    Attributes
    ----------
    columns_ : list of str.
    categories_ : dict, column → categories with a column of their own (sorted).
    infrequent_categories_ : dict, column → categories grouped as infrequent.

    Notes
    -----
    Output is float64. A missing value encodes as an all-zero row whatever
    ``handle_unknown`` says.
    """

    def __init__(
        self,
        columns: Columns = None,
        handle_unknown: Literal["ignore", "error", "infrequent"] = "ignore",
        min_frequency: int | float | None = None,
        max_categories: int | None = None,
    ) -> None:
        self.columns = columns
        self.handle_unknown = handle_unknown
        self.min_frequency = min_frequency
        self.max_categories = max_categories

    def _validate(self) -> None:
        if self.handle_unknown not in ("ignore", "error", "infrequent"):
            raise InvalidInput(
                "OneHotEncoder: handle_unknown must be 'ignore', 'error' or 'infrequent', "
                f"not {self.handle_unknown!r}"
            )
        mf = self.min_frequency
        ok_int = isinstance(mf, int | np.integer) and not isinstance(mf, bool) and mf >= 1
        ok_float = isinstance(mf, float) and 0.0 < mf < 1.0
        if mf is not None and not (ok_int or ok_float):
            raise InvalidInput(
                f"OneHotEncoder: min_frequency must be an int >= 1 or a float in (0, 1), not {mf!r}"
            )
        mc = self.max_categories
        if mc is not None and not (_is_real(mc) and float(mc).is_integer() and mc >= 1):
            raise InvalidInput(f"OneHotEncoder: max_categories must be an int >= 1, not {mc!r}")

    def fit(self, X: Any, y: Any = None) -> Self:
        """Learn the categories of each column."""
        self._validate()
        frame = self._start_fit(X)
        self.columns_ = _pick(frame, self.columns, _is_categorical, "OneHotEncoder")
        self.categories_: dict[str, list[Any]] = {}
        self.infrequent_categories_: dict[str, list[Any]] = {}
        n_rows = len(frame)
        for col in self.columns_:
            counts = _counts(frame[col])
            order = _sorted(counts)
            threshold = self.min_frequency or 0
            if isinstance(threshold, float):
                threshold = threshold * n_rows
            frequent = [c for c in order if counts[c] >= threshold]
            bucket = len(frequent) < len(order) or self.handle_unknown == "infrequent"
            limit = None if self.max_categories is None else int(self.max_categories)
            if limit is not None and len(frequent) + bucket > limit:
                ranked = sorted(frequent, key=lambda c: -counts[c])  # stable: ties keep order
                keep = set(ranked[: limit - 1])
                frequent = [c for c in order if c in keep]
            self.categories_[col] = frequent
            kept = set(frequent)
            self.infrequent_categories_[col] = [c for c in order if c not in kept]
        _unique_names(self._names_out(), "OneHotEncoder")
        return self

    def _has_bucket(self, col: str) -> bool:
        return bool(self.infrequent_categories_[col]) or self.handle_unknown == "infrequent"

    def transform(self, X: Any) -> pd.DataFrame:
        """Replace each fitted column by its 0/1 columns."""
        frame = self._start_transform(X)
        replaced: dict[str, pd.DataFrame] = {}
        for col in self.columns_:
            values = _objects(frame[col])
            cats = self.categories_[col]
            codes = _lookup(cats, values)
            outside = (codes < 0) & ~pd.isna(values)
            rare = outside & (_lookup(self.infrequent_categories_[col], values) >= 0)
            unknown = outside & ~rare
            if unknown.any() and self.handle_unknown == "error":
                first = _plain(values[int(np.argmax(unknown))])
                raise InvalidInput(
                    f"OneHotEncoder: column {col!r} has category {first!r} unseen at fit"
                )
            bucket = self._has_bucket(col)
            onehot = np.zeros((len(values), len(cats) + bucket))
            rows = np.flatnonzero(codes >= 0)
            onehot[rows, codes[rows]] = 1.0
            if bucket:
                onehot[rare | (unknown & (self.handle_unknown == "infrequent")), -1] = 1.0
            replaced[col] = pd.DataFrame(onehot, index=frame.index, columns=self._col_names(col))
        return _assemble(frame, replaced)

    def _col_names(self, col: str) -> list[str]:
        names = [f"{col}_{c}" for c in self.categories_[col]]
        return [*names, f"{col}_infrequent"] if self._has_bucket(col) else names

    def _names_out(self) -> list[str]:
        encoded = set(self.columns_)
        out: list[str] = []
        for col in self.feature_names_in_:
            out.extend(self._col_names(col) if col in encoded else [col])
        return out


class OrdinalEncoder(_FrameTransformer):
    """Replace each category by its position among the sorted categories seen at fit.

    Parameters
    ----------
    columns : columns to encode; None means the string, category and boolean ones.
    unknown_value : code (int64) for a category unseen at fit, and for a missing value; must
        not be a valid code (negative, or at least the number of categories).

    Attributes
    ----------
    columns_ : list of str.
    categories_ : dict, column → sorted categories (code = position).
    """

    def __init__(self, columns: Columns = None, unknown_value: int = -1) -> None:
        self.columns = columns
        self.unknown_value = unknown_value

    def fit(self, X: Any, y: Any = None) -> Self:
        """Learn the categories of each column."""
        frame = self._start_fit(X)
        self.columns_ = _pick(frame, self.columns, _is_categorical, "OrdinalEncoder")
        self.categories_ = {c: _sorted(_counts(frame[c])) for c in self.columns_}
        u = self.unknown_value
        if not isinstance(u, int | np.integer) or isinstance(u, bool):
            raise InvalidInput(f"OrdinalEncoder: unknown_value must be an int, not {u!r}")
        clash = [c for c, cats in self.categories_.items() if 0 <= u < len(cats)]
        if clash:
            raise InvalidInput(
                f"OrdinalEncoder: unknown_value={u} is a valid code of column {clash[0]!r}; "
                "use a negative value"
            )
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Replace each fitted column by its int64 codes."""
        frame = self._start_transform(X)
        encoded = {}
        for col in self.columns_:
            codes = _lookup(self.categories_[col], _objects(frame[col])).astype(np.int64)
            codes[codes < 0] = self.unknown_value
            encoded[col] = pd.Series(codes, index=frame.index)
        return frame.assign(**encoded)


TargetType = Literal["auto", "binary", "multiclass", "continuous"]


class TargetEncoder(_FrameTransformer):
    """Replace each category by a smoothed mean of the target over its rows.

    ``encoding = (sum_y + m · prior) / (count + m)`` per category, where ``prior`` is the
    target mean and ``m`` is ``smoothing`` (or, with ``"auto"``, the category's target
    variance over the overall target variance, as scikit-learn does). Categories unseen at
    fit, and missing values, get the prior.

    ``fit_transform`` cross-fits: the rows are split into ``cv`` folds and each fold is
    encoded with statistics of the other folds only, so a training row never sees its own
    target (without this, a high-cardinality column such as an id becomes a perfect, and
    useless, predictor). ``transform`` uses the statistics of all fitted rows. Inside a
    ``Pipeline``, training goes through ``fit_transform`` and serving through
    ``transform``, which is what is wanted.

    Parameters
    ----------
    columns : columns to encode; None means the string, category and boolean ones.
    smoothing : ``"auto"`` or a float ``m >= 0`` (0: plain category mean).
    cv : number of folds (>= 2) for cross-fitting; stratified for class targets.
    random_state : seed of the fold shuffle.
    target_type : ``"binary"``, ``"multiclass"``, ``"continuous"`` or ``"auto"``: a float
        target with more than two values is continuous, anything else is typed by
        scikit-learn's ``type_of_target`` (so integer labels 0, 1, 2 are multiclass; pass
        ``"continuous"`` for an integer-valued regression target).

    Attributes
    ----------
    columns_ : list of str.
    target_type_ : the resolved target type.
    classes_ : the class labels (binary: the second is the positive one); None for a
        continuous target.
    target_mean_ : numpy.ndarray, the prior per output (one per class for multiclass).
    categories_ : dict, column → categories.
    encodings_ : dict, column → array (n_categories, n_outputs).

    Notes
    -----
    Binary and continuous targets give one float64 column per encoded column (same name);
    a multiclass target gives ``<column>_<class>`` per class (one-vs-rest means).

    Raises
    ------
    InvalidInput
        ``y`` is missing, has missing values, a different length than ``X``, or an
        unsupported type; bad ``smoothing`` or ``cv``; fewer rows than folds.
    """

    def __init__(
        self,
        columns: Columns = None,
        smoothing: float | Literal["auto"] = "auto",
        cv: int = 5,
        random_state: int | None = 0,
        target_type: TargetType = "auto",
    ) -> None:
        self.columns = columns
        self.smoothing = smoothing
        self.cv = cv
        self.random_state = random_state
        self.target_type = target_type

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def _targets(self, y: Any, n_rows: int) -> Floats:
        """Validate ``y``; set ``target_type_`` and ``classes_``; return the (n, K) matrix."""
        s = self.smoothing
        if not (s == "auto" or (_is_real(s) and s >= 0)):
            raise InvalidInput(f"TargetEncoder: smoothing must be 'auto' or >= 0, not {s!r}")
        if not (isinstance(self.cv, int) and not isinstance(self.cv, bool) and self.cv >= 2):
            raise InvalidInput(f"TargetEncoder: cv must be an int >= 2, not {self.cv!r}")
        if y is None:
            raise InvalidInput("TargetEncoder: fit needs the target y")
        target = np.asarray(y)
        if target.ndim == 2 and target.shape[1] == 1:
            target = target.ravel()
        if target.ndim != 1 or len(target) != n_rows:
            raise InvalidInput(f"TargetEncoder: y must be 1-D with {n_rows} values like X")
        if pd.isna(target).any():
            raise InvalidInput("TargetEncoder: y has missing values")
        kind = self.target_type
        if kind == "auto":
            floats = pdt.is_float_dtype(target.dtype) and len(np.unique(target)) > 2
            kind = "continuous" if floats else type_of_target(target)
        if kind not in ("binary", "multiclass", "continuous"):
            raise InvalidInput(f"TargetEncoder: cannot encode against a {kind!r} target")
        self.target_type_ = kind
        if kind == "continuous":
            self.classes_ = None
            return np.asarray(target, dtype=np.float64).reshape(-1, 1)
        self.classes_ = np.unique(target)
        if kind == "binary":
            if len(self.classes_) > 2:
                raise InvalidInput("TargetEncoder: target_type='binary' but y has > 2 classes")
            return np.asarray(target == self.classes_[-1], dtype=np.float64).reshape(-1, 1)
        return np.asarray(target[:, None] == self.classes_[None, :], dtype=np.float64)

    def _table(self, values: Objects, Y: Floats) -> tuple[list[Any], Floats]:
        """Categories of ``values`` and their encodings (n_categories, K) learnt from ``Y``."""
        present = ~pd.isna(values)
        codes, uniques = pd.factorize(values[present])
        Yp = Y[present]
        prior = Y.mean(axis=0)
        n_cat = len(uniques)
        counts = np.bincount(codes, minlength=n_cat).astype(np.float64)[:, None]
        sums = np.column_stack([np.bincount(codes, Yp[:, k], n_cat) for k in range(Y.shape[1])])
        if self.smoothing == "auto":
            squares = np.column_stack(
                [np.bincount(codes, Yp[:, k] ** 2, n_cat) for k in range(Y.shape[1])]
            )
            y_var = Y.var(axis=0)
            within = np.clip(squares / counts - (sums / counts) ** 2, 0.0, None)
            m = np.where(y_var > 0, within / np.where(y_var > 0, y_var, 1.0), 0.0)
        else:
            m = np.full_like(sums, float(self.smoothing))
        return list(uniques), (sums + m * prior) / (counts + m)

    @staticmethod
    def _apply(
        categories: list[Any],
        table: Floats,
        prior: Floats,
        values: Objects,
    ) -> Floats:
        return np.asarray(np.vstack([table, prior])[_lookup(categories, values)], dtype=np.float64)

    def fit(self, X: Any, y: Any = None) -> Self:
        """Learn the encodings from all rows."""
        frame = self._start_fit(X)
        self._fit_frame(frame, y)
        return self

    def _fit_frame(self, frame: pd.DataFrame, y: Any) -> Floats:
        Y = self._targets(y, len(frame))
        self.columns_ = _pick(frame, self.columns, _is_categorical, "TargetEncoder")
        self.target_mean_ = Y.mean(axis=0)
        self.categories_: dict[str, list[Any]] = {}
        self.encodings_: dict[str, Floats] = {}
        for col in self.columns_:
            self.categories_[col], self.encodings_[col] = self._table(_objects(frame[col]), Y)
        _unique_names(self._names_out(), "TargetEncoder")
        return Y

    def fit_transform(self, X: Any, y: Any = None) -> pd.DataFrame:
        """Fit on all rows, and encode each row with the folds that did not see it."""
        frame = self._start_fit(X)
        Y = self._fit_frame(frame, y)
        n_rows = len(frame)
        if n_rows < self.cv:
            raise InvalidInput(f"TargetEncoder: cross-fitting needs >= cv={self.cv} rows")
        labels = np.argmax(Y, axis=1) if Y.shape[1] > 1 else Y[:, 0]
        smallest_class = np.unique(labels, return_counts=True)[1].min()
        stratify = self.target_type_ != "continuous" and smallest_class >= self.cv
        splitter: Any = (StratifiedKFold if stratify else KFold)(
            n_splits=self.cv, shuffle=True, random_state=self.random_state
        )
        values = {c: _objects(frame[c]) for c in self.columns_}
        encoded = {c: np.empty((n_rows, Y.shape[1])) for c in self.columns_}
        for train, test in splitter.split(np.zeros(n_rows), labels):
            prior = Y[train].mean(axis=0)
            for col in self.columns_:
                cats, table = self._table(values[col][train], Y[train])
                encoded[col][test] = self._apply(cats, table, prior, values[col][test])
        return self._frame_out(frame, encoded)

    def transform(self, X: Any) -> pd.DataFrame:
        """Encode with the statistics of all fitted rows."""
        frame = self._start_transform(X)
        encoded = {
            c: self._apply(
                self.categories_[c], self.encodings_[c], self.target_mean_, _objects(frame[c])
            )
            for c in self.columns_
        }
        return self._frame_out(frame, encoded)

    def _frame_out(self, frame: pd.DataFrame, encoded: dict[str, Floats]) -> pd.DataFrame:
        replaced = {
            c: pd.DataFrame(v, index=frame.index, columns=self._col_names(c))
            for c, v in encoded.items()
        }
        return _assemble(frame, replaced)

    def _col_names(self, col: str) -> list[str]:
        if self.target_type_ == "multiclass":
            return [f"{col}_{k}" for k in (() if self.classes_ is None else self.classes_)]
        return [col]

    def _names_out(self) -> list[str]:
        encoded = set(self.columns_)
        out: list[str] = []
        for col in self.feature_names_in_:
            out.extend(self._col_names(col) if col in encoded else [col])
        return out


__all__ = [
    "OneHotEncoder",
    "OrdinalEncoder",
    "TargetEncoder",
]
