"""Point-in-time-correct training sets: one DuckDB ASOF JOIN per feature view.

For each entity row, each view contributes its latest row at or before the entity's
timestamp (for the same join keys) if that row is within the view's TTL, else nulls.
Every entity row comes back, in its original order. The join runs in DuckDB and comes out
as Arrow record batches (on-demand features are computed batch by batch); the result is
stored as a dataset version with lineage to the views and their source versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from loopml.data import DatasetVersion, ingest, resolve
from loopml.errors import InvalidInput
from loopml.features._plan import FeaturesArg, Plan, ViewPart, make_plan, run_on_demand
from loopml.features._source import column_types, connect, resolve_source
from loopml.features._source import quote as _q
from loopml.store import Node, Workspace, add_edge, default_workspace

_BATCH = 65_536
_ROW = "__loopml_row"
_TS = "__loopml_ts"


def entity_table(entity_df: Any, ws: Workspace) -> tuple[pa.Table, DatasetVersion | None]:
    """The entity rows as Arrow (and the dataset version they came from, if any)."""
    if isinstance(entity_df, DatasetVersion | str):
        dv = resolve(entity_df, workspace=ws)
        return dv.to_arrow(), dv
    if isinstance(entity_df, pd.DataFrame):
        try:
            return pa.Table.from_pandas(entity_df, preserve_index=False), None
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(f"entity_df cannot be read as Arrow: {exc}") from None
    if isinstance(entity_df, pa.Table):
        return entity_df, None
    raise InvalidInput(
        f"entity_df must be a pandas DataFrame, an Arrow table or a dataset reference, "
        f"not {type(entity_df).__name__}"
    )


def check_entities(table: pa.Table, plan: Plan, timestamp_field: str) -> None:
    """InvalidInput naming a missing key, request field or timestamp column, or a null."""
    names = table.column_names
    if table.num_rows == 0:
        raise InvalidInput("entity_df has no rows")
    for col in [*plan.join_keys, *plan.request_fields, timestamp_field]:
        if col not in names:
            raise InvalidInput(
                f"entity_df has no column {col!r} (columns: {', '.join(names)}); the features "
                f"need join key(s) {plan.join_keys}"
                + (f" and request field(s) {plan.request_fields}" if plan.request_fields else "")
                + f" and the timestamp column {timestamp_field!r}"
            )
    ts = table.schema.field(timestamp_field).type
    if not (pa.types.is_timestamp(ts) or pa.types.is_date(ts)):
        raise InvalidInput(f"entity_df column {timestamp_field!r} is {ts}, not a timestamp")
    for col in [*plan.join_keys, timestamp_field]:
        column = table.column(col)
        if column.null_count:
            first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise InvalidInput(f"entity_df column {col!r} is null in row {first}")
    clash = [c for c in plan.output if c in names]
    if clash:
        raise InvalidInput(f"entity_df already has column(s) {clash} that features would add")


def _step(
    con: duckdb.DuckDBPyConnection, ws: Workspace, i: int, part: ViewPart, ts_field: str
) -> tuple[str, str | None, list[DatasetVersion]]:
    """CTE ``s{i}``: ``s{i-1}`` ASOF-joined to view ``part`` (adding ``__fts{i}``, and
    either the feature columns or, for a Parquet source, the matched row ``__rn{i}``);
    the gathering join for a Parquet source; the versions read."""
    spec = part.view.spec
    where = f"feature view {part.view.name!r}"
    src = resolve_source(ws, spec["source"], where)
    ts_type = column_types(con, src, where)[spec["timestamp_field"]]
    keys = [_q(k) for k in part.join_keys]
    ts = _q(spec["timestamp_field"])
    on = " AND ".join(f"e.{k} = v.{k}" for k in keys)
    # compare in the source's own timestamp type: casting the entity rows is the cheap side
    ets = f"CAST(e.{_q(ts_field)} AS {ts_type})"
    gather = None
    if src.parquet is not None:  # late materialization: sort keys only, fetch values after
        right = (
            f"SELECT {', '.join(keys)}, {ts} AS {_TS}, file_row_number AS __rn "
            f"FROM read_parquet('{src.parquet}', file_row_number=true)"
        )
        picked = f"v.__rn AS __rn{i}"
        values = ", ".join(
            f"{_q(f)} AS {_q(c)}" for f, c in zip(part.features, part.columns, strict=True)
        )
        gather = (
            f"LEFT JOIN (SELECT file_row_number AS __rn, {values} FROM "
            f"read_parquet('{src.parquet}', file_row_number=true)) d{i} ON s.__rn{i} = d{i}.__rn"
        )
    else:
        feats = ", ".join(_q(f) for f in part.features)
        right = f"SELECT {', '.join(keys)}, {ts} AS {_TS}, {feats} FROM ({src.sql})"
        picked = ", ".join(
            f"v.{_q(f)} AS {_q(c)}" for f, c in zip(part.features, part.columns, strict=True)
        )
    step = (
        f"s{i} AS (SELECT e.*, v.{_TS} AS __fts{i}, {picked} FROM s{i - 1} e "
        f"ASOF LEFT JOIN ({right}) v ON {on} AND {ets} >= v.{_TS})"
    )
    return step, gather, list(src.versions)


def join_sql(
    con: duckdb.DuckDBPyConnection,
    ws: Workspace,
    plan: Plan,
    entity_cols: list[str],
    timestamp_field: str,
) -> tuple[str, list[DatasetVersion]]:
    """The ASOF JOIN query over table ``__entities`` and the source versions it reads."""
    steps = ["s0 AS (SELECT * FROM __entities)"]
    gathers: list[str] = []
    sources: list[DatasetVersion] = []
    final: list[str] = []
    ets = _q(timestamp_field)
    for i, part in enumerate(plan.views, start=1):
        step, gather, versions = _step(con, ws, i, part, timestamp_field)
        steps.append(step)
        gathers += [gather] if gather else []
        sources += versions
        ttl = part.ttl_ms
        for c in part.columns:
            if ttl is None:
                final.append(_q(c))
            else:
                oldest = f"CAST(s.{ets} AS TIMESTAMPTZ) - to_milliseconds({ttl})"
                final.append(
                    f"CASE WHEN CAST(s.__fts{i} AS TIMESTAMPTZ) >= {oldest} THEN {_q(c)} END "
                    f"AS {_q(c)}"
                )
    select = ", ".join([*(f"s.{_q(c)}" for c in entity_cols), *final])
    last = f"s{len(plan.views)}"
    query = (
        f"WITH {', '.join(steps)} SELECT {select} FROM {last} s {' '.join(gathers)} "
        f"ORDER BY s.{_ROW}"
    )
    return query, sources


def _batches(
    con: duckdb.DuckDBPyConnection, query: str, plan: Plan, entity_cols: list[str]
) -> Iterator[pa.RecordBatch]:
    try:
        reader = con.sql(query).to_arrow_reader(_BATCH)
    except duckdb.Error as exc:
        raise InvalidInput(f"the point-in-time join failed: {exc}") from None
    hidden = plan.hidden
    for batch in reader:
        if plan.on_demand:
            frame = run_on_demand(plan, batch.to_pandas())[[*entity_cols, *plan.output]]
            batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
        elif hidden:
            batch = batch.drop_columns(hidden)
        yield batch


def point_in_time(
    ws: Workspace, plan: Plan, table: pa.Table, timestamp_field: str
) -> tuple[pa.Table, list[DatasetVersion]]:
    """``table``'s rows, in order, with ``plan``'s features as of each row's time (nothing
    stored), and the source versions read.

    Raises
    ------
    InvalidInput
        A join key, request field or the timestamp column is missing or mistyped.
    """
    check_entities(table, plan, timestamp_field)
    entity_cols = table.column_names
    table = table.append_column(_ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    con = connect()
    try:
        query, sources = join_sql(con, ws, plan, entity_cols, timestamp_field)
        con.register("__entities", table)
        batches = list(_batches(con, query, plan, entity_cols))
    finally:
        con.close()
    empty = table.drop_columns([_ROW]).slice(0, 0)
    return (pa.Table.from_batches(batches) if batches else empty), sources


def training_set(
    entity_df: Any,
    features: FeaturesArg,
    *,
    timestamp_field: str = "event_timestamp",
    name: str = "training_set",
    full_feature_names: bool = False,
    workspace: Workspace | None = None,
) -> DatasetVersion:
    """A point-in-time-correct training set, stored as a version of dataset ``name``.

    Parameters
    ----------
    entity_df : the rows to label with features (pandas, Arrow, or a dataset reference):
        the views' join keys, ``timestamp_field``, request fields, and anything else
        (labels), which is passed through.
    features : ``["view:feature", ...]``, whole views, or a feature service (its name or
        object).
    timestamp_field : the entity rows' time column.
    name : the dataset the result is stored as (the next version of it).
    full_feature_names : name columns ``view__feature`` instead of ``feature``.

    Returns
    -------
    DatasetVersion
        Every entity row, in order, plus one column per feature: the latest value at or
        before the row's timestamp within the view's TTL, else null. Lineage records the
        feature views and the source versions read.

    Examples
    --------
    >>> ts = training_set(labels, ["txn_stats:amount_7d"], name="churn_train")  # doctest: +SKIP
    >>> ts.to_pandas().head()                                                   # doctest: +SKIP
    """
    ws = workspace or default_workspace()
    plan = make_plan(ws, features, full_feature_names=full_feature_names)
    table, entity_version = entity_table(entity_df, ws)
    result, sources = point_in_time(ws, plan, table, timestamp_field)
    unique = {dv.ref: dv for dv in [*sources, *([entity_version] if entity_version else [])]}
    parents = list(unique.values())
    stored = ingest(
        result,
        name,
        normalize_columns=False,
        derived_from=parents,
        description="point-in-time training set",
        workspace=ws,
    )
    with ws.db.write() as conn:
        for part in plan.views:
            add_edge(
                ws.db, conn, Node("feature_view", part.view.ref), stored.lineage_node, "features"
            )
        for odp in plan.on_demand:
            add_edge(
                ws.db, conn, Node("feature_view", odp.view.ref), stored.lineage_node, "features"
            )
        if plan.service is not None:
            node = Node("feature_service", plan.service.ref)
            add_edge(ws.db, conn, node, stored.lineage_node, "features")
    return stored
