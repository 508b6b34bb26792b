"""Every script in examples/ runs to completion, so the documentation cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr


def test_quickstart_runs_the_whole_loop_and_is_rerunnable(tmp_path: Path) -> None:
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-m", "loopml", "quickstart", "--traffic", "600"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr + out.stdout
    text = " ".join(out.stdout.split())  # rich wraps long lines
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
