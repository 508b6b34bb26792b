"""Scoring predictions: the task a target implies, and the metrics of each task.

Every metric is a *kernel*: validated predictions and row weights ``(b, n)`` in, ``b`` values
out (NaN where undefined). ``evaluate`` passes one row of ones; the paired bootstrap of
``_compare`` passes resample counts, so its point values are exactly those of ``evaluate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeAlias, cast, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import silhouette_score

from loopml.errors import InvalidInput

Task = Literal["binary", "multiclass", "regression", "clustering", "reduction"]
TASKS: tuple[str, ...] = get_args(Task)
MAX_CLASSES = 20  # a numeric target with more distinct values is a regression target
Array: TypeAlias = npt.NDArray[Any]
ArrayLike: TypeAlias = "pd.Series | npt.NDArray[Any] | Sequence[Any]"

_CLASS_KINDS = {"boolean", "string", "categorical", "mixed", "mixed-integer", "bytes"}
_NUMBER_KINDS = {"integer", "floating", "mixed-integer-float", "decimal"}
_EPS = float(np.finfo(np.float64).eps)


def check_task(task: object) -> Task:
    """Return ``task`` if it names a task, else raise :class:`InvalidInput`."""
    if task not in TASKS:
        raise InvalidInput(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    return cast(Task, task)


def infer_task(y: ArrayLike | None) -> Task:
    """The task a target implies.

    Parameters
    ----------
    y : Series, array or None
        Booleans, strings, categories and integer-valued numbers with at most 20 distinct
        values are classes (``"binary"`` if two, else ``"multiclass"``); other numbers mean
        ``"regression"``; no target (``None``) means ``"clustering"``.

    Raises
    ------
    InvalidInput
        An empty target, missing or infinite values, one class, or dates and the like.

    Examples
    --------
    >>> infer_task(pd.Series([0, 1, 1])), infer_task(pd.Series([0.5, 1.2, 3.3]))
    ('binary', 'regression')
    """
    if y is None:
        return "clustering"
    name = repr(y.name if isinstance(y, pd.Series) and isinstance(y.name, str) else "y")
    arr = as_1d(y, f"target {name}")
    kind = pd.api.types.infer_dtype(y if isinstance(y, pd.Series) else arr, skipna=False)
    if kind in _NUMBER_KINDS:
        distinct = np.unique(_floats(arr, f"target {name}"))
        if len(distinct) > MAX_CLASSES or not np.array_equal(distinct, np.round(distinct)):
            return "regression"
    elif kind not in _CLASS_KINDS:
        raise InvalidInput(f"target {name} holds {kind} values; use classes or numbers")
    classes = distinct_values(arr)
    if len(classes) == 1:
        one = f"target {name} has one class ({classes[0]!r})"
        raise InvalidInput(f"{one}; classification needs two or more")
    return "binary" if len(classes) == 2 else "multiclass"


def as_1d(values: object, name: str, *, complete: bool = True) -> Array:
    """``values`` as a non-empty 1-D array (without missing values if ``complete``)."""
    if values is None:
        raise InvalidInput(f"{name} is required")
    try:
        arr = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} is not array-like: {exc}") from exc
    if arr.ndim != 1 or len(arr) == 0:
        raise InvalidInput(f"{name} must be one-dimensional and non-empty; got shape {arr.shape}")
    missing = np.flatnonzero(pd.isna(arr))
    if complete and len(missing):
        raise InvalidInput(f"{name} has {len(missing)} missing value(s), first at row {missing[0]}")
    return arr


def distinct_values(arr: Array) -> tuple[Any, ...]:
    """The distinct values of ``arr`` as Python scalars, sorted when they can be."""
    found = np.asarray(pd.unique(arr)).tolist()
    try:
        return tuple(sorted(found))
    except TypeError:  # mixed types: keep the order of first appearance
        return tuple(found)


def _preview(values: Sequence[Any], limit: int = 5) -> str:
    return ", ".join(repr(v) for v in values[:limit]) + (", ..." if len(values) > limit else "")


def resolve_labels(
    task: Task, observed: Sequence[tuple[str, Array]], labels: ArrayLike | None
) -> tuple[Any, ...]:
    """The classes of a classification task: ``labels`` checked, or the sorted ones seen."""
    if labels is not None:
        given = as_1d(labels, "labels").tolist()
        counted = len(given) == 2 or (len(given) > 2 and task != "binary")
        if len(set(given)) != len(given) or not counted:
            raise InvalidInput(f"labels must be distinct, two for a binary task; got {given!r}")
        return tuple(given)
    seen = distinct_values(np.concatenate([np.asarray(arr, dtype=object) for _, arr in observed]))
    if task == "binary" and len(seen) > 2:
        found = f"{len(seen)} classes ({_preview(seen)})"
        raise InvalidInput(f"task 'binary' but the data has {found}; use task 'multiclass'")
    return seen


def _encode(classes: tuple[Any, ...], arr: Array, name: str) -> Array:
    codes = np.asarray(pd.Index(list(classes)).get_indexer(arr), dtype=np.intp)
    if (codes < 0).any():
        bad = f"{name} has values not in labels {list(classes)!r}"
        raise InvalidInput(f"{bad}: {_preview(distinct_values(arr[codes < 0]))}")
    return codes


def _floats(values: object, name: str) -> Array:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be numbers: {exc}") from exc
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{name} has missing or infinite values")
    return arr


def _proba(task: Task, y_proba: object, n: int, labels: tuple[Any, ...], name: str) -> Array:
    """Binary: P(second label) per row, shape (n,). Multiclass: rows of k probabilities."""
    proba = _floats(y_proba, name)
    cols = proba.shape[1] if proba.ndim == 2 else 1
    if proba.ndim not in (1, 2) or len(proba) != n:
        raise InvalidInput(f"{name} has shape {proba.shape}; expected {n} rows")
    if cols not in ((1, 2) if task == "binary" else (len(labels),)):
        raise InvalidInput(f"{name} has {cols} column(s) for labels {list(labels)!r}")
    if proba.min() < 0.0 or proba.max() > 1.0:
        raise InvalidInput(f"{name} must hold probabilities in [0, 1]")
    sums = proba.reshape(n, -1).sum(axis=1)
    off = np.flatnonzero((np.abs(sums - 1.0) > 1e-3) & (cols > 1))
    if len(off):
        raise InvalidInput(f"{name} rows must sum to 1; row {off[0]} sums to {sums[off[0]]}")
    return proba.reshape(n, -1)[:, -1] if task == "binary" else proba


@dataclass(frozen=True)
class Prepared:
    """Validated predictions: class codes into ``labels``, or floats for regression."""

    task: Task
    labels: tuple[Any, ...]
    y: Array
    pred: Array
    proba: Array | None  # binary: P(labels[1]) per row; multiclass: (n, k)

    def take(self, rows: Array) -> Prepared:
        proba = None if self.proba is None else self.proba[rows]
        return Prepared(self.task, self.labels, self.y[rows], self.pred[rows], proba)


def prepare(
    task: Task,
    y_true: ArrayLike | None,
    y_pred: ArrayLike | None,
    y_proba: ArrayLike | None = None,
    *,
    labels: ArrayLike | None = None,
    names: tuple[str, str] = ("y_pred", "y_proba"),
) -> Prepared:
    """Check a supervised task's inputs and encode them; ``names`` are used in messages."""
    y, pred = as_1d(y_true, "y_true"), as_1d(y_pred, names[0])
    if len(pred) != len(y):
        raise InvalidInput(f"{names[0]} has {len(pred)} rows; y_true has {len(y)}")
    if task == "regression":
        if y_proba is not None:
            raise InvalidInput(f"{names[1]} is for classification; the task is 'regression'")
        return Prepared(task, (), _floats(y, "y_true"), _floats(pred, names[0]), None)
    classes = resolve_labels(task, [("y_true", y), (names[0], pred)], labels)
    proba = None if y_proba is None else _proba(task, y_proba, len(y), classes, names[1])
    codes = _encode(classes, y, "y_true"), _encode(classes, pred, names[0])
    return Prepared(task, classes, *codes, proba)


def _ratio(num: Array, den: Array, empty: float = 0.0) -> Array:
    out = np.full(np.shape(num), empty)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _row_mean(p: Prepared, w: Array, of: Callable[[Prepared], Array], proba: bool = False) -> Array:
    """The weighted mean of a per-row loss (of probabilities, if ``proba``)."""
    if proba and (p.proba is None or (p.task == "binary" and len(p.labels) != 2)):
        return np.full(len(w), np.nan)
    return cast(Array, (w @ of(p)) / w.sum(axis=1))


def _prf(p: Prepared, w: Array, measure: str, average: str) -> Array:
    """Precision, recall or F1 from weighted per-class counts (zero where undefined)."""
    k = len(p.labels)
    y, pred = np.eye(k)[p.y], np.eye(k)[p.pred]
    tp, predicted, actual = w @ (y * pred), w @ pred, w @ y  # per class: (b, k)
    if average == "binary":  # the positive class only
        if k != 2:
            return np.full(len(w), np.nan)
        tp, predicted, actual = tp[:, 1:], predicted[:, 1:], actual[:, 1:]
    elif average == "micro":
        tp, predicted, actual = (x.sum(axis=1, keepdims=True) for x in (tp, predicted, actual))
    den = {"precision": predicted, "recall": actual, "f1": predicted + actual}[measure]
    per_class = _ratio(2 * tp if measure == "f1" else tp, den)
    # macro: every class present in y_true or y_pred counts the same; binary: the positive one
    weights = actual if average == "weighted" else (predicted + actual > 0) | (average == "binary")
    return _ratio((per_class * weights).sum(axis=1), weights.sum(axis=1), np.nan)


def _ranked(positive: Array, score: Array, w: Array, sign: int) -> tuple[Array, Array]:
    """Weights of positive and negative rows per distinct score, in order of ``sign * score``."""
    order = np.argsort(sign * score, kind="stable")
    ranked = score[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ordered = w[:, order]
    pos_w = ordered * positive[order]
    return np.add.reduceat(pos_w, starts, axis=1), np.add.reduceat(ordered - pos_w, starts, 1)


def auc(positive: Array, score: Array, w: Array) -> Array:
    """Weighted ROC AUC (ties count one half) for each row of weights ``w``."""
    pos_g, neg_g = _ranked(positive, score, w, 1)
    wins = (pos_g * (np.cumsum(neg_g, axis=1) - 0.5 * neg_g)).sum(axis=1)
    return _ratio(wins, pos_g.sum(axis=1) * neg_g.sum(axis=1), np.nan)


def average_precision(positive: Array, score: Array, w: Array) -> Array:
    """Weighted average precision: precision at each threshold times the recall it adds."""
    pos_g, neg_g = _ranked(positive, score, w, -1)
    precision = _ratio(np.cumsum(pos_g, axis=1), np.cumsum(pos_g + neg_g, axis=1))
    return _ratio((pos_g * precision).sum(axis=1), pos_g.sum(axis=1), np.nan)


def _ranking(p: Prepared, w: Array, fn: Callable[[Array, Array, Array], Array]) -> Array:
    if p.proba is None or len(p.labels) != 2:
        return np.full(len(w), np.nan)
    return fn((p.y == 1) * 1.0, p.proba, w)


def _roc_auc_ovr(p: Prepared, w: Array) -> Array:
    """One-vs-rest AUC of each class present, averaged with the classes' prevalence."""
    num, den = np.zeros(len(w)), np.zeros(len(w))
    for c in range(len(p.labels) if p.proba is not None else 0):
        positive = (p.y == c) * 1.0
        value = auc(positive, cast(Array, p.proba)[:, c], w)
        weight = np.where(np.isfinite(value), w @ positive, 0.0)
        num, den = num + weight * np.nan_to_num(value), den + weight
    return _ratio(num, den, np.nan)


def _log_loss_rows(p: Prepared) -> Array:
    proba = cast(Array, p.proba)
    proba = np.column_stack([1.0 - proba, proba]) if p.task == "binary" else proba
    return cast(Array, -np.log(np.clip(proba[np.arange(len(p.y)), p.y], _EPS, 1.0 - _EPS)))


def _r2(p: Prepared, w: Array) -> Array:
    centred = p.y - p.y.mean()  # centring keeps the variance exact in floating point
    total = w.sum(axis=1)
    mse = (w @ (p.y - p.pred) ** 2) / total
    var = (w @ centred**2) / total - ((w @ centred) / total) ** 2
    var = np.where(var <= 1e-12 * max(float(np.abs(centred).max()) ** 2, _EPS), 0.0, var)
    constant = np.where(mse == 0, 1.0, 0.0)  # as scikit-learn: a constant target scores 1 or 0
    return np.where(total >= 2, np.where(var > 0, 1.0 - _ratio(mse, var), constant), np.nan)


def _rmse(p: Prepared, w: Array) -> Array:
    return np.sqrt(_row_mean(p, w, of=lambda p: (p.y - p.pred) ** 2))


_PRF, _AVERAGES = ("precision", "recall", "f1"), ("micro", "macro", "weighted")
_ACCURACY = partial(_row_mean, of=lambda p: (p.y == p.pred) * 1.0)
_LOG_LOSS = partial(_row_mean, of=_log_loss_rows, proba=True)
KERNELS: dict[str, dict[str, Callable[[Prepared, Array], Array]]] = {
    "binary": {
        "accuracy": _ACCURACY,
        **{m: partial(_prf, measure=m, average="binary") for m in _PRF},
        "roc_auc": partial(_ranking, fn=auc),
        "pr_auc": partial(_ranking, fn=average_precision),
        "log_loss": _LOG_LOSS,
        "brier": partial(_row_mean, of=lambda p: (p.proba - p.y) ** 2, proba=True),
    },
    "multiclass": {
        "accuracy": _ACCURACY,
        **{f"{m}_{a}": partial(_prf, measure=m, average=a) for m in _PRF for a in _AVERAGES},
        "roc_auc_ovr": _roc_auc_ovr,
        "log_loss": _LOG_LOSS,
    },
    "regression": {
        "rmse": _rmse,
        "mae": partial(_row_mean, of=lambda p: np.abs(p.y - p.pred)),
        "r2": _r2,
        # the percentage error of a zero target is unbounded: then mape is NaN, i.e. omitted
        "mape": partial(_row_mean, of=lambda p: _ratio(abs(p.y - p.pred), abs(p.y), np.nan)),
    },
    "clustering": {},
    "reduction": {},
}
PROBA_METRICS = frozenset({"roc_auc", "pr_auc", "log_loss", "brier", "roc_auc_ovr"})


def score(p: Prepared) -> dict[str, float]:
    """Every metric of ``p``'s task that its inputs allow, as Python floats."""
    ones = np.ones((1, len(p.y)))
    values = {name: float(kernel(p, ones)[0]) for name, kernel in KERNELS[p.task].items()}
    return {name: value for name, value in values.items() if math.isfinite(value)}


def _silhouette(y_pred: ArrayLike, X: object) -> dict[str, float]:
    clusters = as_1d(y_pred, "y_pred")
    if X is None:
        return {}
    features = _floats(X, "X")
    if features.ndim != 2 or len(features) != len(clusters):
        raise InvalidInput(f"X has shape {features.shape}; expected {len(clusters)} rows")
    if len(clusters) > 5_000:  # silhouette is quadratic in rows: sample larger inputs
        rows = np.random.default_rng(0).choice(len(clusters), 5_000, replace=False)
        features, clusters = features[rows], clusters[rows]
    clustered = 2 <= len(pd.unique(clusters)) < len(clusters)  # else silhouette is undefined
    return {"silhouette": float(silhouette_score(features, clusters))} if clustered else {}


def evaluate(
    task: str,
    y_true: ArrayLike | None,
    y_pred: ArrayLike,
    y_proba: ArrayLike | None = None,
    *,
    labels: ArrayLike | None = None,
    extra: Mapping[str, Callable[[Any, Any], float]] | None = None,
    X: pd.DataFrame | Array | None = None,
) -> dict[str, float]:
    """The standard metrics of a task.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression", "clustering"}
    y_true, y_pred : Series or array
        Targets and predictions (cluster ids for clustering, where ``y_true`` may be None).
    y_proba : array, optional
        ``predict_proba`` output (binary: both columns, or the positive class's).
    labels : array, optional
        ``model.classes_``: the order of ``y_proba``'s columns; a binary task's second
        label is its positive class. Default: the sorted classes seen.
    extra : mapping, optional
        More metrics: name -> ``callable(y_true, y_pred) -> float``.
    X : DataFrame or array, optional
        Numeric features for a clustering's silhouette (sampled above 5,000 rows).

    Returns
    -------
    dict
        binary: accuracy, precision, recall, f1, roc_auc, pr_auc, log_loss, brier;
        multiclass: accuracy, {precision,recall,f1}_{micro,macro,weighted}, roc_auc_ovr,
        log_loss; regression: rmse, mae, r2, mape; clustering: silhouette. Probability
        metrics need ``y_proba``; a metric the data leaves undefined (an AUC with one class
        in ``y_true``, mape with a zero target, ...) is omitted, never NaN.

    Raises
    ------
    InvalidInput
        Mismatched lengths, missing values, labels that do not cover the data, malformed
        probabilities, or an ``extra`` name that is a standard metric's.

    Examples
    --------
    >>> evaluate("binary", [0, 1, 1], [0, 1, 0])["recall"]
    0.5
    """
    checked = check_task(task)
    if checked == "clustering":
        result = _silhouette(y_pred, X)
    else:
        result = score(prepare(checked, y_true, y_pred, y_proba, labels=labels))
    for name, fn in (extra or {}).items():
        if name in KERNELS[checked] or name == "silhouette":
            raise InvalidInput(f"extra metric {name!r} clashes with a standard metric")
        value = fn(None if y_true is None else as_1d(y_true, "y_true"), as_1d(y_pred, "y_pred"))
        if not isinstance(value, int | float | np.number) or isinstance(value, bool):
            raise InvalidInput(f"extra metric {name!r} returned {type(value).__name__}")
        if math.isfinite(value):
            result[name] = float(value)
    return result


def sliced(
    task: str,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_proba: ArrayLike | None,
    segments: pd.Series,
    *,
    labels: ArrayLike | None = None,
    min_rows: int = 1,
) -> pd.DataFrame:
    """Metrics per segment, e.g. per country: does the model fail some group?

    Takes the arguments of :func:`evaluate` (classes are resolved over all rows, so that
    every segment scores the same positive class), ``segments`` (one value per row; missing
    values form a segment of their own) and ``min_rows`` (smaller segments are left out).

    Returns
    -------
    DataFrame
        One row per segment: ``segment``, ``n`` and the metrics (NaN where undefined).

    Raises
    ------
    InvalidInput
        As :func:`evaluate`, or ``segments`` of the wrong length, or ``min_rows`` < 1.
    """
    checked = check_task(task)
    if checked == "clustering":
        raise InvalidInput("sliced scores supervised tasks; clustering has no y_true")
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise InvalidInput(f"min_rows must be an integer >= 1; got {min_rows!r}")
    p = prepare(checked, y_true, y_pred, y_proba, labels=labels)
    keys = as_1d(segments, "segments", complete=False)
    if len(keys) != len(p.y):
        raise InvalidInput(f"segments has {len(keys)} rows; y_true has {len(p.y)}")
    try:
        codes, uniques = pd.factorize(keys, sort=True, use_na_sentinel=False)
    except TypeError:  # values that do not sort
        codes, uniques = pd.factorize(keys, use_na_sentinel=False)
    records = []
    for code, segment in enumerate(np.asarray(uniques).tolist()):
        rows = np.flatnonzero(codes == code)
        if len(rows) >= min_rows:
            records.append({"segment": segment, "n": len(rows), **score(p.take(rows))})
    order = ["segment", "n", *(m for m in KERNELS[checked] if any(m in r for r in records))]
    return pd.DataFrame(records, columns=order)
