"""Model performance on live traffic: measured by window when labels arrive, estimated from
calibrated probabilities when they have not.

:func:`performance_report` scores each window with :func:`loopml.training.evaluate` (the
metrics training reports). :func:`estimate_performance` is confidence-based performance
estimation: if the model is calibrated, a row predicted with probability ``p`` is right with
probability ``p``, so the expected accuracy is the mean of the top-class probability, and the
expected ROC AUC is the AUC with each row counted as a positive of weight ``p`` and a
negative of weight ``1 - p`` (one-vs-rest and macro-averaged for more than two classes).
The estimate is only as good as the calibration.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopml.errors import InvalidInput


@dataclass(frozen=True)
class WindowPerformance:
    """The metrics of one window: its ``start`` and ``end`` (row numbers, or times as ISO
    strings), its ``rows`` and the ``metrics`` of :func:`loopml.training.evaluate`."""

    start: int | str
    end: int | str
    rows: int
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"start": self.start, "end": self.end, "rows": self.rows, "metrics": self.metrics}


@dataclass(frozen=True)
class PerformanceReport:
    """What :func:`performance_report` found: the ``task``, the metrics ``overall`` and per
    window (``windows``, in order)."""

    task: str
    overall: dict[str, float]
    windows: list[WindowPerformance]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "task": self.task,
            "overall": self.overall,
            "windows": [w.to_dict() for w in self.windows],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_frame(self) -> pd.DataFrame:
        """One row per window: start, end, rows and the metrics."""
        return pd.DataFrame([{**w.to_dict(), **w.metrics} for w in self.windows]).drop(
            columns="metrics", errors="ignore"
        )


def performance_report(
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    task: str | None = None,
    *,
    window: int | None = None,
    timestamps: Any = None,
    freq: str | None = None,
    labels: Sequence[Any] | None = None,
) -> PerformanceReport:
    """Metrics of labelled predictions, overall and by window.

    Parameters
    ----------
    y_true, y_pred, proba : labels, predictions and (optionally) ``predict_proba`` output,
        as :func:`loopml.training.evaluate` takes them.
    task : ``"binary"``, ``"multiclass"`` or ``"regression"``; inferred from ``y_true`` if
        omitted.
    window : rows per window (consecutive, the last may be shorter); or
    timestamps, freq : a time per row and a pandas frequency (``"1D"``, ``"1h"``): one window
        per period.  Without either, there is one window.
    labels : the classes in ``proba``'s column order (default: sorted classes seen).

    Raises
    ------
    InvalidInput
        As :func:`loopml.training.evaluate`; or a bad window, timestamps of the wrong
        length, ``window`` and ``freq`` both given.
    """
    from loopml.training import infer_task  # loaded on use: keeps the CLI quick to start

    checked = infer_task(y_true) if task is None else task
    if checked == "clustering":
        raise InvalidInput("performance needs labels: task 'clustering' is not supported")
    y = np.asarray(y_true)
    if checked != "regression" and labels is None:
        seen = pd.unique(np.concatenate([y.astype(object), np.asarray(y_pred, dtype=object)]))
        try:
            labels = sorted(seen.tolist())
        except TypeError:
            labels = list(seen)
    overall = _score(checked, y_true, y_pred, proba, np.arange(len(y)), labels)
    windows = [
        WindowPerformance(
            start, end, len(rows), _score(checked, y_true, y_pred, proba, rows, labels)
        )
        for start, end, rows in _windows(len(y), window, timestamps, freq)
    ]
    return PerformanceReport(checked, overall, windows)


def _score(
    task: str, y_true: Any, y_pred: Any, proba: Any, rows: npt.NDArray[np.intp], labels: Any
) -> dict[str, float]:
    from loopml.training import evaluate

    p = None if proba is None else np.asarray(proba)[rows]
    return evaluate(task, np.asarray(y_true)[rows], np.asarray(y_pred)[rows], p, labels=labels)


def _windows(
    n: int, window: int | None, timestamps: Any, freq: str | None
) -> list[tuple[int | str, int | str, npt.NDArray[np.intp]]]:
    if window is not None and freq is not None:
        raise InvalidInput("give window (rows) or timestamps with freq, not both")
    if freq is not None or timestamps is not None:
        if freq is None or timestamps is None:
            raise InvalidInput("time windows need both timestamps and freq")
        times = pd.to_datetime(
            pd.Series(np.asarray(timestamps)), utc=True, errors="coerce", format="mixed"
        )
        if len(times) != n:
            raise InvalidInput(f"timestamps has {len(times)} rows; y_true has {n}")
        if times.isna().any():
            raise InvalidInput(
                f"timestamps row {int(times.isna().to_numpy().argmax())} is not a time"
            )
        try:
            periods = times.dt.floor(freq)
        except ValueError as exc:
            raise InvalidInput(f"freq {freq!r} is not a pandas frequency: {exc}") from exc
        out: list[tuple[int | str, int | str, npt.NDArray[np.intp]]] = []
        for start, rows in sorted(periods.groupby(periods).indices.items()):
            end = start + pd.tseries.frequencies.to_offset(freq)
            out.append((start.isoformat(), end.isoformat(), np.asarray(rows, dtype=np.intp)))
        return out
    if window is None:
        return [(0, n, np.arange(n))]
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InvalidInput(f"window must be a whole number of rows >= 1, not {window!r}")
    return [(s, min(s + window, n), np.arange(s, min(s + window, n))) for s in range(0, n, window)]


def _checked_proba(proba: Any, classes: Sequence[Any] | None) -> npt.NDArray[np.float64]:
    try:
        p = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"proba must be numbers: {exc}") from exc
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise InvalidInput(f"proba must have rows of class probabilities; got shape {p.shape}")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise InvalidInput("proba must hold probabilities in [0, 1] (no missing values)")
    bad = np.flatnonzero(np.abs(p.sum(axis=1) - 1.0) > 1e-3)
    if bad.size:
        raise InvalidInput(f"proba rows must sum to 1; row {bad[0]} sums to {p[bad[0]].sum():g}")
    if classes is not None and len(classes) != p.shape[1]:
        raise InvalidInput(f"proba has {p.shape[1]} columns for {len(classes)} classes")
    return p


def _expected_auc(score: npt.NDArray[np.float64], positive: npt.NDArray[np.float64]) -> float:
    """AUC with row i a positive of weight ``positive[i]`` and a negative of ``1 - positive[i]``."""
    order = np.argsort(score, kind="stable")
    s, wp = score[order], positive[order]
    wn = 1.0 - wp
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    gp, gn = np.add.reduceat(wp, starts), np.add.reduceat(wn, starts)
    below = np.cumsum(gn) - gn  # negative weight with a lower score
    total = gp.sum() * gn.sum()
    return float(np.sum(gp * (below + gn / 2)) / total) if total > 0 else float("nan")


def estimate_performance(proba: Any, classes: Sequence[Any] | None = None) -> dict[str, float]:
    """Confidence-based estimate of accuracy and ROC AUC, without labels.

    Parameters
    ----------
    proba : array
        Calibrated ``predict_proba`` output: rows of class probabilities, or for two classes
        the positive class's probability per row.
    classes : the classes in ``proba``'s column order (checked against its width).

    Returns
    -------
    dict
        ``accuracy`` and ``roc_auc`` (two classes) or ``roc_auc_ovr`` (macro one-vs-rest),
        named as :func:`loopml.training.evaluate` names the realised metrics. An AUC that
        is undefined (every probability 0 or 1 for a class) is omitted.

    Raises
    ------
    InvalidInput
        Not probabilities, rows that do not sum to 1, or a width that does not fit ``classes``.

    Examples
    --------
    >>> estimate_performance([0.9, 0.2, 0.6])["accuracy"]
    0.7666666666666667
    """
    p = _checked_proba(proba, classes)
    out = {"accuracy": float(p.max(axis=1).mean())}
    if p.shape[1] == 2:
        auc = _expected_auc(p[:, 1], p[:, 1])
        key = "roc_auc"
    else:
        per_class = [_expected_auc(p[:, k], p[:, k]) for k in range(p.shape[1])]
        auc = float(np.mean(per_class))
        key = "roc_auc_ovr"
    if np.isfinite(auc):
        out[key] = auc
    return out
