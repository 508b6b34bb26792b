"""The quickstart's server and client: ``loopml serve`` in a child process, JSON over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from loopml.errors import LoopmlError


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``check`` until it is true; LoopmlError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise LoopmlError(f"quickstart: timed out waiting for {what}")
        time.sleep(0.2)


class DemoServer:
    """``loopml serve --deployment NAME`` on a free port, stopped by SIGTERM on exit."""

    def __init__(self, home: Path, deployment: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / ".loopml" / "quickstart-server.log"
        cmd = [sys.executable, "-m", "loopml", "-w", str(home), "serve", "--deployment",
               deployment, "--port", str(self.port)]  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ}
            )
        try:
            wait_for("the server to load its models", self._ready, timeout=90)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise LoopmlError(f"the server exited; see {self.log}")
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    def get(self, path: str) -> tuple[int, Any]:
        """(status, JSON body) of ``GET path``."""
        return self.post(path, None)[:2]

    def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, headers) of a request with a JSON ``body`` (GET when None)."""
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc), dict(exc.headers)

    def predict(self, deployment: str, rows: pd.DataFrame, ids: list[str]) -> list[int]:
        """One single-row request per row (8 at a time); the model version of each answer."""

        def one(i: int) -> int:
            status, body, _ = self.post(
                f"/v1/models/{deployment}/predict",
                [rows.iloc[i].to_dict()],
                {"X-Request-Id": ids[i]},
            )
            if status != 200:
                raise LoopmlError(f"quickstart: the server answered {status}: {body}")
            return int(body["version"])

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(len(rows))))

    def feedback(self, deployment: str, ids: list[str], labels: list[Any]) -> None:
        """Send the true labels of earlier requests."""
        records = [{"request_id": i, "label": label} for i, label in zip(ids, labels, strict=True)]
        status, body, _ = self.post("/v1/feedback", {"deployment": deployment, "feedback": records})
        if status != 202:
            raise LoopmlError(f"quickstart: feedback was refused ({status}): {body}")

    def stop(self) -> None:
        """SIGTERM (the server drains in-flight requests and flushes its log), then wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
