"""Train/test splits: holdout, k-fold, stratified, by group and by time.

A :class:`Split` is a plain description (it can come from a dict in a config file);
:func:`make_splits` checks it against the data before any model is fitted and returns the
row positions of each train/test pair.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, cast, get_args

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    KFold,
    ShuffleSplit,
    StratifiedKFold,
    StratifiedShuffleSplit,
    TimeSeriesSplit,
)

from loopml.errors import InvalidInput
from loopml.training._metrics import Array, as_1d, check_task

SplitKind = Literal["holdout", "kfold", "stratified", "group", "timeseries"]
KINDS: tuple[str, ...] = get_args(SplitKind)
KFOLD_KINDS = ("kfold", "stratified", "group")
Fold = tuple[Array, Array]


@dataclass(frozen=True)
class Split:
    """How to split rows into train and test.

    Parameters
    ----------
    kind : {"holdout", "kfold", "stratified", "group", "timeseries"}
        ``holdout``: one shuffled pair, stratified by the target for classification;
        ``kfold`` / ``stratified``: shuffled k-fold, the latter keeping class proportions;
        ``group``: k folds that never share a value of ``group_column``; ``timeseries``:
        rows ordered by ``time_column``, each fold tested on rows later than its training
        rows (``n_splits=1``: one holdout of the latest ``test_size`` rows).
    test_size : float
        Fraction of rows held out by ``holdout`` and one-fold ``timeseries`` splits.
    n_splits : int
        Number of folds (at least 2 for k-fold kinds).
    seed : int
        Seed of the shuffles: the same seed gives the same splits.
    group_column, time_column : str, optional
        The column of ``X`` that ``group`` / ``timeseries`` splits use.

    Examples
    --------
    >>> Split.parse({"kind": "group", "group_column": "customer_id", "n_splits": 3}).n_splits
    3
    """

    kind: SplitKind = "holdout"
    test_size: float = 0.2
    n_splits: int = 5
    seed: int = 0
    group_column: str | None = None
    time_column: str | None = None

    @classmethod
    def parse(cls, value: Split | str | Mapping[str, Any] | None) -> Split:
        """A checked split from a :class:`Split`, a kind (``"kfold"``), a dict or None.

        Raises
        ------
        InvalidInput
            An unknown kind or key, or an option out of range (see :meth:`check`).
        """
        if value is None:
            split = cls()
        elif isinstance(value, Split):
            split = value
        elif isinstance(value, str):
            split = cls(kind=cast(SplitKind, value))
        elif isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(str(key) for key in value if key not in known)
            if unknown:
                raise InvalidInput(
                    f"unknown split option(s) {', '.join(map(repr, unknown))}; "
                    f"known: {', '.join(sorted(known))}"
                )
            split = cls(**value)
        else:
            raise InvalidInput(
                f"split must be a Split, a kind or a dict; got {type(value).__name__}"
            )
        split.check()
        return split

    def check(self) -> None:
        """Raise :class:`InvalidInput` for options that no data could satisfy."""
        if self.kind not in KINDS:
            raise InvalidInput(f"split kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if not _is_int(self.seed):
            raise InvalidInput(f"split seed must be an integer; got {self.seed!r}")
        if not _is_int(self.n_splits):
            raise InvalidInput(f"split n_splits must be an integer; got {self.n_splits!r}")
        ts = self.test_size
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not 0 < ts < 1:
            raise InvalidInput(f"split test_size must be a fraction in (0, 1); got {ts!r}")
        if self.kind in KFOLD_KINDS and self.n_splits < 2:
            raise InvalidInput(f"split kind {self.kind!r} needs n_splits >= 2; got {self.n_splits}")
        if self.kind == "timeseries" and self.n_splits < 1:
            raise InvalidInput(
                f"split kind 'timeseries' needs n_splits >= 1 (1: one holdout by time); "
                f"got {self.n_splits}"
            )
        for option, kind in (("group_column", "group"), ("time_column", "timeseries")):
            column = getattr(self, option)
            if self.kind == kind and not (isinstance(column, str) and column):
                raise InvalidInput(f"split kind {kind!r} needs {option}, the column to use")
            if self.kind != kind and column is not None:
                raise InvalidInput(
                    f"{option} is only used by split kind {kind!r}; this split is {self.kind!r}"
                )


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def make_splits(
    split: Split | str | Mapping[str, Any] | None,
    X: pd.DataFrame,
    y: pd.Series | Array | None,
    task: str,
) -> list[Fold]:
    """Row positions of each (train, test) pair.

    Parameters
    ----------
    split : Split, str, dict or None
        See :class:`Split` (None: the default holdout).
    X : DataFrame
        The rows to split; must hold ``group_column`` / ``time_column`` if the split uses one.
    y : Series, array or None
        The target (None for clustering); classification targets stratify holdouts.
    task : {"binary", "multiclass", "regression", "clustering"}

    Returns
    -------
    list of (ndarray, ndarray)
        Sorted positional indices (for ``X.iloc``) of the train and test rows of each fold.

    Raises
    ------
    InvalidInput
        Before any splitting: too few rows (saying how many are needed), a class with fewer
        rows than a stratified split needs, a missing group or time column, or any option
        :meth:`Split.check` rejects.

    Examples
    --------
    >>> folds = make_splits("kfold", X, y, "regression")  # doctest: +SKIP
    >>> [len(test) for _, test in folds]  # doctest: +SKIP
    [20, 20, 20, 20, 20]
    """
    plan = Split.parse(split)
    checked = check_task(task)
    if not isinstance(X, pd.DataFrame):
        raise InvalidInput(f"X must be a pandas DataFrame; got {type(X).__name__}")
    n = len(X)
    classifying = checked in ("binary", "multiclass")
    if classifying and y is None:
        raise InvalidInput(f"task {checked!r} needs y to split by")
    target = None if y is None else as_1d(y, "y", complete=classifying)
    if target is not None and len(target) != n:
        raise InvalidInput(f"y has {len(target)} rows; X has {n}")
    classes = target if classifying else None
    if plan.kind == "holdout":
        return _holdout(plan, n, classes)
    if plan.kind == "kfold":
        _need_rows(plan, n, plan.n_splits, f"n_splits={plan.n_splits}")
        folder = KFold(plan.n_splits, shuffle=True, random_state=plan.seed)
        return _sorted(folder.split(np.zeros((n, 1))))
    if plan.kind == "stratified":
        if classes is None:
            raise InvalidInput(
                f"split kind 'stratified' needs a classification target; the task is {checked!r}"
            )
        strata = _check_strata(plan, classes, plan.n_splits, f"n_splits={plan.n_splits}")
        folder = StratifiedKFold(plan.n_splits, shuffle=True, random_state=plan.seed)
        return _sorted(folder.split(np.zeros((n, 1)), strata))
    if plan.kind == "group":
        return _group_folds(plan, _column(X, cast(str, plan.group_column), "group_column"))
    return _time_folds(plan, _column(X, cast(str, plan.time_column), "time_column"))


def _sorted(pairs: Any) -> list[Fold]:
    return [
        (np.sort(train).astype(np.intp), np.sort(test).astype(np.intp)) for train, test in pairs
    ]


def _need_rows(plan: Split, n: int, needed: int, why: str) -> None:
    if n < needed:
        raise InvalidInput(f"{plan.kind} split with {why} needs at least {needed} rows; X has {n}")


def _holdout_rows(test_size: float, per_side: int) -> int:
    """The fewest rows whose holdout puts at least ``per_side`` rows in train and in test."""
    n = max(2, math.floor(per_side / (1 - test_size)) - 1, math.floor((per_side - 1) / test_size))
    while math.ceil(test_size * n) < per_side or n - math.ceil(test_size * n) < per_side:
        n += 1
    return n


def _holdout(plan: Split, n: int, classes: Array | None) -> list[Fold]:
    why = f"test_size={plan.test_size}"
    if classes is None:
        _need_rows(plan, n, _holdout_rows(plan.test_size, 1), why)
        folder: Any = ShuffleSplit(1, test_size=plan.test_size, random_state=plan.seed)
        return _sorted(folder.split(np.zeros((n, 1))))
    # stratified by the target: each class needs a row in train and one in test
    strata = _check_strata(plan, classes, 2, "stratification by the target")
    k = int(strata.max()) + 1
    _need_rows(plan, n, _holdout_rows(plan.test_size, k), f"{why} and {k} classes")
    folder = StratifiedShuffleSplit(1, test_size=plan.test_size, random_state=plan.seed)
    return _sorted(folder.split(np.zeros((n, 1)), strata))


def _check_strata(plan: Split, classes: Array, needed: int, why: str) -> Array:
    """Class codes of ``classes``, once each class is known to have ``needed`` rows."""
    codes, uniques = pd.factorize(classes)
    counts = np.bincount(codes)
    names = np.asarray(uniques).tolist()  # Python scalars, for readable messages
    rare = [(names[i], int(counts[i])) for i in np.flatnonzero(counts < needed)]
    if rare:
        shown = ", ".join(f"{v!r} has {c} row(s)" for v, c in rare[:5])
        raise InvalidInput(
            f"{plan.kind} split with {why} needs at least {needed} rows of each class; "
            f"class {shown}"
        )
    return np.asarray(codes)


def _column(X: pd.DataFrame, name: str, option: str) -> pd.Series:
    if name not in X.columns:
        raise InvalidInput(f"{option} {name!r} is not a column of X")
    values = X[name]
    if isinstance(values, pd.DataFrame):
        raise InvalidInput(f"{option} {name!r} names {values.shape[1]} columns of X")
    missing = int(values.isna().sum())
    if missing:
        raise InvalidInput(f"{option} {name!r} has {missing} missing value(s)")
    return values.reset_index(drop=True)


def _group_folds(plan: Split, groups: pd.Series) -> list[Fold]:
    """Shuffle the groups (seeded), then give each to the fold with the fewest rows so far."""
    codes, uniques = pd.factorize(groups)
    if len(uniques) < plan.n_splits:
        raise InvalidInput(
            f"group split with n_splits={plan.n_splits} needs at least {plan.n_splits} distinct "
            f"values in {plan.group_column!r}; it has {len(uniques)}"
        )
    sizes = np.bincount(codes)
    fold_of = np.empty(len(uniques), dtype=np.intp)
    loads = [(0, fold) for fold in range(plan.n_splits)]
    for group in np.random.default_rng(plan.seed).permutation(len(uniques)):
        load, fold = heapq.heappop(loads)
        fold_of[group] = fold
        heapq.heappush(loads, (load + int(sizes[group]), fold))
    row_fold = fold_of[codes]
    rows = np.arange(len(codes))
    return [(rows[row_fold != f], rows[row_fold == f]) for f in range(plan.n_splits)]


def _time_folds(plan: Split, times: pd.Series) -> list[Fold]:
    n = len(times)
    try:
        order = times.sort_values(kind="stable").index.to_numpy()
    except TypeError as exc:
        raise InvalidInput(f"time_column {plan.time_column!r} cannot be ordered: {exc}") from exc
    if plan.n_splits == 1:  # one holdout: the latest rows are the test set
        _need_rows(plan, n, _holdout_rows(plan.test_size, 1), f"test_size={plan.test_size}")
        n_test = math.ceil(plan.test_size * n)
        return _sorted([(order[: n - n_test], order[n - n_test :])])
    _need_rows(plan, n, plan.n_splits + 1, f"n_splits={plan.n_splits}")
    folder = TimeSeriesSplit(plan.n_splits)
    return _sorted((order[train], order[test]) for train, test in folder.split(order))
