"""Compacting the prediction log: one file per (deployment, kind, hour), the same rows read
back, an atomic index swap that readers running meanwhile never notice."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from loopml.errors import InvalidInput, NotFound
from loopml.serving import compact_predictions, read_errors, read_feedback, read_predictions
from loopml.serving._predlog import HOUR_MS, PredictionLogger
from loopml.store import Workspace
from loopml.store.schema import log_partitions

TEN = int(dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture
def logger(ws: Workspace) -> Iterator[PredictionLogger]:
    lg = PredictionLogger(ws, flush_interval=3600)
    yield lg
    lg.close()


def _at(monkeypatch: pytest.MonkeyPatch, ms: int) -> None:
    monkeypatch.setattr("loopml.serving._predlog.now_ms", lambda: ms)


def _log(lg: PredictionLogger, ids: list[str], deployment: str = "churn") -> None:
    n = len(ids)
    plan = (["a", "b"] * n)[:n]
    frame = pd.DataFrame({"x": np.arange(n, dtype=float), "plan": plan})
    lg.log(deployment, "churn", 1, "primary", ids, frame, np.arange(n) % 2, None, None, 1.0)


def _files(ws: Workspace, deployment: str = "churn") -> list[tuple[str, int]]:
    t = log_partitions
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(t.c.kind, t.c.hour).where(t.c.deployment == deployment).order_by(t.c.id)
        ).all()
    return [(str(k), int(h)) for k, h in rows]


def _fill(ws: Workspace, lg: PredictionLogger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hours 10 and 11 with three prediction files each, feedback and errors in hour 10."""
    n = 0
    for hour in (TEN, TEN + HOUR_MS):
        for flush in range(3):
            _at(monkeypatch, hour + 1000 * flush)
            ids = [f"r{n + i}" for i in range(4)]
            n += 4
            _log(lg, ids)
            if hour == TEN:
                lg.log_feedback("churn", ids[:2], [1, 0])
                lg.log_error("churn", f"e{flush}", 422, "bad input")
            lg.flush()


def test_compaction_keeps_every_row_in_one_file_per_hour(
    ws: Workspace, logger: PredictionLogger, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(ws, logger, monkeypatch)
    before = (read_predictions(ws, "churn"), read_feedback(ws, "churn"), read_errors(ws, "churn"))
    assert len(_files(ws)) == 12
    t = log_partitions
    with ws.db.read() as conn:
        old = set(conn.execute(sa.select(t.c.digest)).scalars())
    result = compact_predictions(ws, "churn")
    assert (result.hours, result.files_before, result.files_after) == (4, 12, 4)
    assert result.rows == 24 + 6 + 3 and result.skipped == ()
    assert sorted(_files(ws)) == sorted(
        [("predictions", TEN), ("feedback", TEN), ("errors", TEN), ("predictions", TEN + HOUR_MS)]
    )
    after = (read_predictions(ws, "churn"), read_feedback(ws, "churn"), read_errors(ws, "churn"))
    for old_table, new_table in zip(before, after, strict=True):
        assert new_table.equals(old_table)
    with ws.db.read() as conn:
        row = conn.execute(sa.select(t).where(t.c.kind == "predictions", t.c.hour == TEN)).one()
    assert (row.num_rows, row.min_ts, row.max_ts) == (12, TEN, TEN + 2000)
    assert not any(ws.blobs.exists(d) for d in old)  # the replaced blobs are deleted
    again = compact_predictions(ws, "churn")
    assert again.hours == 0 and len(_files(ws)) == 4


def test_kinds_before_min_files_and_keep_old(
    ws: Workspace, logger: PredictionLogger, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(ws, logger, monkeypatch)
    t = log_partitions
    with ws.db.read() as conn:
        old = set(conn.execute(sa.select(t.c.digest)).scalars())
    only = compact_predictions(
        ws, "churn", kinds=["predictions"], before=TEN + HOUR_MS, delete_old=False
    )
    assert (only.hours, only.files_before) == (1, 3)  # hour 11 had not ended by `before`
    assert len(_files(ws)) == 10
    assert all(ws.blobs.exists(d) for d in old)
    high = compact_predictions(ws, "churn", min_files=4)
    assert high.hours == 0


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"deployment": ""}, ["deployment"]),
        ({"kinds": ["logs"]}, ["'logs'", "predictions"]),
        ({"min_files": 1}, ["min_files"]),
        ({"before": "soon"}, ["before", "'soon'"]),
        ({"before": True}, ["before"]),
    ],
)
def test_bad_arguments_are_refused(
    ws: Workspace, logger: PredictionLogger, kwargs: dict, words: list[str]
) -> None:
    _log(logger, ["a"])
    logger.flush()
    with pytest.raises(InvalidInput) as info:
        compact_predictions(ws, **{"deployment": "churn", **kwargs})
    for word in words:
        assert word in str(info.value)


def test_unknown_deployment_is_not_found(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        compact_predictions(ws, "nope")


def test_clashing_columns_are_skipped_and_reported(
    ws: Workspace, logger: PredictionLogger, monkeypatch: pytest.MonkeyPatch
) -> None:
    _at(monkeypatch, TEN)
    for plan in (["a"], [3]):
        frame = pd.DataFrame({"plan": plan})
        logger.log("churn", "churn", 1, "primary", ["x"], frame, np.array([1]), None, None, 1.0)
        logger.flush()
    result = compact_predictions(ws, "churn")
    assert result.hours == 0 and len(_files(ws)) == 2
    assert "columns clash" in result.skipped[0] and "2026-03-01 10:00" in result.skipped[0]


def test_readers_during_compaction_always_see_every_row(
    ws: Workspace, logger: PredictionLogger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader thread loops while compaction swaps the index and deletes old files."""
    hours, files = 8, 5
    for h in range(hours):
        for f in range(files):
            _at(monkeypatch, TEN + h * HOUR_MS + f)
            _log(logger, [f"{h}-{f}-{i}" for i in range(20)])
            logger.flush()
    total = hours * files * 20
    stop, seen, errors = threading.Event(), [], []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(read_predictions(ws, "churn").num_rows)
            except Exception as exc:  # any failure is what this test looks for
                errors.append(exc)

    def wait_for_a_read() -> None:
        start = len(seen) + len(errors)
        while len(seen) + len(errors) == start and thread.is_alive():
            stop.wait(0.001)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        wait_for_a_read()
        # between hours, let the reader finish a read it may have begun on the old index
        result = compact_predictions(ws, "churn", progress=lambda done, todo: wait_for_a_read())
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert result.hours == hours and result.rows == total
    assert len(seen) > hours and set(seen) == {total}
    assert len(_files(ws)) == hours


def test_logger_compacts_closed_hours(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    def compact(deployment: str, before: int) -> None:
        calls.append((deployment, before))
        compact_predictions(ws, deployment, before=before)

    _at(monkeypatch, TEN + 5)
    lg = PredictionLogger(ws, flush_interval=3600, on_hour_closed=compact)
    try:
        for i in range(3):
            _log(lg, [f"r{i}"])
            _log(lg, [f"s{i}"], deployment="other")
            lg.flush()
        assert lg.hour_check(TEN + HOUR_MS - 1) is None  # still hour 10: nothing happens
        assert len(_files(ws)) == 3
        hook = lg.hour_check(TEN + HOUR_MS + 1)
        assert hook is not None
        hook.join()
        assert calls == [("churn", TEN + HOUR_MS), ("other", TEN + HOUR_MS)]
        assert _files(ws) == [("predictions", TEN)] and _files(ws, "other") == [
            ("predictions", TEN)
        ]
        assert read_predictions(ws, "churn").column("request_id").to_pylist() == ["r0", "r1", "r2"]
        assert lg.hour_check(TEN + HOUR_MS + 2) is None  # once per hour
    finally:
        lg.close()


def test_a_failing_hook_is_reported_not_raised(ws: Workspace) -> None:
    def broken(deployment: str, before: int) -> None:
        raise RuntimeError("disk full")

    lg = PredictionLogger(ws, flush_interval=3600, on_hour_closed=broken)
    _log(lg, ["a"])
    lg.flush()
    hook = lg.hour_check(lg._hour + HOUR_MS)
    assert hook is not None
    hook.join()
    assert lg.last_error is not None and "disk full" in lg.last_error
    lg.close()


def test_compacted_file_reads_the_same_types(
    ws: Workspace, logger: PredictionLogger, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(ws, logger, monkeypatch)
    before = read_predictions(ws, "churn").schema
    compact_predictions(ws, "churn")
    after = read_predictions(ws, "churn").schema
    assert after == before and after.field("input.x").type == pa.float64()
