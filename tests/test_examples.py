"""Every script in examples/ runs to completion, so the documentation cannot rot."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr


def _quickstart_with_ui(cwd: Path) -> str:
    """Run ``quickstart --ui``, open its web UI, stop it with Ctrl-C; its output."""
    port = free_port()
    cmd = [sys.executable, "-m", "loopml", "quickstart", "--traffic", "600", "--ui",
           "--ui-port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Web UI: http://"):
                break
        url = f"http://127.0.0.1:{port}/deployments/churn"
        for _ in range(100):  # the line is printed just before the server binds
            try:
                with urllib.request.urlopen(url, timeout=10) as answer:
                    page = answer.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert 'section class="requests" data-deployment="churn"' in page
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return "".join(lines) + rest


def test_quickstart_runs_the_whole_loop_and_is_rerunnable(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loopml", "quickstart", "--traffic", "600"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "(or rerun with --ui)" in " ".join(out.stdout.split())
    text = " ".join(_quickstart_with_ui(tmp_path).split())  # again, with the UI; rich wraps
    assert "alert firing: drift_share > 0.3" in text
    assert "loop: shadowing" in text and "loop: promoted" in text
    assert "production is now models:/churn/2" in text
    history = subprocess.run(
        [sys.executable, "-m", "loopml", "loop", "history", "churn"],
        cwd=tmp_path / "loopml-demo",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert history.returncode == 0 and "promoted" in history.stdout
    assert (tmp_path / "loopml-demo" / "reports" / "drift-1.html").is_file()


def test_quickstart_keeps_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "loopml-demo").mkdir()
    (tmp_path / "loopml-demo" / "notes.txt").write_text("mine")
    out = subprocess.run(
        [sys.executable, "-m", "loopml", "quickstart"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "was not made by the quickstart" in out.stderr
    assert (tmp_path / "loopml-demo" / "notes.txt").read_text() == "mine"


def test_quickstart_refuses_a_taken_ui_port_before_starting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "loopml", "quickstart", "--ui", "--ui-port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 1 and f"--ui-port {port} is taken" in out.stderr
    assert not (tmp_path / "loopml-demo").exists()
