"""Offline A/B tests for promotions: is model B really better than model A on this data?

:func:`paired_bootstrap` resamples rows with replacement, scoring both models on the same
resamples. A resample is a vector of row counts, and the metrics of ``_metrics`` are
computed from counts as weights, so thousands of resamples cost a few matrix products (for
AUCs: one sort, then cumulative sums). :func:`mcnemar` tests whether two classifiers make
different numbers of mistakes on the rows where they disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from loopml.errors import InvalidInput
from loopml.training._metrics import (
    KERNELS,
    PROBA_METRICS,
    Array,
    ArrayLike,
    Task,
    as_1d,
    check_task,
    prepare,
    resolve_labels,
)

LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape", "log_loss", "brier", "reconstruction_rmse"})
UNSUPERVISED = frozenset({"silhouette", "explained_variance", "reconstruction_rmse"})
_CELLS = 2_000_000  # resample rows held in memory at once (16 MB of float64 weights)
Scorer = Callable[[Array], tuple[Array, Array]]


@dataclass(frozen=True)
class BootstrapResult:
    """A paired bootstrap comparison of model ``b`` against model ``a``.

    ``diff`` is ``value_b - value_a``; ``ci_low``/``ci_high`` bound its ``1 - alpha``
    percentile interval; ``p_value`` is twice the share of resamples where the difference has
    the opposite sign to ``diff`` (or is zero), capped at 1 (1 when ``diff`` is 0), so it
    cannot resolve values below ``2 / n_boot``. ``n_boot`` counts the resamples used: those
    where the metric was defined for both models (an AUC needs both classes).
    """

    metric: str
    value_a: float
    value_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_boot: int


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test: ``b`` rows only model A got right, ``c`` rows only model B got right."""

    b: int
    c: int
    statistic: float
    p_value: float


def better(metric: str) -> Literal[1, -1]:
    """``1`` if a higher value of ``metric`` is better, ``-1`` if lower is (rmse, log_loss...).

    Raises
    ------
    InvalidInput
        ``metric`` is not one of :func:`loopml.training.evaluate`'s metrics.

    Examples
    --------
    >>> better("roc_auc"), better("rmse")
    (1, -1)
    """
    known = {name for kernels in KERNELS.values() for name in kernels} | UNSUPERVISED
    if metric not in known:
        raise InvalidInput(f"unknown metric {metric!r}; known: {', '.join(sorted(known))}")
    return -1 if metric in LOWER_IS_BETTER else 1


def _check_options(n_boot: object, seed: object, alpha: object) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise InvalidInput(f"n_boot must be an integer >= 1; got {n_boot!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InvalidInput(f"seed must be an integer; got {seed!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise InvalidInput(f"alpha must be in (0, 1); got {alpha!r}")


def _kernel_scorer(
    task: Task,
    metric: str,
    arrays: tuple[Array, Array, Array],
    probas: tuple[ArrayLike | None, ArrayLike | None],
    labels: ArrayLike | None,
) -> Scorer:
    """Score both models with the metric's kernel, from one matrix of row weights."""
    kernels = KERNELS[task]
    if metric not in kernels:
        raise InvalidInput(f"metric {metric!r} is not a {task} metric; one of {', '.join(kernels)}")
    needs_proba = metric in PROBA_METRICS
    if needs_proba and (probas[0] is None or probas[1] is None):
        raise InvalidInput(f"metric {metric!r} needs proba_a and proba_b")
    y, a, b = arrays
    if task != "regression":  # both models must code classes the same way
        labels = resolve_labels(task, [("y_true", y), ("a", a), ("b", b)], labels)
    prepared = [
        prepare(task, y, pred, proba if needs_proba else None, labels=labels, names=names)
        for pred, proba, names in (
            (a, probas[0], ("a", "proba_a")),
            (b, probas[1], ("b", "proba_b")),
        )
    ]
    kernel = kernels[metric]
    return lambda w: (kernel(prepared[0], w), kernel(prepared[1], w))


def _callable_scorer(metric: Callable[[Any, Any], float], arrays: tuple[Array, ...]) -> Scorer:
    """Score both models by calling ``metric`` on each resample (slower: a Python loop)."""
    y, a, b = arrays
    positions = np.arange(len(y))

    def value(truth: Array, pred: Array) -> float:
        result = metric(truth, pred)
        if isinstance(result, bool) or not isinstance(result, int | float | np.number):
            raise InvalidInput(f"metric returned {type(result).__name__}; expected a number")
        return float(result)

    def score(w: Array) -> tuple[Array, Array]:
        values = np.empty((2, len(w)))
        for i, counts in enumerate(w.astype(np.intp)):
            rows = np.repeat(positions, counts)
            values[:, i] = value(y[rows], a[rows]), value(y[rows], b[rows])
        return values[0], values[1]

    return score


def paired_bootstrap(
    y_true: ArrayLike,
    a: ArrayLike,
    b: ArrayLike,
    metric: str | Callable[[Any, Any], float],
    *,
    task: str,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    proba_a: ArrayLike | None = None,
    proba_b: ArrayLike | None = None,
    labels: ArrayLike | None = None,
) -> BootstrapResult:
    """Compare two models' predictions on the same rows with a paired bootstrap.

    Parameters
    ----------
    y_true : Series or array
        The targets.
    a, b : Series or array
        Predictions of the current model (``a``) and of the challenger (``b``).
    metric : str or callable
        A metric of :func:`loopml.training.evaluate` for ``task`` (``"roc_auc"``,
        ``"rmse"``...), or ``callable(y_true, y_pred) -> float`` (called per resample).
    task : {"binary", "multiclass", "regression"}
    n_boot : int
        Number of resamples.
    seed : int
        Seed of the resampling: the same seed gives the same result.
    alpha : float
        The confidence interval covers ``1 - alpha``.
    proba_a, proba_b : array, optional
        Both models' ``predict_proba`` output, for probability metrics (roc_auc, log_loss...).
    labels : array, optional
        The classes in the order of the probability columns (``model.classes_``).

    Returns
    -------
    BootstrapResult
        ``diff = value_b - value_a`` with its interval and p-value. Whether a positive
        difference is an improvement depends on the metric: see :func:`better`.

    Raises
    ------
    InvalidInput
        Inputs :func:`loopml.training.evaluate` rejects, a metric not of ``task``, missing
        probabilities, bad options, or a metric undefined on the data (an AUC with one class).

    Examples
    --------
    >>> result = paired_bootstrap(y, pred_a, pred_b, "accuracy", task="binary")  # doctest: +SKIP
    >>> result.ci_low > 0  # doctest: +SKIP
    True
    """
    checked = check_task(task)
    if checked == "clustering":
        raise InvalidInput("paired_bootstrap compares predictions of a target; not clustering")
    _check_options(n_boot, seed, alpha)
    arrays = as_1d(y_true, "y_true"), as_1d(a, "a"), as_1d(b, "b")
    n = len(arrays[0])
    for name, arr in zip(("a", "b"), arrays[1:], strict=True):
        if len(arr) != n:
            raise InvalidInput(f"{name} has {len(arr)} rows; y_true has {n}")
    if callable(metric):
        name, scorer = getattr(metric, "__name__", "metric"), _callable_scorer(metric, arrays)
    elif isinstance(metric, str):
        name, scorer = metric, _kernel_scorer(checked, metric, arrays, (proba_a, proba_b), labels)
    else:
        raise InvalidInput(f"metric must be a name or a callable; got {type(metric).__name__}")
    full_a, full_b = (float(v[0]) for v in scorer(np.ones((1, n))))
    if not (math.isfinite(full_a) and math.isfinite(full_b)):
        raise InvalidInput(
            f"metric {name!r} is undefined on these rows (an AUC needs both classes in "
            "y_true; mape needs no zero target)"
        )
    diffs = _resampled_diffs(scorer, n, n_boot, seed)
    if len(diffs) == 0:
        raise InvalidInput(f"metric {name!r} was undefined on every resample; add rows")
    diff = full_b - full_a
    flipped = np.mean(diffs <= 0) if diff > 0 else np.mean(diffs >= 0) if diff < 0 else 0.5
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(
        metric=name,
        value_a=full_a,
        value_b=full_b,
        diff=diff,
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(min(1.0, 2 * flipped)),
        n_boot=len(diffs),
    )


def _resampled_diffs(scorer: Scorer, n: int, n_boot: int, seed: int) -> Array:
    """``b - a`` on each resample where both are defined; resamples drawn in chunks."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, _CELLS // n))
    found = []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        rows = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        weights = np.bincount(rows.ravel(), minlength=size * n).reshape(size, n).astype(float)
        value_a, value_b = scorer(weights)
        defined = np.isfinite(value_a) & np.isfinite(value_b)
        found.append((value_b - value_a)[defined])
    return np.concatenate(found)


def mcnemar(y_true: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike) -> McNemarResult:
    """McNemar's test of two classifiers on the same rows.

    With ``b`` rows that only model A classifies right and ``c`` rows that only B does, the
    test is exact (binomial, two-sided; ``statistic = min(b, c)``) when ``b + c < 25``, else
    chi-squared with continuity correction (``statistic = (|b - c| - 1)^2 / (b + c)``).

    Raises
    ------
    InvalidInput
        Empty inputs, missing values or different lengths.

    Examples
    --------
    >>> mcnemar([1, 1, 0, 0], [1, 0, 0, 1], [1, 1, 0, 0])
    McNemarResult(b=0, c=2, statistic=0.0, p_value=0.5)
    """
    y, a, b = (
        as_1d(v, n).astype(object)
        for v, n in ((y_true, "y_true"), (pred_a, "pred_a"), (pred_b, "pred_b"))
    )
    if not len(a) == len(b) == len(y):
        raise InvalidInput(
            f"pred_a, pred_b and y_true need as many rows; got {len(a)}, {len(b)} and {len(y)}"
        )
    right_a, right_b = np.asarray(a == y, dtype=bool), np.asarray(b == y, dtype=bool)
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    discordant = only_a + only_b
    if discordant == 0:
        return McNemarResult(0, 0, 0.0, 1.0)
    if discordant < 25:
        p_value = stats.binomtest(min(only_a, only_b), discordant, 0.5).pvalue
        return McNemarResult(only_a, only_b, float(min(only_a, only_b)), float(min(1.0, p_value)))
    statistic = (abs(only_a - only_b) - 1) ** 2 / discordant
    return McNemarResult(only_a, only_b, float(statistic), float(stats.chi2.sf(statistic, 1)))
