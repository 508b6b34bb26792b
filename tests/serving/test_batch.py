"""Batch inference over CSV and Parquet files: chunked, checked, atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from loopml.errors import InvalidInput, NotFound
from loopml.registry import load_model, register_model
from loopml.serving._batch import predict_file
from loopml.store import Workspace
from tests.serving._churn import churn_frame, register_churn


@pytest.fixture
def ws_model(sqlite_ws: Workspace) -> Workspace:
    register_churn(sqlite_ws, versions=1)
    return sqlite_ws


@pytest.fixture
def data(tmp_path: Path) -> pd.DataFrame:
    frame = churn_frame(40).drop(columns="churned")
    frame.to_parquet(tmp_path / "in.parquet")
    frame.to_csv(tmp_path / "in.csv", index=False)
    return frame


def _expected(ws: Workspace, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    model = load_model(ws, "churn@production")
    return model.predict(frame), model.predict_proba(frame)


def test_parquet_to_parquet_in_chunks_with_progress(
    ws_model: Workspace, data: pd.DataFrame, tmp_path: Path
) -> None:
    calls: list[tuple[int, int | None]] = []
    result = predict_file(
        ws_model,
        "churn@production",
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        chunk_rows=7,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert result.rows == 40 and result.model_uri == "models:/churn/1"
    assert calls == [(n, 40) for n in (7, 14, 21, 28, 35, 40)]
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["customer_id", "age", "income", "prediction"]
    assert out["customer_id"].tolist() == data["customer_id"].tolist()
    assert out["prediction"].tolist() == _expected(ws_model, data)[0].tolist()


def test_csv_to_csv_with_an_id_column_and_probabilities(
    ws_model: Workspace, data: pd.DataFrame, tmp_path: Path
) -> None:
    calls: list[tuple[int, int | None]] = []
    predict_file(
        ws_model,
        "models:/churn/1",
        tmp_path / "in.csv",
        tmp_path / "out.csv",
        chunk_rows=16,
        columns=["customer_id"],
        proba=True,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(16, None), (32, None), (40, None)]
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["customer_id", "prediction", "proba.0", "proba.1"]
    predictions, proba = _expected(ws_model, data)
    assert out["prediction"].tolist() == predictions.tolist()
    np.testing.assert_allclose(out[["proba.0", "proba.1"]].to_numpy(), proba)


def test_csv_to_parquet(ws_model: Workspace, data: pd.DataFrame, tmp_path: Path) -> None:
    predict_file(ws_model, "churn", tmp_path / "in.csv", tmp_path / "o.parquet", columns=[])
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert list(out.columns) == ["prediction"] and len(out) == 40


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_bad_row_in_a_later_chunk_names_the_row_and_leaves_no_file(
    ws_model: Workspace, data: pd.DataFrame, tmp_path: Path
) -> None:
    bad = data.assign(age=data["age"].astype(float))
    bad.loc[23, "age"] = 23.5
    bad.to_parquet(tmp_path / "bad.parquet")
    (tmp_path / "out.parquet").write_bytes(b"the previous output")
    with pytest.raises(InvalidInput, match=r"rows 20-29: .*column 'age'.*row 23 value 23\.5"):
        predict_file(
            ws_model, "churn@production", tmp_path / "bad.parquet", tmp_path / "out.parquet",
            chunk_rows=10,
        )  # fmt: skip
    assert (tmp_path / "out.parquet").read_bytes() == b"the previous output"
    assert _leftovers(tmp_path) == []


def test_a_csv_value_of_the_wrong_type_names_the_row(
    ws_model: Workspace, data: pd.DataFrame, tmp_path: Path
) -> None:
    bad = data.astype({"age": object})
    bad.loc[31, "age"] = "x"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InvalidInput, match=r"row 31 column 'age' value 'x' is not int64"):
        predict_file(ws_model, "churn", tmp_path / "bad.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists() and _leftovers(tmp_path) == []


def test_bad_calls_are_refused(ws_model: Workspace, data: pd.DataFrame, tmp_path: Path) -> None:
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    data.drop(columns="income").to_parquet(tmp_path / "no_income.parquet")
    reg = LinearRegression().fit(data[["age", "income"]], data["age"] * 2.0)
    register_model(ws_model, reg, "spend", input_example=data[["age", "income"]].head(3))
    cases: list[tuple[dict[str, object], type[Exception], str]] = [
        ({"input_path": tmp_path / "no_income.parquet"}, InvalidInput, "missing column 'income'"),
        ({"input_path": tmp_path / "in.json"}, InvalidInput, "use a .csv or .parquet file"),
        ({"output_path": tmp_path / "out.txt"}, InvalidInput, "output .*out.txt: use a .csv"),
        ({"input_path": tmp_path / "gone.csv"}, NotFound, "input file .*gone.csv does not exist"),
        ({"output_path": tmp_path / "no" / "o.csv"}, NotFound, "output folder .* does not exist"),
        ({"output_path": src}, InvalidInput, "would overwrite the input"),
        ({"model_ref": "nope@production"}, NotFound, "no registered model named 'nope'"),
        ({"model_ref": "churn@staging"}, NotFound, "no alias 'staging'"),
        ({"chunk_rows": 0}, InvalidInput, "chunk_rows must be a positive integer"),
        ({"columns": ["customer", "age"]}, InvalidInput, "no column\\(s\\) 'customer' to keep"),
        ({"model_ref": "spend", "proba": True}, InvalidInput, "has no predict_proba"),
    ]
    for case, error, message in cases:
        args: dict[str, object] = {
            "model_ref": "churn@production",
            "input_path": src,
            "output_path": out,
            **case,
        }
        with pytest.raises(error, match=message):
            predict_file(ws_model, **args)  # type: ignore[arg-type]
        assert not out.exists() and _leftovers(tmp_path) == [], case
    data.assign(prediction=1).to_csv(tmp_path / "clash.csv", index=False)
    with pytest.raises(InvalidInput, match="already has column\\(s\\) 'prediction'"):
        predict_file(ws_model, "churn", tmp_path / "clash.csv", out)
    predict_file(ws_model, "churn", tmp_path / "clash.csv", out, columns=["customer_id"])
    assert len(pd.read_parquet(out)) == 40
