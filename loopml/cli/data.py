"""``loopml data ingest|list|show|profile|validate|suggest|diff|sql``."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from loopml import data
from loopml.cli._common import console, number, open_workspace, table, when
from loopml.data._profile_html import profile_to_html, profile_to_rich
from loopml.data._validate import Validation
from loopml.errors import ValidationFailed

app = typer.Typer(
    help="Datasets: ingest, inspect, profile, validate and query.", no_args_is_help=True
)


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="File or glob (CSV, Parquet, JSON Lines)."),
    name: str = typer.Option(..., "--name", "-n", help="Dataset name."),
    format: str = typer.Option(None, help="csv, parquet or jsonl (default: from the suffix)."),
    delimiter: str = typer.Option(None, help="CSV field delimiter (default ',')."),
    encoding: str = typer.Option("utf-8", help="Text encoding of CSV files."),
    no_header: bool = typer.Option(False, "--no-header", help="CSV files have no header row."),
    skip_bad_lines: bool = typer.Option(False, help="Skip (and record) malformed CSV lines."),
    keep_names: bool = typer.Option(False, help="Keep column names as they are."),
    sql_url: str = typer.Option(
        None, "--sql-url", help="Treat SOURCE as a SQL query against this database URL."
    ),
) -> None:
    """Ingest a file, glob or SQL query as the next version of a dataset."""
    ws = open_workspace(ctx)
    src: object = data.SQL(source, sql_url) if sql_url else source
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"reading {source}", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if done >= total:
                bar.update(task, description="hashing, profiling and storing")

        dv = data.ingest(
            src,
            name,
            progress=advance,
            format=format,  # type: ignore[arg-type]  # checked by ingest
            delimiter=delimiter,
            encoding=encoding,
            header=not no_header,
            on_bad_lines="skip" if skip_bad_lines else "error",
            normalize_columns=not keep_names,
            workspace=ws,
        )
    console.print(f"[bold]{dv.ref}[/]: {dv.num_rows:,} rows x {len(dv.columns)} columns")
    skipped = dv.source.get("skipped_lines") or []
    if skipped:
        lines = ", ".join(str(s["line"]) for s in skipped[:10])
        console.print(f"[yellow]skipped {len(skipped)} malformed line(s):[/] {lines}")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List datasets with their latest version."""
    frame = data.list_datasets(workspace=open_workspace(ctx))
    t = table("name", "latest", "rows", "size", "created")
    for rec in frame.to_dict("records"):
        t.add_row(
            rec["name"],
            str(rec["latest_version"]),
            f"{rec['num_rows']:,}",
            f"{rec['size_bytes'] / 1e6:.1f} MB",
            when(rec["created_at"].to_pydatetime()),
        )
    console.print(t)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="name, name@3, name@latest or name@alias"),
) -> None:
    """Show a version: source, columns with their types and kinds, versions."""
    ws = open_workspace(ctx)
    dv = data.resolve(ref, workspace=ws)
    console.print(
        f"[bold]{dv.ref}[/]  {dv.num_rows:,} rows  {dv.size_bytes / 1e6:.2f} MB  "
        f"created {when(dv.created_at)}"
    )
    console.print(
        f"source: {dv.source.get('type')} "
        f"{', '.join(dv.source.get('paths', [])) or dv.source.get('url', '')}"
    )
    t = table("column", "type", "kind", "nulls", "distinct")
    for col in dv.columns:
        prof = dv.profile["columns"][col.name]
        t.add_row(
            col.name,
            col.arrow_type,
            col.kind,
            f"{prof['null_fraction']:.1%}",
            number(prof["distinct"]),
        )
    console.print(t)
    versions = ", ".join(str(v.version) for v in data.list_versions(dv.name, workspace=ws))
    console.print(f"versions of {dv.name}: {versions}")


@app.command("profile")
def profile(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="name, name@3, name@latest or name@alias"),
    html: Path = typer.Option(None, "--html", help="Also write the HTML page with histograms."),
) -> None:
    """Show a version's profile: per column counts, nulls, distinct, range, top values."""
    dv = data.resolve(ref, workspace=open_workspace(ctx))
    console.print(f"[bold]{dv.ref}[/]  {dv.num_rows:,} rows")
    console.print(profile_to_rich(dv.profile))
    if html is not None:
        html.write_text(profile_to_html(dv.profile, title=f"Profile of {dv.ref}"), "utf-8")
        console.print(f"wrote {html}")


@app.command("validate")
def validate(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The version to check, e.g. churn@3."),
    suite: Path = typer.Option(..., "--suite", "-s", help="Suite YAML file."),
    on_fail: str = typer.Option("raise", help="raise (exit 1), warn, or quarantine."),
    reference: str = typer.Option(None, help="Version for statistical checks, e.g. churn@2."),
    html: Path = typer.Option(None, "--html", help="Also write the report as an HTML page."),
) -> None:
    """Run a suite of checks on a version; store and print the report."""
    ws = open_workspace(ctx)
    try:
        result = data.validate(
            ref,
            suite,
            on_fail=on_fail,  # type: ignore[arg-type]
            reference=reference,
            workspace=ws,
        )
    except ValidationFailed as failed:  # the report was stored before the policy raised
        result = cast(Validation, failed.result)
    report = result.report
    console.print(report.to_rich())
    if result.quarantined is not None and result.clean is not None:
        console.print(
            f"quarantined failing rows to [bold]{result.quarantined.ref}[/]; "
            f"clean rows are [bold]{result.clean.ref}[/]"
        )
    if html is not None:
        html.write_text(report.to_html(f"Validation of {result.dataset.ref}"), "utf-8")
        console.print(f"wrote {html}")
    verdict = "passed" if report.passed else "[red]failed[/]"
    console.print(f"{result.dataset.ref}: {verdict} (report {result.report_id})")
    if not report.passed and on_fail == "raise":
        raise typer.Exit(1)


@app.command("suggest")
def suggest(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The version to learn from, e.g. churn@3."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the YAML to this file."),
) -> None:
    """Propose a validation suite (YAML to edit) from a version's profile."""
    dv = data.resolve(ref, workspace=open_workspace(ctx))
    text = data.suggest_suite(dv.profile, name=dv.name).to_yaml()
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text, "utf-8")
        console.print(f"wrote {output}: edit it, then `loopml data validate {dv.ref} -s {output}`")


@app.command("diff")
def diff(
    ctx: typer.Context,
    a: str = typer.Argument(..., help="First version, e.g. churn@2."),
    b: str = typer.Argument(..., help="Second version, e.g. churn@3."),
) -> None:
    """Compare two versions: schema, row counts and per-column statistics."""
    d = data.diff(a, b, workspace=open_workspace(ctx))
    console.print(f"[bold]{d.a} -> {d.b}[/]  rows {d.rows[0]:,} -> {d.rows[1]:,}")
    for label, cols in (("added", d.added), ("removed", d.removed)):
        if cols:
            console.print(f"{label}: {', '.join(cols)}")
    for column, old, new in d.retyped:
        console.print(f"[yellow]{column}[/]: {old} -> {new}")
    t = table("column", "stat", d.a, d.b, "change")
    for rec in d.stats.to_dict("records"):
        t.add_row(
            rec["column"], rec["stat"], number(rec["a"]), number(rec["b"]), number(rec["change"])
        )
    console.print(t)


@app.command("sql")
def sql(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="DuckDB SQL; {name@version} reads a dataset."),
    limit: int = typer.Option(50, help="Print at most this many rows."),
    output: Path = typer.Option(None, "--output", "-o", help="Write all rows to .csv/.parquet."),
) -> None:
    """Query dataset versions with DuckDB, e.g. "select * from {churn@3} limit 5"."""
    result = data.sql(query, to="arrow", workspace=open_workspace(ctx))
    if output is not None:
        frame = result.to_pandas()
        if output.suffix == ".parquet":
            frame.to_parquet(output, index=False)
        else:
            frame.to_csv(output, index=False)
        console.print(f"wrote {result.num_rows:,} rows to {output}")
        return
    t = table(*result.column_names)
    for row in result.slice(0, limit).to_pylist():
        t.add_row(*(number(v) for v in row.values()))
    console.print(t)
    console.print(f"{result.num_rows:,} row(s)")
