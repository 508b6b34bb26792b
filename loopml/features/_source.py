"""A feature view's source as DuckDB SQL, and the checks that need its columns.

A source is a dataset reference (``txns@latest``: read as that version's Parquet) or DuckDB
SQL in which ``{name@version}`` reads a version. Either way it resolves, at the moment of
use, to SQL text plus the dataset versions it read — what lineage records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from loopml.data import DatasetVersion, render_sql, resolve
from loopml.errors import InvalidInput, NotFound
from loopml.store import Workspace

_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}(@[A-Za-z0-9_.\-]+)?$")


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reads and compares timestamps in UTC."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def quote(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def is_dataset_ref(source: str) -> bool:
    """Whether ``source`` is a dataset reference rather than SQL."""
    return bool(_REF.match(source.strip()))


@dataclass(frozen=True)
class ResolvedSource:
    """SQL text reading the source, the dataset versions it reads, and (for a dataset
    reference) the path of the one Parquet file it is."""

    sql: str
    versions: tuple[DatasetVersion, ...]
    parquet: str | None = None


def resolve_source(ws: Workspace, source: str, where: str) -> ResolvedSource:
    """The source of a view as SQL over the dataset versions it names right now."""
    try:
        if is_dataset_ref(source):
            dv = resolve(source, workspace=ws)
            path = str(dv.path()).replace("'", "''")
            return ResolvedSource(f"SELECT * FROM read_parquet('{path}')", (dv,), path)
        rendered, versions = render_sql(source, workspace=ws)
    except (NotFound, InvalidInput) as exc:
        raise InvalidInput(f"{where}: source {source!r}: {exc}") from None
    return ResolvedSource(rendered, tuple(versions))


def source_schema(con: duckdb.DuckDBPyConnection, src: ResolvedSource, where: str) -> pa.Schema:
    """The Arrow schema of a resolved source (no rows read)."""
    try:
        schema: pa.Schema = con.sql(f"SELECT * FROM ({src.sql}) LIMIT 0").to_arrow_table().schema
    except duckdb.Error as exc:
        raise InvalidInput(f"{where}: the source query fails: {exc}") from None
    return schema


def column_types(con: duckdb.DuckDBPyConnection, src: ResolvedSource, where: str) -> dict[str, str]:
    """The DuckDB type of each column of a resolved source (no rows read)."""
    try:
        rel = con.sql(f"SELECT * FROM ({src.sql}) LIMIT 0")
    except duckdb.Error as exc:
        raise InvalidInput(f"{where}: the source query fails: {exc}") from None
    return {name: str(t) for name, t in zip(rel.columns, rel.types, strict=True)}


def _is_temporal(t: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


def check_view_columns(
    spec: dict[str, Any], join_keys: list[str], schema: pa.Schema, where: str
) -> dict[str, Any]:
    """``spec`` with its feature list filled in (every non-key column when empty) and
    dtypes taken from the source; InvalidInput naming any missing or mistyped column."""
    names = schema.names
    known = f"(source columns: {', '.join(names)})"
    for key in join_keys:
        if key not in names:
            raise InvalidInput(f"{where}: join key {key!r} is not a column of the source {known}")
    ts = spec["timestamp_field"]
    if ts not in names:
        raise InvalidInput(f"{where}: timestamp_field {ts!r} is not a column of the source {known}")
    if not _is_temporal(schema.field(ts).type):
        raise InvalidInput(
            f"{where}: timestamp_field {ts!r} is {schema.field(ts).type}, not a timestamp or date"
        )
    features = spec["features"] or [
        {"name": n, "dtype": None} for n in names if n not in join_keys and n != ts
    ]
    if not features:
        raise InvalidInput(f"{where}: the source has no columns besides keys and timestamp")
    out = []
    for feat in features:
        name = feat["name"]
        if name not in names:
            raise InvalidInput(f"{where}: feature {name!r} is not a column of the source {known}")
        if name in join_keys or name == ts:
            raise InvalidInput(f"{where}: {name!r} is a join key or the timestamp, not a feature")
        actual = dtype_name(schema.field(name).type)
        if feat["dtype"] is not None and feat["dtype"] != actual:
            raise InvalidInput(
                f"{where}: feature {name!r} is declared {feat['dtype']} but the source column "
                f"is {schema.field(name).type}"
            )
        out.append({"name": name, "dtype": actual})
    return {**spec, "features": out}


def dtype_name(t: pa.DataType) -> str:
    """The feature dtype name of an Arrow type (``str(t)`` for anything unusual)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_floating(t):
        return f"float{t.bit_width}"
    if pa.types.is_integer(t):
        return f"{'u' if pa.types.is_unsigned_integer(t) else ''}int{t.bit_width}"
    return str(t)
