"""Batch inference: a registered model over a CSV or Parquet file, streamed in chunks.

Input is read chunk by chunk (Parquet row batches, or the CSV streaming reader with the
model signature's column types), each chunk is checked against the signature and predicted,
and output rows are appended to a Parquet or CSV writer: memory stays bounded by the chunk
size whatever the file size. The output appears only when complete (written to a
temporary name beside it and renamed), so a failure never leaves half a file. Row numbers
in error messages count data rows from 0, header excluded.
"""

from __future__ import annotations

import csv
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopml.errors import InvalidInput, NotFound
from loopml.registry import LoadedModel, Signature, load_model
from loopml.store import Workspace

Progress = Callable[[int, int | None], None]
_PARQUET = (".parquet", ".pq")
_CSV = (".csv",)
_ARROW_TYPES = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "object": pa.string(),
    "category": pa.string(),
}
_CSV_ERROR = re.compile(
    r"In CSV column #(\d+): CSV conversion error to (\S+): invalid value '(.*)'"
)
_ROW = re.compile(r"\brow (\d+) value")


@dataclass(frozen=True)
class BatchResult:
    """What :func:`predict_file` did: rows predicted, the output file, the model version."""

    rows: int
    output: Path
    model_uri: str
    seconds: float


def _format(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix in _PARQUET:
        return "parquet"
    if suffix in _CSV:
        return "csv"
    raise InvalidInput(f"{what} {path}: use a .csv or .parquet file (got {suffix or 'no suffix'})")


def _csv_row_of(path: Path, column: int, value: str) -> int | None:
    """The first data row whose field ``column`` is ``value`` (after a CSV type error)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        for i, row in enumerate(reader):
            if column < len(row) and row[column] == value:
                return i
    return None


def _csv_batches(path: Path, sig: Signature, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    types = {c.name: _ARROW_TYPES[c.dtype] for c in sig.inputs if c.dtype in _ARROW_TYPES}
    block = min(64 << 20, max(1 << 20, chunk_rows * 64))
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block),
            convert_options=pacsv.ConvertOptions(column_types=types),
        )
        yield from reader
    except pa.ArrowInvalid as exc:
        found = _CSV_ERROR.search(str(exc))
        if found:
            row = _csv_row_of(path, int(found.group(1)), found.group(3))
            names = pacsv.open_csv(path).schema.names if row is not None else []
            col = int(found.group(1))
            if row is not None and col < len(names):
                raise InvalidInput(
                    f"{path}: row {row} column {names[col]!r} value {found.group(3)!r} is not "
                    f"{found.group(2)} as the model signature expects"
                ) from None
        raise InvalidInput(f"{path}: cannot read the CSV: {exc}") from None


def _batches(path: Path, fmt: str, sig: Signature, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    if fmt == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"{path}: not a readable Parquet file: {exc}") from None
        yield from parquet.iter_batches(batch_size=chunk_rows)
        return
    for batch in _csv_batches(path, sig, chunk_rows):
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)


def _total(path: Path, fmt: str) -> int | None:
    if fmt != "parquet":
        return None
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{path}: not a readable Parquet file: {exc}") from None


def _classes(model: LoadedModel, width: int) -> list[Any]:
    classes = getattr(model.native, "classes_", None)
    labels = list(classes) if classes is not None else list(range(width))
    return labels if len(labels) == width else list(range(width))


def _predict_chunk(
    model: LoadedModel,
    batch: pa.RecordBatch,
    offset: int,
    keep: Sequence[str] | None,
    proba: bool,
) -> pa.Table:
    frame = batch.to_pandas()
    where = f"rows {offset}-{offset + batch.num_rows - 1}"
    try:
        predictions = np.asarray(model.predict(frame))
        probabilities = np.asarray(model.predict_proba(frame)) if proba else None
    except InvalidInput as exc:
        message = _ROW.sub(lambda m: f"row {offset + int(m.group(1))} value", str(exc))
        raise InvalidInput(f"{where}: {message}") from None
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{where}: the model failed to predict: {exc}") from exc
    names = batch.schema.names if keep is None else list(keep)
    out: dict[str, pa.Array] = {n: batch.column(n) for n in names}
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions[:, 0]
    if predictions.ndim == 1:
        out["prediction"] = pa.array(predictions)
    else:
        for j in range(predictions.shape[1]):
            out[f"prediction.{j}"] = pa.array(predictions[:, j])
    if probabilities is not None:
        for j, label in enumerate(_classes(model, probabilities.shape[1])):
            out[f"proba.{label}"] = pa.array(probabilities[:, j], pa.float64())
    return pa.table(out)


class _Writer:
    """Appends tables to a Parquet or CSV file; the schema is the first table's."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self._writer: Any = None
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table, where: str) -> None:
        if self._writer is None:
            self.schema = table.schema
            if self.fmt == "parquet":
                self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(self.path, table.schema)
        elif table.schema != self.schema:
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
                raise InvalidInput(
                    f"{where}: output columns {table.schema.names} do not match the first "
                    f"chunk's types ({exc}); give the file consistent column types"
                ) from None
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()


def _check(
    input_path: Path, output_path: Path, chunk_rows: int, columns: Sequence[str] | None
) -> tuple[str, str]:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be a positive integer, not {chunk_rows!r}")
    in_fmt, out_fmt = _format(input_path, "input"), _format(output_path, "output")
    if not input_path.is_file():
        raise NotFound(f"input file {input_path} does not exist")
    if not output_path.parent.is_dir():
        raise NotFound(f"output folder {output_path.parent} does not exist")
    if output_path.resolve() == input_path.resolve():
        raise InvalidInput(f"output {output_path} would overwrite the input; choose another path")
    if columns is not None and (
        isinstance(columns, str) or not all(isinstance(c, str) for c in columns)
    ):
        raise InvalidInput(f"columns must be a list of column names, not {columns!r}")
    return in_fmt, out_fmt


def predict_file(
    ws: Workspace,
    model_ref: str,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    chunk_rows: int = 100_000,
    columns: Sequence[str] | None = None,
    proba: bool = False,
    progress: Progress | None = None,
    device: str | None = None,
) -> BatchResult:
    """Predict every row of a CSV or Parquet file with a registered model, in chunks.

    Parameters
    ----------
    ws : the workspace.
    model_ref : ``churn@production``, ``churn/3``, ``models:/churn@production``, ``churn``.
    input_path : ``.csv`` or ``.parquet`` file with (at least) the signature's columns.
    output_path : ``.csv`` or ``.parquet`` file to write (replaced atomically).
    chunk_rows : rows per chunk; memory is bounded by about this many rows.
    columns : input columns copied to the output (default: all; ``[]`` for none, e.g.
        ``["customer_id"]`` to keep an id only), before ``prediction``.
    proba : also write ``proba.<class>`` columns (classifiers).
    progress : called as ``progress(rows_done, total_rows or None)`` after each chunk.
    device : for a torch model, ``"cuda"``, ``"cuda:N"``, ``"auto"`` or ``"cpu"`` (see
        :func:`~loopml.registry.load_model`: without CUDA, ``"cuda"`` falls back to the CPU
        with one RuntimeWarning).

    Returns
    -------
    BatchResult

    Raises
    ------
    InvalidInput
        A bad path suffix, a chunk that does not fit the signature (naming the row and
        column), a missing kept column, or a model without ``predict_proba``.
    NotFound
        The model, version, alias or input file does not exist.

    Examples
    --------
    >>> predict_file(ws, "churn@production", "big.parquet", "preds.parquet")  # doctest: +SKIP
    BatchResult(rows=1000000, ...)
    """
    src, dest = Path(input_path), Path(output_path)
    in_fmt, out_fmt = _check(src, dest, chunk_rows, columns)
    model = load_model(ws, model_ref, device=device)
    uri = model.model_version.uri
    started = time.perf_counter()
    total = _total(src, in_fmt)
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
    writer = _Writer(tmp, out_fmt)
    done = 0
    try:
        for batch in _batches(src, in_fmt, model.signature, chunk_rows):
            if done == 0:
                _check_columns(batch.schema, columns, src)
            table = _predict_chunk(model, batch, done, columns, proba)
            writer.write(table, f"rows {done}-{done + batch.num_rows - 1}")
            done += batch.num_rows
            if progress is not None:
                progress(done, total)
        if writer.schema is None:
            raise InvalidInput(f"{src} has no data rows to predict")
        writer.close()
        os.replace(tmp, dest)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return BatchResult(done, dest, uri, time.perf_counter() - started)


def _check_columns(schema: pa.Schema, columns: Sequence[str] | None, src: Path) -> None:
    names = schema.names if columns is None else list(columns)
    missing = [c for c in names if c not in schema.names]
    if missing:
        raise InvalidInput(f"{src} has no column(s) {', '.join(map(repr, missing))} to keep")
    clash = [c for c in names if c == "prediction" or c.startswith(("prediction.", "proba."))]
    if clash:
        raise InvalidInput(
            f"{src} already has column(s) {', '.join(map(repr, clash))}, which the output uses; "
            "choose the columns to keep with columns="
        )


__all__ = ["BatchResult", "Progress", "predict_file"]
