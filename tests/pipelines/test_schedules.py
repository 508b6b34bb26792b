"""Schedules: cron slots, the scheduler, backfills, and exactly one run per slot with two
schedulers racing on the same database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

import loopml
from loopml import pipelines
from loopml.store import Workspace
from loopml.store.schema import schedule_slots

from . import steps

SOURCE = f"{steps.__name__}:hourly"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_schedules_are_validated(sqlite_ws: Workspace, tmp_path: Path) -> None:
    params = {"folder": str(tmp_path / "slots")}
    with pytest.raises(loopml.InvalidInput, match="is not a cron expression"):
        pipelines.add_schedule(sqlite_ws, "h", SOURCE, "every hour", params=params)
    with pytest.raises(loopml.InvalidInput, match="parameter 'folder': Field required"):
        pipelines.add_schedule(sqlite_ws, "h", SOURCE, "0 * * * *")
    with pytest.raises(loopml.InvalidInput, match="schedule name"):
        pipelines.add_schedule(sqlite_ws, "no spaces", SOURCE, "0 * * * *", params=params)
    with pytest.raises(loopml.InvalidInput, match="not an ISO date"):
        pipelines.add_schedule(sqlite_ws, "h", SOURCE, "0 * * * *", params=params, start_at="x")
    made = pipelines.add_schedule(sqlite_ws, "h", SOURCE, "0 * * * *", params=params, start_at=T0)
    assert made.start_at == T0 and pipelines.list_schedules(sqlite_ws) == [made]
    with pytest.raises(loopml.AlreadyExists):
        pipelines.add_schedule(sqlite_ws, "h", SOURCE, "0 * * * *", params=params)
    pipelines.remove_schedule(sqlite_ws, "h")
    with pytest.raises(loopml.NotFound):
        pipelines.get_schedule(sqlite_ws, "h")


def test_the_scheduler_runs_due_slots_once(sqlite_ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "slots"
    pipelines.add_schedule(
        sqlite_ws, "h", SOURCE, "0 * * * *", params={"folder": str(folder)}, start_at=T0
    )
    scheduler = pipelines.Scheduler(sqlite_ws, owner="a")
    assert scheduler.tick(T0 + dt.timedelta(minutes=30)) == []  # nothing due yet
    runs = scheduler.tick(T0 + dt.timedelta(hours=3, minutes=5))
    assert [r.output for r in runs] == [(T0 + dt.timedelta(hours=3)).isoformat()]  # newest only
    assert scheduler.tick(T0 + dt.timedelta(hours=3, minutes=6)) == []  # once per slot
    record = pipelines.get_pipeline_run(sqlite_ws, runs[0].id)
    assert record.schedule == "h" and record.slot == T0 + dt.timedelta(hours=3)
    # a backfill runs the range's other slots (the claimed one is not run again)
    filled = pipelines.backfill(sqlite_ws, "h", T0, T0 + dt.timedelta(hours=3))
    assert [r.output for r in filled] == [
        (T0 + dt.timedelta(hours=h)).isoformat() for h in (0, 1, 2)
    ]
    assert len(list(folder.iterdir())) == 4
    with pytest.raises(loopml.InvalidInput, match="is before start"):
        pipelines.backfill(sqlite_ws, "h", T0, T0 - dt.timedelta(hours=1))


def test_two_schedulers_racing_run_each_slot_exactly_once(ws: Workspace, tmp_path: Path) -> None:
    """Two schedulers, each with its own database connections, backfill the same 12 slots
    at the same time: the (schedule, slot) key lets one claim win per slot."""
    folder = tmp_path / "slots"
    pipelines.add_schedule(
        ws, "h", SOURCE, "0 * * * *", params={"folder": str(folder)}, start_at=T0
    )
    end = T0 + dt.timedelta(hours=11)
    start = threading.Barrier(2)
    made: dict[str, list[str]] = {}

    def scheduler(owner: str) -> None:
        with Workspace(ws.settings) as own:
            start.wait()
            runs = pipelines.backfill(own, "h", T0, end, owner=owner)
            made[owner] = [r.output for r in runs]

    threads = [threading.Thread(target=scheduler, args=(o,)) for o in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    slots = sorted(made["a"] + made["b"])
    assert slots == [(T0 + dt.timedelta(hours=h)).isoformat() for h in range(12)]
    with ws.db.read() as conn:
        claimed = conn.execute(sa.select(schedule_slots.c.claimed_by)).scalars().all()
    assert len(claimed) == 12 and set(claimed) <= {"a", "b"}
    runs = pipelines.list_pipeline_runs(ws, "hourly")
    assert len(runs) == 12 and {r.status for r in runs} == {"FINISHED"}
    assert len(list(folder.iterdir())) == 12  # each slot's step ran once


def test_schedule_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from loopml.cli import app

    home = tmp_path / "proj"
    Workspace.init(home).close()
    folder = tmp_path / "slots"

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, ["-w", str(home), *args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    start = hour - dt.timedelta(hours=2) + dt.timedelta(minutes=1)  # due: hour - 1 h, hour
    cli(
        "pipeline",
        "schedule",
        "add",
        "h",
        SOURCE,
        "--cron",
        "0 * * * *",
        "-p",
        f"folder={folder}",
        "--start",
        start.isoformat(),
    )
    assert "0 * * * *" in cli("pipeline", "schedule", "list")
    assert "1 slot(s) run" in cli("scheduler", "--once")  # the newest due slot only
    assert "0 slot(s) run" in cli("scheduler", "--once", "--name", "other")
    out = cli(
        "pipeline",
        "schedule",
        "backfill",
        "h",
        "--start",
        start.isoformat(),
        "--end",
        dt.datetime.now(dt.UTC).isoformat(),
    )
    assert "1 slots run, 0 failed" in out  # the one slot before the newest
    assert len(list(folder.iterdir())) == 2
    assert "hourly" in cli("pipeline", "list")
    cli("pipeline", "schedule", "remove", "h")
    bad = CliRunner().invoke(
        app,
        [
            "-w",
            str(home),
            "pipeline",
            "schedule",
            "add",
            "x",
            SOURCE,
            "--cron",
            "61 * * * *",
            "-p",
            f"folder={folder}",
        ],
    )
    assert isinstance(bad.exception, loopml.InvalidInput)
    assert CliRunner().invoke(app, ["scheduler", "--help"]).exit_code == 0
