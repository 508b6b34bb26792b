"""The drift report's HTML page: self-contained, escaped, with charts and a timeline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from loopml.errors import InvalidInput
from loopml.monitoring import DriftReport, drift_report

from .conftest import drift_frames


def test_page_has_table_charts_and_is_self_contained(tmp_path: Path) -> None:
    ref, cur = drift_frames(3_000, seed=11)
    report = drift_report(ref, cur)
    page = report.to_html(tmp_path / "drift.html", title="Churn <prod>")
    assert (tmp_path / "drift.html").read_text() == page
    assert "<title>Churn &lt;prod&gt;</title>" in page
    assert page.count("<section id=") == 16 and page.count('aria-label="reference and') == 16
    assert "<script" not in page and not re.search(r'(src|href)="(https?:)?//', page)
    assert "drift share over time" not in page


def test_history_adds_a_timeline_and_names_are_escaped() -> None:
    ref = pd.DataFrame({"<b>x</b>": [0.1 * i for i in range(200)], "c": ["<i>"] * 200})
    past = [drift_report(ref, ref).to_dict(), drift_report(ref, ref.copy())]
    now = drift_report(ref, ref.assign(**{"<b>x</b>": ref["<b>x</b>"] + 9}))
    page = now.to_html(history=[DriftReport.from_dict(json.loads(json.dumps(past[0]))), past[1]])
    assert 'aria-label="drift share over time"' in page and page.count("<circle") == 3
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<i>" not in page


def test_missing_folder_is_invalid_input(tmp_path: Path) -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(InvalidInput, match="does not exist"):
        drift_report(ref, ref).to_html(tmp_path / "nope" / "r.html")
