"""Batch prediction over partitions: a Parquet file split into runs of its row groups,
each predicted as one task of an executor (Ray by default) with
:func:`loopml.serving.predict_file`, the parts then joined in order into one output."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopml import errors, registry, serving
from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.pipelines._executors import Executor, get_executor
from loopml.pipelines._worker import StepCall, step_workspace
from loopml.serving import BatchResult
from loopml.store import Workspace


def split_row_groups(sizes: Sequence[int], partitions: int) -> list[list[int]]:
    """Contiguous runs of the non-empty row groups (of ``sizes`` rows each), at most
    ``partitions`` of them, with about as many rows in each."""
    total = sum(sizes)
    runs: list[list[int]] = [[]]
    assigned = 0
    for i, rows in enumerate(sizes):
        if rows == 0:
            continue
        # a new run once the runs so far hold their share of the rows
        if runs[-1] and len(runs) < partitions and assigned >= total * len(runs) / partitions:
            runs.append([])
        runs[-1].append(i)
        assigned += rows
    return [r for r in runs if r]


_ROWS = re.compile(r"\b(rows? )(\d+)(?:-(\d+))?")


def _shift(found: re.Match[str], offset: int) -> str:
    """A row number (or range) of a partition's message as a row of the whole input."""
    text = f"{found.group(1)}{int(found.group(2)) + offset}"
    return text if found.group(3) is None else f"{text}-{int(found.group(3)) + offset}"


def predict_part(
    model_uri: str,
    source: str,
    groups: list[int],
    first_row: int,
    part: str,
    columns: list[str] | None,
    proba: bool,
    chunk_rows: int,
) -> dict[str, Any]:
    """One partition, where a task runs: its row groups to a file, predicted to ``part``.
    A loopml error comes back as its class name and message (the driver raises it)."""
    ws = step_workspace()
    rows_in = f"{part}.in.parquet"
    try:
        pq.write_table(pq.ParquetFile(source).read_row_groups(groups), rows_in)
        done = serving.predict_file(
            ws, model_uri, rows_in, part, chunk_rows=chunk_rows, columns=columns, proba=proba
        )
    except LoopmlError as exc:
        message = _ROWS.sub(lambda m: _shift(m, first_row), str(exc))
        return {"error": type(exc).__name__, "message": message}
    finally:
        Path(rows_in).unlink(missing_ok=True)
    return {"rows": done.rows, "part": part}


def _raise(found: dict[str, Any]) -> None:
    """The error a partition returned, as its loopml class (row numbers are the input's)."""
    cls = getattr(errors, found["error"], None)
    error: LoopmlError = LoopmlError(found["message"])
    if isinstance(cls, type) and issubclass(cls, LoopmlError):
        with contextlib.suppress(TypeError):  # a constructor that takes other arguments
            error = cls(found["message"])
    raise error


def _row_groups(src: Path) -> list[int]:
    if src.suffix.lower() not in (".parquet", ".pq"):
        raise InvalidInput(f"input {src}: predict_partitions reads a .parquet file")
    if not src.is_file():
        raise NotFound(f"input file {src} does not exist")
    try:
        meta = pq.ParquetFile(src).metadata
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{src}: not a readable Parquet file: {exc}") from None
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def _join(parts: list[Path], dest: Path, tmp: Path) -> None:
    """The parts, in order, as one Parquet or CSV file at ``tmp``."""
    writer: Any = None
    schema: pa.Schema | None = None
    try:
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                schema = table.schema
                writer = (
                    pq.ParquetWriter(tmp, schema, compression="zstd")
                    if dest.suffix.lower() != ".csv"
                    else pacsv.CSVWriter(tmp, schema)
                )
            elif table.schema != schema:
                try:
                    table = table.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
                    raise InvalidInput(
                        f"{part.name}: output columns do not match the first partition's "
                        f"types ({exc}); give the file consistent column types"
                    ) from None
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def predict_partitions(
    ws: Workspace,
    model_ref: str,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    partitions: int | None = None,
    executor: str | Executor = "ray",
    columns: Sequence[str] | None = None,
    proba: bool = False,
    chunk_rows: int = 100_000,
    progress: Callable[[int, int | None], None] | None = None,
) -> BatchResult:
    """Predict a Parquet file with a registered model, one task per partition.

    The same output as :func:`loopml.serving.predict_file` (rows in input order, the same
    columns), but the partitions — contiguous runs of the file's row groups — are
    predicted side by side as tasks of ``executor`` (``ray`` by default; ``process`` or
    ``thread`` too). Every task must see the input's and output's folder (one machine, or
    a shared file system) and the workspace. The model version is resolved once, so an
    alias that moves meanwhile does not mix versions.

    Parameters
    ----------
    partitions : how many tasks (default: one per row group, at most 64); a file with
        fewer row groups gets fewer (write it with a smaller ``row_group_size``).
    columns, proba, chunk_rows : as for :func:`~loopml.serving.predict_file`.
    progress : called as ``progress(rows_done, total_rows)`` as partitions finish.
    """
    if partitions is not None and (
        isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1
    ):
        raise InvalidInput(f"partitions must be a positive integer, not {partitions!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be a positive integer, not {chunk_rows!r}")
    if columns is not None and (
        isinstance(columns, str) or not all(isinstance(c, str) for c in columns)
    ):
        raise InvalidInput(f"columns must be a list of column names, not {columns!r}")
    src, dest = Path(input_path).resolve(), Path(output_path).resolve()
    sizes = _row_groups(src)
    if dest.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise InvalidInput(f"output {dest}: use a .csv or .parquet file")
    if not dest.parent.is_dir():
        raise NotFound(f"output folder {dest.parent} does not exist")
    if dest == src:
        raise InvalidInput(f"output {dest} would overwrite the input; choose another path")
    if sum(sizes) == 0:
        raise InvalidInput(f"{src} has no data rows to predict")
    uri = registry.get_model_version(ws, model_ref).uri
    runs = split_row_groups(sizes, partitions or min(len(sizes), 64))
    started = time.perf_counter()
    work = dest.parent / f".{dest.name}.parts-{uuid.uuid4().hex}"
    work.mkdir()
    pool = get_executor(executor)
    try:
        pool.start(ws)
        futures: list[Future[Any]] = []
        first = 0
        for k, groups in enumerate(runs):
            args = (uri, str(src), groups, first, str(work / f"{k:05d}.parquet"))
            kwargs = {"columns": None if columns is None else list(columns), "proba": proba}
            call = StepCall(
                f"partition-{k}",
                __name__,
                "predict_part",
                None,
                args,
                {**kwargs, "chunk_rows": chunk_rows},
                None,
            )
            futures.append(pool.submit(call))
            first += sum(sizes[g] for g in groups)
        done, results = 0, []
        for future in futures:  # in order: the first failing partition is the one reported
            found = future.result()
            if "error" in found:
                _raise(found)
            done += found["rows"]
            results.append(Path(found["part"]))
            if progress is not None:
                progress(done, sum(sizes))
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
        try:
            _join(results, dest, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        pool.close()
        shutil.rmtree(work, ignore_errors=True)
    return BatchResult(done, dest, uri, time.perf_counter() - started)


__all__ = ["predict_partitions", "split_row_groups"]
