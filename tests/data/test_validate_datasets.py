"""Validating stored dataset versions: stored reports; raise, warn and quarantine."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from loopml import data
from loopml.errors import InvalidInput, NotFound
from loopml.store import Node, Workspace, upstream

SUITE = """
name: churn
checks:
  - {check: not_null, column: customer_id}
  - {check: in_range, column: age, min: 18, max: 120}
  - {check: in_set, column: plan, values: [basic, pro]}
  - {check: in_range, column: fee, min: 0, severity: warning}
"""


@pytest.fixture
def churn(ws: Workspace) -> data.DatasetVersion:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", None, "d", "e", "f"],
            "age": [30, 17, 40, 200, 50, 60],
            "plan": ["basic", "pro", "pro", "basic", "gold", "basic"],
            "fee": [10.0, 20.0, -1.0, 5.0, 7.0, 9.0],
        }
    )
    return data.ingest(frame, name="churn", workspace=ws)


def test_raise_lists_every_failure_and_stores_the_report(
    ws: Workspace, churn: data.DatasetVersion
) -> None:
    with pytest.raises(InvalidInput) as err:
        data.validate(churn, SUITE, workspace=ws)
    message = str(err.value)
    assert "churn@1 failed validation" in message
    for column in ("customer_id", "age", "plan"):
        assert column in message
    edges = [e for e in upstream(ws.db, Node("validation_report", "1"))]
    assert [str(e.src) for e in edges] == ["dataset_version:churn@1"]
    stored = data.get_report(1, workspace=ws)
    assert isinstance(stored, dict) and stored["passed"] is False
    page = data.get_report(1, html=True, workspace=ws)
    assert isinstance(page, str) and page.lstrip().lower().startswith("<!doctype html")


def test_warn_returns_the_report(
    ws: Workspace, churn: data.DatasetVersion, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        result = data.validate("churn@1", SUITE, on_fail="warn", workspace=ws)
    assert not result.passed and result.clean is None
    assert "failed validation" in caplog.text


def test_quarantine_splits_clean_and_failing_rows(
    ws: Workspace, churn: data.DatasetVersion
) -> None:
    result = data.validate(churn, SUITE, on_fail="quarantine", workspace=ws)
    assert result.clean is not None and result.quarantined is not None
    assert result.clean.ref == "churn@2" and result.quarantined.ref == "churn-quarantine@1"
    # rows 1 (age 17), 2 (null id), 3 (age 200), 4 (plan gold) fail; the fee warning does not
    assert result.clean.to_pandas()["customer_id"].tolist() == ["a", "f"]
    assert result.quarantined.to_pandas()["source_row"].tolist() == [1, 2, 3, 4]
    for derived in (result.clean, result.quarantined):
        roles = {(str(e.src), e.role) for e in upstream(ws.db, derived.lineage_node)}
        assert ("dataset_version:churn@1", "derived_from") in roles
    again = data.validate(result.clean, SUITE, workspace=ws)
    assert again.passed


def test_suggested_suite_passes_on_its_own_data(ws: Workspace, churn: data.DatasetVersion) -> None:
    suite = data.suggest_suite(churn.profile, name="auto")
    text = suite.to_yaml()
    assert "in_range" in text
    assert data.validate(churn, text, workspace=ws).passed


def test_bad_arguments(ws: Workspace, churn: data.DatasetVersion) -> None:
    with pytest.raises(InvalidInput, match="on_fail"):
        data.validate(churn, SUITE, on_fail="ignore", workspace=ws)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        data.validate(churn, "checks: [{check: nope}]", workspace=ws)
    with pytest.raises(NotFound):
        data.get_report(999, workspace=ws)
