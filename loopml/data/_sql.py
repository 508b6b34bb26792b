"""SQL over dataset versions with DuckDB: ``{churn@3}`` in a query reads that version."""

from __future__ import annotations

import re
from typing import Any, Literal

import duckdb
import pyarrow as pa

from loopml.data._datasets import resolve
from loopml.errors import InvalidInput
from loopml.store import Workspace, default_workspace

_REF = re.compile(r"\{([^{}]+)\}")


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

    def table_for(match: re.Match[str]) -> str:
        path = str(resolve(match.group(1).strip(), workspace=ws).path()).replace("'", "''")
        return f"read_parquet('{path}')"

    rendered = _REF.sub(table_for, query)
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
