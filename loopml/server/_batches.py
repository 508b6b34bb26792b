"""Applying a client's writes: batches of per-run segments, each batch in one transaction.

A segment holds one run's creation, params, tags, metric series, artifacts (blobs already
uploaded), dataset inputs and end, applied in that order inside a savepoint: a segment
the store refuses (a re-logged param, an unknown run) is reported and the rest of the
batch still lands. The batch id is stored in the same transaction, so a batch sent again
after a lost answer is recognised and not applied twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from loopml.errors import LoopmlError, NotFound
from loopml.server._errors import describe
from loopml.server._users import ANONYMOUS, Principal
from loopml.store import Node, Workspace, now_ms
from loopml.store.schema import applied_batches, experiments, latest_metrics, runs
from loopml.tracking._experiments import check_name
from loopml.tracking._rows import (
    add_input,
    end_run,
    insert_params,
    require_run,
    run_exists,
    upsert_artifacts,
    upsert_tags,
)
from loopml.tracking._writer import Series, write_series

RUN_ID = r"^[0-9a-f]{32}$"
MAX_TIME_MS = 9_223_372_036_853  # 2262-04-11, the latest millisecond pandas' timestamps hold
Millis = Annotated[int, Field(ge=0, le=MAX_TIME_MS)]
Authorize = Callable[[Principal, str, int | None], None]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeriesBody(_Body):
    step: list[int]
    value: list[float | None]
    timestamp: list[Millis]

    @model_validator(mode="after")
    def _same_lengths(self) -> SeriesBody:
        if not len(self.step) == len(self.value) == len(self.timestamp):
            raise ValueError("step, value and timestamp must be lists of one length")
        return self


class Point(_Body):
    key: str = Field(min_length=1, max_length=250)
    value: float | None
    step: int = 0
    timestamp: int | None = Field(default=None, ge=0, le=MAX_TIME_MS)


class Points(_Body):
    metrics: list[Point] = Field(max_length=1_000_000)


class CreateBody(_Body):
    experiment_id: int
    name: str = Field(min_length=1, max_length=256)
    start_time: int = Field(ge=0, le=MAX_TIME_MS)
    parent_id: str | None = Field(default=None, pattern=RUN_ID)
    source_commit: str | None = Field(default=None, max_length=64)
    source_entry_point: str | None = None


class ArtifactRef(_Body):
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class InputRef(_Body):
    dataset: str = Field(pattern=r"^[^@\s]+@\S+$")
    role: str = Field(default="training", min_length=1, max_length=64)


class EndBody(_Body):
    status: Literal["FINISHED", "FAILED", "KILLED"]
    error: str | None = None
    end_time: int | None = Field(default=None, ge=0, le=MAX_TIME_MS)


class Segment(_Body):
    run_id: str = Field(pattern=RUN_ID)
    create: CreateBody | None = None
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    metrics: dict[str, SeriesBody] = {}
    artifacts: dict[str, ArtifactRef] = {}
    inputs: list[InputRef] = []
    end: EndBody | None = None


class LogBatch(_Body):
    batch_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    ops: list[Segment] = Field(max_length=100_000)


def _nan(values: list[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


class BatchApplier:
    """Applies segments and batches to one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    async def apply(
        self, batch: LogBatch, who: Principal = ANONYMOUS, authorize: Authorize | None = None
    ) -> dict[str, Any]:
        """Apply ``batch``; ``{"applied", "duplicate", "errors": [{"run_id", "error"}]}``.

        ``authorize(who, run_id, experiment_id)`` raises for a segment ``who`` may not write.
        """
        return await run_in_threadpool(self._apply, batch, False, who, authorize)

    async def apply_one(self, segment: Segment) -> None:
        """Apply one segment on its own; its error is raised, not reported."""
        answer = await run_in_threadpool(self._apply, LogBatch(ops=[segment]), True)
        assert not answer["errors"]

    def _apply(
        self,
        batch: LogBatch,
        strict: bool = False,
        who: Principal = ANONYMOUS,
        authorize: Authorize | None = None,
    ) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        with self.ws.db.write() as conn:
            if batch.batch_id is not None:
                seen = sa.select(applied_batches.c.id).where(applied_batches.c.id == batch.batch_id)
                if conn.execute(seen).first() is not None:
                    return {"applied": 0, "duplicate": True, "errors": []}
            for seg in batch.ops:
                try:
                    if authorize is not None:
                        exp_id = None if seg.create is None else seg.create.experiment_id
                        authorize(who, seg.run_id, exp_id)
                    with conn.begin_nested():
                        self._segment(conn, seg)
                except LoopmlError as exc:
                    if strict:
                        raise
                    errors.append({"run_id": seg.run_id, **describe(exc)[1]})
            if batch.batch_id is not None:
                row = {"id": batch.batch_id, "applied_at": now_ms()}
                conn.execute(applied_batches.insert().values(row))
        return {"applied": len(batch.ops) - len(errors), "duplicate": False, "errors": errors}

    def _segment(self, conn: Connection, seg: Segment) -> None:
        db, run_id = self.ws.db, seg.run_id
        if seg.create is not None and not run_exists(conn, run_id):
            self._create(conn, run_id, seg.create)
        else:
            require_run(conn, run_id)
        if seg.params:
            insert_params(db, conn, run_id, _names(seg.params, "param key"))
        if seg.tags:
            upsert_tags(db, conn, run_id, _names(seg.tags, "tag key"))
        if seg.metrics:
            pending = {
                (run_id, check_name(key, "metric key", max_len=250)): Series(
                    s.step, _nan(s.value), s.timestamp
                )
                for key, s in seg.metrics.items()
                if s.step
            }
            if pending:
                write_series(db, conn, pending)
        if seg.artifacts:
            for path, artifact in seg.artifacts.items():
                if not self.ws.blobs.exists(artifact.digest):
                    raise NotFound(f"artifact {path!r}: blob {artifact.digest} was not uploaded")
            files = {p.strip("/"): (r.digest, r.size) for p, r in seg.artifacts.items()}
            upsert_artifacts(db, conn, run_id, files)
        for ref in seg.inputs:
            add_input(db, conn, run_id, Node("dataset_version", ref.dataset), ref.role)
        if seg.end is not None:
            end_run(db, conn, run_id, seg.end.status, seg.end.error, seg.end.end_time)

    @staticmethod
    def _create(conn: Connection, run_id: str, create: CreateBody) -> None:
        found = sa.select(experiments.c.id).where(experiments.c.id == create.experiment_id)
        if conn.execute(found).first() is None:
            raise NotFound(f"no experiment with id {create.experiment_id}")
        if create.parent_id is not None and not run_exists(conn, create.parent_id):
            raise NotFound(f"parent run {create.parent_id!r} does not exist")
        row = {"id": run_id, "status": "RUNNING", **create.model_dump()}
        conn.execute(runs.insert().values(row))

    def latest_steps(self, run_id: str) -> dict[str, int]:
        """The step of each metric's latest point in run ``run_id``."""
        with self.ws.db.read() as conn:
            rows = conn.execute(
                sa.select(latest_metrics.c.key, latest_metrics.c.step).where(
                    latest_metrics.c.run_id == run_id
                )
            ).all()
        return {k: int(v) for k, v in rows}


def _names(values: dict[str, str], what: str) -> dict[str, str]:
    for key in values:
        check_name(key, what, max_len=250)
    return values


__all__ = [
    "MAX_TIME_MS",
    "ArtifactRef",
    "BatchApplier",
    "InputRef",
    "LogBatch",
    "Point",
    "Points",
    "Segment",
    "SeriesBody",
]
