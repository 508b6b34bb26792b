"""Evaluation: metrics against scikit-learn, splits, plot data, and paired model comparisons."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from loopml.errors import InvalidInput
from loopml.training._compare import BootstrapResult, better, mcnemar, paired_bootstrap
from loopml.training._metrics import evaluate, infer_task, sliced
from loopml.training._plots import plot_data, render_png
from loopml.training._splits import Split, make_splits

Arr = np.ndarray[Any, Any]


@pytest.fixture
def binary() -> tuple[Arr, Arr, Arr]:
    """String classes, probabilities of "yes" rounded so that scores tie."""
    rng = np.random.default_rng(0)
    y = rng.choice(np.array(["no", "yes"]), 400)
    proba = np.clip(np.round((y == "yes") * 0.25 + rng.random(400) * 0.75, 2), 0, 1)
    return y, np.where(proba > 0.5, "yes", "no"), proba


@pytest.fixture
def multiclass() -> tuple[Arr, Arr, Arr]:
    rng = np.random.default_rng(1)
    y = rng.choice(np.array(["a", "b", "c"]), 500)
    proba = rng.dirichlet(np.ones(3), 500) + np.eye(3)[np.searchsorted(["a", "b", "c"], y)]
    proba /= proba.sum(axis=1, keepdims=True)
    return y, np.array(["a", "b", "c"])[proba.argmax(axis=1)], proba


# -- metrics --------------------------------------------------------------------------------


def test_binary_metrics_match_sklearn(binary: tuple[Arr, Arr, Arr]) -> None:
    y, pred, proba = binary
    got = evaluate("binary", y, pred, proba, labels=["no", "yes"])
    positive = y == "yes"
    want = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, pos_label="yes"),
        "recall": skm.recall_score(y, pred, pos_label="yes"),
        "f1": skm.f1_score(y, pred, pos_label="yes"),
        "roc_auc": skm.roc_auc_score(positive, proba),
        "pr_auc": skm.average_precision_score(positive, proba),
        "log_loss": skm.log_loss(positive, proba),
        "brier": skm.brier_score_loss(positive, proba),
    }
    assert got == pytest.approx(want, rel=1e-12)
    assert all(type(value) is float for value in got.values())
    two_columns = np.column_stack([1 - proba, proba])
    assert evaluate("binary", pd.Series(y), pd.Series(pred), two_columns) == pytest.approx(got)


def test_multiclass_metrics_match_sklearn(multiclass: tuple[Arr, Arr, Arr]) -> None:
    y, pred, proba = multiclass
    got = evaluate("multiclass", y, pred, proba, labels=["a", "b", "c"])
    want = {"accuracy": skm.accuracy_score(y, pred)}
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        for average in ("micro", "macro", "weighted"):
            want[f"{name}_{average}"] = fn(y, pred, average=average, zero_division=0)
    want["roc_auc_ovr"] = skm.roc_auc_score(y, proba, multi_class="ovr", average="weighted")
    want["log_loss"] = skm.log_loss(y, proba, labels=["a", "b", "c"])
    assert got == pytest.approx(want, rel=1e-12)


def test_macro_average_skips_classes_absent_from_both() -> None:
    y, pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 2]
    got = evaluate("multiclass", y, pred, labels=[0, 1, 2, 3])
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(1e6, 5, 300)  # a large offset: variance must not cancel out
    pred = y + rng.normal(0, 2, 300)
    got = evaluate("regression", y, pred)
    want = {
        "rmse": skm.root_mean_squared_error(y, pred),
        "mae": skm.mean_absolute_error(y, pred),
        "r2": skm.r2_score(y, pred),
        "mape": skm.mean_absolute_percentage_error(y, pred),
    }
    assert got == pytest.approx(want, rel=1e-9)


def test_clustering_silhouette() -> None:
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(0, 1, (50, 2)), rng.normal(8, 1, (50, 2))])
    clusters = np.repeat([0, 1], 50)
    got = evaluate("clustering", None, clusters, X=pd.DataFrame(X, columns=["u", "v"]))
    assert got == {"silhouette": pytest.approx(skm.silhouette_score(X, clusters))}
    assert evaluate("clustering", None, np.zeros(100), X=X) == {}  # one cluster: undefined
    assert evaluate("clustering", None, clusters) == {}  # no features


def test_undefined_metrics_are_omitted_without_warnings() -> None:
    # one class in y_true: no AUC; nothing predicted positive: precision 0, not a warning
    got = evaluate("binary", [0, 0, 0], [0, 0, 0], [0.1, 0.2, 0.3], labels=[0, 1])
    assert "roc_auc" not in got and "pr_auc" not in got
    assert got["precision"] == 0.0 and got["accuracy"] == 1.0 and "log_loss" in got
    assert "mape" not in evaluate("regression", [0.0, 1.0], [0.5, 1.0])
    assert "r2" not in evaluate("regression", [1.0], [2.0])
    # one class seen and no labels: the positive class is unknown
    assert evaluate("binary", ["x", "x"], ["x", "x"]) == {"accuracy": 1.0}


def _text(y_true: Any, y_pred: Any) -> Any:
    return "high"


def test_extra_metrics() -> None:
    def share_positive(y_true: Arr, y_pred: Arr) -> float:
        return float(np.mean(y_pred == 1))

    got = evaluate("binary", [0, 1, 1, 0], [1, 1, 1, 0], extra={"share": share_positive})
    assert got["share"] == 0.75
    with pytest.raises(InvalidInput, match="extra metric 'f1' clashes"):
        evaluate("binary", [0, 1], [0, 1], extra={"f1": share_positive})
    with pytest.raises(InvalidInput, match="extra metric 'bad' returned str"):
        evaluate("binary", [0, 1], [0, 1], extra={"bad": _text})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, "task must be one of binary, multiclass"),
        ({"y_pred": [0, 1]}, "y_pred has 2 rows; y_true has 3"),
        ({"y_true": [0, None, 1]}, "y_true has 1 missing value"),
        ({"y_pred": [0, 1, 2]}, "task 'binary' but the data has 3 classes"),
        ({"labels": [0, 2]}, r"y_true has values not in labels \[0, 2\]: 1"),
        ({"labels": [0, 0]}, "labels must be distinct"),
        ({"y_proba": [0.2, 0.3]}, r"y_proba has shape \(2,\); expected 3 rows"),
        ({"y_proba": [0.2, 1.3, 0.5]}, r"y_proba must hold probabilities in \[0, 1\]"),
        ({"y_proba": [[0.5, 0.2]] * 3}, "y_proba rows must sum to 1; row 0 sums to 0.7"),
        ({"y_proba": [[0.2, 0.3, 0.5]] * 3}, "y_proba has 3 column"),
        ({"y_proba": [0.1, float("nan"), 0.3]}, "y_proba has missing or infinite values"),
    ],
)
def test_evaluate_rejects_bad_input(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"task": "binary", "y_true": [0, 1, 1], "y_pred": [0, 1, 0]}
    with pytest.raises(InvalidInput, match=message):
        evaluate(**(args | kwargs))


def test_regression_needs_numbers() -> None:
    with pytest.raises(InvalidInput, match="y_pred must be numbers"):
        evaluate("regression", [1.0, 2.0], ["a", "b"])
    with pytest.raises(InvalidInput, match="y_proba is for classification"):
        evaluate("regression", [1.0, 2.0], [1.0, 2.0], [0.5, 0.5])


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (pd.Series([True, False, True]), "binary"),
        (pd.Series(["a", "b", "c", "a"]), "multiclass"),
        (pd.Series(["x", "y"], dtype="category"), "binary"),
        (pd.Series(list(range(30)), dtype="category"), "multiclass"),
        (np.array([0, 1, 2, 3, 4, 4]), "multiclass"),
        (pd.Series([0, 1, 1], dtype="Int64"), "binary"),
        (np.array([0.0, 1.0, 1.0]), "binary"),  # integer-valued floats are classes
        (np.arange(30), "regression"),  # more than 20 distinct integers
        (np.array([0.5, 1.5, 2.25]), "regression"),
        (None, "clustering"),
    ],
)
def test_infer_task(y: Any, task: str) -> None:
    assert infer_task(y) == task


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (pd.Series([1, 1, 1]), r"target 'y' has one class \(1\); classification needs two or more"),
        (pd.Series(["a", "a"], name="churned"), "target 'churned' has one class"),
        (pd.Series([1.0, None, 2.0]), "target 'y' has 1 missing value"),
        (np.array([], dtype=float), "target 'y' must be one-dimensional and non-empty"),
        (pd.Series(pd.date_range("2024-01-01", periods=3)), "target 'y' holds datetime64"),
        (np.array([0.5, np.inf]), "target 'y' has missing or infinite values"),
    ],
)
def test_infer_task_rejects(y: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        infer_task(y)


def test_sliced_scores_each_segment(binary: tuple[Arr, Arr, Arr]) -> None:
    y, pred, proba = binary
    segments = pd.Series(np.where(np.arange(len(y)) % 3 == 0, "north", "south"))
    segments[:5] = None
    table = sliced("binary", y, pred, proba, segments, min_rows=10)
    assert list(table["segment"]) == ["north", "south"]  # the 5-row missing segment is dropped
    for _, row in table.iterrows():
        rows = (segments == row["segment"]).to_numpy()
        assert row["n"] == rows.sum()
        want = evaluate("binary", y[rows], pred[rows], proba[rows])
        assert row[list(want)].to_dict() == pytest.approx(want)
    with_missing = sliced("binary", y, pred, None, segments)
    assert with_missing["segment"].isna().sum() == 1 and "roc_auc" not in with_missing


def test_sliced_keeps_one_positive_class() -> None:
    # segment "b" only holds class "yes": its recall is still about "yes"
    table = sliced(
        "binary", ["no", "yes", "yes"], ["no", "yes", "no"], None, pd.Series(list("abb"))
    )
    assert table.set_index("segment").loc["b", "recall"] == 0.5
    with pytest.raises(InvalidInput, match="segments has 2 rows; y_true has 3"):
        sliced("binary", [0, 1, 1], [0, 1, 1], None, pd.Series(["a", "b"]))
    with pytest.raises(InvalidInput, match="min_rows must be an integer >= 1"):
        sliced("binary", [0, 1], [0, 1], None, pd.Series(["a", "b"]), min_rows=0)


# -- splits ---------------------------------------------------------------------------------


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = 100
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "user": rng.integers(0, 12, n),
            "when": pd.date_range("2024-01-01", periods=n, freq="h")[rng.permutation(n)],
            "label": np.repeat(["a", "b"], [70, 30]),
        }
    )


def _partitions(folds: list[tuple[Arr, Arr]], n: int) -> bool:
    """Each fold splits all n rows in two, and the test sets together cover every row once."""
    whole = all(np.array_equal(np.sort(np.concatenate(fold)), np.arange(n)) for fold in folds)
    return whole and np.array_equal(np.sort(np.concatenate([t for _, t in folds])), np.arange(n))


def test_holdout_is_stratified_and_seeded(frame: pd.DataFrame) -> None:
    ((train, test),) = make_splits("holdout", frame, frame["label"], "binary")
    assert len(test) == 20 and len(train) == 80 and len(np.union1d(train, test)) == 100
    assert (frame["label"].iloc[test] == "b").sum() == 6  # 30% of the test rows, as overall
    again = make_splits(Split(seed=0), frame, frame["label"], "binary")
    other = make_splits(Split(seed=1), frame, frame["label"], "binary")
    assert np.array_equal(again[0][1], test) and not np.array_equal(other[0][1], test)
    ((_, plain),) = make_splits({"test_size": 0.25}, frame, frame["x"], "regression")
    assert len(plain) == 25


def test_kfold_and_stratified(frame: pd.DataFrame) -> None:
    split = Split("kfold", n_splits=4, seed=3)
    folds = make_splits(split, frame, frame["x"], "regression")
    assert len(folds) == 4 and _partitions(folds, 100)
    same = make_splits(split, frame, None, "clustering")  # the target plays no part
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, same, strict=True))
    strat = make_splits("stratified", frame, frame["label"], "binary")
    assert _partitions(strat, 100)
    assert [int((frame["label"].iloc[t] == "b").sum()) for _, t in strat] == [6] * 5


def test_group_split_keeps_groups_apart(frame: pd.DataFrame) -> None:
    split = Split("group", n_splits=3, group_column="user", seed=7)
    folds = make_splits(split, frame, frame["label"], "binary")
    assert len(folds) == 3 and _partitions(folds, 100)
    for train, test in folds:
        assert not set(frame["user"].iloc[train]) & set(frame["user"].iloc[test])
        assert 15 <= len(test) <= 50  # each group goes to the lightest fold
    again = make_splits(split, frame, frame["label"], "binary")
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


def test_timeseries_split_tests_on_later_rows(frame: pd.DataFrame) -> None:
    split = Split.parse({"kind": "timeseries", "time_column": "when", "n_splits": 4})
    folds = make_splits(split, frame, frame["x"], "regression")
    assert [len(test) for _, test in folds] == [20] * 4
    for train, test in folds:
        assert frame["when"].iloc[train].max() < frame["when"].iloc[test].min()
    holdout = Split("timeseries", n_splits=1, test_size=0.1, time_column="when")
    ((train, test),) = make_splits(holdout, frame, frame["x"], "regression")
    assert len(test) == 10
    assert set(frame["when"].iloc[test]) == set(frame["when"].nlargest(10))


def test_split_parse() -> None:
    assert Split.parse(None) == Split()
    assert Split.parse("kfold") == Split(kind="kfold")
    assert Split.parse({"kind": "stratified", "n_splits": 3}).n_splits == 3
    with pytest.raises(InvalidInput, match=r"unknown split option.*'folds'"):
        Split.parse({"folds": 3})
    with pytest.raises(InvalidInput, match="split kind must be one of holdout, kfold"):
        Split.parse("random")
    with pytest.raises(InvalidInput, match="split must be a Split, a kind or a dict; got int"):
        Split.parse(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("split", "task", "message"),
    [
        ({"test_size": 1.5}, "regression", r"test_size must be a fraction in \(0, 1\); got 1.5"),
        ({"kind": "kfold", "n_splits": 1}, "regression", "'kfold' needs n_splits >= 2; got 1"),
        ({"kind": "group"}, "regression", "split kind 'group' needs group_column"),
        ({"kind": "group", "group_column": "team"}, "regression", "'team' is not a column of X"),
        (
            {"kind": "group", "group_column": "user", "n_splits": 5},
            "regression",
            "needs at least 5 distinct values in 'user'; it has 3",
        ),
        ({"kind": "timeseries", "time_column": "gone"}, "regression", "'gone' is not a column"),
        ({"kind": "timeseries", "time_column": "when"}, "regression", "'when' has 1 missing"),
        ({"kind": "holdout", "group_column": "user"}, "regression", "only used by split kind"),
        ({"kind": "stratified"}, "regression", "needs a classification target"),
        (
            {"kind": "stratified", "n_splits": 3},
            "binary",
            "stratified split with n_splits=3 needs at least 3 rows of each class; "
            "class 'b' has 2 row",
        ),
        (
            {"kind": "kfold", "n_splits": 10},
            "regression",
            "kfold split with n_splits=10 needs at least 10 rows; X has 6",
        ),
        (
            {"kind": "timeseries", "time_column": "t", "n_splits": 6},
            "regression",
            "timeseries split with n_splits=6 needs at least 7 rows; X has 6",
        ),
    ],
)
def test_make_splits_rejects(split: dict[str, Any], task: str, message: str) -> None:
    X = pd.DataFrame(
        {
            "user": [1, 1, 2, 2, 3, 3],
            "when": pd.to_datetime(["2024-01-01", None] + [f"2024-01-0{d}" for d in range(3, 7)]),
            "t": range(6),
        }
    )
    y = pd.Series(["a", "a", "a", "a", "b", "b"] if task == "binary" else np.arange(6.0))
    with pytest.raises(InvalidInput, match=message):
        make_splits(split, X, y, task)


def test_holdout_needs_enough_rows() -> None:
    X = pd.DataFrame({"x": range(6)})
    with pytest.raises(
        InvalidInput,
        match=r"holdout split with test_size=0\.2 and 3 classes needs at least 11 rows; X has 6",
    ):
        make_splits("holdout", X, pd.Series([0, 0, 1, 1, 2, 2]), "multiclass")
    with pytest.raises(
        InvalidInput,
        match="stratification by the target needs at least 2 rows of each class; class 2 has 1 row",
    ):
        make_splits(
            "holdout", pd.DataFrame({"x": range(30)}), pd.Series([0, 1] * 14 + [1, 2]), "multiclass"
        )
    with pytest.raises(
        InvalidInput, match=r"holdout split with test_size=0\.2 needs at least 2 rows; X has 1"
    ):
        make_splits("holdout", pd.DataFrame({"x": [1]}), None, "clustering")


# -- plots ----------------------------------------------------------------------------------


def test_binary_plot_data(binary: tuple[Arr, Arr, Arr]) -> None:
    y, pred, proba = binary
    importance = {f"f{i}": float(i - 20) for i in range(40)}
    data = plot_data("binary", y, pred, proba, labels=["no", "yes"], feature_importance=importance)
    assert set(data) == {
        "confusion_matrix",
        "roc_curve",
        "pr_curve",
        "calibration",
        "feature_importance",
    }
    json.dumps(data, allow_nan=False)
    matrix = data["confusion_matrix"]
    assert matrix["labels"] == ["no", "yes"]
    assert matrix["matrix"] == skm.confusion_matrix(y, pred, labels=["no", "yes"]).tolist()
    (roc,) = data["roc_curve"]["curves"]
    assert roc["label"] == "yes" and roc["auc"] == pytest.approx(
        skm.roc_auc_score(y == "yes", proba)
    )
    assert 2 <= len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"]) <= 200
    assert (roc["fpr"][0], roc["fpr"][-1], roc["thresholds"][0]) == (0.0, 1.0, None)
    calibration = data["calibration"]
    assert sum(calibration["count"]) == len(y) and len(calibration["count"]) <= 10
    top = data["feature_importance"]
    assert len(top["features"]) == 30 and top["features"][:3] == ["f0", "f1", "f39"]
    for name, content in data.items():
        assert render_png(name, content).startswith(b"\x89PNG")


def test_multiclass_and_regression_plot_data(multiclass: tuple[Arr, Arr, Arr]) -> None:
    y, pred, proba = multiclass
    data = plot_data("multiclass", y, pred, proba)
    assert set(data) == {"confusion_matrix", "roc_curve", "pr_curve"}
    assert [c["label"] for c in data["pr_curve"]["curves"]] == ["a", "b", "c"]
    json.dumps(data, allow_nan=False)
    assert render_png("roc_curve", data["roc_curve"]).startswith(b"\x89PNG")

    rng = np.random.default_rng(5)
    truth = rng.normal(size=5000)
    residuals = plot_data("regression", truth, truth * 0.9)["residuals"]
    assert residuals["rows"] == 5000 and len(residuals["predicted"]) == 2000
    assert residuals == plot_data("regression", truth, truth * 0.9)["residuals"]  # seed 0
    json.dumps(residuals, allow_nan=False)
    assert render_png("residuals", residuals).startswith(b"\x89PNG")


def test_plot_errors() -> None:
    with pytest.raises(InvalidInput, match="unknown plot 'violin'"):
        render_png("violin", {})
    with pytest.raises(InvalidInput, match="data for plot 'residuals' lacks 'residual'"):
        render_png("residuals", {"predicted": [1.0]})
    with pytest.raises(InvalidInput, match=r"feature_importance\['age'\] is not finite"):
        plot_data("regression", [1.0, 2.0], [1.0, 2.0], feature_importance={"age": math.inf})


# -- comparisons ----------------------------------------------------------------------------


@pytest.fixture
def rivals() -> tuple[Arr, Arr, Arr, Arr, Arr]:
    """Targets, then a weak and a strong model's probabilities and predictions."""
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 2000)
    weak = np.clip(y * 0.1 + rng.random(2000) * 0.9, 0, 1)
    strong = np.clip(y * 0.4 + rng.random(2000) * 0.6, 0, 1)
    return y, weak, strong, (weak > 0.5) * 1, (strong > 0.5) * 1


def test_bootstrap_of_identical_models(rivals: tuple[Arr, ...]) -> None:
    y, _, _, weak_pred, _ = rivals
    result = paired_bootstrap(y, weak_pred, weak_pred, "accuracy", task="binary", n_boot=200)
    assert result.diff == 0 and result.ci_low <= 0 <= result.ci_high and result.p_value == 1
    assert result.value_a == result.value_b == evaluate("binary", y, weak_pred)["accuracy"]


@pytest.mark.parametrize("metric", ["accuracy", "f1", "roc_auc", "pr_auc", "log_loss", "brier"])
def test_bootstrap_finds_the_better_model(rivals: tuple[Arr, ...], metric: str) -> None:
    y, weak, strong, weak_pred, strong_pred = rivals
    result = paired_bootstrap(
        y, weak_pred, strong_pred, metric, task="binary", proba_a=weak, proba_b=strong, n_boot=300
    )
    assert isinstance(result, BootstrapResult) and result.n_boot == 300
    improvement = better(metric) * result.diff
    assert improvement > 0 and result.p_value < 0.01
    assert (result.ci_low > 0) if better(metric) == 1 else (result.ci_high < 0)
    assert result.value_b == pytest.approx(evaluate("binary", y, strong_pred, strong)[metric])
    again = paired_bootstrap(
        y, weak_pred, strong_pred, metric, task="binary", proba_a=weak, proba_b=strong, n_boot=300
    )
    assert again == result


def test_bootstrap_regression_multiclass_and_callables(multiclass: tuple[Arr, Arr, Arr]) -> None:
    rng = np.random.default_rng(7)
    y = rng.normal(size=1000)
    a, b = y + rng.normal(size=1000), y + rng.normal(size=1000) * 0.5
    rmse = paired_bootstrap(y, a, b, "rmse", task="regression", n_boot=200)
    assert better("rmse") == -1 and rmse.ci_high < 0
    assert rmse.value_a == pytest.approx(skm.root_mean_squared_error(y, a))

    def mae(truth: Arr, pred: Arr) -> float:
        return float(np.mean(np.abs(truth - pred)))

    custom = paired_bootstrap(y, a, b, mae, task="regression", n_boot=50)
    assert custom.metric == "mae" and custom.ci_high < 0
    assert custom.value_a == pytest.approx(evaluate("regression", y, a)["mae"])

    truth, pred, proba = multiclass
    for metric in ("f1_macro", "roc_auc_ovr"):
        result = paired_bootstrap(
            truth, pred, pred, metric, task="multiclass", proba_a=proba, proba_b=proba, n_boot=100
        )
        assert result.diff == 0 and result.value_a == pytest.approx(
            evaluate("multiclass", truth, pred, proba)[metric]
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "rmse"}, "metric 'rmse' is not a binary metric"),
        ({"metric": "roc_auc"}, "metric 'roc_auc' needs proba_a and proba_b"),
        ({"n_boot": 0}, "n_boot must be an integer >= 1"),
        ({"alpha": 1.0}, r"alpha must be in \(0, 1\)"),
        ({"b": [0, 1]}, "b has 2 rows; y_true has 4"),
        ({"b": [0, 1, 2, 0]}, "task 'binary' but the data has 3 classes"),
        ({"task": "clustering"}, "not clustering"),
    ],
)
def test_bootstrap_rejects(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"y_true": [0, 1, 1, 0], "a": [0, 1, 0, 0], "b": [0, 1, 1, 1]}
    args |= {"metric": "accuracy", "task": "binary"}
    with pytest.raises(InvalidInput, match=message):
        paired_bootstrap(**(args | kwargs))
    with pytest.raises(InvalidInput, match="metric 'roc_auc' is undefined on these rows"):
        paired_bootstrap(
            [1, 1],
            [1, 1],
            [1, 0],
            "roc_auc",
            task="binary",
            proba_a=[0.6, 0.7],
            proba_b=[0.6, 0.4],
            labels=[0, 1],
        )
    with pytest.raises(InvalidInput, match="unknown metric 'speed'"):
        better("speed")


def _rows(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[int], ...]:
    """Targets (all 1) and two models' predictions with the given agreement counts."""
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return [1] * len(a), a, b


def test_mcnemar_matches_hand_computation() -> None:
    exact = mcnemar(*_rows(40, 3, 9, 8))  # b + c = 12 < 25: exact binomial test
    p_exact = 2 * sum(math.comb(12, i) for i in range(4)) / 2**12
    assert (exact.b, exact.c, exact.statistic) == (3, 9, 3.0)
    assert exact.p_value == pytest.approx(p_exact)
    chi = mcnemar(*_rows(100, 10, 30, 5))  # b + c = 40: chi-squared with continuity correction
    statistic = (abs(10 - 30) - 1) ** 2 / 40
    assert (chi.b, chi.c) == (10, 30) and chi.statistic == pytest.approx(statistic)
    assert chi.p_value == pytest.approx(math.erfc(math.sqrt(statistic / 2)))
    assert mcnemar([0, 1], [0, 1], [0, 1]).p_value == 1.0
    with pytest.raises(InvalidInput, match="need as many rows; got 2, 1 and 2"):
        mcnemar([0, 1], [0, 1], [0])
