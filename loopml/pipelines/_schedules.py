"""Cron schedules for pipelines, the scheduler that runs them, and backfills.

A slot is one firing time of a schedule's cron expression (UTC). Before running a slot a
scheduler claims it by inserting ``(schedule, slot)`` into ``schedule_slots``, whose
primary key lets exactly one insert win: however many schedulers (or backfills) race, each
slot runs once. A pipeline with a parameter named ``slot`` receives the slot's time.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.engine import Connection

from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.pipelines._loading import load_pipeline
from loopml.pipelines._pipeline import PipelineFailed, PipelineRun
from loopml.pipelines._runner import EventHook
from loopml.store import Workspace, now_ms
from loopml.store.schema import pipeline_schedules, schedule_slots

_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,199}$")
MAX_BACKFILL = 10_000
DEFAULT = "default"  # a schedule's executor: the pipeline's own


@dataclass(frozen=True)
class Schedule:
    """A pipeline run on a cron expression."""

    name: str
    source: str
    cron: str
    params: dict[str, Any]
    executor: str
    enabled: bool
    start_at: dt.datetime
    created_at: dt.datetime


def _utc(value: dt.datetime | str | None, what: str) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{what}: {value!r} is not an ISO date/time") from None
    if not isinstance(value, dt.datetime):
        raise InvalidInput(f"{what}: expected a datetime, got {value!r}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def check_cron(cron: object) -> str:
    """A valid 5-field cron expression, or InvalidInput."""
    if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise InvalidInput(
            f"cron {cron!r} is not a cron expression (5 fields: minute hour day month weekday)"
        )
    return cron


def slots_between(cron: str, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """The cron's firing times in ``(after, until]`` (UTC)."""
    it = croniter(cron, after)
    found: list[dt.datetime] = []
    while len(found) <= MAX_BACKFILL:
        nxt = it.get_next(dt.datetime)
        if nxt > until:
            return found
        found.append(nxt)
    raise InvalidInput(f"more than {MAX_BACKFILL} slots in that range: narrow it")


def add_schedule(
    ws: Workspace,
    name: str,
    source: str,
    cron: str,
    *,
    params: dict[str, Any] | None = None,
    executor: str | None = None,
    start_at: dt.datetime | str | None = None,
) -> Schedule:
    """Schedule the pipeline at ``source`` (``module:name``, ``file.py:name`` or a recipe)
    on ``cron``; its first slot is the first firing after ``start_at`` (default now).
    ``executor`` default: the pipeline's own."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"schedule name {name!r}: use letters, digits, '_', '.', '-'")
    check_cron(cron)
    if executor not in (None, "process", "thread", "ray"):
        raise InvalidInput(f"executor must be 'process', 'thread' or 'ray', got {executor!r}")
    found = load_pipeline(source)
    params = dict(params or {})
    check = dict(params)
    if "slot" in found.signature.parameters:
        check["slot"] = dt.datetime.now(dt.UTC).isoformat()
    found.validate(check)  # wrong parameters fail now, not at 3 a.m.
    row = {
        "name": name,
        "source": source,
        "cron": cron,
        "params": params,
        "executor": executor or DEFAULT,
        "enabled": True,
        "start_at": _ms(_utc(start_at, "start")),
        "created_at": now_ms(),
    }
    with ws.db.write() as conn:
        if not _insert_once(ws, conn, pipeline_schedules, row, ["name"]):
            raise AlreadyExists(f"a schedule named {name!r} exists already")
    return get_schedule(ws, name)


def _schedule(r: Any) -> Schedule:
    return Schedule(
        name=r.name,
        source=r.source,
        cron=r.cron,
        params=dict(r.params),
        executor=r.executor,
        enabled=bool(r.enabled),
        start_at=_time(r.start_at),
        created_at=_time(r.created_at),
    )


def get_schedule(ws: Workspace, name: str) -> Schedule:
    """One schedule, or NotFound."""
    with ws.db.read() as conn:
        r = conn.execute(sa.select(pipeline_schedules).where(pipeline_schedules.c.name == name))
        found = r.first()
    if found is None:
        raise NotFound(f"no schedule named {name!r}")
    return _schedule(found)


def list_schedules(ws: Workspace) -> list[Schedule]:
    """Every schedule, by name."""
    with ws.db.read() as conn:
        rows = conn.execute(sa.select(pipeline_schedules).order_by(pipeline_schedules.c.name))
        return [_schedule(r) for r in rows]


def remove_schedule(ws: Workspace, name: str) -> None:
    """Delete a schedule and its claimed slots (its pipeline runs stay)."""
    get_schedule(ws, name)
    with ws.db.write() as conn:
        conn.execute(schedule_slots.delete().where(schedule_slots.c.schedule == name))
        conn.execute(pipeline_schedules.delete().where(pipeline_schedules.c.name == name))


def claim(ws: Workspace, schedule: str, slot: dt.datetime, owner: str) -> bool:
    """Claim a slot; True for exactly one caller per (schedule, slot), ever."""
    row = {"schedule": schedule, "slot": _ms(slot), "claimed_by": owner, "claimed_at": now_ms()}
    with ws.db.write() as conn:
        return _insert_once(ws, conn, schedule_slots, row, ["schedule", "slot"])


def _insert_once(
    ws: Workspace, conn: Connection, table: sa.Table, row: dict[str, Any], keys: list[str]
) -> bool:
    """Insert ``row`` unless its key exists; True if this call inserted it (told by
    RETURNING: drivers do not all report a row count for ON CONFLICT DO NOTHING)."""
    stmt = ws.db.upsert_statement(table, keys=keys)
    returning = stmt.returning(table.c[keys[0]])
    return conn.execute(returning, row).first() is not None


def last_slot(ws: Workspace, schedule: Schedule) -> dt.datetime:
    """The newest claimed slot of a schedule, else its start."""
    with ws.db.read() as conn:
        ms = conn.execute(
            sa.select(sa.func.max(schedule_slots.c.slot)).where(
                schedule_slots.c.schedule == schedule.name
            )
        ).scalar()
    return schedule.start_at if ms is None else max(_time(ms), schedule.start_at)


def run_slot(
    ws: Workspace,
    schedule: Schedule,
    slot: dt.datetime,
    owner: str,
    *,
    on_event: EventHook | None = None,
) -> PipelineRun | None:
    """Claim ``slot`` and run the pipeline for it; None if another claimed it first.
    A failed run is returned FAILED (resume it as any other)."""
    if not claim(ws, schedule.name, slot, owner):
        return None
    found = load_pipeline(schedule.source)
    params = dict(schedule.params)
    if "slot" in found.signature.parameters:
        params["slot"] = slot.isoformat()
    try:
        run = found.run(
            params,
            executor=None if schedule.executor == DEFAULT else schedule.executor,
            workspace=ws,
            on_event=on_event,
            schedule=schedule.name,
            slot=_ms(slot),
            raise_on_failure=False,
        )
    except PipelineFailed as exc:  # pragma: no cover - raise_on_failure=False
        run = exc.run
    with ws.db.write() as conn:
        conn.execute(
            schedule_slots.update()
            .where(schedule_slots.c.schedule == schedule.name, schedule_slots.c.slot == _ms(slot))
            .values(pipeline_run_id=run.id)
        )
    return run


def backfill(
    ws: Workspace,
    name: str,
    start: dt.datetime | str,
    end: dt.datetime | str,
    *,
    owner: str | None = None,
    on_event: EventHook | None = None,
) -> list[PipelineRun]:
    """Run every slot of schedule ``name`` in ``[start, end]`` not run yet, oldest first."""
    schedule = get_schedule(ws, name)
    first, last = _utc(start, "start"), _utc(end, "end")
    if last < first:
        raise InvalidInput(f"backfill: end {last.isoformat()} is before start {first.isoformat()}")
    slots = slots_between(schedule.cron, first - dt.timedelta(microseconds=1), last)
    who = owner or default_owner()
    runs = [run_slot(ws, schedule, s, who, on_event=on_event) for s in slots]
    return [r for r in runs if r is not None]


def default_owner() -> str:
    """``host:pid``: who claimed a slot."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Scheduler:
    """Runs the due slots of every enabled schedule: ``tick`` once, or ``run`` until stopped.

    Slots missed while no scheduler ran are not all run again: at most ``catch_up`` of the
    newest ones per tick (use :func:`backfill` for a range).
    """

    def __init__(self, ws: Workspace, *, owner: str | None = None, catch_up: int = 1) -> None:
        if type(catch_up) is not int or catch_up < 1:
            raise InvalidInput(f"catch_up must be a positive integer, got {catch_up!r}")
        self.ws = ws
        self.owner = owner or default_owner()
        self.catch_up = catch_up
        self.stopped = threading.Event()

    def tick(
        self, now: dt.datetime | None = None, *, on_event: EventHook | None = None
    ) -> list[PipelineRun]:
        """Run what is due at ``now`` (default: the current time); return the runs made."""
        at = _utc(now, "now")
        runs: list[PipelineRun] = []
        for schedule in list_schedules(self.ws):
            if not schedule.enabled:
                continue
            due = slots_between(schedule.cron, last_slot(self.ws, schedule), at)
            for slot in due[-self.catch_up :]:
                run = run_slot(self.ws, schedule, slot, self.owner, on_event=on_event)
                if run is not None:
                    runs.append(run)
        return runs

    def run(self, interval: float = 30.0, *, on_event: EventHook | None = None) -> None:
        """Tick every ``interval`` seconds until :meth:`stop`."""
        if interval <= 0:
            raise InvalidInput(f"interval must be positive, got {interval!r}")
        while not self.stopped.is_set():
            self.tick(on_event=on_event)
            self.stopped.wait(interval)

    def stop(self) -> None:
        """Make :meth:`run` return after its current tick."""
        self.stopped.set()
