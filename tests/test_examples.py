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


def test_quickstart_runs_and_is_rerunnable(tmp_path: Path) -> None:
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-m", "loopml", "quickstart"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
    assert "accuracy" in out.stdout and "models:/breast-cancer/2" in out.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "loopml", "models", "show", "breast-cancer@production"],
        cwd=tmp_path / "loopml-demo",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0 and "produced" in listed.stdout
