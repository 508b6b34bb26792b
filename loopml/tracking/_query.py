"""Reading runs back: one run's record, a metric's full history, a run's artifacts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import sqlalchemy as sa

from loopml.errors import InvalidInput, NotFound
from loopml.store import Workspace
from loopml.store.schema import artifacts, experiments, latest_metrics, metrics, params, run_tags
from loopml.store.schema import runs as runs_table
from loopml.tracking._experiments import to_datetime
from loopml.tracking._remote import RemoteSender
from loopml.tracking._writer import MetricWriter


@dataclass(frozen=True)
class RunRecord:
    """Everything recorded about one run."""

    id: str
    experiment: str
    name: str
    status: str
    start_time: datetime | None
    end_time: datetime | None
    parent_id: str | None
    source_commit: str | None
    source_entry_point: str | None
    error: str | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def flush(ws: Workspace) -> None:
    """Write this process's buffered metric points and queued runs to the workspace now.

    Reads call it first, so a process always sees its own writes.
    """
    sink = ws.existing(RemoteSender) if ws.remote is not None else ws.existing(MetricWriter)
    if sink is not None:
        sink.flush()


def resolve_run_id(ws: Workspace, id_or_prefix: str) -> str:
    """The full id of the run whose id is ``id_or_prefix`` or starts with it (≥ 4 characters)."""
    text = id_or_prefix.strip().lower()
    if len(text) < 4 or not all(c in "0123456789abcdef" for c in text):
        raise InvalidInput(
            f"{id_or_prefix!r} is not a run id (32 hex characters, or a prefix of at least 4)"
        )
    if ws.remote is not None:
        return str(ws.remote.get(f"/api/v1/runs/{text}")["run_id"])
    with ws.db.read() as conn:
        found = (
            conn.execute(
                sa.select(runs_table.c.id).where(runs_table.c.id.startswith(text)).limit(3)
            )
            .scalars()
            .all()
        )
    if not found:
        raise NotFound(f"no run with id {id_or_prefix!r}")
    if len(found) > 1:
        raise InvalidInput(
            f"run id prefix {id_or_prefix!r} is ambiguous "
            f"({', '.join(found[:2])}, ...): give more characters"
        )
    return str(found[0])


def get_run(ws: Workspace, run_id: str) -> RunRecord:
    """The run with id ``run_id`` and its params, latest metrics and tags."""
    flush(ws)
    if ws.remote is not None:
        return _record_from_json(ws.remote.get(f"/api/v1/runs/{quote(run_id, safe='')}"))
    r = runs_table
    with ws.db.read() as conn:
        row = conn.execute(
            sa.select(r, experiments.c.name.label("experiment"))
            .join(experiments, experiments.c.id == r.c.experiment_id)
            .where(r.c.id == run_id)
        ).first()
        if row is None:
            raise NotFound(f"no run with id {run_id!r}")

        def pairs(table: sa.Table, value: sa.ColumnElement[object]) -> dict[str, object]:
            q = sa.select(table.c.key, value).where(table.c.run_id == run_id)
            return dict(conn.execute(q).all())

        p = pairs(params, params.c.value)
        m = pairs(latest_metrics, latest_metrics.c.value)
        t = pairs(run_tags, run_tags.c.value)
    return RunRecord(
        id=row.id,
        experiment=row.experiment,
        name=row.name,
        status=row.status,
        start_time=to_datetime(row.start_time),
        end_time=to_datetime(row.end_time),
        parent_id=row.parent_id,
        source_commit=row.source_commit,
        source_entry_point=row.source_entry_point,
        error=row.error,
        params={k: str(v) for k, v in p.items()},
        metrics={k: float("nan") if v is None else float(v) for k, v in m.items()},  # type: ignore[arg-type]
        tags={k: str(v) for k, v in t.items()},
    )


def _record_from_json(body: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=body["run_id"],
        experiment=body["experiment"],
        name=body["name"],
        status=body["status"],
        start_time=to_datetime(body["start_time"]),
        end_time=to_datetime(body["end_time"]),
        parent_id=body["parent_run_id"],
        source_commit=body["source_commit"],
        source_entry_point=body["source_entry_point"],
        error=body["error"],
        params=body["params"],
        metrics={k: float(v) for k, v in body["metrics"].items()},
        tags=body["tags"],
    )


def _history_frame(steps: Any, values: Any, stamps: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": np.asarray(steps, dtype="i8"),
            "value": np.asarray(values, dtype="f8"),
            "timestamp": pd.to_datetime(np.asarray(stamps, dtype="i8"), unit="ms", utc=True),
        }
    )


def get_metric_history(ws: Workspace, run_id: str, key: str) -> pd.DataFrame:
    """Every point of metric ``key`` in run ``run_id``: columns step, value, timestamp.

    Points are ordered by step (stable: points logged at one step keep their order).
    NotFound names the run's metric keys if ``key`` has none.
    """
    flush(ws)
    if ws.remote is not None:
        body = ws.remote.get(f"/api/v1/runs/{run_id}/metrics/{quote(key, safe='')}")
        points = [float(v) for v in body["value"]]
        return _history_frame(body["step"], points, body["timestamp"])
    with ws.db.read() as conn:
        chunks = conn.execute(
            sa.select(metrics.c.steps, metrics.c["values"], metrics.c.timestamps)
            .where(metrics.c.run_id == run_id, metrics.c.key == key)
            .order_by(metrics.c.id)
        ).all()
        if not chunks:
            if conn.execute(sa.select(runs_table.c.id).where(runs_table.c.id == run_id)).first():
                keys = conn.execute(
                    sa.select(latest_metrics.c.key).where(latest_metrics.c.run_id == run_id)
                ).scalars()
                raise NotFound(
                    f"run {run_id} has no metric {key!r} "
                    f"(its metrics: {', '.join(sorted(keys)) or 'none'})"
                )
            raise NotFound(f"no run with id {run_id!r}")
    steps = np.concatenate([np.frombuffer(c.steps, dtype="<i8") for c in chunks])
    values = np.concatenate([np.frombuffer(c.values, dtype="<f8") for c in chunks])
    stamps = np.concatenate([np.frombuffer(c.timestamps, dtype="<i8") for c in chunks])
    order = np.argsort(steps, kind="stable")
    return _history_frame(steps[order], values[order], stamps[order])


def list_artifacts(ws: Workspace, run_id: str) -> pd.DataFrame:
    """The run's artifacts: columns path, size, digest."""
    if ws.remote is not None:
        flush(ws)
        found = ws.remote.get(f"/api/v1/runs/{run_id}/artifacts")["artifacts"]
        return pd.DataFrame(found, columns=["path", "size", "digest"])
    get_run(ws, run_id)  # NotFound for an unknown run
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(artifacts.c.path, artifacts.c.size, artifacts.c.digest)
            .where(artifacts.c.run_id == run_id)
            .order_by(artifacts.c.path)
        ).all()
    return pd.DataFrame(rows, columns=["path", "size", "digest"])


def download_artifacts(
    ws: Workspace, run_id: str, path: str = "", dest: str | os.PathLike[str] = "."
) -> Path:
    """Copy artifact ``path`` (a file, or every file under a folder; "" = all) into ``dest``.

    Returns the local path of the file or folder. Content is verified against its sha256.
    """
    table = list_artifacts(ws, run_id)
    prefix = path.strip("/")
    exact = table[table.path == prefix]
    chosen = (
        exact if len(exact) else table[table.path.str.startswith(prefix + "/" if prefix else "")]
    )
    if chosen.empty:
        raise NotFound(
            f"run {run_id} has no artifact {path!r} (artifacts: {', '.join(table.path) or 'none'})"
        )
    root = Path(dest)
    for rel, digest in zip(chosen.path, chosen.digest, strict=True):
        ws.blobs.get_file(digest, root / rel)
    return root / prefix if prefix else root
