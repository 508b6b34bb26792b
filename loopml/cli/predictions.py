"""``loopml predictions tail|export|compact``: read a deployment's prediction log back, and
compact its hourly partitions."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loopml.cli._common import console, number, open_workspace, table
from loopml.errors import InvalidInput, NotFound
from loopml.serving import compact_predictions, labelled_predictions, read_predictions

app = typer.Typer(
    help="Read logged predictions back (with feedback labels); compact the log.",
    no_args_is_help=True,
)

_SINCE = "Start: ISO time (2026-05-01T12:00) or a duration back from now (15m, 2h, 7d)."
_BASE = ("ts", "request_id", "role", "version", "prediction", "latency_ms")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return number(value)


@app.command("tail")
def tail(
    ctx: typer.Context,
    deployment: str = typer.Argument(..., help="Deployment name."),
    n: int = typer.Option(20, "-n", help="How many of the newest rows."),
    since: str = typer.Option(None, help=_SINCE),
    role: str = typer.Option(None, help="Only primary, shadow or candidate rows."),
    wide: bool = typer.Option(False, "--wide", help="Also show inputs and probabilities."),
) -> None:
    """Show the newest predictions of DEPLOYMENT (oldest of them first)."""
    if n < 1:
        raise InvalidInput(f"-n must be at least 1, not {n}")
    rows = read_predictions(open_workspace(ctx), deployment, since=since, limit=n, role=role)
    if rows.num_rows == 0:
        console.print(f"no predictions logged for {deployment!r} yet")
        return
    extra = [c for c in rows.column_names if c.startswith(("input.", "proba."))] if wide else []
    names = [c for c in _BASE if c in rows.column_names] + extra
    t = table(*names)
    for record in rows.select(names).to_pylist():
        t.add_row(*(_cell(record[c]) for c in names))
    console.print(t)


def _write(data: pa.Table, output: Path) -> None:
    suffix = output.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise InvalidInput(f"--output {output}: use a .csv or .parquet file")
    if not output.parent.is_dir():
        raise NotFound(f"output folder {output.parent} does not exist")
    tmp = output.with_name(f".{output.name}.tmp-{uuid.uuid4().hex}")
    try:
        if suffix == ".csv":
            pacsv.write_csv(data, tmp)
        else:
            pq.write_table(data, tmp, compression="zstd")
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


@app.command("export")
def export(
    ctx: typer.Context,
    deployment: str = typer.Argument(..., help="Deployment name."),
    output: Path = typer.Option(..., "--output", "-o", help="A .parquet or .csv file."),
    since: str = typer.Option(None, help=_SINCE),
    until: str = typer.Option(None, help="End (exclusive), in the same forms as --since."),
    role: str = typer.Option(None, help="Only primary, shadow or candidate rows."),
    labels: bool = typer.Option(False, "--labels", help="Join the latest feedback label."),
) -> None:
    """Write DEPLOYMENT's predictions in a time window to a Parquet or CSV file."""
    ws = open_workspace(ctx)
    read = labelled_predictions if labels else read_predictions
    data = read(ws, deployment, since=since, until=until, role=role)
    if labels:
        data = data.drop_columns([c for c in ("label_ts",) if c in data.column_names])
    if output.suffix.lower() == ".csv":
        nulls = [i for i, f in enumerate(data.schema) if pa.types.is_null(f.type)]
        for i in nulls:  # CSV cannot write a column of type null: make it an empty string column
            data = data.set_column(i, data.schema[i].name, pa.nulls(data.num_rows, pa.string()))
    _write(data, output.expanduser())
    console.print(f"wrote {data.num_rows} rows to {output}")


@app.command("compact")
def compact(
    ctx: typer.Context,
    deployment: str = typer.Argument(..., help="Deployment (or served model) name."),
    kind: list[str] = typer.Option(
        None, "--kind", help="predictions, feedback or errors (repeatable); default all."
    ),
    before: str = typer.Option(
        None, help="Only hours that ended before this time (ISO time or a duration back: 1h)."
    ),
    min_files: int = typer.Option(2, help="Compact an hour only if it has this many files."),
    keep_old: bool = typer.Option(
        False, "--keep-old", help="Keep the replaced files' blobs instead of deleting them."
    ),
) -> None:
    """Rewrite each hour of DEPLOYMENT's log that has several Parquet files as one file.

    Safe while the server logs and readers read: the index is swapped in one transaction.
    """
    ws = open_workspace(ctx)
    columns = (TextColumn("compacting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("hours", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = compact_predictions(
            ws,
            deployment,
            kinds=kind or None,
            before=before,
            min_files=min_files,
            delete_old=not keep_old,
            progress=progress,
        )
    if result.hours == 0:
        console.print(f"nothing to compact for {deployment!r}")
    else:
        console.print(
            f"{deployment}: {result.files_before} files in {result.hours} hour partition(s) "
            f"now {result.files_after} file(s), {result.rows} rows"
        )
    for reason in result.skipped:
        console.print(f"[yellow]skipped[/] {reason}")
