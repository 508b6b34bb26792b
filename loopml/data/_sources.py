"""Reading sources into one Arrow table: CSV (one file or a glob), Parquet, JSON Lines, a SQL
query against any SQLAlchemy URL, and in-memory pandas / Arrow / Polars frames.

Every failure a user can cause — a missing file, an empty or malformed CSV, a wrong encoding,
an unreadable Parquet file, a SQL error, two column names that collide once normalised —
becomes a ``NotFound`` or ``InvalidInput`` that names the file, line or column.
"""

from __future__ import annotations

import glob
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq
import sqlalchemy as sa

from loopml.errors import InvalidInput, NotFound

Format = Literal["csv", "parquet", "jsonl"]
BadLines = Literal["error", "skip"]
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


@dataclass(frozen=True)
class SQL:
    """A query to ingest: ``SQL("select * from customers", url="postgresql+psycopg://...")``."""

    query: str
    url: str


@dataclass
class Loaded:
    """What a source produced: the table, a description to record, and skipped lines."""

    table: pa.Table
    description: dict[str, Any]
    origins: list[str] = field(default_factory=list)  # files or URLs, for lineage


@dataclass(frozen=True)
class CsvOptions:
    """How to parse CSV files."""

    delimiter: str | None = None  # default: "," (tab for .tsv)
    encoding: str = "utf-8"
    header: bool = True
    on_bad_lines: BadLines = "error"


Progress = Callable[[int, int], None]  # (bytes read, bytes in all files)


class _Counting(io.RawIOBase):
    """A binary file that reports how far it has been read."""

    def __init__(self, raw: io.BufferedReader, seen: Callable[[int], None]) -> None:
        self._raw, self._seen = raw, seen

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self._seen(n)
        return n or 0


def read_source(
    source: Any,
    *,
    format: Format | None = None,
    csv: CsvOptions = CsvOptions(),
    progress: Progress | None = None,
) -> Loaded:
    """Read ``source`` into one Arrow table (see the module docstring for what it can be).

    ``progress(done, total)`` is called as file bytes are read.
    """
    if isinstance(source, SQL):
        return _read_sql(source)
    if isinstance(source, pa.Table):
        return Loaded(source, {"type": "arrow"})
    if isinstance(source, pd.DataFrame):
        return Loaded(_from_pandas(source), {"type": "pandas"})
    if hasattr(source, "to_arrow") and callable(source.to_arrow):  # polars and friends
        return Loaded(source.to_arrow(), {"type": type(source).__module__.partition(".")[0]})
    if isinstance(source, str | Path):
        return _read_files(str(source), format, csv, progress)
    raise InvalidInput(
        f"cannot ingest a {type(source).__name__}: give a file path or glob, loopml.data.SQL, "
        "or a pandas / Arrow / Polars frame"
    )


def _from_pandas(frame: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInput(f"cannot convert the DataFrame to Arrow: {exc}") from exc


def _paths(pattern: str) -> list[Path]:
    if glob.has_magic(pattern):
        paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not paths:
            raise NotFound(f"no files match {pattern!r}")
        return paths
    path = Path(pattern)
    if not path.is_file():
        raise NotFound(f"no such file: {pattern}")
    return [path]


def _format_of(path: Path, given: Format | None) -> Format:
    if given is not None:
        if given not in ("csv", "parquet", "jsonl"):
            raise InvalidInput(f"format must be 'csv', 'parquet' or 'jsonl', got {given!r}")
        return given
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise InvalidInput(
            f"{path}: unknown file type {path.suffix!r}; pass format= 'csv', 'parquet' or 'jsonl'"
        )
    return found


def _read_files(
    pattern: str, format: Format | None, csv: CsvOptions, progress: Progress | None
) -> Loaded:
    paths = _paths(pattern)
    fmt = _format_of(paths[0], format)
    total = sum(p.stat().st_size for p in paths)
    done = 0
    tables, skipped = [], []
    for path in paths:
        start, size = done, path.stat().st_size

        def seen(n: int, end: int = start + size) -> None:
            nonlocal done
            done = min(done + n, end)
            if progress is not None:
                progress(done, total)

        if fmt == "csv":
            table, bad = _read_csv(path, csv, seen)
            skipped += [{"file": str(path), **b} for b in bad]
        elif fmt == "parquet":
            table = _read_parquet(path)
        else:
            table = _read_jsonl(path)
        done = start
        seen(size)  # the whole file, whatever was counted while reading it
        tables.append(table)
    table = _concat(tables, paths)
    description: dict[str, Any] = {"type": fmt, "paths": [str(p.resolve()) for p in paths]}
    if fmt == "csv":
        description["options"] = {
            "delimiter": csv.delimiter,
            "encoding": csv.encoding,
            "header": csv.header,
            "on_bad_lines": csv.on_bad_lines,
        }
        description["skipped_lines"] = skipped
    return Loaded(table, description, [str(p.resolve()) for p in paths])


def _concat(tables: list[pa.Table], paths: list[Path]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    first = tables[0].schema
    for table, path in zip(tables[1:], paths[1:], strict=True):
        if table.schema.names != first.names:
            raise InvalidInput(
                f"{path}: columns {table.schema.names} differ from {paths[0]}'s {first.names}"
            )
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInput(f"files of {paths[0].parent} do not share one schema: {exc}") from exc


def _read_csv(
    path: Path, opts: CsvOptions, seen: Callable[[int], None]
) -> tuple[pa.Table, list[dict[str, Any]]]:
    delimiter = opts.delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    if opts.on_bad_lines not in ("error", "skip"):
        raise InvalidInput(f"on_bad_lines must be 'error' or 'skip', got {opts.on_bad_lines!r}")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path}: the file is empty")
    bad: list[dict[str, Any]] = []

    def on_invalid(row: Any) -> str:
        bad.append(
            {
                "line": row.number,
                "text": row.text,
                "expected_columns": row.expected_columns,
                "columns": row.actual_columns,
            }
        )
        return "skip"

    def parse(threads: bool) -> pa.Table:
        bad.clear()
        with open(path, "rb") as raw:
            return pcsv.read_csv(
                _Counting(raw, seen),
                read_options=pcsv.ReadOptions(
                    encoding=opts.encoding,
                    use_threads=threads,
                    autogenerate_column_names=not opts.header,
                ),
                parse_options=pcsv.ParseOptions(
                    delimiter=delimiter, invalid_row_handler=on_invalid
                ),
                convert_options=pcsv.ConvertOptions(strings_can_be_null=True),  # "" is missing
            )

    try:
        table = parse(threads=True)
        if bad and any(b["line"] is None for b in bad):
            table = parse(threads=False)  # single-threaded parsing knows line numbers
    except LookupError as exc:
        raise InvalidInput(f"{path}: unknown encoding {opts.encoding!r}") from exc
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: not readable as CSV ({exc})") from exc
    if bad and opts.on_bad_lines == "error":
        first = bad[0]
        raise InvalidInput(
            f"{path}: line {first['line']} has {first['columns']} fields, expected "
            f"{first['expected_columns']}: {first['text'][:80]!r} ({len(bad)} malformed line(s); "
            "pass on_bad_lines='skip' to skip and record them)"
        )
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            raise InvalidInput(
                f"{path}: column {name!r} is not valid {opts.encoding} text; "
                "pass the file's encoding, e.g. encoding='latin-1'"
            )
    return table, bad


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{path}: unreadable Parquet file ({exc})") from exc


def _read_jsonl(path: Path) -> pa.Table:
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path}: the file is empty")
    try:
        return pjson.read_json(path)
    except pa.ArrowInvalid as exc:
        raise InvalidInput(f"{path}: not valid JSON Lines ({exc})") from exc


def _read_sql(source: SQL) -> Loaded:
    try:
        engine = sa.create_engine(source.url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise InvalidInput(f"SQL source: {source.url!r} is not a database URL ({exc})") from exc
    safe_url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_query(sa.text(source.query), conn)
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) else exc
        detail = getattr(cause, "orig", None) or cause
        raise InvalidInput(f"SQL source {safe_url}: the query failed: {detail}") from exc
    finally:
        engine.dispose()
    return Loaded(
        _from_pandas(frame), {"type": "sql", "url": safe_url, "query": source.query}, [safe_url]
    )


_NON_WORD = re.compile(r"[^0-9a-zA-Z_]+")


def normalize_names(names: Sequence[str]) -> list[str]:
    """snake_case column names; InvalidInput if two become the same."""
    out = []
    for i, name in enumerate(names):
        clean = _NON_WORD.sub("_", str(name).strip()).strip("_").lower() or f"column_{i}"
        out.append(clean)
    seen: dict[str, str] = {}
    for original, clean in zip(names, out, strict=True):
        if clean in seen:
            raise InvalidInput(
                f"columns {seen[clean]!r} and {original!r} both become {clean!r} once "
                "normalised; rename one, or pass normalize_columns=False"
            )
        seen[clean] = original
    return out
