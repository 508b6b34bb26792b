"""``loopml features ...`` run as a user runs it: a real process, exit codes and output."""

from __future__ import annotations

from pathlib import Path

from loopml import data
from loopml.store import Workspace
from tests.cli.test_cli import loopml
from tests.features.conftest import feature_rows

DEFS = """\
from loopml.features import Entity, FeatureView, FeatureService

customer = Entity("customer", ["customer_id"])
spend = FeatureView("spend_stats", [customer], "spend@latest", ttl="{ttl}",
                    features=["spend", "visits"], owner="growth")
service = FeatureService("churn", ["spend_stats:spend"])
"""


def test_apply_list_show_materialize(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    with Workspace.init(home) as ws:
        data.ingest(feature_rows(), name="spend", workspace=ws)
    defs = home / "features.py"
    defs.write_text(DEFS.format(ttl="7d"))

    out = loopml("features", "apply", "features.py", cwd=home)
    assert out.returncode == 0, out.stderr
    assert "create    feature view spend_stats@1" in out.stdout
    assert "3 of 3 definition(s) changed" in out.stdout

    defs.write_text(DEFS.format(ttl="1d"))
    dry = loopml("features", "apply", "features.py", "--dry-run", cwd=home)
    assert "update    feature view spend_stats@2" in dry.stdout
    assert "~ ttl_ms: 604800000 -> 86400000" in dry.stdout
    assert "would change" in dry.stdout
    listed = loopml("features", "list", cwd=home)
    assert "spend_stats" in listed.stdout and "churn" in listed.stdout
    assert "│ 1 " in listed.stdout  # the dry run wrote nothing

    shown = loopml("features", "show", "spend_stats", cwd=home)
    assert shown.returncode == 0, shown.stderr
    assert '"ttl_ms": 604800000' in shown.stdout and "growth" in shown.stdout

    mat = loopml("features", "materialize", "--end", "2024-03-01", cwd=home)
    assert mat.returncode == 0, mat.stderr
    assert "spend_stats" in mat.stdout and "│ 20 " in mat.stdout
    again = loopml("features", "materialize", "--end", "2024-03-01", cwd=home)
    assert "│ 0 " in again.stdout

    defs.write_text(DEFS.format(ttl="soon"))
    bad = loopml("features", "apply", "features.py", cwd=home)
    assert bad.returncode == 1 and "bad ttl 'soon'" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = loopml("features", "show", "nope", cwd=home)
    assert missing.returncode == 1 and "no " in missing.stderr


def test_every_features_command_has_help(tmp_path: Path) -> None:
    group = loopml("features", "--help", cwd=tmp_path)
    assert group.returncode == 0, group.stderr
    for cmd in ("apply", "list", "show", "materialize", "ingest-stream"):
        assert cmd in group.stdout
    out = loopml("features", "ingest-stream", "--help", cwd=tmp_path)
    assert out.returncode == 0 and "--stream" in out.stdout, out.stderr
