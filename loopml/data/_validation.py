"""Validation: run a :class:`Suite` of checks over a table, lazily, and report every failure.

:func:`validate_table` registers the Arrow table once with DuckDB (read in place, no copy)
and answers the whole suite in a few queries, whatever its size:

1. one aggregate query holds every check's SQL — ``count(*) FILTER (WHERE <fails>)`` per
   row-level check, ``avg(...)``/``max(...)`` for table-level ones, a ``GROUP BY`` subquery
   per :class:`~loopml.data._checks.Unique`;
2. one query lists the failing row numbers of every row-level check that failed;
3. pyarrow ``take`` reads the few sample rows shown in the report.

If a query fails (a predicate that breaks at run time), each check is retried alone, so one
bad check is reported as such and the others still run.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from types import TracebackType
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data._check_base import (
    Check,
    Plan,
    Rows,
    Verdict,
    could_not_evaluate,
    quote_ident,
    type_family,
)
from loopml.data._report_html import CheckResult, ValidationReport
from loopml.data._suite import Suite
from loopml.errors import InvalidInput


class TableScan:
    """A :class:`~loopml.data._check_base.Scan` over an Arrow table, with DuckDB.

    One connection; the table is registered once (DuckDB reads Arrow in place), and once more
    with a column of row numbers when failing rows are listed. The connection can neither read
    files nor load extensions, and compares naive timestamps with aware ones as UTC. Use as a
    context manager, or call :meth:`close`.

    Raises
    ------
    InvalidInput
        The table has duplicate column names, or ``reference_profile`` is no profile.
    """

    source = "loopml_source"

    def __init__(self, table: pa.Table, reference_profile: Mapping[str, Any] | None = None):
        names = table.column_names
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInput(f"the table has duplicate column names: {', '.join(dupes)}")
        self.table = table
        self.num_rows: int = table.num_rows
        self.schema: dict[str, pa.DataType] = {f.name: f.type for f in table.schema}
        self._reference = _reference_columns(reference_profile)
        self._con = duckdb.connect()
        with contextlib.suppress(duckdb.Error):  # needs ICU (in every wheel); else local time
            self._con.execute("SET TimeZone = 'UTC'")
        self._con.execute("SET enable_external_access = false")
        self._con.execute("SET lock_configuration = true")
        self._con.register(self.source, _readable(table))
        self._numbered: str | None = None

    def __enter__(self) -> TableScan:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._con.close()

    @property
    def has_reference(self) -> bool:
        """Whether a reference profile was given."""
        return self._reference is not None

    def reference(self, column: str) -> Mapping[str, Any] | None:
        """The reference profile's statistics of ``column``."""
        stats = (self._reference or {}).get(column)
        return stats if isinstance(stats, Mapping) else None

    def aggregate(self, expressions: Sequence[str], params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The values of SQL aggregate ``expressions`` over the table, in one query."""
        query = f"SELECT {', '.join(expressions)} FROM {self.source}"
        return tuple(self._con.sql(query, params=dict(params) or None).fetchall()[0])

    def failing_rows(self, predicates: Sequence[str], params: Mapping[str, Any]) -> list[Rows]:
        """For each predicate, the sorted row numbers where it holds, in one query."""
        row = self._row_numbers()
        flags = "".join(f", coalesce({p}, false) AS f{i}" for i, p in enumerate(predicates))
        where = " OR ".join(f"f{i}" for i in range(len(predicates)))  # each predicate runs once
        inner = f"SELECT {quote_ident(row)} AS r{flags} FROM {self._numbered}"
        query = f"SELECT * FROM ({inner}) WHERE {where}"
        data = self._con.sql(query, params=dict(params) or None).fetchnumpy()
        rows = np.asarray(data["r"], dtype=np.int64)
        masks = [np.asarray(data[f"f{i}"], dtype=bool) for i in range(len(predicates))]
        return [np.sort(rows[mask]) for mask in masks]

    def _row_numbers(self) -> str:
        """Register the table again with a column of row numbers (once); that column's name."""
        row = next(
            f"__row{i}__" for i in range(len(self.schema) + 1) if f"__row{i}__" not in self.schema
        )
        if self._numbered is None:
            self._numbered = f"{self.source}_numbered"
            numbers = pa.array(np.arange(self.num_rows, dtype=np.int64))
            self._con.register(self._numbered, _readable(self.table).append_column(row, numbers))
        return row

    def strictly_increasing(self, column: str) -> bool:
        """Whether ``column`` (numbers or times) has no nulls and only increases: a proof of
        uniqueness that costs one comparison per row instead of a hash table."""
        values = self.table.column(column)
        if values.null_count or type_family(values.type) not in ("integer", "float", "datetime"):
            return False
        array = values.to_numpy()
        return bool(np.all(array[1:] > array[:-1]))

    def parse(self, expression: str) -> Mapping[str, Any]:
        """DuckDB's parse tree of ``SELECT <expression>``."""
        query = "SELECT json_serialize_sql($q)"
        text = self._con.sql(query, params={"q": f"SELECT {expression}"}).fetchall()[0][0]
        tree: Mapping[str, Any] = json.loads(text)
        return tree

    def result_type(self, expression: str) -> str:
        """The DuckDB type of ``expression`` over the rows (bound, not run)."""
        return str(self._con.sql(f"SELECT (\n{expression}\n) FROM {self.source}").types[0])

    def sample(self, rows: Rows, columns: Sequence[str]) -> list[dict[str, Any]]:
        """Rows ``rows`` of ``columns`` as JSON-ready dicts, each with its ``"__row__"``."""
        part = self.table.select(list(columns)).take(pa.array(rows, type=pa.int64()))
        return [
            {"__row__": int(r), **{k: _jsonable(v) for k, v in rec.items() if k != "__row__"}}
            for r, rec in zip(rows, part.to_pylist(), strict=True)
        ]


def validate_table(
    table: pa.Table | pd.DataFrame,
    suite: Suite,
    *,
    reference_profile: Mapping[str, Any] | None = None,
    sample_size: int = 5,
) -> ValidationReport:
    """Run every check of ``suite`` over ``table`` and collect every failure (lazily).

    Parameters
    ----------
    table : the data; an Arrow table (read in place) or a pandas DataFrame.
    suite : the checks.
    reference_profile : a profile dict (:func:`loopml.data.profile_table`) for the checks
        that compare with a reference (``mean_within``, ``no_new_categories``...).
    sample_size : failing rows kept per failed check, with their row numbers.

    Returns
    -------
    ValidationReport
        One result per check, in suite order; ``passed`` unless an error-severity check
        failed. A check that cannot run (missing column, bad SQL) is a failed result.

    Raises
    ------
    InvalidInput
        ``table``, ``suite``, ``reference_profile`` or ``sample_size`` is of the wrong kind.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from loopml.data._checks import InRange
    >>> report = validate_table(pa.table({"age": [30, 150]}), Suite([InRange("age", 0, 120)]))
    >>> report.passed, report.results[0].failing_count, report.failing_rows().tolist()
    (False, 1, [1])
    """
    started = time.perf_counter()
    data = _as_table(table)
    if not isinstance(suite, Suite):
        raise InvalidInput(f"suite must be a Suite, not {type(suite).__name__}")
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 0:
        raise InvalidInput(f"sample_size must be an integer >= 0, not {sample_size!r}")
    with TableScan(data, reference_profile) as scan:
        runs = [_Run(check, f"c{i}") for i, check in enumerate(suite.checks)]
        for run in runs:
            problem = run.check.problem(scan)
            if problem is None:
                run.plan = run.check.plan(scan, run.prefix)
            else:
                run.verdict = Verdict(False, problem)
        _aggregate(scan, [r for r in runs if r.plan is not None])
        for run in runs:
            if run.verdict is None and run.values is not None:
                run.verdict = run.check.judge(run.values, scan)
        _list_failing_rows(scan, [r for r in runs if r.row_level_failure])
        results = [run.result(scan, sample_size) for run in runs]
    return ValidationReport(suite.name, data.num_rows, results, time.perf_counter() - started)


@dataclass
class _Run:
    """One check's way through :func:`validate_table`."""

    check: Check
    prefix: str
    plan: Plan | None = None
    values: tuple[Any, ...] | None = None
    verdict: Verdict | None = None
    rows: Rows = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def row_level_failure(self) -> bool:
        """Failed with failing rows to list."""
        failed = self.verdict is not None and not self.verdict.passed
        count = self.verdict.failing_count if self.verdict is not None else None
        return failed and self.plan is not None and self.plan.failure is not None and bool(count)

    def result(self, scan: TableScan, sample_size: int) -> CheckResult:
        verdict = self.verdict or Verdict(False, "not evaluated")
        count, n = verdict.failing_count, scan.num_rows
        columns = self.check.sample_columns(scan) if self.rows.size and sample_size else ()
        return CheckResult(
            name=self.check.name,
            type=self.check.kind,
            column=self.check.column_label,
            severity=self.check.severity,
            passed=verdict.passed,
            failing_count=count,
            failing_fraction=None if count is None else (count / n if n else 0.0),
            message=verdict.message,
            sample=scan.sample(self.rows[:sample_size], columns) if columns else [],
            rows=self.rows,
        )


def _aggregate(scan: TableScan, runs: list[_Run]) -> None:
    """Every run's aggregates in one query; each run alone if that query fails."""
    pending = [r for r in runs if r.plan and r.plan.aggregates]
    for run in runs:
        if run not in pending:
            run.values = ()
    if not pending:
        return
    expressions = [e for r in pending if r.plan for e in r.plan.aggregates]
    params = {k: v for r in pending if r.plan for k, v in r.plan.params.items()}
    try:
        values = scan.aggregate(expressions, params)
    except duckdb.Error:
        for run in pending:
            assert run.plan is not None
            try:
                run.values = scan.aggregate(run.plan.aggregates, run.plan.params)
            except duckdb.Error as exc:
                run.verdict = Verdict(False, could_not_evaluate(exc))
        return
    start = 0
    for run in pending:
        assert run.plan is not None
        run.values = values[start : start + len(run.plan.aggregates)]
        start += len(run.plan.aggregates)


def _list_failing_rows(scan: TableScan, runs: list[_Run]) -> None:
    """The failing rows of every failed row-level run in one query; each alone on error."""
    plans = [r.plan for r in runs if r.plan is not None and r.plan.failure is not None]
    if not plans:
        return
    try:
        params = {k: v for p in plans for k, v in p.params.items()}
        found = scan.failing_rows([p.failure for p in plans if p.failure], params)
    except duckdb.Error:
        found = []
        for plan in plans:
            try:
                found += scan.failing_rows([plan.failure or "false"], plan.params)
            except duckdb.Error:
                found.append(np.empty(0, dtype=np.int64))
    for run, rows in zip(runs, found, strict=True):
        run.rows = rows


def _as_table(table: object) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if isinstance(table, pd.DataFrame):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise InvalidInput(f"table must be a pyarrow Table or a pandas DataFrame, not {type(table)}")


def _readable(table: pa.Table) -> pa.Table:
    """``table`` with the column types DuckDB cannot scan (float16) cast to ones it can."""
    for i, f in enumerate(table.schema):
        if pa.types.is_float16(f.type):
            table = table.set_column(i, f.name, pc.cast(table.column(i), pa.float32()))
    return table


def _reference_columns(profile: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if profile is None:
        return None
    columns = profile.get("columns") if isinstance(profile, Mapping) else None
    if not isinstance(columns, Mapping):
        raise InvalidInput("reference_profile must be a profile dict with a 'columns' mapping")
    return columns


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: dates as ISO strings, NaN and infinities as strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)
