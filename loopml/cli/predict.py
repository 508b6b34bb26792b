"""``loopml predict``: batch inference over a CSV or Parquet file, in chunks."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loopml.cli._common import console, open_workspace
from loopml.serving import predict_file


def predict(
    ctx: typer.Context,
    model_ref: str = typer.Argument(..., help="Model version: churn@production, churn/3, churn."),
    input_path: Path = typer.Option(..., "--input", "-i", help="A .csv or .parquet file."),
    output_path: Path = typer.Option(..., "--output", "-o", help="A .csv or .parquet file."),
    chunk_rows: int = typer.Option(100_000, help="Rows per chunk (bounds memory)."),
    keep: list[str] = typer.Option(
        None, "--keep", "-k", help="Input column to copy to the output (repeat; default: all)."
    ),
    proba: bool = typer.Option(False, "--proba", help="Also write proba.<class> columns."),
    device: str = typer.Option(
        None, help="Torch models: cuda, cuda:N, auto or cpu (no CUDA: falls back to the CPU)."
    ),
) -> None:
    """Predict every row of a file with a registered model; write rows + predictions."""
    ws = open_workspace(ctx)
    with Progress(
        TextColumn("predicting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("predict", total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = predict_file(
            ws,
            model_ref,
            input_path.expanduser(),
            output_path.expanduser(),
            chunk_rows=chunk_rows,
            columns=keep or None,
            proba=proba,
            progress=update,
            device=device,
        )
    rate = result.rows / result.seconds if result.seconds > 0 else 0.0
    console.print(
        f"predicted {result.rows} rows with {result.model_uri} in {result.seconds:.1f}s "
        f"({rate:,.0f} rows/s) -> {result.output}",
        highlight=False,
    )
