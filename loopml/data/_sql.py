"""SQL over dataset versions with DuckDB: ``{churn@3}`` in a query reads that version."""

from __future__ import annotations

import re
from typing import Any, Literal

import duckdb
import pyarrow as pa

from loopml.data._datasets import DatasetVersion, resolve
from loopml.errors import InvalidInput
from loopml.store import Workspace, default_workspace

_REF = re.compile(r"\{([^{}]+)\}")


def render_sql(query: str, *, workspace: Workspace) -> tuple[str, list[DatasetVersion]]:
    """``query`` with each ``{name@version}`` replaced by a DuckDB read of that version's
    Parquet, and the versions it names (in order of appearance)."""
    versions: list[DatasetVersion] = []

    def table_for(match: re.Match[str]) -> str:
        dv = resolve(match.group(1).strip(), workspace=workspace)
        versions.append(dv)
        path = str(dv.path()).replace("'", "''")
        return f"read_parquet('{path}')"

    return _REF.sub(table_for, query), versions


def sql(
    query: str, *, to: Literal["pandas", "arrow"] = "pandas", workspace: Workspace | None = None
) -> Any:
    """Run a DuckDB query in which ``{name@version}`` stands for that dataset version.

    Examples
    --------
    >>> sql("select plan, avg(monthly_fee) from {churn@3} group by plan")  # doctest: +SKIP
    """
    ws = workspace or default_workspace()
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("sql: the query is empty")
    rendered, _ = render_sql(query, workspace=ws)
    con = duckdb.connect()
    try:
        result = con.sql(rendered)
        if result is None:
            raise InvalidInput("sql: the query returned no rows (use a SELECT)")
        table: pa.Table = result.to_arrow_table()
    except duckdb.Error as exc:
        raise InvalidInput(f"sql: {exc}") from exc
    finally:
        con.close()
    return table.to_pandas() if to == "pandas" else table
