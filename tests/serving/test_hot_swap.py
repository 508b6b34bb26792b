"""Moving an alias swaps the served version under load without one failed request."""

from __future__ import annotations

import asyncio
import time

import httpx
import pandas as pd

from loopml.registry import register_model, set_alias
from loopml.serving import ServeConfig, create_app
from loopml.store import Workspace

from .conftest import FEATURES

ROW = {"a": 0.5, "b": -1.0, "c": 2.0}


def test_alias_move_under_load(ws: Workspace, frame: pd.DataFrame, hgb, flipped, live) -> None:
    register_model(ws, hgb, "churn", input_example=frame[FEATURES].head(5))
    register_model(ws, flipped, "churn", input_example=frame[FEATURES].head(5))
    set_alias(ws, "churn", "production", 1)
    config = ServeConfig(watch_interval_s=0.05)
    app = create_app(ws, ["churn@production"], config=config, logger=False)
    with live(app) as server:
        seen: list[tuple[int, int]] = []
        failures: list[str] = []

        async def worker(client: httpx.AsyncClient, stop: asyncio.Event) -> None:
            while not stop.is_set():
                r = await client.post("/v1/models/churn/predict", json=[ROW])
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    body = r.json()
                    seen.append((body["version"], body["predictions"][0]))

        async def main() -> None:
            stop = asyncio.Event()
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                tasks = [asyncio.create_task(worker(client, stop)) for _ in range(8)]
                await asyncio.sleep(0.3)
                await asyncio.to_thread(set_alias, ws, "churn", "production", 2)
                deadline = time.monotonic() + 20
                while not any(v == 2 for v, _ in seen[-20:]) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                stop.set()
                await asyncio.gather(*tasks)

        asyncio.run(main())
        assert failures == []
        versions = [v for v, _ in seen]
        assert versions[0] == 1 and versions[-1] == 2
        assert sorted(set(versions)) == [1, 2]
        # each version answered with its own model
        expected = {
            1: hgb.predict(pd.DataFrame([ROW]))[0],
            2: flipped.predict(pd.DataFrame([ROW]))[0],
        }
        assert all(p == expected[v] for v, p in seen)
        assert app.state.pool.swaps == 1
        metrics = httpx.get(server.url + "/metrics").text
        assert 'role="primary",version="2"} 1.0' in metrics
        assert 'version="1"} 1.0' not in metrics.split("loopml_model_version_info")[-1]


def test_pinned_versions_do_not_move(churn_ws: Workspace, frame, flipped, live) -> None:
    register_model(churn_ws, flipped, "churn", input_example=frame[FEATURES].head(5))
    app = create_app(churn_ws, ["churn/1"], config=ServeConfig(watch_interval_s=0.05), logger=False)
    with live(app) as server:
        set_alias(churn_ws, "churn", "production", 2)
        time.sleep(0.3)
        r = httpx.post(server.url + "/v1/models/churn/predict", json=[ROW])
        assert r.json()["version"] == 1
