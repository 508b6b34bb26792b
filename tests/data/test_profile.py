"""Dataset profiling: kinds, statistics against numpy/pandas, edge cases and rendering."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from rich.console import Console

from loopml.data._profile import KINDS, ColumnProfile, Profile, infer_kind, profile_table
from loopml.data._profile_html import profile_to_html, profile_to_rich
from loopml.errors import InvalidInput

QUANTILE_KEYS = ["0.01", "0.05", "0.25", "0.5", "0.75", "0.95", "0.99"]


def profile(table: pa.Table, **kwargs: Any) -> Profile:
    """Profile ``table`` and check what every profile promises: strict JSON, order, shape."""
    result = profile_table(table, **kwargs)
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert result["num_rows"] == table.num_rows
    assert list(result["columns"]) == table.column_names
    for name, col in result["columns"].items():
        assert col["name"] == name
        assert col["kind"] in KINDS
        assert col["count"] + col["nulls"] == table.num_rows
        assert col["distinct"] is None or 0 <= col["distinct"] <= col["count"]
        hist = col.get("histogram")
        if hist is not None:
            assert len(hist["edges"]) == len(hist["counts"]) + 1
    return result


def column(table: pa.Table, name: str, **kwargs: Any) -> ColumnProfile:
    return profile(table, **kwargs)["columns"][name]


@pytest.fixture
def mixed() -> pa.Table:
    rng = np.random.default_rng(7)
    n = 300
    words = rng.choice(["red", "green", "blue"], n)
    return pa.table(
        {
            "amount": rng.normal(50, 10, n),
            "user_id": np.arange(n),
            "visits_id": rng.integers(0, 10, n),  # id-like name but repeated: numeric
            "color": words,
            "color_dict": pa.array(words).dictionary_encode(),
            "sku": [f"SKU-{i:05d}" for i in range(n)],
            "review": [f"review {i % 100}: " + "great, would buy again " * 3 for i in range(n)],
            "active": rng.random(n) < 0.25,
            "signup": pa.array(
                [dt.datetime(2024, 1, 1) + dt.timedelta(hours=int(h)) for h in range(n)],
                pa.timestamp("us"),
            ),
            "birthday": pa.array([dt.date(1990, 1, 1) + dt.timedelta(days=i) for i in range(n)]),
            "tags": pa.array([["a", "b"][: i % 3] for i in range(n)]),
            "address": pa.array([{"zip": str(i % 5)} for i in range(n)]),
        }
    )


def test_each_kind_is_inferred(mixed: pa.Table) -> None:
    kinds = {name: col["kind"] for name, col in profile(mixed)["columns"].items()}
    assert kinds == {
        "amount": "numeric",
        "user_id": "identifier",
        "visits_id": "numeric",
        "color": "categorical",
        "color_dict": "categorical",
        "sku": "identifier",
        "review": "text",
        "active": "boolean",
        "signup": "datetime",
        "birthday": "datetime",
        "tags": "text",
        "address": "text",
    }
    assert set(kinds.values()) == set(KINDS)


@pytest.mark.parametrize(
    ("name", "arrow_type", "stats", "kind"),
    [
        ("id", pa.int32(), {"count": 5, "distinct": 5}, "identifier"),
        ("orderId", pa.int64(), {"count": 5, "distinct": 5}, "identifier"),
        ("order_id", pa.int64(), {"count": 5, "distinct": 4}, "numeric"),
        ("order_id", pa.float64(), {"count": 5, "distinct": 5}, "numeric"),
        ("order_id", pa.int64(), {"count": 0, "distinct": 0}, "numeric"),
        ("code", pa.string(), {"count": 51, "distinct": 51, "mean_length": 5.0}, "identifier"),
        ("code", pa.string(), {"count": 50, "distinct": 50, "mean_length": 5.0}, "categorical"),
        ("code_id", pa.string(), {"count": 3, "distinct": 3, "mean_length": 5.0}, "identifier"),
        ("note", pa.string(), {"count": 40, "distinct": 30, "mean_length": 25.0}, "text"),
        ("note", pa.string(), {"count": 40, "distinct": 10, "mean_length": 25.0}, "categorical"),
        ("note", pa.large_string(), {"count": 40, "distinct": 2, "mean_length": 51.0}, "text"),
        # unique long strings are free text, not identifiers (those average <= 40 chars)
        ("note", pa.string(), {"count": 99, "distinct": 99, "mean_length": 80.0}, "text"),
        ("c", pa.dictionary(pa.int8(), pa.string()), {"count": 9, "distinct": 3}, "categorical"),
        ("flag", pa.bool_(), {"count": 9, "distinct": 2}, "boolean"),
        ("at", pa.timestamp("ns", tz="UTC"), {"count": 9, "distinct": 9}, "datetime"),
        ("on", pa.date32(), {"count": 9, "distinct": 9}, "datetime"),
        ("xs", pa.list_(pa.int64()), {"count": 9, "distinct": 9}, "text"),
        ("blob", pa.binary(), {"count": 9, "distinct": None}, "text"),
    ],
)
def test_infer_kind_rules(
    name: str, arrow_type: pa.DataType, stats: dict[str, Any], kind: str
) -> None:
    assert infer_kind(name, arrow_type, **stats) == kind


def test_numeric_statistics_match_numpy() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, 5_000)
    values[:40] = np.nan
    values[40:43] = [np.inf, -np.inf, np.inf]
    values[43:50] = 0.0
    arrow = pa.array(values, mask=np.arange(values.size) % 100 == 99)  # and true nulls
    col = column(pa.table({"x": arrow}), "x")

    finite = values[np.isfinite(values) & ~(np.arange(values.size) % 100 == 99)]
    non_null = values[~np.isnan(values) & ~(np.arange(values.size) % 100 == 99)]
    assert col["kind"] == "numeric"
    assert col["count"] == non_null.size
    assert col["nulls"] == values.size - non_null.size
    assert col["null_fraction"] == pytest.approx(col["nulls"] / values.size)
    assert col["infinite"] == 3
    assert col["zeros"] == np.count_nonzero(non_null == 0)
    assert col["negatives"] == np.count_nonzero(non_null < 0)
    assert col["min"] == finite.min()
    assert col["max"] == finite.max()
    assert col["mean"] == pytest.approx(finite.mean(), rel=1e-12)
    assert col["std"] == pytest.approx(finite.std(ddof=1), rel=1e-12)
    assert col["quantiles"] is not None
    assert list(col["quantiles"]) == QUANTILE_KEYS
    for key, value in col["quantiles"].items():
        assert value == pytest.approx(np.quantile(finite, float(key)), rel=1e-9)
    hist = col["histogram"]
    assert hist is not None and len(hist["counts"]) == 20
    assert sum(hist["counts"]) == finite.size
    expected_counts, expected_edges = np.histogram(finite, bins=20)
    np.testing.assert_allclose(np.array(hist["edges"], dtype=float), expected_edges, rtol=1e-12)
    assert np.abs(np.array(hist["counts"]) - expected_counts).sum() <= 2  # edge rounding
    assert col["distinct"] == pytest.approx(np.unique(non_null).size, rel=0.1)


def test_integer_and_decimal_statistics_match_pandas() -> None:
    ints = pd.Series([5, -3, 0, 12, None, 7, 7], dtype="Int64")
    table = pa.table(
        {
            "n": pa.array(ints),
            "u": pa.array([1, 2, 3], pa.uint64()).take([0, 1, 2, 2, 2, 1, 0]),
            "price": pa.array([decimal.Decimal("1.25"), None] * 3 + [None], pa.decimal128(9, 2)),
            "half": pa.array(np.array([0.5, 1.5, -2.0, 0.5, 1, 1, 1], dtype=np.float16)),
        }
    )
    cols = profile(table, exact_distinct=True)["columns"]
    described = ints.dropna().astype(float).describe()
    n = cols["n"]
    assert (n["count"], n["nulls"], n["distinct"], n["distinct_exact"]) == (6, 1, 5, True)
    assert (n["min"], n["max"]) == (described["min"], described["max"])
    assert n["mean"] == pytest.approx(described["mean"])
    assert n["std"] == pytest.approx(described["std"])
    assert n["quantiles"] is not None and n["quantiles"]["0.5"] == described["50%"]
    assert (n["zeros"], n["negatives"], n["infinite"]) == (1, 1, 0)
    assert cols["u"]["mean"] == pytest.approx(np.mean([1, 2, 3, 3, 3, 2, 1]))
    assert (cols["price"]["count"], cols["price"]["mean"]) == (3, 1.25)
    assert cols["price"]["std"] == 0.0
    assert cols["half"]["min"] == -2.0 and cols["half"]["distinct"] == 4


def test_constant_column_histogram_follows_numpy() -> None:
    col = column(pa.table({"x": [2.0] * 10}), "x", bins=4)
    counts, edges = np.histogram(np.full(10, 2.0), bins=4)
    assert col["histogram"] == {"edges": list(edges), "counts": list(counts)}
    assert col["std"] == 0.0


def test_huge_range_gives_finite_histogram_edges() -> None:
    col = column(pa.table({"x": [-1e308, 0.0, 1e308]}), "x", bins=4)
    assert col["histogram"] is not None
    assert col["histogram"]["counts"] == [1, 0, 1, 1]
    assert col["std"] is None  # overflows: missing, never inf


def test_strings_top_values_and_lengths() -> None:
    values = ["b", "a", "ccc", "b", None, "a", "dd", "b", "été", None]
    col = column(pa.table({"s": values}), "s", top_k=3)
    assert (col["count"], col["nulls"], col["distinct"]) == (8, 2, 5)
    assert col["null_fraction"] == 0.2
    assert col["top_values"] == [
        {"value": "b", "count": 3},
        {"value": "a", "count": 2},
        {"value": "ccc", "count": 1},  # ties broken by value
    ]
    present = [v for v in values if v is not None]
    assert (col["min_length"], col["max_length"]) == (1, 3)
    assert col["mean_length"] == pytest.approx(np.mean([len(v) for v in present]))
    assert column(pa.table({"s": values}), "s", top_k=0)["top_values"] == []


def test_dictionary_strings_profile_like_plain_strings() -> None:
    values = pa.array(["x", "y", None, "x", "z", "x"])
    table = pa.table({"plain": values, "coded": values.dictionary_encode()})
    cols = profile(table)["columns"]
    coded, plain = dict(cols["coded"]), dict(cols["plain"])
    same = ("kind", "count", "nulls", "distinct", "top_values", "min_length", "mean_length")
    assert {k: coded[k] for k in same} == {k: plain[k] for k in same}
    assert cols["coded"]["arrow_type"].startswith("dictionary<values=string")


def test_boolean_counts() -> None:
    col = column(pa.table({"b": [True, False, None, True, True]}), "b")
    assert (col["kind"], col["count"], col["true_count"], col["distinct"]) == (
        "boolean",
        4,
        3,
        2,
    )
    assert col["top_values"] == [{"value": "true", "count": 3}, {"value": "false", "count": 1}]


def test_timestamps_with_timezone_are_reported_in_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    moments = [
        dt.datetime(2024, 3, 1, 12, 0, tzinfo=paris) + dt.timedelta(days=d) for d in range(10)
    ]
    arrow = pa.array([*moments, None], pa.timestamp("ns", tz="Europe/Paris"))
    col = column(pa.table({"at": arrow}), "at", bins=5)
    assert (col["kind"], col["count"], col["nulls"]) == ("datetime", 10, 1)
    assert col["min"] == "2024-03-01T11:00:00+00:00"
    assert col["max"] == "2024-03-10T11:00:00+00:00"
    hist = col["histogram"]
    assert hist is not None and sum(hist["counts"]) == 10 and hist["counts"] == [2] * 5
    assert hist["edges"][0] == col["min"] and hist["edges"][-1] == col["max"]
    parsed = [dt.datetime.fromisoformat(str(e)) for e in hist["edges"]]
    assert parsed == sorted(parsed) and all(p.utcoffset() == dt.timedelta(0) for p in parsed)


def test_naive_timestamps_and_dates() -> None:
    table = pa.table(
        {
            "ts": pa.array([dt.datetime(2020, 1, 1, 0, 0, 1, 5), None], pa.timestamp("ms")),
            "day": pa.array([dt.date(2021, 5, 1), dt.date(1969, 7, 20)], pa.date32()),
        }
    )
    cols = profile(table)["columns"]
    assert (cols["ts"]["min"], cols["ts"]["max"]) == ("2020-01-01T00:00:01", "2020-01-01T00:00:01")
    assert (cols["day"]["min"], cols["day"]["max"]) == ("1969-07-20", "2021-05-01")


def test_all_null_columns_have_missing_statistics() -> None:
    n = 4
    table = pa.table(
        {
            "f": pa.nulls(n, pa.float64()),
            "nan": pa.array([np.nan] * n),
            "s": pa.nulls(n, pa.string()),
            "b": pa.nulls(n, pa.bool_()),
            "t": pa.nulls(n, pa.timestamp("s", tz="UTC")),
            "null": pa.nulls(n),
            "xs": pa.nulls(n, pa.list_(pa.int8())),
        }
    )
    cols = profile(table)["columns"]
    for col in cols.values():
        assert (col["count"], col["nulls"], col["null_fraction"], col["distinct"]) == (0, n, 1.0, 0)
    for name in ("f", "nan"):
        stats = dict(cols[name])
        assert stats["kind"] == "numeric"
        for key in ("min", "max", "mean", "std", "quantiles", "histogram"):
            assert stats[key] is None
        assert (stats["zeros"], stats["negatives"], stats["infinite"]) == (0, 0, 0)
    assert cols["s"]["top_values"] == [] and cols["s"]["mean_length"] is None
    assert cols["b"]["true_count"] == 0 and cols["b"]["top_values"] == []
    assert cols["t"]["min"] is None and cols["t"]["histogram"] is None


def test_empty_table(mixed: pa.Table) -> None:
    result = profile(mixed.slice(0, 0))
    assert result["num_rows"] == 0
    for col in result["columns"].values():
        assert (col["count"], col["nulls"], col["null_fraction"]) == (0, 0, 0.0)
    assert result["columns"]["amount"]["mean"] is None
    assert profile(pa.table({})) == {"num_rows": 0, "columns": {}}


def test_nested_and_other_types_get_counts_and_distinct() -> None:
    table = pa.table(
        {
            "xs": pa.array([[1], [2], None, [1], []]),
            "rec": pa.array([{"a": 1}, {"a": 2}, None, {"a": 1}, {"a": 1}]),
            "raw": pa.array([b"a", b"b", None, b"a", b"\xff"]),
            "halves": pa.array([[1.0], [2.0], None, [1.0], [1.0]], pa.list_(pa.float16())),
        }
    )
    cols = profile(table, exact_distinct=True)["columns"]
    for name, distinct in {"xs": 3, "rec": 2, "raw": 3, "halves": 2}.items():
        col = cols[name]
        assert (col["kind"], col["count"], col["nulls"], col["distinct"]) == (
            "text",
            4,
            1,
            distinct,
        )
        assert "top_values" not in col and "min" not in col


def test_distinct_is_exact_when_cheap_or_asked_estimated_otherwise() -> None:
    n = 20_000
    rng = np.random.default_rng(3)
    table = pa.table(
        {
            "code": [f"c{i}" for i in range(n)],
            "x": rng.normal(size=n),
            "level": rng.integers(0, 5_000, n),
        }
    )
    levels = np.unique(table["level"]).size
    cols = profile(table)["columns"]
    assert (cols["code"]["kind"], cols["code"]["distinct"]) == ("identifier", n)
    assert cols["code"]["distinct_exact"]
    assert (cols["level"]["distinct"], cols["level"]["distinct_exact"]) == (levels, True)
    assert not cols["x"]["distinct_exact"]
    assert cols["x"]["distinct"] == pytest.approx(n, rel=0.1)
    exact = profile(table, exact_distinct=True)["columns"]
    assert (exact["x"]["distinct"], exact["x"]["distinct_exact"]) == (n, True)


def test_few_distinct_values_are_counted_exactly() -> None:
    rng = np.random.default_rng(5)
    labels = np.array([f"level_{k}" for k in range(16)])
    table = pa.table(
        {
            "label": labels[rng.integers(0, 16, 50_000)],
            "x": rng.choice([1.5, np.nan, -2.0, 0.0], 50_000),
        }
    )
    cols = profile(table)["columns"]
    assert (cols["label"]["distinct"], cols["label"]["distinct_exact"]) == (16, True)
    assert (cols["x"]["distinct"], cols["x"]["distinct_exact"]) == (3, True)  # NaN is null


def test_odd_column_names_and_bins() -> None:
    table = pa.table({'we"ird name': [1.0, 2.0, 3.0], "select": ["a", "b", "a"]})
    cols = profile(table, bins=3)["columns"]
    counts, edges = np.histogram([1.0, 2.0, 3.0], bins=3)
    assert cols['we"ird name']["histogram"] == {"edges": list(edges), "counts": list(counts)}
    assert cols["select"]["top_values"][0] == {"value": "a", "count": 2}


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        (pd.DataFrame({"a": [1]}), {}, "pyarrow.Table"),
        (pa.table({"a": [1]}), {"bins": 0}, "bins"),
        (pa.table({"a": [1]}), {"top_k": -1}, "top_k"),
        (pa.table({"a": [1]}), {"bins": True}, "bins"),
        (pa.table([pa.array([1]), pa.array([2])], names=["a", "a"]), {}, "'a'"),
    ],
)
def test_bad_arguments_raise_invalid_input(
    table: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        profile_table(table, **kwargs)


def test_html_is_self_contained_and_escaped(mixed: pa.Table) -> None:
    evil = "<script>alert(1)</script>"
    table = mixed.append_column(evil, pa.array(['<b onmouseover="x">'] * mixed.num_rows))
    page = profile_to_html(profile(table), title="Churn & <friends>")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b onmouseover" not in page and "&lt;b onmouseover=&quot;x&quot;&gt;" in page
    assert "<title>Churn &amp; &lt;friends&gt;</title>" in page
    assert "http" not in page and "src=" not in page and "<link" not in page
    assert page.count("<svg") >= 8  # one chart per column with values
    assert "<style>" in page


def test_html_of_empty_and_all_null_profiles() -> None:
    empty = profile_to_html(profile(pa.table({"x": pa.array([], pa.float64())})), title="t")
    assert "<svg" not in empty and "x" in empty
    nulls = profile_to_html(profile(pa.table({"s": pa.nulls(3, pa.string())})), title="t")
    assert "100.0%" in nulls


def test_rich_table_renders(mixed: pa.Table) -> None:
    table = mixed.append_column("[bold]markup[/bold]", pa.array(["v"] * mixed.num_rows))
    console = Console(record=True, width=240)
    console.print(profile_to_rich(profile(table)))
    text = console.export_text()
    for name in ("amount", "user_id", "color", "review", "signup"):
        assert name in text
    for kind in KINDS:
        assert kind in text
    assert "[bold]markup[/bold]" in text  # shown as written, not as rich markup
    assert "300 rows, 13 columns" in text
