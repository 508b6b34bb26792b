"""A real ``loopml serve`` process: answers on a free port, drains in-flight requests on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from loopml.registry import register_model, set_alias
from loopml.store import Workspace
from tests.conftest import free_port

from .slow_model import SlowClassifier

TESTS = Path(__file__).resolve().parents[1]  # the pickled model's module is serving.slow_model
# `loopml serve` as the CLI runs it (the lead wires the same function into `loopml`)
CLI = """
import sys, typer
from loopml.cli.serve import serve
app = typer.Typer(add_completion=False)
app.command()(serve)
app(sys.argv[1:])
"""


def _start(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "LOOPML_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: _stop reaches uvicorn's workers too
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill a server that is still running, with any worker processes it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[0].decode())
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


@pytest.fixture
def slow_ws(sqlite_ws: Workspace) -> Workspace:
    X = pd.DataFrame({"a": [1.0, -1.0], "b": [0.0, 0.0]})
    register_model(sqlite_ws, SlowClassifier(0.5).fit(X, [1, 0]), "slow", input_example=X)
    set_alias(sqlite_ws, "slow", "production", 1)
    return sqlite_ws


def test_serve_answers_and_drains_on_sigterm(slow_ws: Workspace) -> None:
    port = free_port()
    proc = _start(slow_ws.home, "slow@production", "--port", str(port), "--token", "t0k")
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": "Bearer t0k"}
    try:
        _wait_ready(url, proc)
        r = httpx.post(
            f"{url}/v1/models/slow/predict",
            json=[{"a": 2.0, "b": 0.0}],
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["predictions"] == [1]
        assert httpx.post(f"{url}/invocations", json={"instances": [[1.0, 0.0]]}).status_code == 401

        def call(i: int) -> httpx.Response:
            return httpx.post(
                f"{url}/v1/models/slow/predict",
                json=[{"a": -1.0 + i, "b": 0.0}],
                headers=headers,
                timeout=30,
            )

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(call, i) for i in range(4)]
            time.sleep(0.25)  # all four are in flight: the first batch sleeps 0.5 s
            proc.send_signal(signal.SIGTERM)
            responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [200] * 4
        assert [r.json()["predictions"] for r in responses] == [[0], [0], [1], [1]]
        # uvicorn re-raises SIGTERM once it has shut down cleanly, so -SIGTERM is a clean exit
        output = proc.communicate(timeout=30)[0]
        assert proc.returncode in (0, -signal.SIGTERM)
        assert b"Traceback" not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_refuses_what_does_not_exist(sqlite_ws: Workspace) -> None:
    proc = _start(sqlite_ws.home, "nope@production", "--port", str(free_port()))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert b"nope" in out


def _requests_total(text: str, endpoint: str) -> float:
    """The sum of ``loopml_requests_total`` samples for one endpoint in a scrape."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("loopml_requests_total{") and f'endpoint="{endpoint}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_workers_metrics_sum_over_processes(churn_ws: Workspace) -> None:
    port = free_port()
    proc = _start(churn_ws.home, "churn@production", "--port", str(port), "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        processes: set[str] = set()  # a request id starts with its process's prefix
        sent = 0
        # a new connection per request; keep going until both workers have answered
        while sent < 40 or (len(processes) < 2 and sent < 400):
            r = httpx.post(f"{url}/v1/models/churn/predict", json=[{"a": 1.0, "b": 0.0, "c": 0.0}])
            assert r.status_code == 200, r.text
            processes.add(r.headers["x-request-id"][:12])
            sent += 1
        assert len(processes) == 2
        scraped = {httpx.get(f"{url}/metrics").text for _ in range(8)}
        for text in scraped:
            assert _requests_total(text, "churn") == sent
            assert 'loopml_model_version_info{endpoint="churn"' in text
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
        assert b"Traceback" not in output, output.decode()
        leftover = list(Path(tempfile.gettempdir()).glob(f"loopml-metrics-{proc.pid}-*"))
        assert leftover == []
    finally:
        _stop(proc)
