"""performance_report by window, and the confidence-based estimate without labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.errors import InvalidInput
from loopml.monitoring import estimate_performance, performance_report
from loopml.training import evaluate


def test_windows_by_rows_and_by_time() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1_000)
    pred = np.where(np.arange(1_000) < 500, y, rng.integers(0, 2, 1_000))  # worse later
    report = performance_report(y, pred, task="binary", window=250)
    assert [w.rows for w in report.windows] == [250, 250, 250, 250]
    assert report.windows[0].metrics["accuracy"] == 1.0
    assert report.windows[3].metrics["accuracy"] < 0.7
    assert report.overall == evaluate("binary", y, pred)
    times = pd.date_range("2024-01-01", periods=1_000, freq="h", tz="UTC")
    daily = performance_report(y, pred, timestamps=times, freq="1D")
    assert daily.task == "binary" and len(daily.windows) == 42
    assert daily.windows[0].start == "2024-01-01T00:00:00+00:00"
    assert len(report.to_frame()) == 4 and '"windows"' in report.to_json()


def test_regression_windows() -> None:
    y = np.linspace(0, 10, 100)
    report = performance_report(y, y + 1.0, task="regression", window=60)
    assert [w.metrics["mae"] for w in report.windows] == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 0}, "window"),
        ({"window": 10, "freq": "1D", "timestamps": range(4)}, "not both"),
        ({"freq": "1D"}, "both timestamps and freq"),
        ({"timestamps": ["2024-01-01"] * 3, "freq": "1D"}, "3 rows"),
        ({"timestamps": ["x"] * 4, "freq": "1D"}, "row 0"),
    ],
)
def test_bad_windows(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        performance_report([0, 1, 0, 1], [0, 1, 1, 1], task="binary", **kwargs)


def test_estimate_is_close_to_realised_on_a_calibrated_model() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40_000, 3))
    logit = X @ np.array([1.5, -1.0, 0.5])
    y = (rng.random(40_000) < 1 / (1 + np.exp(-logit))).astype(int)
    model = LogisticRegression().fit(X[:20_000], y[:20_000])
    proba = model.predict_proba(X[20_000:])
    realised = evaluate("binary", y[20_000:], model.predict(X[20_000:]), proba)
    est = estimate_performance(proba, classes=model.classes_)
    assert est["accuracy"] == pytest.approx(realised["accuracy"], abs=0.01)
    assert est["roc_auc"] == pytest.approx(realised["roc_auc"], abs=0.01)
    # an over-confident (uncalibrated) model's estimate is off: the test can fail
    sharp = np.clip((proba - 0.5) * 3 + 0.5, 0, 1)
    assert estimate_performance(sharp)["accuracy"] > realised["accuracy"] + 0.05


def test_multiclass_estimate() -> None:
    rng = np.random.default_rng(2)
    p = rng.dirichlet([1, 1, 1], 30_000)
    y = np.array([rng.choice(3, p=row) for row in p[:3_000]])
    est = estimate_performance(p[:3_000], classes=[0, 1, 2])
    realised = evaluate("multiclass", y, p[:3_000].argmax(axis=1), p[:3_000])
    assert est["accuracy"] == pytest.approx(realised["accuracy"], abs=0.03)
    assert est["roc_auc_ovr"] == pytest.approx(realised["roc_auc_ovr"], abs=0.03)


def test_known_value_and_bad_probabilities() -> None:
    assert estimate_performance([0.9, 0.2, 0.6])["accuracy"] == pytest.approx(0.7666666)
    # rows counted as weighted positives/negatives: exactly computable by hand
    assert estimate_performance([1.0, 0.0])["roc_auc"] == 1.0
    with pytest.raises(InvalidInput, match="sum to 1"):
        estimate_performance([[0.5, 0.6]])
    with pytest.raises(InvalidInput, match=r"\[0, 1\]"):
        estimate_performance([1.5])
    with pytest.raises(InvalidInput, match="3 classes"):
        estimate_performance([[0.5, 0.5]], classes=["a", "b", "c"])
