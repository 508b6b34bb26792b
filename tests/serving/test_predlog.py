"""The prediction log: bounded buffering, background flushes to hourly Parquet partitions,
feedback labels, and reading everything back with DuckDB."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from loopml.errors import InvalidInput
from loopml.serving._predlog import HOUR_MS, PredictionLogger
from loopml.serving._predread import (
    labelled_predictions,
    read_feedback,
    read_predictions,
    to_ms,
)
from loopml.store import Workspace
from loopml.store.schema import log_partitions

FRAME = pd.DataFrame({"age": [31, 45, 27], "income": [1.5, 2.5, 3.5], "plan": ["a", "b", "a"]})
PROBA = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])


@pytest.fixture
def logger(ws: Workspace) -> Iterator[PredictionLogger]:
    """A logger that flushes only when told (or on close)."""
    lg = PredictionLogger(ws, flush_interval=3600)
    yield lg
    lg.close()


def _log(lg: PredictionLogger, ids: list[str], deployment: str = "churn", **kw: object) -> None:
    n = len(ids)
    frame = pd.concat([FRAME] * (n // 3 + 1), ignore_index=True).head(n)
    args = {
        "model": "churn",
        "version": 1,
        "role": "primary",
        "probabilities": None,
        "classes": None,
        "latency_ms": 1.25,
    }
    args.update(kw)
    lg.log(
        deployment,
        str(args["model"]),
        int(args["version"]),  # type: ignore[call-overload]
        str(args["role"]),
        ids,
        frame,
        np.arange(n) % 2,
        args["probabilities"],  # type: ignore[arg-type]
        args["classes"],  # type: ignore[arg-type]
        float(args["latency_ms"]),  # type: ignore[arg-type]
    )


def _partitions(ws: Workspace) -> list[sa.Row[tuple[object, ...]]]:
    t = log_partitions
    with ws.db.read() as conn:
        return list(conn.execute(sa.select(t).order_by(t.c.id)).all())


def test_rows_have_the_documented_schema(ws: Workspace, logger: PredictionLogger) -> None:
    predictions = np.array(["no", "yes", "no"])
    logger.log("churn", "churn", 3, "primary", ["a", "b", "c"], FRAME, predictions, PROBA,
               ["no", "yes"], 4.5)  # fmt: skip
    assert logger.flush() == 3
    table = read_predictions(ws, "churn")
    assert table.schema.field("request_id").type == pa.string()
    assert table.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("version").type == pa.int32()
    assert table.schema.field("latency_ms").type == pa.float64()
    assert table.schema.field("input.age").type == pa.int64()
    assert table.schema.field("input.income").type == pa.float64()
    assert table.schema.field("input.plan").type in (pa.string(), pa.large_string())
    assert table.schema.field("prediction").type in (pa.string(), pa.large_string())
    rows = table.to_pylist()
    assert [r["request_id"] for r in rows] == ["a", "b", "c"]
    assert [r["input.age"] for r in rows] == [31, 45, 27]
    assert [r["prediction"] for r in rows] == ["no", "yes", "no"]
    assert [r["proba.yes"] for r in rows] == [0.1, 0.8, 0.4]
    same = {(r["deployment"], r["model"], r["version"], r["role"], r["latency_ms"]) for r in rows}
    assert same == {("churn", "churn", 3, "primary", 4.5)}
    now = dt.datetime.now(dt.UTC)
    assert all(abs((r["ts"] - now).total_seconds()) < 600 for r in rows)
    (part,) = _partitions(ws)
    assert (part.deployment, part.kind, part.num_rows) == ("churn", "predictions", 3)
    assert part.hour % HOUR_MS == 0 and part.hour <= part.min_ts <= part.max_ts
    assert ws.blobs.exists(part.digest)


def test_a_full_buffer_drops_log_rows_and_counts_them(ws: Workspace) -> None:
    lg = PredictionLogger(ws, max_buffer_rows=10, flush_interval=3600)
    _log(lg, ["a", "b", "c", "d"])
    _log(lg, ["e", "f", "g", "h"])
    _log(lg, ["i", "j", "k", "l"])  # 8 + 4 > 10: dropped whole
    _log(lg, ["m", "n"])  # fits exactly
    assert (lg.dropped, lg.buffered_rows) == (4, 10)
    assert lg.flush() == 10 and lg.buffered_rows == 0
    _log(lg, ["o", "p", "q"])  # room again after the flush
    lg.close()
    ids = read_predictions(ws, "churn").column("request_id").to_pylist()
    assert ids == list("abcdefghmnopq")
    assert lg.dropped == 4 and lg.written == 13


def test_close_flushes_and_later_logs_are_dropped(ws: Workspace) -> None:
    lg = PredictionLogger(ws, flush_interval=3600)
    _log(lg, ["a", "b"])
    lg.log_feedback("churn", ["a"], [1])
    lg.close()
    assert read_predictions(ws, "churn").num_rows == 2
    assert read_feedback(ws, "churn").num_rows == 1
    _log(lg, ["c"])
    assert lg.dropped == 1
    lg.close()  # idempotent


def test_the_background_thread_flushes(ws: Workspace) -> None:
    lg = PredictionLogger(ws, flush_interval=0.05)
    _log(lg, ["a", "b", "c"])
    for _ in range(400):
        if lg.written == 3:
            break
        threading.Event().wait(0.05)
    assert lg.written == 3 and read_predictions(ws, "churn").num_rows == 3
    lg.close()


def test_partitions_by_hour_and_time_filters(
    ws: Workspace, logger: PredictionLogger, monkeypatch: pytest.MonkeyPatch
) -> None:
    eleven = int(dt.datetime(2026, 3, 1, 11, tzinfo=dt.UTC).timestamp() * 1000)
    for ms, ids in ((eleven - 1_000, ["a", "b"]), (eleven + 1_000, ["c"]), (eleven + 2_000, ["d"])):
        monkeypatch.setattr("loopml.serving._predlog.now_ms", lambda ms=ms: ms)
        _log(logger, ids)
    logger.flush()
    parts = _partitions(ws)
    assert [(p.hour, p.num_rows) for p in parts] == [(eleven - HOUR_MS, 2), (eleven, 2)]
    assert parts[1].min_ts == eleven + 1_000 and parts[1].max_ts == eleven + 2_000
    at_eleven = dt.datetime(2026, 3, 1, 11, tzinfo=dt.UTC)
    ids = read_predictions(ws, "churn", since=at_eleven).column("request_id").to_pylist()
    assert ids == ["c", "d"]
    before = read_predictions(ws, "churn", until="2026-03-01T11:00:00")
    assert before.column("request_id").to_pylist() == ["a", "b"]
    newest = read_predictions(ws, "churn", limit=3).column("request_id").to_pylist()
    assert newest == ["b", "c", "d"]  # the newest rows, oldest first
    assert read_predictions(ws, "churn", since="1h").num_rows == 0  # all are older


def test_two_deployments_and_roles_stay_apart(ws: Workspace, logger: PredictionLogger) -> None:
    _log(logger, ["a", "b"], deployment="churn")
    _log(logger, ["a", "b"], deployment="churn", role="shadow", version=2)
    _log(logger, ["x"], deployment="fraud", model="fraud")
    logger.flush()
    assert sorted((p.deployment, p.num_rows) for p in _partitions(ws)) == [
        ("churn", 4),
        ("fraud", 1),
    ]
    shadow = read_predictions(ws, "churn", role="shadow")
    assert shadow.column("version").to_pylist() == [2, 2]
    assert read_predictions(ws, "fraud").column("request_id").to_pylist() == ["x"]
    empty = read_predictions(ws, "nobody")
    assert empty.num_rows == 0 and "request_id" in empty.column_names


def test_batches_with_different_columns_are_unioned_by_name(
    ws: Workspace, logger: PredictionLogger
) -> None:
    _log(logger, ["a"])
    logger.log("churn", "churn", 2, "primary", ["b"], pd.DataFrame({"tenure": [7]}), [1],
               np.array([[0.3, 0.7]]), [0, 1], 1.0)  # fmt: skip
    logger.flush()
    rows = read_predictions(ws, "churn").to_pylist()
    assert [(r["input.age"], r["input.tenure"], r["proba.1"]) for r in rows] == [
        (31, None, None),
        (None, 7, 0.7),
    ]


def test_concurrent_loggers_from_threads(ws: Workspace) -> None:
    loggers = [PredictionLogger(ws, flush_interval=0.02) for _ in range(2)]

    def work(t: int) -> None:
        for b in range(25):
            _log(loggers[t % 2], [f"t{t}-b{b}-r{r}" for r in range(4)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for lg in loggers:
        lg.close()
    assert sum(lg.dropped for lg in loggers) == 0
    ids = read_predictions(ws, "churn").column("request_id").to_pylist()
    assert sorted(ids) == sorted(
        f"t{t}-b{b}-r{r}" for t in range(6) for b in range(25) for r in range(4)
    )


def test_a_failed_write_is_reported_and_retried(ws: Workspace, logger: PredictionLogger) -> None:
    root = Path(ws.blobs.root)
    _log(logger, ["a", "b"])
    aside = root.with_name("blobs-aside")
    root.rename(aside)
    root.write_text("not a folder")  # the blob store now fails to write
    try:
        assert logger.flush() == 0
        assert logger.write_errors == 1 and logger.buffered_rows == 2
        assert logger.last_error is not None and "churn" in logger.last_error
        _log(logger, ["c"])
    finally:
        root.unlink()
        aside.rename(root)
    assert logger.flush() == 3
    assert read_predictions(ws, "churn").column("request_id").to_pylist() == ["a", "b", "c"]
    assert logger.dropped == 0


def test_an_unloggable_batch_is_dropped_not_retried(
    ws: Workspace, logger: PredictionLogger
) -> None:
    _log(logger, ["a"], probabilities=np.ones((1, 3)), classes=[0, 1])  # 3 columns, 2 classes
    _log(logger, ["b"])
    assert logger.flush() == 1
    assert logger.dropped == 1 and logger.buffered_rows == 0
    assert "not loggable" in str(logger.last_error)
    assert read_predictions(ws, "churn").column("request_id").to_pylist() == ["b"]


def test_feedback_joins_the_latest_label(ws: Workspace, logger: PredictionLogger) -> None:
    _log(logger, ["a", "b", "c"])
    _log(logger, ["a", "b", "c"], role="shadow")
    logger.log_feedback("churn", ["a", "b"], [1, 0])
    logger.flush()
    logger.log_feedback("churn", ["b"], [1])  # a correction, later
    logger.flush()
    assert read_feedback(ws, "churn").column("label").to_pylist() == [1, 0, 1]
    rows = labelled_predictions(ws, "churn", role="primary").to_pylist()
    assert [(r["request_id"], r["label"]) for r in rows] == [("a", 1), ("b", 1), ("c", None)]
    labelled = labelled_predictions(ws, "churn", only_labelled=True)
    assert sorted(labelled.column("request_id").to_pylist()) == ["a", "a", "b", "b"]
    assert labelled.schema.field("label_ts").type == pa.timestamp("ms", tz="UTC")
    none = labelled_predictions(ws, "fraud")
    assert none.num_rows == 0 and "label" in none.column_names


def test_bad_input_is_refused(ws: Workspace, logger: PredictionLogger) -> None:
    with pytest.raises(InvalidInput, match="2 request ids, 3 input rows and 3 predictions"):
        logger.log("churn", "churn", 1, "primary", ["a", "b"], FRAME, [0, 1, 0], None, None, 1.0)
    with pytest.raises(InvalidInput, match="2 request ids but 1 labels"):
        logger.log_feedback("churn", ["a", "b"], [1])
    with pytest.raises(InvalidInput, match="feedback row 1: request_id must be a string"):
        logger.log_feedback("churn", ["a", 7], [1, 0])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="feedback labels must share one type"):
        logger.log_feedback("churn", ["a", "b"], [1, "x"])
    with pytest.raises(InvalidInput, match="max_buffer_rows must be at least 1"):
        PredictionLogger(ws, max_buffer_rows=0)
    with pytest.raises(InvalidInput, match="flush_interval must be a positive number"):
        PredictionLogger(ws, flush_interval=0)
    with pytest.raises(InvalidInput, match="since 'yesterday' is not a time"):
        read_predictions(ws, "churn", since="yesterday")
    with pytest.raises(InvalidInput, match="limit must be a non-negative integer"):
        read_predictions(ws, "churn", limit=-1)
    assert logger.buffered_rows == 0


def test_to_ms_reads_datetimes_iso_strings_and_durations() -> None:
    assert to_ms(dt.datetime(1970, 1, 1, 0, 0, 1)) == 1000  # naive means UTC
    assert to_ms("1970-01-01T01:00:00+01:00") == 0
    assert to_ms(None) is None
    now = dt.datetime.now(dt.UTC).timestamp() * 1000
    two_hours = to_ms("2h")
    assert two_hours is not None and abs(now - 2 * HOUR_MS - two_hours) < 60_000
