"""Validation: checks, suites in YAML, the lazy DuckDB engine, reports, suggested suites."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from rich.console import Console

from loopml.data._check_base import Check, parse_duration
from loopml.data._checks import (
    ColumnExists,
    Fresh,
    InRange,
    InSet,
    Matches,
    NotNull,
    RowCount,
    SqlPredicate,
    Unique,
)
from loopml.data._drift_checks import MeanWithin, NoNewCategories, QuantileWithin, StdWithin
from loopml.data._profile import profile_table
from loopml.data._report_html import ValidationReport
from loopml.data._suggest import suggest_suite
from loopml.data._suite import CHECK_TYPES, Suite
from loopml.data._validation import TableScan, validate_table
from loopml.errors import InvalidInput, NotFound


@pytest.fixture
def people() -> pa.Table:
    """Six rows with nulls, a NaN, a duplicate, odd values and odd column names."""
    return pa.table(
        {
            "id": [1, 2, 3, 3, 5, None],
            "age": [30, 17, None, 150, 40, 64],
            "fee": [10.0, -1.0, float("nan"), 5.0, None, 0.0],
            "plan": ["basic", "pro", "gold", None, "basic", "pro"],
            "email": ["a@b.io", "nope", "c@d.io", None, "e@f.io", "x@y"],
            "status": ["paid", "paid", "free", "paid", "paid", "paid"],
            'unit "price"': [1.5, 2.5, 3.5, 4.5, 5.5, 99.0],
            "first name": ["Ann", "Bob", "", "Dee", "Eve", "Fay"],
        }
    )


def run(table: pa.Table, *checks: Check, **kwargs: Any) -> ValidationReport:
    return validate_table(table, Suite(list(checks), name="t"), **kwargs)


def outcome(table: pa.Table, check: Check, **kwargs: Any) -> tuple[bool, int | None, list[int]]:
    """passed, failing count and failing rows of ``check`` alone."""
    result = run(table, check, **kwargs).results[0]
    return result.passed, result.failing_count, result.rows.tolist()


# --- each check, passing and failing -------------------------------------------------------


def test_column_exists_by_family_alias_and_type_string() -> None:
    table = pa.table(
        {
            "n": pa.array([1], pa.int32()),
            "x": [1.5],
            "d": pa.array([1], pa.decimal128(5, 2)),
            "s": pa.array(["a"]).dictionary_encode(),
            "t": pa.array([datetime(2024, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            "b": [True],
        }
    )
    for column, dtype in [
        ("n", "integer"),
        ("n", "numeric"),
        ("n", "int32"),
        ("x", "float"),
        ("x", "double"),
        ("d", "numeric"),
        ("s", "string"),
        ("t", "datetime"),
        ("t", "timestamp[us, tz=UTC]"),
        ("b", "boolean"),
        ("b", None),
    ]:
        assert outcome(table, ColumnExists(column, dtype))[0], (column, dtype)
    report = run(table, ColumnExists("n", "float"), ColumnExists("x", "int64"), ColumnExists("z"))
    assert [r.passed for r in report.results] == [False, False, False]
    assert report.results[0].message == "column 'n' is int32, expected float"
    assert report.results[2].message.startswith("column 'z' not found; the table has: 'n', 'x'")
    assert report.results[2].failing_count is None


def test_not_null_counts_nulls_and_nan(people: pa.Table) -> None:
    assert outcome(people, NotNull("id")) == (False, 1, [5])
    assert outcome(people, NotNull("fee")) == (False, 2, [2, 4])
    assert outcome(people, NotNull("status")) == (True, 0, [])
    assert outcome(people, NotNull("fee", max_fraction=0.34)) == (True, 2, [])
    assert outcome(people, NotNull("fee", max_fraction=0.3)) == (False, 2, [2, 4])
    result = run(people, NotNull("fee", max_fraction=0.3)).results[0]
    assert result.message == "2 of 6 rows (33.3%) are null or NaN; at most 30.0% allowed"
    assert result.failing_fraction == pytest.approx(2 / 6)


def test_unique_single_composite_sorted_and_nulls() -> None:
    table = pa.table(
        {
            "k": [5, 1, 5, None, None, 7, 1],
            "a": ["x", "x", "y", "y", "y", "z", "x"],
            "sorted": [1, 2, 3, 4, 5, 6, 7],
            "ties": [1, 2, 2, 3, 4, 5, 6],
        }
    )
    assert outcome(table, Unique("k")) == (False, 4, [0, 1, 2, 6])  # nulls are not compared
    assert outcome(table, Unique(("k", "a"))) == (False, 2, [1, 6])
    assert outcome(table, Unique(["a", "sorted"])) == (True, 0, [])
    assert outcome(table, Unique("sorted")) == (True, 0, [])
    assert outcome(table, Unique("ties")) == (False, 2, [1, 2])
    assert run(table, Unique(("k", "a"))).results[0].column == "k, a"


def test_in_range_ignores_nulls_and_nan_but_not_null_does_not(people: pa.Table) -> None:
    assert outcome(people, InRange("age", 18, 120)) == (False, 2, [1, 3])  # row 2 is null
    assert outcome(people, NotNull("age")) == (False, 1, [2])
    assert outcome(people, InRange("fee", min=0)) == (False, 1, [1])  # NaN and null pass
    assert outcome(people, InRange("fee", max=10)) == (True, 0, [])
    assert outcome(people, InRange("fee", max=10, inclusive=False)) == (False, 1, [0])
    assert outcome(people, InRange("age", 17, 150)) == (True, 0, [])
    assert outcome(people, InRange("age", 17, 150, inclusive=False)) == (False, 2, [1, 3])
    message = run(people, InRange("age", 18, 120)).results[0].message
    assert message == "2 of 6 rows (33.3%) are outside [18, 120]"


def test_in_range_on_dates_and_strings() -> None:
    table = pa.table(
        {
            "day": pa.array([date(2024, 1, 1), date(2024, 6, 1), None]),
            "ts": pa.array([datetime(2024, 1, 1), datetime(2025, 1, 1), None], pa.timestamp("ms")),
            "code": ["A", "M", "Z"],
        }
    )
    assert outcome(table, InRange("day", min="2024-02-01")) == (False, 1, [0])
    assert outcome(table, InRange("day", max=date(2024, 3, 1))) == (False, 1, [1])
    assert outcome(table, InRange("ts", datetime(2023, 1, 1), "2024-12-31")) == (False, 1, [1])
    assert outcome(table, InRange("code", "A", "M")) == (False, 1, [2])
    report = run(table, InRange("code", 0, 1), InRange("day", min="soon"), InRange("ts", 0))
    assert [r.message for r in report.results] == [
        "bound 0 is a number but column 'code' is string",
        "bound 'soon' is not an ISO date or datetime",
        "bound 0 is a number but column 'ts' is datetime",
    ]


def test_in_set_native_and_as_text(people: pa.Table) -> None:
    assert outcome(people, InSet("plan", ["basic", "pro"])) == (False, 1, [2])  # null passes
    assert outcome(people, InSet("age", [30, 17, 150, 40, 64])) == (True, 0, [])
    assert outcome(people, InSet("age", ["30", "17", "150", "40"])) == (False, 1, [5])
    assert outcome(people, InSet("fee", [10.0, -1.0, 5.0, 0.0])) == (True, 0, [])  # NaN passes
    flags = pa.table({"f": [True, False, None]})
    assert outcome(flags, InSet("f", [True])) == (False, 1, [1])
    assert outcome(flags, InSet("f", ["true"])) == (False, 1, [1])


def test_matches_whole_value(people: pa.Table) -> None:
    assert outcome(people, Matches("email", r"[^@]+@[^@]+\.[a-z]+")) == (False, 2, [1, 5])
    assert outcome(people, Matches("email", "@")) == (False, 5, [0, 1, 2, 4, 5])  # full match
    assert outcome(people, Matches("age", r"\d{2}")) == (False, 1, [3])  # matched as text
    bad = run(people, Matches("email", "(")).results[0]
    assert not bad.passed
    assert bad.message.startswith("could not evaluate:")


def test_row_count(people: pa.Table) -> None:
    assert outcome(people, RowCount(min=6, max=6))[0]
    report = run(people, RowCount(min=7), RowCount(max=5))
    assert [r.message for r in report.results] == [
        "6 rows; at least 7 expected",
        "6 rows; at most 5 expected",
    ]
    assert report.failing_rows().size == 0  # table-level failures name no rows


def test_fresh() -> None:
    when = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 10, 12, tzinfo=UTC), None]
    table = pa.table(
        {
            "aware": pa.array(when, pa.timestamp("us", tz="Europe/Paris")),
            "naive": pa.array([w and w.replace(tzinfo=None) for w in when], pa.timestamp("ns")),
            "day": pa.array([date(2024, 1, 1), date(2024, 1, 10), None]),
            "empty": pa.array([None, None, None], pa.timestamp("s")),
            "n": [1, 2, 3],
        }
    )
    now = datetime(2024, 1, 12, tzinfo=UTC)
    assert outcome(table, Fresh("aware", "2d", now=now))[0]
    assert outcome(table, Fresh("naive", timedelta(hours=36), now=now.replace(tzinfo=None)))[0]
    assert outcome(table, Fresh("day", "2d", now=now))[0]
    report = run(
        table,
        Fresh("aware", "1d", now=now),
        Fresh("empty", "1d"),
        Fresh("n", "1d"),
        Fresh("aware", "1d"),  # now: the time of the check, years later
    )
    assert [r.passed for r in report.results] == [False, False, False, False]
    assert report.results[0].message == (
        "newest value 2024-01-10T12:00:00+00:00 is 36.0 hours old; at most 1d allowed"
    )
    assert report.results[1].message == "column 'empty' has no values"
    assert report.results[2].message == "column 'n' is int64, not a date or time"
    assert parse_duration("1d12h") == timedelta(hours=36)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert Fresh("aware", timedelta(hours=36)).to_dict()["max_age"] == "36h"


def test_sql_predicate_with_odd_column_names(people: pa.Table) -> None:
    check = SqlPredicate("fee >= 0 or status = 'free'", name="fee_ok")
    # row 2 (NaN, free) passes by status; row 4 (NULL fee, paid) is NULL and passes
    assert outcome(people, check) == (False, 1, [1])
    quoted = SqlPredicate('"unit ""price""" < 10 and length("first name") > 0')
    assert outcome(people, quoted) == (False, 2, [2, 5])
    assert outcome(people, InRange('unit "price"', max=10)) == (False, 1, [5])
    assert outcome(people, NotNull("first name")) == (True, 0, [])
    result = run(people, quoted).results[0]
    assert result.sample == [
        {"__row__": 2, 'unit "price"': 3.5, "first name": ""},
        {"__row__": 5, 'unit "price"': 99.0, "first name": "Fay"},
    ]


# --- SQL safety -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("1=1; DROP TABLE t", "';' ends a statement"),
        ("age > 1;", "';' ends a statement"),
        ("DROP TABLE t", "not a statement or subquery (DROP)"),
        ("age > (select 1)", "not a statement or subquery (SELECT)"),
        ("exists (SELECT * FROM read_csv('/etc/passwd'))", "(SELECT)"),
        ("age > 1 -- comment", "comments are not allowed"),
        ("age > 1 /* x */", "comments are not allowed"),
        ("age > $1", "'$' is not allowed outside quotes"),
        ("age >", "is not a DuckDB expression"),
        ("age > 1, fee > 2", "is not a DuckDB expression"),
        ("   ", "the expression is empty"),
    ],
)
def test_sql_predicate_refuses_statements_and_subqueries(expression: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match="sql: field 'expression'") as info:
        SqlPredicate(expression)
    assert reason in str(info.value)


def test_sql_predicate_keywords_inside_quotes_are_fine(people: pa.Table) -> None:
    check = SqlPredicate("status <> 'drop; select -- it' and \"first name\" <> 'DELETE'")
    assert outcome(people, check) == (True, 0, [])


def test_subqueries_that_pass_the_lexer_fail_at_run_time(people: pa.Table) -> None:
    report = run(
        people,
        SqlPredicate("age IN (FROM read_csv('/etc/passwd'))"),
        SqlPredicate("age + 1"),
        SqlPredicate("nosuch > 1"),
        SqlPredicate("sum(age) > 0"),
        NotNull("status"),
    )
    messages = [r.message for r in report.results]
    assert messages[0] == "subqueries are not allowed in a sql check"
    assert messages[1] == "the expression gives BIGINT, not BOOLEAN"
    assert messages[2].startswith("could not evaluate: Binder Error: Referenced column")
    assert messages[3].startswith("could not evaluate:")
    assert report.results[4].passed  # the bad checks did not stop the good one


def test_a_check_failing_at_run_time_does_not_stop_the_others(people: pa.Table) -> None:
    report = run(
        people,
        NotNull("id"),
        SqlPredicate("CAST(plan AS INTEGER) > 0"),  # binds, then fails on 'basic'
        InRange("age", 18, 120),
    )
    first, broken, last = report.results
    assert (first.failing_count, last.failing_count) == (1, 2)
    assert first.rows.tolist() == [5] and last.rows.tolist() == [1, 3]
    assert broken.message.startswith("could not evaluate: Conversion Error")


def test_the_connection_cannot_read_files(people: pa.Table) -> None:
    with TableScan(people) as scan, pytest.raises(Exception, match="disabled"):
        scan.aggregate(["(SELECT count(*) FROM read_csv('/etc/passwd'))"], {})


# --- reference profiles ---------------------------------------------------------------------

REFERENCE = {
    "num_rows": 100,
    "columns": {
        "fee": {
            "kind": "numeric",
            "mean": 4.0,
            "std": 1.0,
            "quantiles": {"0.25": 1.0, "0.5": 3.0, "0.75": 6.0},
        },
        "plan": {
            "kind": "categorical",
            "top_values": [{"value": "basic", "count": 60}, {"value": "pro", "count": 40}],
        },
        "status": {"kind": "categorical", "levels": ["paid", "free"]},
        "age": {"kind": "numeric", "mean": None},
    },
}


def test_statistics_against_the_reference(people: pa.Table) -> None:
    # finite fees: 10, -1, 5, 0 -> mean 3.5, std 5.07, median 2.5
    assert outcome(people, MeanWithin("fee", 0.2), reference_profile=REFERENCE)[0]
    assert not outcome(people, MeanWithin("fee", 0.1), reference_profile=REFERENCE)[0]
    assert outcome(people, MeanWithin("fee", 0.5, relative=False), reference_profile=REFERENCE)[0]
    assert not outcome(people, StdWithin("fee", 1.0), reference_profile=REFERENCE)[0]
    assert outcome(people, StdWithin("fee", 5.0), reference_profile=REFERENCE)[0]
    assert outcome(people, QuantileWithin("fee", 0.5, 0.2), reference_profile=REFERENCE)[0]
    assert not outcome(people, QuantileWithin("fee", 0.5, 0.1), reference_profile=REFERENCE)[0]
    result = run(people, MeanWithin("fee", 0.1), reference_profile=REFERENCE).results[0]
    assert result.message == (
        "mean of 'fee' is 3.5, reference 4: off by 12.5%, at most 10.0% allowed"
    )
    assert result.failing_count is None


def test_statistics_without_what_they_need(people: pa.Table) -> None:
    report = run(
        people,
        MeanWithin("fee", 0.1),
        NoNewCategories("plan"),
    )
    assert {r.message for r in report.results} == {
        "needs a reference profile (pass reference_profile=...)"
    }
    report = run(
        people,
        MeanWithin("age", 0.1),
        MeanWithin("id", 0.1),
        QuantileWithin("fee", 0.9, 0.1),
        MeanWithin("plan", 0.1),
        NoNewCategories("email"),
        reference_profile=REFERENCE,
    )
    assert [r.message for r in report.results] == [
        "the reference profile has no mean for 'age'",
        "column 'id' is not in the reference profile",
        "the reference profile has no quantile for 'fee'",
        "column 'plan' is string, not numeric",
        "column 'email' is not in the reference profile",
    ]
    with pytest.raises(InvalidInput, match="reference_profile must be a profile dict"):
        run(people, MeanWithin("fee", 0.1), reference_profile={"fee": {}})


def test_no_new_categories(people: pa.Table) -> None:
    kw: dict[str, Any] = {"reference_profile": REFERENCE}
    assert outcome(people, NoNewCategories("plan"), **kw) == (False, 1, [2])
    assert outcome(people, NoNewCategories("plan", max_new_fraction=0.2), **kw)[0]
    assert outcome(people, NoNewCategories("status"), **kw) == (True, 0, [])


# --- the engine and the report ----------------------------------------------------------------


def test_every_failure_is_collected_in_one_report(people: pa.Table) -> None:
    report = run(
        people,
        NotNull("id"),
        Unique("id"),
        InRange("age", 18, 120),
        InSet("plan", ["basic", "pro"], severity="warning"),
        NotNull("agee"),
        RowCount(min=1),
        sample_size=1,
    )
    assert not report.passed
    assert [r.passed for r in report.results] == [False, False, False, False, False, True]
    assert report.failing_rows().tolist() == [1, 2, 3, 5]
    assert report.failing_rows("warning").tolist() == [1, 2, 3, 5]
    assert report.results[2].sample == [{"__row__": 1, "age": 17}]
    assert report.results[4].message.startswith("column 'agee' not found (did you mean 'age'?)")
    assert report.num_rows == 6
    summary = report.summary().splitlines()
    assert summary[0] == (
        "suite 't' FAILED: 5 of 6 checks failed on 6 rows (4 error(s), 1 warning(s))"
    )
    assert summary[3] == (
        "  ERROR   in_range(age): 2 of 6 rows (33.3%) are outside [18, 120] (rows 1, 3)"
    )
    assert summary[4].startswith("  WARNING in_set(plan): 1 of 6 rows")


def test_warnings_do_not_fail_the_validation(people: pa.Table) -> None:
    report = run(people, InSet("plan", ["basic"], severity="warning"), NotNull("status"))
    assert report.passed
    assert report.failures[0].failing_count == 3
    assert report.failing_rows().tolist() == []
    assert report.failing_rows("warning").tolist() == [1, 2, 5]
    assert report.raise_for_errors() is report
    with pytest.raises(InvalidInput, match="severity must be"):
        report.failing_rows("fatal")  # type: ignore[arg-type]


def test_raise_for_errors_lists_checks_columns_counts_and_rows(people: pa.Table) -> None:
    report = run(
        people,
        InRange("age", 18, 120),
        RowCount(min=10),
        InSet("plan", ["basic"], severity="warning"),
    )
    with pytest.raises(InvalidInput) as info:
        report.raise_for_errors()
    assert str(info.value).splitlines() == [
        "validation failed: suite 't' FAILED: 3 of 3 checks failed on 6 rows "
        "(2 error(s), 1 warning(s))",
        "  - in_range(age) on column 'age': 2 of 6 rows (33.3%) are outside [18, 120]; "
        "first failing rows: 1, 3",
        "  - row_count: 6 rows; at least 10 expected",
    ]


def test_samples_and_failing_rows_of_many_rows() -> None:
    values = np.arange(10_000, dtype=np.int64)
    table = pa.table({"v": values, "w": values % 7})
    report = run(table, InRange("v", max=9_000), InSet("w", [0, 1, 2]), sample_size=3)
    first, second = report.results
    assert first.failing_count == 999
    assert first.rows.tolist() == list(range(9_001, 10_000))
    assert first.sample == [{"__row__": r, "v": r} for r in (9_001, 9_002, 9_003)]
    assert second.rows.tolist() == [i for i in range(10_000) if i % 7 > 2]
    assert report.failing_rows().size == len(set(first.rows) | set(second.rows))
    assert first.first_rows() == "9001, 9002, 9003, 9004, 9005, ..."


def test_report_to_dict_json_and_rich(people: pa.Table) -> None:
    report = run(people, InRange("fee", min=0), Fresh("plan", "1d"))
    data = json.loads(report.to_json())
    assert data["suite"] == "t" and data["passed"] is False and data["num_rows"] == 6
    assert data["results"][0] == {
        "name": "in_range(fee)",
        "type": "in_range",
        "column": "fee",
        "severity": "error",
        "passed": False,
        "failing_count": 1,
        "failing_fraction": 1 / 6,
        "message": "1 of 6 rows (16.7%) are below 0",
        "sample": [{"__row__": 1, "fee": -1.0}],
    }
    assert data["results"][1]["failing_count"] is None
    console = Console(record=True, width=200)
    console.print(report.to_rich())
    text = console.export_text()
    assert "in_range(fee)" in text and "1 (16.7%)" in text and "not a date or time" in text


def test_html_is_one_escaped_self_contained_page() -> None:
    table = pa.table({"<script>": ["<b>x</b>", "ok"], "a&b": [1, 2]})
    suite = Suite(
        [InSet("<script>", ["ok"], name="<img src=x onerror=alert(1)>"), NotNull("a&b")],
        name="<suite>",
    )
    page = validate_table(table, suite).to_html(title="Report <&>")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower() and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<title>Report &lt;&amp;&gt;</title>" in page and "a&amp;b" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert "<style>" in page


def test_validate_table_inputs(people: pa.Table) -> None:
    frame = pd.DataFrame({"x": [1.0, None, 3.0]})
    assert outcome(frame, NotNull("x")) == (False, 1, [1])
    with pytest.raises(InvalidInput, match="suite must be a Suite"):
        validate_table(people, [NotNull("id")])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="sample_size"):
        run(people, NotNull("id"), sample_size=-1)
    with pytest.raises(InvalidInput, match="table must be"):
        run([1, 2], NotNull("id"))
    twice = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(InvalidInput, match="duplicate column names: a"):
        run(twice, NotNull("a"))


def test_empty_table_half_float_and_evaluate_alone() -> None:
    empty = pa.table({"x": pa.array([], pa.float64())})
    report = run(empty, NotNull("x"), InRange("x", 0, 1), RowCount(min=1))
    assert [r.passed for r in report.results] == [True, True, False]
    assert report.results[0].message == "0 of 0 rows are null or NaN"
    half = pa.table({"h": pa.array(np.array([1.0, 2.0, np.nan], dtype=np.float16))})
    assert outcome(half, InRange("h", 0, 1)) == (False, 1, [1])
    with TableScan(half) as scan:
        verdict, rows = NotNull("h").evaluate(scan)
        assert (verdict.passed, verdict.failing_count, rows.tolist()) == (False, 1, [2])
        verdict, rows = RowCount(max=1).evaluate(scan)
        assert (verdict.passed, verdict.message, rows.tolist()) == (
            False,
            "3 rows; at most 1 expected",
            [],
        )


# --- suites and YAML ----------------------------------------------------------------------------

SUITE_YAML = """
name: churn
checks:
  - {check: not_null, column: customer_id}
  - {check: in_range, column: age, min: 18, max: 120, severity: warning}
  - {check: sql, expression: "monthly_fee >= 0", name: fee_non_negative}
  - {check: mean_within, column: monthly_fee, tolerance: 0.1}
"""


def test_yaml_suite_loads_and_round_trips(tmp_path: Path) -> None:
    suite = Suite.from_yaml(SUITE_YAML)
    assert suite.name == "churn"
    assert suite.checks == [
        NotNull("customer_id"),
        InRange("age", 18, 120, severity="warning"),
        SqlPredicate("monthly_fee >= 0", name="fee_non_negative"),
        MeanWithin("monthly_fee", 0.1),
    ]
    assert suite.to_yaml().splitlines() == [
        "name: churn",
        "checks:",
        "  - {check: not_null, column: customer_id}",
        "  - {check: in_range, column: age, min: 18, max: 120, severity: warning}",
        "  - {check: sql, expression: monthly_fee >= 0, name: fee_non_negative}",
        "  - {check: mean_within, column: monthly_fee, tolerance: 0.1}",
    ]
    path = tmp_path / "churn.yaml"
    path.write_text(suite.to_yaml())
    assert Suite.from_yaml(path) == suite
    assert Suite.from_yaml(str(path)) == suite
    with pytest.raises(NotFound, match="no suite file"):
        Suite.from_yaml(tmp_path / "nope.yaml")
    with pytest.raises(NotFound, match="no suite file"):
        Suite.from_yaml("nope.yml")


def test_every_check_type_round_trips_through_yaml() -> None:
    suite = Suite(
        [
            ColumnExists("a: b", "timestamp[us, tz=UTC]"),
            NotNull('q"uote', max_fraction=0.25, severity="warning"),
            Unique(("k1", "k 2")),
            InRange("d", date(2024, 1, 1), "2024-12-31T23:59:59", inclusive=False),
            InRange("x", min=-1.5),
            InSet("s", ["a", "it's", "{x}", "yes", "null", 3, 2.5, True]),
            Matches("e", r"^[\w.]+@\w+\.(com|io)$"),
            RowCount(max=1_000_000),
            Fresh("t", "1d12h", now=datetime(2024, 5, 1, 12, tzinfo=UTC)),
            SqlPredicate("a > 1 and b = 'x: y' or \"c d\" is null", name="#weird: name"),
            MeanWithin("x", 0.1),
            StdWithin("x", 0.5, relative=False),
            QuantileWithin("x", 0.99, 0.2),
            NoNewCategories("s", max_new_fraction=0.01),
        ],
        name="all: of them",
    )
    assert {type(c).kind for c in suite.checks} == set(CHECK_TYPES)
    again = Suite.from_yaml(suite.to_yaml())
    assert again == suite
    assert Suite.from_dict(json.loads(json.dumps(suite.to_dict(), default=str))).name == suite.name
    assert again.checks[5].to_dict()["values"] == ["a", "it's", "{x}", "yes", "null", 3, 2.5, True]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "checks: [{check: not_nul, column: a}]",
            "checks[0]: unknown check type 'not_nul' "
            "(did you mean 'not_null'?); known types: column_exists, not_null",
        ),
        ("checks: [{column: a}]", "checks[0]: missing field 'check'"),
        ("checks: [{check: 3}]", "checks[0]: unknown check type 3"),
        ("checks: [{check: not_null}]", "checks[0] (not_null): missing field 'column'"),
        (
            "checks: [{check: row_count, min: 1}, {check: row_count, min: 2},"
            " {check: in_range, column: a, maxx: 3}]",
            "checks[2] (in_range): unknown field 'maxx' (did you mean 'max'?)",
        ),
        (
            "checks: [{check: in_range, column: a, min: [1]}]",
            "checks[0] (in_range): field 'min' must be a number, a string, a date or null, "
            "not (1,)",
        ),
        (
            "checks: [{check: in_range, column: a}]",
            "checks[0] (in_range): give 'min', 'max' or both",
        ),
        (
            "checks: [{check: in_range, column: a, min: 5, max: 1}]",
            "checks[0] (in_range): 'min' (5) is greater than 'max' (1)",
        ),
        (
            "checks: [{check: in_range, column: a, min: .nan}]",
            "checks[0] (in_range): field 'min' must be a finite number, not nan",
        ),
        (
            "checks: [{check: not_null, column: a, max_fraction: 2}]",
            "checks[0] (not_null): field 'max_fraction' must be between 0 and 1, not 2",
        ),
        (
            "checks: [{check: not_null, column: a, max_fraction: yes}]",
            "checks[0] (not_null): field 'max_fraction' must be a number, not True",
        ),
        (
            "checks: [{check: not_null, column: a, severity: fatal}]",
            "checks[0] (not_null): field 'severity' must be 'error' or 'warning', not 'fatal'",
        ),
        (
            "checks: [{check: not_null, column: ''}]",
            "checks[0] (not_null): field 'column' must not be empty",
        ),
        (
            "checks: [{check: not_null, column: 7}]",
            "checks[0] (not_null): field 'column' must be a string, not 7",
        ),
        (
            "checks: [{check: in_set, column: a, values: []}]",
            "checks[0] (in_set): field 'values' must not be empty",
        ),
        (
            "checks: [{check: in_set, column: a, values: [[1]]}]",
            "checks[0] (in_set): field 'values' must be a list of strings, numbers or booleans",
        ),
        (
            "checks: [{check: unique, column: [a, a]}]",
            "checks[0] (unique): field 'column' must name distinct columns",
        ),
        (
            "checks: [{check: fresh, column: t, max_age: 7 days}]",
            "checks[0] (fresh): field 'max_age': '7 days' is not a duration",
        ),
        (
            "checks: [{check: fresh, column: t, max_age: 0s}]",
            "checks[0] (fresh): field 'max_age' must be positive",
        ),
        (
            "checks: [{check: sql, expression: 'a; drop table t'}]",
            "checks[0] (sql): field 'expression': 'a; drop table t' is not one expression",
        ),
        (
            "checks: [{check: quantile_within, column: x, q: 1.5, tolerance: 1}]",
            "checks[0] (quantile_within): field 'q' must be between 0 and 1, not 1.5",
        ),
        (
            "checks: [{check: mean_within, column: x, tolerance: -1}]",
            "checks[0] (mean_within): field 'tolerance' must be >= 0, not -1",
        ),
        ("checks: [not_null]", "checks[0]: must be a mapping such as"),
        ("checks: {check: not_null}", "suite: 'checks' must be a list, not dict"),
        ("name: x", "suite: missing field 'checks'"),
        ("name: x\nchecks: []\nowner: me", "suite: unknown field 'owner'"),
        ("name: ''\nchecks: []", "suite: 'name' must be a non-empty string"),
        ("- a\n- b", "a suite must be a mapping with 'name' and 'checks'"),
        ("", "suite YAML is empty"),
        ("checks: [{check: not_null", "suite YAML does not parse"),
    ],
)
def test_yaml_errors_name_the_check_and_field(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Suite.from_yaml(text)
    assert str(info.value).startswith(message), str(info.value)


def test_checks_refuse_wrong_values_in_python_too() -> None:
    with pytest.raises(InvalidInput, match=r"^in_range: give 'min', 'max' or both$"):
        InRange("age")
    with pytest.raises(InvalidInput, match=r"^row_count: 'min' and 'max' must not be negative"):
        RowCount(min=-1)
    with pytest.raises(InvalidInput, match="checks\\[1\\]: str is not a check"):
        Suite([NotNull("a"), "in_range"])  # type: ignore[list-item]
    assert NotNull("a", max_fraction=np.float64(0.5)).max_fraction == 0.5
    assert InSet("a", np.array([1, 2])).values == (1, 2)  # type: ignore[arg-type]
    assert NotNull("a").name == "not_null(a)" and RowCount(min=1).name == "row_count"
    assert SqlPredicate("x > 1").column is None and Unique(["a", "b"]).columns == ("a", "b")


# --- suggested suites -------------------------------------------------------------------------


def column_profile(name: str, arrow_type: str, kind: str, **stats: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": name, "arrow_type": arrow_type, "kind": kind}
    base.update({"count": 4, "nulls": 0, "null_fraction": 0.0, "distinct": 4})
    return base | stats


def test_suggest_suite_from_a_profile_dict() -> None:
    profile = {
        "num_rows": 4,
        "columns": {
            "id": column_profile("id", "int64", "identifier"),
            "age": column_profile("age", "int64", "numeric", min=18.0, max=64.0),
            "fee": column_profile(
                "fee", "double", "numeric", nulls=1, null_fraction=0.25, min=0.5, max=9.5
            ),
            "plan": column_profile(
                "plan",
                "string",
                "categorical",
                distinct=2,
                top_values=[{"value": "pro", "count": 3}, {"value": "basic", "count": 1}],
            ),
            "city": column_profile(
                "city", "string", "categorical", top_values=[{"value": "Oslo", "count": 1}]
            ),
            "at": column_profile("at", "timestamp[us, tz=UTC]", "datetime"),
            "blob": column_profile("blob", "binary", "text"),
        },
    }
    suite = suggest_suite(profile, name="churn")
    assert suite.name == "churn"
    assert suite.checks == [
        RowCount(min=2),
        ColumnExists("id", "integer"),
        NotNull("id"),
        Unique("id"),
        ColumnExists("age", "integer"),
        NotNull("age"),
        InRange("age", 18, 64),
        ColumnExists("fee", "float"),
        NotNull("fee", max_fraction=0.25),
        InRange("fee", 0.5, 9.5),
        ColumnExists("plan", "string"),
        NotNull("plan"),
        InSet("plan", ["pro", "basic"]),
        ColumnExists("city", "string"),  # top values do not cover every row: no in_set
        NotNull("city"),
        ColumnExists("at", "datetime"),
        NotNull("at"),
        ColumnExists("blob", "binary"),
        NotNull("blob"),
    ]
    table = pa.table(
        {
            "id": [1, 2, 3, 4],
            "age": [18, 30, 64, 40],
            "fee": [0.5, None, 9.5, 3.0],
            "plan": ["pro", "pro", "basic", "pro"],
            "city": ["Oslo", "Rome", "Lima", "Baku"],
            "at": pa.array([datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3, 4)]),
            "blob": [b"a", b"b", b"c", b"d"],
        }
    )
    assert validate_table(table, Suite.from_yaml(suite.to_yaml())).passed
    slack = suggest_suite(profile, null_slack=0.1).checks
    assert NotNull("fee", max_fraction=0.35) in slack and NotNull("age", max_fraction=0.1) in slack
    with pytest.raises(InvalidInput, match="profile must be a profile dict"):
        suggest_suite({"num_rows": 3})
    with pytest.raises(InvalidInput, match="null_slack must be between 0 and 1"):
        suggest_suite(profile, null_slack=2)


def test_a_suggested_suite_passes_on_the_profiled_data_and_catches_drift() -> None:
    rng = np.random.default_rng(0)
    n = 3_000
    fee = rng.normal(50, 10, n)
    fee[rng.random(n) < 0.05] = np.nan
    table = pa.table(
        {
            "customer_id": np.arange(n) + 10**6,
            "age": rng.integers(18, 90, n),
            "fee": fee,
            "plan": rng.choice(["basic", "pro", "team"], n),
            "city": [f"city{i % 80}" for i in range(n)],
            "big": rng.integers(2**60, 2**61, n),
            "tier": pa.array(rng.choice(["x", "y"], n)).dictionary_encode(),
            "joined": pa.array(
                [datetime(2024, 1, 1) + timedelta(hours=int(h)) for h in rng.integers(0, 5_000, n)]
            ),
        }
    )
    profile = profile_table(table)
    suite = suggest_suite(profile)
    assert InSet("plan", ["basic", "pro", "team"]).values == tuple(
        sorted(next(c for c in suite.checks if c.name == "in_set(plan)").values)  # type: ignore[attr-defined]
    )
    assert validate_table(table, suite).passed
    assert validate_table(table, Suite.from_yaml(suite.to_yaml())).passed
    drifted = validate_table(table.set_column(1, "age", pa.array(np.full(n, 200))), suite)
    assert [r.name for r in drifted.failures] == ["in_range(age)"]
    assert "row_count" in {r.name for r in validate_table(table.slice(0, n // 3), suite).failures}
    checks: list[Check] = [MeanWithin("fee", 0.01), StdWithin("fee", 0.01)]
    checks += [QuantileWithin("fee", 0.95, 0.01), NoNewCategories("plan")]
    assert validate_table(table, Suite(checks), reference_profile=profile).passed
