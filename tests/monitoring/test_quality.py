"""quality_report: null rates, out-of-range values, unseen categories, schema violations."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput
from loopml.monitoring import ReferenceSummary, quality_report


@pytest.fixture
def summary() -> ReferenceSummary:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {
            "age": rng.integers(18, 90, 1_000),
            "city": rng.choice(["paris", "rome", "oslo"], 1_000),
            "score": rng.normal(size=1_000),
        }
    )
    return ReferenceSummary.summarize(ref)


def test_clean_traffic_passes(summary: ReferenceSummary) -> None:
    cur = pd.DataFrame({"age": [20, 30], "city": ["rome", "oslo"], "score": [0.0, 0.1]})
    report = quality_report(summary, cur)
    assert report.passed and report.issues == []


def test_each_issue_is_found_with_counts_and_examples(summary: ReferenceSummary) -> None:
    cur = pd.DataFrame(
        {
            "age": [17, 30, 120, 40],
            "city": ["rome", "berlin", "berlin", "lima"],
            "score": [None, None, 0.1, None],
            "extra": [1, 2, 3, 4],
        }
    )
    report = quality_report(summary, cur)
    kinds = {(i.column, i.kind) for i in report.issues}
    assert kinds == {
        ("age", "out_of_range"),
        ("city", "unseen_categories"),
        ("score", "null_rate"),
        ("extra", "extra_column"),
    }
    age = report.by_kind("out_of_range")[0]
    assert (age.count, age.examples) == (2, [17.0, 120.0])
    city = report.by_kind("unseen_categories")[0]
    assert city.count == 3 and set(city.examples) == {"berlin", "lima"}
    nulls = report.by_kind("null_rate")[0]
    assert nulls.count == 3 and nulls.fraction == 0.75
    assert report.to_dict()["passed"] is False and '"out_of_range"' in report.to_json()


def test_schema_violations(summary: ReferenceSummary) -> None:
    cur = pd.DataFrame({"age": ["old", "young"], "score": [0.0, 1.0]})
    report = quality_report(summary, cur)
    assert [(i.column, i.kind) for i in report.issues] == [
        ("age", "type_mismatch"),
        ("city", "missing_column"),
    ]
    assert re.search(r"'age' is (large_)?string", report.issues[0].message)


def test_tolerance_and_bad_input(summary: ReferenceSummary) -> None:
    cur = pd.DataFrame({"age": [20, None], "city": ["rome", "rome"], "score": [0.0, 1.0]})
    assert quality_report(summary, cur, null_rate_tolerance=0.6).passed
    with pytest.raises(InvalidInput, match="null_rate_tolerance"):
        quality_report(summary, cur, null_rate_tolerance=2)
    with pytest.raises(InvalidInput, match="current has no rows"):
        quality_report(summary, cur.iloc[:0])
