"""Pipeline and step runs in the metadata DB: writing them as a run goes, reading them back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.errors import NotFound
from loopml.store import Workspace, now_ms
from loopml.store.schema import pipeline_runs, step_runs

MAX_ERROR = 20_000


@dataclass(frozen=True)
class PipelineRunRecord:
    """A stored pipeline run."""

    id: str
    pipeline: str
    source: str
    params: dict[str, Any]
    status: str
    executor: str
    run_id: str | None
    schedule: str | None
    slot: dt.datetime | None
    created_at: dt.datetime
    ended_at: dt.datetime | None
    error: str | None


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def insert_pipeline_run(ws: Workspace, row: Mapping[str, Any]) -> None:
    """Record a new pipeline run."""
    with ws.db.write() as conn:
        conn.execute(pipeline_runs.insert().values(**row, created_at=now_ms()))


def update_pipeline_run(ws: Workspace, run_id: str, **values: Any) -> None:
    """Change columns of a pipeline run."""
    if "error" in values and values["error"] is not None:
        values["error"] = values["error"][-MAX_ERROR:]
    with ws.db.write() as conn:
        conn.execute(pipeline_runs.update().where(pipeline_runs.c.id == run_id).values(**values))


def save_step(
    ws: Workspace, conn: Connection, pipeline_run_id: str, node: str, **values: Any
) -> None:
    """Insert (or replace) the row of step ``node`` of a pipeline run, in transaction
    ``conn``."""
    if values.get("error") is not None:
        values["error"] = values["error"][-MAX_ERROR:]
    row = {"pipeline_run_id": pipeline_run_id, "node": node, **values}
    ws.db.upsert(conn, step_runs, [row], keys=["pipeline_run_id", "node"], update=list(values))


def update_step(conn: Connection, pipeline_run_id: str, node: str, **values: Any) -> None:
    """Change columns of the existing row of step ``node``, in transaction ``conn``."""
    if values.get("error") is not None:
        values["error"] = values["error"][-MAX_ERROR:]
    t = step_runs
    conn.execute(
        t.update().where(t.c.pipeline_run_id == pipeline_run_id, t.c.node == node).values(values)
    )


def cached_output(ws: Workspace, key: str) -> tuple[str, str] | None:
    """(kind, digest) of a finished step with cache key ``key`` whose blob is stored."""
    t = step_runs
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(t.c.output_kind, t.c.output_digest)
            .where(t.c.cache_key == key, t.c.status == "FINISHED", t.c.output_digest.isnot(None))
            .order_by(t.c.ended_at.desc())
            .limit(3)
        ).all()
    for kind, digest in rows:
        if ws.blobs.exists(digest):
            return str(kind), str(digest)
    return None


def get_pipeline_run(ws: Workspace, run_id: str) -> PipelineRunRecord:
    """One pipeline run, or NotFound."""
    with ws.db.read() as conn:
        r = conn.execute(sa.select(pipeline_runs).where(pipeline_runs.c.id == run_id)).first()
    if r is None:
        raise NotFound(f"no pipeline run with id {run_id!r}")
    return _record(r)


def _record(r: Any) -> PipelineRunRecord:
    created = _time(r.created_at)
    assert created is not None
    return PipelineRunRecord(
        id=r.id,
        pipeline=r.pipeline,
        source=r.source,
        params=dict(r.params),
        status=r.status,
        executor=r.executor,
        run_id=r.run_id,
        schedule=r.schedule,
        slot=_time(r.slot),
        created_at=created,
        ended_at=_time(r.ended_at),
        error=r.error,
    )


def list_pipeline_runs(
    ws: Workspace, pipeline: str | None = None, *, limit: int = 50
) -> list[PipelineRunRecord]:
    """The newest pipeline runs first (of one pipeline, or of all)."""
    query = sa.select(pipeline_runs).order_by(pipeline_runs.c.created_at.desc()).limit(limit)
    if pipeline is not None:
        query = query.where(pipeline_runs.c.pipeline == pipeline)
    with ws.db.read() as conn:
        return [_record(r) for r in conn.execute(query).all()]


STEP_COLUMNS = [
    "node",
    "step",
    "status",
    "cache_hit",
    "attempts",
    "started_at",
    "ended_at",
    "run_id",
    "cache_key",
    "output_kind",
    "output_digest",
    "error",
]


def step_rows(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    """The steps of a pipeline run as dicts of :data:`STEP_COLUMNS` (times in epoch ms),
    in the order they started."""
    t = step_runs
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(*(t.c[c] for c in STEP_COLUMNS))
            .where(t.c.pipeline_run_id == run_id)
            .order_by(sa.func.coalesce(t.c.started_at, t.c.ended_at), t.c.node)
        ).all()
    return [{**r._mapping, "cache_hit": bool(r.cache_hit)} for r in rows]


def step_table(ws: Workspace, run_id: str) -> pd.DataFrame:
    """The steps of a pipeline run, in the order they started."""
    frame = pd.DataFrame(step_rows(ws, run_id), columns=STEP_COLUMNS)
    for col in ("started_at", "ended_at"):
        frame[col] = pd.to_datetime(frame[col], unit="ms", utc=True)
    frame["cache_hit"] = frame["cache_hit"].astype(bool)
    return frame


def finished_steps(ws: Workspace, run_id: str) -> dict[str, tuple[str, str]]:
    """``{node: (kind, digest)}`` of the steps of a run that finished."""
    t = step_runs
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(t.c.node, t.c.output_kind, t.c.output_digest).where(
                t.c.pipeline_run_id == run_id, t.c.status == "FINISHED"
            )
        ).all()
    return {r.node: (r.output_kind, r.output_digest) for r in rows}
