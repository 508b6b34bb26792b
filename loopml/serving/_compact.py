"""Compacting the prediction log: the many small Parquet files a busy endpoint writes per
hour (one per flush) rewritten as one file per (deployment, kind, hour).

Each hour's files are read with Arrow, concatenated in the order readers see them, written
as one Parquet blob, and swapped into ``log_partitions`` in one transaction that deletes
exactly the rows that were read (so rows a logger adds meanwhile stay, and a concurrent
compaction of the same hour makes this one step aside). Readers see either the old files
or the new one, never both; the old blobs are deleted after the swap, and a reader that
listed them just before retries with the new index (see ``_predread``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from loopml.errors import InvalidInput, NotFound
from loopml.serving._predlog import HOUR_MS, Kind
from loopml.serving._predread import TimeLike, cache_dir, to_ms
from loopml.store import Workspace, now_ms
from loopml.store.schema import log_partitions

KINDS: tuple[Kind, ...] = ("predictions", "feedback", "errors")


@dataclasses.dataclass(frozen=True)
class CompactionResult:
    """What :func:`compact_predictions` did.

    Attributes
    ----------
    deployment : the deployment.
    hours : (kind, hour) partitions rewritten.
    files_before, files_after : files of those partitions before and after.
    rows : rows rewritten.
    skipped : why partitions were left as they were (clashing column types, or another
        compaction of the same hour finished first).
    """

    deployment: str
    hours: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    skipped: tuple[str, ...] = ()


class _Raced(Exception):
    """The partition's index rows changed between reading and swapping."""


def _hour_name(kind: str, hour: int) -> str:
    start = dt.datetime.fromtimestamp(hour / 1000, dt.UTC).strftime("%Y-%m-%d %H:00")
    return f"{kind} {start} UTC"


def _check(deployment: str, kinds: Sequence[str] | None, min_files: int) -> tuple[Kind, ...]:
    if not isinstance(deployment, str) or not deployment:
        raise InvalidInput(f"deployment must be a non-empty string, not {deployment!r}")
    if isinstance(min_files, bool) or not isinstance(min_files, int) or min_files < 2:
        raise InvalidInput(f"min_files must be an integer of at least 2, not {min_files!r}")
    if kinds is None:
        return KINDS
    if isinstance(kinds, str):
        kinds = [kinds]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InvalidInput(f"unknown log kind(s) {unknown}; use {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in kinds)


def compact_predictions(
    ws: Workspace,
    deployment: str,
    *,
    kinds: Sequence[str] | None = None,
    before: TimeLike | int = None,
    min_files: int = 2,
    delete_old: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> CompactionResult:
    """Rewrite each hour of ``deployment``'s log that has several files as one file.

    Parameters
    ----------
    ws : the workspace.
    deployment : deployment (or served model) name.
    kinds : which logs (``predictions``, ``feedback``, ``errors``); default all.
    before : only hours that ended before this time (a datetime, ISO string, duration
        back from now, or ms since the epoch); default every hour, the current one too.
    min_files : compact an hour only when it has at least this many files.
    delete_old : delete the replaced blobs once no index row refers to them.
    progress : called with (hours done, hours to do) after each hour.

    Returns
    -------
    CompactionResult

    Raises
    ------
    InvalidInput
        A malformed argument.
    NotFound
        ``deployment`` has no prediction log.
    """
    chosen = _check(deployment, kinds, min_files)
    if isinstance(before, bool):
        raise InvalidInput(f"before must be a time, not {before!r}")
    until = before if isinstance(before, int) else to_ms(before, "before")
    t = log_partitions
    query = (
        sa.select(t.c.kind, t.c.hour)
        .where(t.c.deployment == deployment, t.c.kind.in_(chosen))
        .group_by(t.c.kind, t.c.hour)
        .having(sa.func.count() >= min_files)
        .order_by(t.c.hour, t.c.kind)
    )
    if until is not None:
        query = query.where(t.c.hour + HOUR_MS <= until)
    with ws.db.read() as conn:
        todo = [(str(k), int(h)) for k, h in conn.execute(query)]
        if not todo:
            known = conn.execute(sa.select(t.c.id).where(t.c.deployment == deployment).limit(1))
            if known.first() is None:
                raise NotFound(f"deployment {deployment!r} has no prediction log")
    result = CompactionResult(deployment)
    for i, (kind, hour) in enumerate(todo, 1):
        result = _compact_hour(ws, deployment, kind, hour, delete_old, result)
        if progress is not None:
            progress(i, len(todo))
    return result


def _compact_hour(
    ws: Workspace,
    deployment: str,
    kind: str,
    hour: int,
    delete_old: bool,
    result: CompactionResult,
) -> CompactionResult:
    t = log_partitions
    where = (t.c.deployment == deployment, t.c.kind == kind, t.c.hour == hour)
    with ws.db.read() as conn:
        parts = conn.execute(
            sa.select(t.c.id, t.c.digest, t.c.num_rows, t.c.min_ts, t.c.max_ts)
            .where(*where)
            .order_by(t.c.id)
        ).all()
    if len(parts) < 2:
        return result
    name = _hour_name(kind, hour)
    cache = cache_dir(ws)
    try:
        tables = [pq.read_table(ws.blobs.local_path(p.digest, cache)) for p in parts]
    except (NotFound, FileNotFoundError):  # deleted by a compaction that swapped first
        skipped = f"{name}: its files changed while being read (another compaction)"
        return dataclasses.replace(result, skipped=(*result.skipped, skipped))
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        return dataclasses.replace(
            result, skipped=(*result.skipped, f"{name}: the files' columns clash ({exc})")
        )
    expected = sum(p.num_rows for p in parts)
    if table.num_rows != expected:
        raise InvalidInput(
            f"{name}: the files hold {table.num_rows} rows but the index says {expected}"
        )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    digest = ws.blobs.put_bytes(sink.getvalue().to_pybytes())
    ids = [p.id for p in parts]
    try:
        with ws.db.write() as conn:
            gone = conn.execute(t.delete().where(t.c.id.in_(ids))).rowcount
            if gone != len(ids):
                raise _Raced
            conn.execute(
                t.insert(),
                {
                    "deployment": deployment,
                    "kind": kind,
                    "hour": hour,
                    "digest": digest,
                    "num_rows": table.num_rows,
                    "min_ts": min(p.min_ts for p in parts),
                    "max_ts": max(p.max_ts for p in parts),
                    "created_at": now_ms(),
                },
            )
    except _Raced:
        skipped = f"{name}: another compaction rewrote it first"
        return dataclasses.replace(result, skipped=(*result.skipped, skipped))
    if delete_old:
        _delete_unreferenced(ws, {p.digest for p in parts} - {digest})
    return dataclasses.replace(
        result,
        hours=result.hours + 1,
        files_before=result.files_before + len(parts),
        files_after=result.files_after + 1,
        rows=result.rows + table.num_rows,
    )


def _delete_unreferenced(ws: Workspace, digests: set[str]) -> None:
    if not digests:
        return
    t = log_partitions
    with ws.db.read() as conn:
        used = set(conn.execute(sa.select(t.c.digest).where(t.c.digest.in_(digests))).scalars())
    for digest in sorted(digests - used):
        ws.blobs.delete(digest)


__all__ = ["CompactionResult", "compact_predictions"]
