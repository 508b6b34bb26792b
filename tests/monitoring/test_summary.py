"""ReferenceSummary: what it keeps, exactness, and the round trip through bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput
from loopml.monitoring import ReferenceSummary

from .conftest import drift_frames


def test_numeric_and_categorical_sketches() -> None:
    ref, _ = drift_frames(50_000, seed=2)
    s = ReferenceSummary.summarize(ref)
    num = s.columns["num3"]
    assert num.kind == "numeric" and num.count == 50_000 and num.values is None
    assert num.min == ref["num3"].min() and num.max == ref["num3"].max()
    assert num.std == pytest.approx(ref["num3"].std())
    assert num.edges is not None and num.cdf is not None and num.edges.size == 1001
    share = (ref["num3"].to_numpy()[:, None] <= num.edges[[0, 250, 1000]]).mean(axis=0)
    assert np.allclose(num.cdf[[0, 250, 1000]], share)
    cat = s.columns["cat1"]
    assert cat.levels == ref["cat1"].value_counts().to_dict() and cat.other == 0


def test_small_references_keep_every_value() -> None:
    frame = pd.DataFrame({"x": [3.0, 1.0, np.nan, 2.0, np.inf]})
    col = ReferenceSummary.summarize(frame).columns["x"]
    assert col.values is not None and col.values.tolist() == [1.0, 2.0, 3.0]
    assert (col.nulls, col.infinite, col.rows) == (1, 1, 5)


def test_round_trip_is_exact() -> None:
    ref, _ = drift_frames(12_000, seed=3)
    ref.loc[::7, "cat2"] = None
    s = ReferenceSummary.summarize(ref)
    blob = s.to_bytes()
    back = ReferenceSummary.from_bytes(blob)
    assert back == s
    for name, col in s.columns.items():
        for key in ("edges", "cdf", "values"):
            a, b = getattr(col, key), getattr(back.columns[name], key)
            assert (a is None and b is None) or np.array_equal(a, b)
    assert len(blob) < 200_000


def test_rare_levels_are_pooled() -> None:
    frame = pd.DataFrame({"id": [f"u{i}" for i in range(1_500)]})
    col = ReferenceSummary.summarize(frame).columns["id"]
    assert col.levels is not None and len(col.levels) == 1_000 and col.other == 500


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"a": [None, None]}), "'a' is all null"),
        (pd.DataFrame({"a": [b"x"]}), "'a' has type binary"),
        (pd.DataFrame({"a": [np.nan, np.inf]}), "'a' has no finite values"),
        (pd.DataFrame({"a": []}), "no rows"),
    ],
)
def test_bad_frames(frame: pd.DataFrame, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        ReferenceSummary.summarize(frame)


def test_bad_blobs_and_columns() -> None:
    with pytest.raises(InvalidInput, match="not a reference summary"):
        ReferenceSummary.from_bytes(b"nope")
    with pytest.raises(InvalidInput, match="'zz'"):
        ReferenceSummary.summarize(pd.DataFrame({"a": [1]}), columns=["zz"])
