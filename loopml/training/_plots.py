"""Evaluation plots: their data as JSON-ready dicts, and PNG renderings of that data.

:func:`plot_data` needs only numpy and scikit-learn, so runs can always store the numbers
behind a plot; :func:`render_png` draws one of them with matplotlib's object API (no pyplot,
so no global figure state and no display), importing matplotlib only when called.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from loopml.errors import InvalidInput, MissingDependency
from loopml.training._metrics import (
    Array,
    ArrayLike,
    Prepared,
    auc,
    average_precision,
    check_task,
    prepare,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

CURVE_POINTS = 200
RESIDUAL_POINTS = 2_000
CALIBRATION_BINS = 10
TOP_FEATURES = 30


def _jsonable(value: Any) -> Any:
    """A label as a JSON value: numbers and strings as they are, anything else as text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)


def _floats(values: Array) -> list[float]:
    return [float(v) for v in values]


def _thresholds(values: Array) -> list[float | None]:
    """Thresholds, with None where there is none (scikit-learn's ``inf`` for 'no row')."""
    return [float(v) if math.isfinite(v) else None for v in values]


def _thin(length: int, limit: int = CURVE_POINTS) -> Array:
    """At most ``limit`` evenly spread positions out of ``length``, first and last included."""
    if length <= limit:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, limit).round().astype(np.intp))


def _confusion(p: Prepared) -> dict[str, Any]:
    k = len(p.labels)
    matrix = np.bincount(p.y * k + p.pred, minlength=k * k).reshape(k, k)
    return {"labels": [_jsonable(label) for label in p.labels], "matrix": matrix.tolist()}


def _curves(p: Prepared) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """ROC and precision-recall curves: the positive class, or each class against the rest."""
    proba = np.asarray(p.proba)
    columns = [(1, proba)] if p.task == "binary" else list(enumerate(proba.T))
    ones = np.ones((1, len(p.y)))
    roc, pr = [], []
    for c, score in columns:
        positive = p.y == c
        if positive.all() or not positive.any():
            continue  # a curve needs positive and negative rows
        label = _jsonable(p.labels[c])
        fpr, tpr, roc_t = roc_curve(positive, score)
        keep = _thin(len(fpr))
        roc.append(
            {
                "label": label,
                "auc": float(auc(positive * 1.0, score, ones)[0]),
                "fpr": _floats(fpr[keep]),
                "tpr": _floats(tpr[keep]),
                "thresholds": _thresholds(roc_t[keep]),
            }
        )
        precision, recall, pr_t = precision_recall_curve(positive, score)
        keep = _thin(len(precision))
        pr.append(
            {
                "label": label,
                "average_precision": float(average_precision(positive * 1.0, score, ones)[0]),
                "precision": _floats(precision[keep]),
                "recall": _floats(recall[keep]),
                "thresholds": _thresholds(np.append(pr_t, np.inf)[keep]),
            }
        )
    return roc, pr


def _calibration(p: Prepared) -> dict[str, Any]:
    proba = np.asarray(p.proba)
    bins = np.minimum((proba * CALIBRATION_BINS).astype(np.intp), CALIBRATION_BINS - 1)
    count = np.bincount(bins, minlength=CALIBRATION_BINS)
    used = count > 0
    mean_predicted = np.bincount(bins, weights=proba, minlength=CALIBRATION_BINS)[used]
    positives = np.bincount(bins, weights=(p.y == 1) * 1.0, minlength=CALIBRATION_BINS)[used]
    return {
        "bins": CALIBRATION_BINS,
        "positive_label": _jsonable(p.labels[1]),
        "mean_predicted": _floats(mean_predicted / count[used]),
        "fraction_positive": _floats(positives / count[used]),
        "count": count[used].tolist(),
    }


def _residuals(p: Prepared) -> dict[str, Any]:
    rows = np.arange(len(p.y))
    if len(rows) > RESIDUAL_POINTS:
        rows = np.sort(np.random.default_rng(0).choice(len(rows), RESIDUAL_POINTS, replace=False))
    return {
        "rows": len(p.y),
        "predicted": _floats(p.pred[rows]),
        "residual": _floats(p.y[rows] - p.pred[rows]),
    }


def _importance(importance: Mapping[str, float]) -> dict[str, Any]:
    pairs = []
    for name, value in importance.items():
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise InvalidInput(f"feature_importance[{name!r}] is not a number: {value!r}")
        if not math.isfinite(value):
            raise InvalidInput(f"feature_importance[{name!r}] is not finite: {value!r}")
        pairs.append((str(name), float(value)))
    pairs.sort(key=lambda pair: (-abs(pair[1]), pair[0]))
    top = pairs[:TOP_FEATURES]
    return {"features": [f for f, _ in top], "importance": [v for _, v in top]}


def plot_data(
    task: str,
    y_true: ArrayLike | None,
    y_pred: ArrayLike | None,
    y_proba: ArrayLike | None = None,
    *,
    labels: ArrayLike | None = None,
    feature_importance: Mapping[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """The data behind a task's evaluation plots, ready for ``json.dumps(allow_nan=False)``.

    Parameters
    ----------
    task, y_true, y_pred, y_proba, labels
        As :func:`loopml.training.evaluate` (ignored for clustering).
    feature_importance : mapping, optional
        Feature name -> importance (signed or not).

    Returns
    -------
    dict
        Plot name -> data, for the plots the inputs allow:
        ``confusion_matrix`` (classification: ``labels``, ``matrix`` of counts, rows true,
        columns predicted); ``roc_curve`` and ``pr_curve`` (with probabilities: ``curves``,
        one per positive class, or per class against the rest, of at most 200 points);
        ``calibration`` (binary, with probabilities: 10 equal bins of predicted probability,
        mean predicted vs fraction positive); ``residuals`` (regression: predicted vs
        ``y_true - y_pred`` for at most 2,000 rows sampled with seed 0);
        ``feature_importance`` (the 30 largest in absolute value, largest first).

    Raises
    ------
    InvalidInput
        As :func:`loopml.training.evaluate`, or an importance that is not a finite number.

    Examples
    --------
    >>> plot_data("binary", [0, 1, 1], [0, 1, 0])["confusion_matrix"]
    {'labels': [0, 1], 'matrix': [[1, 0], [1, 1]]}
    """
    checked = check_task(task)
    out: dict[str, dict[str, Any]] = {}
    if checked in ("binary", "multiclass"):
        p = prepare(checked, y_true, y_pred, y_proba, labels=labels)
        out["confusion_matrix"] = _confusion(p)
        if p.proba is not None and len(p.labels) >= 2:
            roc, pr = _curves(p)
            if roc:
                out["roc_curve"], out["pr_curve"] = {"curves": roc}, {"curves": pr}
            if checked == "binary":
                out["calibration"] = _calibration(p)
    elif checked == "regression":
        out["residuals"] = _residuals(prepare(checked, y_true, y_pred))
    if feature_importance:
        out["feature_importance"] = _importance(feature_importance)
    return out


# -- rendering ------------------------------------------------------------------------------


def _need(data: Mapping[str, Any], name: str, *keys: str) -> None:
    missing = [key for key in keys if key not in data]
    if missing:
        raise InvalidInput(
            f"data for plot {name!r} lacks {', '.join(map(repr, missing))}; "
            "pass what plot_data returned"
        )


def _draw_confusion(ax: Axes, data: Mapping[str, Any]) -> None:
    _need(data, "confusion_matrix", "labels", "matrix")
    matrix = np.asarray(data["matrix"], dtype=float)
    labels = [str(label) for label in data["labels"]]
    image = ax.imshow(matrix, cmap="Blues")
    ax.figure.colorbar(image, ax=ax)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    if len(labels) <= 20:
        middle = matrix.max() / 2 if matrix.size else 0
        for (i, j), count in np.ndenumerate(matrix):
            color = "white" if count > middle else "black"
            ax.text(j, i, f"{count:.0f}", ha="center", va="center", color=color)
    ax.set(xlabel="Predicted", ylabel="True", title="Confusion matrix")


def _draw_curves(x: str, y: str, metric: str, title: str) -> Callable[[Axes, Any], None]:
    def draw(ax: Axes, data: Mapping[str, Any]) -> None:
        _need(data, title, "curves")
        for curve in data["curves"]:
            _need(curve, title, x, y, "label", metric)
            label = f"{curve['label']} ({metric} {curve[metric]:.3f})"
            ax.plot(curve[x], curve[y], label=label)
        if x == "fpr":
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=x.upper() if x == "fpr" else x.capitalize())
        ax.set(ylabel=y.upper() if y == "tpr" else y.capitalize(), title=title)
        if data["curves"]:
            ax.legend(loc="lower right" if x == "fpr" else "lower left", fontsize="small")

    return draw


def _draw_calibration(ax: Axes, data: Mapping[str, Any]) -> None:
    _need(data, "calibration", "mean_predicted", "fraction_positive")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    ax.plot(data["mean_predicted"], data["fraction_positive"], marker="o", label="model")
    ax.set(xlim=(0, 1), ylim=(0, 1), title="Calibration")
    ax.set(xlabel="Mean predicted probability", ylabel="Fraction positive")
    ax.legend(loc="upper left", fontsize="small")


def _draw_residuals(ax: Axes, data: Mapping[str, Any]) -> None:
    _need(data, "residuals", "predicted", "residual")
    ax.scatter(data["predicted"], data["residual"], s=6, alpha=0.5)
    ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="Predicted", ylabel="Residual (true - predicted)", title="Residuals")


def _draw_importance(ax: Axes, data: Mapping[str, Any]) -> None:
    _need(data, "feature_importance", "features", "importance")
    features, values = list(data["features"])[::-1], list(data["importance"])[::-1]
    ax.barh(range(len(features)), values)
    ax.set_yticks(range(len(features)), features, fontsize="small")
    ax.set(xlabel="Importance", title="Feature importance")


_RENDERERS: dict[str, Callable[[Axes, Any], None]] = {
    "confusion_matrix": _draw_confusion,
    "roc_curve": _draw_curves("fpr", "tpr", "auc", "ROC curve"),
    "pr_curve": _draw_curves("recall", "precision", "average_precision", "Precision-recall"),
    "calibration": _draw_calibration,
    "residuals": _draw_residuals,
    "feature_importance": _draw_importance,
}


def render_png(name: str, data: Mapping[str, Any]) -> bytes:
    """Draw one plot of :func:`plot_data` as a PNG image.

    Parameters
    ----------
    name : str
        A key of :func:`plot_data`'s result, e.g. ``"roc_curve"``.
    data : mapping
        Its value.

    Returns
    -------
    bytes
        The PNG file's content.

    Raises
    ------
    InvalidInput
        An unknown plot name, or data that does not have the plot's shape.
    MissingDependency
        matplotlib is not installed.

    Examples
    --------
    >>> png = render_png("residuals", {"predicted": [1.0, 2.0], "residual": [0.1, -0.2]})
    >>> png[:4]
    b'\\x89PNG'
    """
    draw = _RENDERERS.get(name)
    if draw is None:
        raise InvalidInput(f"unknown plot {name!r}; one of {', '.join(_RENDERERS)}")
    if not isinstance(data, Mapping):
        raise InvalidInput(f"data for plot {name!r} must be a dict; got {type(data).__name__}")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependency("matplotlib", "plots") from exc
    figure = Figure(figsize=(6.4, 4.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself to the figure: no pyplot, no display
    try:
        draw(figure.add_subplot(), data)
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidInput(f"data for plot {name!r} is malformed: {exc}") from exc
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
