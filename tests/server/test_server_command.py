"""`loopml server`: auth is off only on loopback; anything else refuses to start without
--auth unless --insecure is given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopml.cli import app
from loopml.errors import InvalidInput
from loopml.server._run import check_exposure, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.org", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposure_needs_auth_or_insecure() -> None:
    check_exposure("127.0.0.1", auth=False, insecure=False)
    check_exposure("0.0.0.0", auth=True, insecure=False)
    check_exposure("0.0.0.0", auth=False, insecure=True)
    with pytest.raises(InvalidInput, match="without auth"):
        check_exposure("0.0.0.0", auth=False, insecure=False)


def test_the_command_refuses_before_it_starts(tmp_path: Path) -> None:
    loopml = Path(sys.executable).with_name("loopml")
    out = subprocess.run(
        [str(loopml), "server", "--host", "0.0.0.0", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "refusing to serve 0.0.0.0 without auth" in " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr
    help_text = CliRunner().invoke(app, ["server", "--help"]).output
    assert "--insecure" in help_text and "users" in help_text
