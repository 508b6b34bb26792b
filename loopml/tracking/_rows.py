"""The rows one run's writes become, written inside a caller's transaction.

The local :class:`~loopml.tracking.Run` handle and the server (which applies a remote
client's batches) write through these same functions, so a run logged either way is
stored the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.errors import Conflict, NotFound
from loopml.store import MetadataDB, Node, add_edge, now_ms
from loopml.store.schema import artifacts, params, run_tags, runs

MAX_ERROR = 20_000
INSERT_PARAMS = params.insert()
INSERT_RUN = runs.insert()
END_RUN = (
    runs.update()
    .where(runs.c.id == sa.bindparam("run_id"))
    .values(
        status=sa.bindparam("status"),
        end_time=sa.bindparam("end_time"),
        error=sa.bindparam("error"),
    )
)


def param_conflict(run_id: str, key: str, old: str, new: str) -> str:
    """The message for a param logged again with another value."""
    return (
        f"run {run_id}: param {key!r} is already {old!r}; params are immutable, "
        f"cannot set it to {new!r} (start a new run for new parameters)"
    )


def run_exists(conn: Connection, run_id: str) -> bool:
    """Whether run ``run_id`` is stored."""
    return conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is not None


def require_run(conn: Connection, run_id: str) -> None:
    """NotFound unless run ``run_id`` is stored."""
    if not run_exists(conn, run_id):
        raise NotFound(f"no run with id {run_id!r}")


def insert_params(db: MetadataDB, conn: Connection, run_id: str, new: Mapping[str, str]) -> None:
    """Store params; one already stored with another value raises Conflict."""
    rows: list[dict[str, object]] = [
        {"run_id": run_id, "key": k, "value": v} for k, v in new.items()
    ]
    if not rows or db.upsert(conn, params, rows, keys=["run_id", "key"]) == len(rows):
        return
    stored = conn.execute(
        sa.select(params.c.key, params.c.value).where(
            params.c.run_id == run_id, params.c.key.in_(list(new))
        )
    ).all()
    for key, value in stored:
        if value != new[key]:
            raise Conflict(param_conflict(run_id, key, value, new[key]))


def upsert_tags(db: MetadataDB, conn: Connection, run_id: str, values: Mapping[str, str]) -> None:
    """Set (or overwrite) tags."""
    rows = [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()]
    if rows:
        db.upsert(conn, run_tags, rows, keys=["run_id", "key"], update=["value"])


def upsert_artifacts(
    db: MetadataDB, conn: Connection, run_id: str, files: Mapping[str, tuple[str, int]]
) -> None:
    """Record artifacts ``{path: (digest, size)}`` whose blobs are stored already."""
    rows = [
        {"run_id": run_id, "path": rel, "digest": d, "size": n} for rel, (d, n) in files.items()
    ]
    db.upsert(conn, artifacts, rows, keys=["run_id", "path"], update=["digest", "size"])


def add_input(db: MetadataDB, conn: Connection, run_id: str, dataset: Node, role: str) -> None:
    """Record that the run read ``dataset`` as ``role`` (a lineage edge)."""
    add_edge(db, conn, dataset, Node("run", run_id), role)


def end_run(
    db: MetadataDB,
    conn: Connection,
    run_id: str,
    status: str,
    error: str | None = None,
    end_time: int | None = None,
) -> None:
    """Close the run with ``status`` (at ``end_time``, default now)."""
    values = {
        "run_id": run_id,
        "status": status,
        "end_time": now_ms() if end_time is None else end_time,
        "error": error and error[-MAX_ERROR:],
    }
    db.execute_many(conn, END_RUN, [values])


__all__ = [
    "INSERT_PARAMS",
    "INSERT_RUN",
    "MAX_ERROR",
    "add_input",
    "end_run",
    "insert_params",
    "param_conflict",
    "require_run",
    "run_exists",
    "upsert_artifacts",
    "upsert_tags",
]
