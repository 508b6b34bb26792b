"""Micro-batching: concurrent requests become one model call; idle requests do not wait."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np
import pandas as pd

from loopml.serving import BatchConfig, ServeConfig, create_app
from loopml.serving._batcher import Arrivals, Batcher, BatchResult
from loopml.store import Workspace

ROW = {"a": 0.5, "b": -1.0, "c": 2.0}


class Recorder:
    """A batch function that records its calls; the first call holds until released."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()

    def __call__(self, parts, proba, ids, rows) -> BatchResult:
        if not self.calls:
            self.release.wait(10)
        self.calls.append(sum(rows))
        X = np.concatenate(parts)
        return BatchResult(X[:, 0] * 2)


def _run(config: BatchConfig, n: int) -> tuple[Recorder, list]:
    rec = Recorder()

    async def main() -> list:
        batcher = Batcher(rec, config, Arrivals())
        first = batcher.submit(np.array([[0.0]]), 1, False, "r0", expected=False)
        await asyncio.sleep(0.05)  # the first batch is now running and holds the thread
        rest = [
            batcher.submit(np.array([[float(i)]]), 1, False, f"r{i}", expected=False)
            for i in range(1, n)
        ]
        rec.release.set()
        results = await asyncio.gather(first, *rest)
        await batcher.aclose()
        return results

    return rec, asyncio.run(main())


def test_queued_requests_are_coalesced() -> None:
    rec, results = _run(BatchConfig(max_batch_size=64), 21)
    assert rec.calls == [1, 20]
    assert [float(r.predictions[0]) for r in results] == [2.0 * i for i in range(21)]


def test_batches_close_at_max_size() -> None:
    rec, _ = _run(BatchConfig(max_batch_size=8), 21)
    assert rec.calls == [1, 8, 8, 4]


def test_batching_off_runs_each_request_alone() -> None:
    rec, _ = _run(BatchConfig(enabled=False), 6)
    assert rec.calls == [1, 1, 1, 1, 1, 1]


def test_a_failing_request_does_not_fail_its_batch() -> None:
    def execute(parts, proba, ids, rows) -> BatchResult:
        if any("bad" in i for i in ids):
            raise ValueError("bad input")
        return BatchResult(np.concatenate(parts)[:, 0])

    async def main() -> list:
        batcher = Batcher(execute, BatchConfig(), Arrivals())
        futures = [
            batcher.submit(
                np.array([[float(i)]]), 1, False, "bad" if i == 2 else "ok", expected=False
            )
            for i in range(4)
        ]
        out = await asyncio.gather(*futures, return_exceptions=True)
        await batcher.aclose()
        return out

    out = asyncio.run(main())
    assert isinstance(out[2], ValueError)
    assert [float(o.predictions[0]) for i, o in enumerate(out) if i != 2] == [0.0, 1.0, 3.0]


def test_concurrent_http_requests_share_model_calls(churn_ws: Workspace, live) -> None:
    app = create_app(churn_ws, ["churn@production"], logger=False)
    with live(app) as server:

        async def load() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                return await asyncio.gather(
                    *(client.post("/v1/models/churn/predict", json=[ROW]) for _ in range(200))
                )

        responses = asyncio.run(load())
        assert all(r.status_code == 200 for r in responses)
        served = app.state.pool.endpoints["churn"].primary.current
        assert served.batcher.batches < 200  # fewer model calls than requests
        text = httpx.get(server.url + "/metrics").text
        assert 'loopml_batch_rows_sum{model="churn",version="1"} 200.0' in text


def test_off_switch_in_the_app(churn_ws: Workspace, live) -> None:
    config = ServeConfig(batching=BatchConfig(enabled=False))
    app = create_app(churn_ws, ["churn@production"], config=config, logger=False)
    with live(app) as server:

        async def load() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                return await asyncio.gather(
                    *(client.post("/v1/models/churn/predict", json=[ROW]) for _ in range(30))
                )

        assert all(r.status_code == 200 for r in asyncio.run(load()))
        assert app.state.pool.endpoints["churn"].primary.current.batcher.batches == 30


def test_big_frames_are_concatenated(churn_ws: Workspace, live, hgb) -> None:
    rows = pd.DataFrame(np.random.default_rng(1).normal(size=(3000, 3)), columns=["a", "b", "c"])
    app = create_app(churn_ws, ["churn@production"], logger=False)
    with live(app) as server:
        body = rows.to_dict("records")  # > 256 KB: parsed off the event loop
        r = httpx.post(server.url + "/v1/models/churn/predict", json=body, timeout=30)
        assert r.json()["predictions"] == hgb.predict(rows).tolist()
