"""Nothing a remote client logs is lost or doubled: the server killed and restarted
mid-stream, and the client itself stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loopml.store import Workspace
from loopml.tracking import get_metric_history, get_run, search_runs, start_run
from tests.conftest import free_port

LOOPML = str(Path(sys.executable).with_name("loopml"))


class ServerProcess:
    """``loopml server`` in a process of its own, to kill and start again."""

    def __init__(self, home: Path, port: int, workers: int = 1) -> None:
        self.home, self.port, self.workers = home, port, workers
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [LOOPML, "-w", str(self.home), "server", "--port", str(self.port)]
        cmd += ["--workers", str(self.workers)]
        with open(self.home / "server.log", "ab") as log:
            # a session of its own, so a kill takes the workers with the supervisor
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 120  # workers start slowly on a loaded machine
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start: {(self.home / 'server.log').read_text()}")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    Workspace.init(tmp_path / "server").close()
    srv = ServerProcess(tmp_path / "server", free_port())
    srv.start()
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.proc.terminate()
        srv.proc.wait(10)


def test_server_killed_and_restarted_while_a_client_logs(server: ServerProcess) -> None:
    client = Workspace.open(tracking_uri=server.url, metric_flush_interval=0.05)
    n_runs, n_points = 3, 3000
    with start_run("durable", workspace=client) as parent:
        children = [
            start_run("durable", f"child-{i}", parent=parent, workspace=client)
            for i in range(n_runs)
        ]
        for step in range(n_points):
            for run in children:
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            if step == n_points // 3:
                server.kill()  # mid-stream: batches in flight are lost with the process
            if step == n_points // 2:
                server.start()  # same port, same workspace
            if step % 100 == 0:
                time.sleep(0.02)
        for run in children:
            run.log_param("done", True)
            run.end()
    client.close()  # sends what is left

    reader = Workspace.open(tracking_uri=server.url)
    found = search_runs(reader, "durable")
    assert len(found) == n_runs + 1 and set(found.status) == {"FINISHED"}
    for run in children:
        history = get_metric_history(reader, run.id, "loss")
        assert history.step.tolist() == list(range(n_points))  # all there, none twice
        assert get_run(reader, run.id).params == {"done": "True"}
    reader.close()


CLIENT = textwrap.dedent(
    """
    import sys, time
    import loopml
    ws = loopml.Workspace.open(tracking_uri=sys.argv[1], metric_flush_interval=0.05)
    run = loopml.start_run("sigterm", workspace=ws)
    print(run.id, flush=True)
    step = 0
    while True:
        run.log_metric("x", float(step), step=step)
        step += 1
        if step % 500 == 0:
            print(step, flush=True)
            time.sleep(0.01)
    """
)


def test_sigterm_to_a_client_sends_what_it_logged(server: ServerProcess, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    with subprocess.Popen(
        [sys.executable, str(script), server.url], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        logged = 0
        while logged < 5000:
            logged = int(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM

    reader = Workspace.open(tracking_uri=server.url)
    history = get_metric_history(reader, run_id, "x")
    n = len(history)
    assert n >= logged and history.step.tolist() == list(range(n))  # nothing lost or doubled
    assert get_run(reader, run_id).status == "FINISHED"
    reader.close()


def test_several_workers_and_a_tracking_uri_in_loopml_toml(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "server").close()
    srv = ServerProcess(tmp_path / "server", free_port(), workers=2)
    srv.start()
    try:
        client_home = tmp_path / "client"
        client_home.mkdir()
        (client_home / "loopml.toml").write_text(f'tracking_uri = "{srv.url}"\n')
        client = Workspace.open(client_home)
        assert client.remote is not None
        runs = [start_run("workers", f"r{i}", workspace=client) for i in range(8)]
        for step in range(500):
            for run in runs:
                run.log_metric("m", float(step), step=step)
        for run in runs:
            run.end()
        found = search_runs(client, "workers")
        assert len(found) == 8 and set(found.status) == {"FINISHED"}
        for run in runs:
            assert get_metric_history(client, run.id, "m").step.tolist() == list(range(500))
        client.close()
    finally:
        assert srv.proc is not None
        srv.proc.terminate()
        srv.proc.wait(10)
