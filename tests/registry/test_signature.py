"""Signatures: inference, round trips, and the messages users see when input does not fit."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput
from loopml.registry import ColumnSpec, Signature

SIG = Signature(
    (ColumnSpec("age", "int64"), ColumnSpec("income", "float64"), ColumnSpec("plan", "string")),
    (ColumnSpec("prediction", "int64"),),
)


def test_infer_from_a_dataframe_names_every_dtype() -> None:
    frame = pd.DataFrame(
        {
            "n": [1, 2],
            "x": [0.5, 1.5],
            "s": ["a", "b"],
            "b": [True, False],
            "t": pd.to_datetime(["2024-01-01", "2024-01-02"]).astype("datetime64[ns]"),
            "c": pd.Categorical(["u", "v"]),
            "o": pd.Series(["a", 1], dtype=object),
        }
    )
    sig = Signature.infer(frame, np.array([0, 1]))
    assert [(c.name, c.dtype) for c in sig.inputs] == [
        ("n", "int64"),
        ("x", "float64"),
        ("s", "string"),
        ("b", "bool"),
        ("t", "datetime64[ns]"),
        ("c", "category"),
        ("o", "object"),
    ]
    assert sig.outputs == (ColumnSpec("prediction", "int64"),)
    assert sig.input_type == "dataframe"


def test_infer_from_arrays_names_columns_by_position() -> None:
    sig = Signature.infer(np.zeros((3, 2)), np.zeros((3, 2), dtype=np.float32))
    assert [c.name for c in sig.inputs] == ["0", "1"]
    assert [(c.name, c.dtype) for c in sig.outputs] == [("0", "float32"), ("1", "float32")]
    assert sig.input_type == "ndarray"
    assert Signature.infer([[1, 2]]).input_type == "ndarray"


def test_infer_from_records_and_string_outputs() -> None:
    sig = Signature.infer([{"a": 1, "b": "x"}], pd.Series(["yes"], name="label"))
    assert str(sig) == "(a: int64, b: string) -> (label: string)"
    assert sig.input_type == "dataframe"


def test_dict_round_trip_and_dtype_normalisation() -> None:
    assert Signature.from_dict(SIG.to_dict()) == SIG
    assert ColumnSpec("a", "int").dtype == "int64"
    assert ColumnSpec("a", "str").dtype == "string"
    assert ColumnSpec("a", "datetime64[ns, UTC]").dtype == "datetime64[ns, UTC]"
    with pytest.raises(InvalidInput, match="unknown dtype 'integer-ish'"):
        ColumnSpec("a", "integer-ish")
    with pytest.raises(InvalidInput, match="'inputs'"):
        Signature.from_dict({"columns": []})
    with pytest.raises(InvalidInput, match="repeat"):
        Signature((ColumnSpec("a", "int64"), ColumnSpec("a", "float64")))


def test_validate_orders_columns_and_drops_extras() -> None:
    frame = pd.DataFrame({"plan": ["pro"], "extra": [1], "income": [2.5], "age": [40]})
    out = SIG.validate(frame)
    assert list(out.columns) == ["age", "income", "plan"]
    assert out.iloc[0].tolist() == [40, 2.5, "pro"]
    assert "extra" in frame.columns  # the caller's frame is left alone


def test_missing_columns_are_named_with_their_dtype() -> None:
    with pytest.raises(InvalidInput) as err:
        SIG.validate({"plan": ["pro"]})
    message = str(err.value)
    assert "missing column 'age' (expected int64)" in message
    assert "missing column 'income' (expected float64)" in message


def test_mistyped_column_names_the_first_bad_row() -> None:
    frame = pd.DataFrame(
        {"age": pd.Series([31, 45, 52, "abc"], dtype=object), "income": 1.0, "plan": "pro"}
    )
    with pytest.raises(InvalidInput) as err:
        SIG.validate(frame)
    assert (
        "column 'age' has dtype object, expected int64; row 3 value 'abc' cannot be converted"
        in str(err.value)
    )


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as err:
        SIG.validate({"age": ["x"], "income": ["1.5"]})
    message = str(err.value)
    assert "column 'age' has dtype string, expected int64; row 0 value 'x'" in message
    assert "column 'income' has dtype string, expected float64; row 0 value '1.5'" in message
    assert "missing column 'plan' (expected string)" in message


def test_int_to_float_and_integral_float_to_int_convert() -> None:
    out = SIG.validate({"age": [30.0, 41.0], "income": [1000, 2000], "plan": ["a", "b"]})
    assert out.dtypes.astype(str).tolist() == ["int64", "float64", "str"]
    assert out["age"].tolist() == [30, 41]
    assert out["income"].tolist() == [1000.0, 2000.0]


@pytest.mark.parametrize(
    ("values", "row", "shown"),
    [
        ([1.0, 2.5], 1, "2.5"),
        ([1.0, np.nan], 1, "nan"),
        ([1.0, 1e30], 1, "1e+30"),
    ],
)
def test_floats_that_are_not_integers_do_not_become_ints(
    values: list[float], row: int, shown: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(f"row {row} value {shown} cannot be")):
        Signature((ColumnSpec("n", "int64"),)).validate({"n": values})


def test_lossy_int_to_float_is_refused() -> None:
    sig = Signature((ColumnSpec("x", "float64"),))
    assert sig.validate({"x": [2**53]})["x"].tolist() == [float(2**53)]
    with pytest.raises(InvalidInput, match=f"row 0 value {2**53 + 1} cannot be converted"):
        sig.validate({"x": [2**53 + 1]})
    with pytest.raises(InvalidInput, match="row 1 value 70000"):
        Signature((ColumnSpec("x", "int16"),)).validate({"x": [1, 70000]})


def test_object_columns_convert_when_every_value_does() -> None:
    sig = Signature((ColumnSpec("x", "float64"), ColumnSpec("flag", "bool")))
    out = sig.validate(
        {"x": pd.Series([1, 2.5, None], dtype=object), "flag": pd.Series([True, False, True])}
    )
    assert out["x"].dtype == np.float64 and np.isnan(out["x"].iloc[2])
    with pytest.raises(InvalidInput, match="column 'flag' has dtype object, expected bool; row 1"):
        sig.validate({"x": [1.0, 2.0], "flag": pd.Series([True, "no"], dtype=object)})
    with pytest.raises(InvalidInput, match="column 'flag' has dtype int64, expected bool"):
        sig.validate({"x": [1.0], "flag": [1]})


def test_datetimes_change_unit_only_without_truncation() -> None:
    sig = Signature((ColumnSpec("t", "datetime64[s]"),))
    whole = pd.Series(pd.to_datetime(["2024-01-01 10:00:00"])).astype("datetime64[ns]")
    assert str(sig.validate({"t": whole})["t"].dtype) == "datetime64[s]"
    with pytest.raises(InvalidInput, match="row 0 value Timestamp"):
        sig.validate({"t": whole + pd.Timedelta(milliseconds=5)})
    with pytest.raises(InvalidInput, match="expected datetime64"):
        sig.validate({"t": ["2024-01-01"]})  # strings are not parsed


def test_categories_accept_strings() -> None:
    out = Signature((ColumnSpec("plan", "category"),)).validate({"plan": ["pro", "basic"]})
    assert out["plan"].dtype == "category"


def test_plain_inputs_become_frames() -> None:
    sig = Signature((ColumnSpec("a", "int64"), ColumnSpec("b", "float64")))
    one = sig.validate({"a": 1, "b": 2.0})
    many = sig.validate([{"a": 1, "b": 2.0}, {"b": 3.5, "a": 2}])
    assert one.shape == (1, 2) and many["b"].tolist() == [2.0, 3.5]
    positional = Signature((ColumnSpec("0", "float64"), ColumnSpec("1", "float64")))
    assert positional.validate(np.ones((2, 2))).shape == (2, 2)
    assert positional.validate(pd.DataFrame(np.ones((1, 2)))).columns.tolist() == ["0", "1"]


@pytest.mark.parametrize("data", ["age=3", 42, np.ones(3), {"a": [1, 2], "b": [1]}])
def test_unreadable_input_is_invalid(data: object) -> None:
    with pytest.raises(InvalidInput):
        SIG.validate(data)
