"""``loopml monitor`` and ``loopml alerts`` through Typer's runner on a real workspace (the
groups mounted on a local app, as the main CLI mounts them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from loopml.cli import alerts, monitor
from loopml.cli._common import WorkspaceOption
from loopml.errors import InvalidInput, NotFound
from loopml.monitoring import get_monitor, list_reports
from loopml.store import Workspace
from tests.monitoring._deployed import customers, deployed, log_traffic

app = typer.Typer(pretty_exceptions_enable=False)


@app.callback()
def _root(ctx: typer.Context, workspace_dir: Path = WorkspaceOption) -> None:
    ctx.ensure_object(dict)["home"] = workspace_dir


app.add_typer(monitor.app, name="monitor")
app.add_typer(alerts.app, name="alerts")
runner = CliRunner()
_env: dict[str, str] = {}


@pytest.fixture
def home(ws: Workspace) -> Path:
    """The workspace folder; the commands reach its store (SQLite or PostgreSQL) by env."""
    deployed(ws)
    _env.clear()
    _env.update({"COLUMNS": "240", "LOOPML_STORE_URI": ws.settings.resolved_store_uri()})
    assert ws.home is not None
    return ws.home


def run(home: Path, *args: str) -> str:
    result = runner.invoke(app, ["--workspace", str(home), *args], env=_env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_create_check_show_reports_and_alerts(ws: Workspace, home: Path, tmp_path: Path) -> None:
    rules = ["--alert", "drift_share > 0.3", "--alert", "rows < 1"]
    out = run(home, "monitor", "create", "churn", "-d", "churn", "--window-rows", "200", *rules,
              "--notify", "log")  # fmt: skip
    assert "monitor churn watches churn (newest 200 predictions) against churn@1" in out
    assert "600 rows, 3 features, label churned); 2 alert rule(s)" in out
    assert get_monitor(ws, "churn").rules == ["drift_share > 0.3", "rows < 1"]

    out = run(home, "monitor", "check", "churn")
    assert "no traffic in this window" in out and "FIRING rows < 1 (now 0)" in out
    first = list_reports(ws, "churn")[0]
    default_html = home / ".loopml" / "reports" / f"churn-{first.id}.html"
    assert f"HTML report: {default_html}" in out.replace("\n", "")
    assert default_html.read_text().startswith("<!DOCTYPE html>")

    log_traffic(ws, customers(200, seed=3, shifted=True), "d")
    page = tmp_path / "out.html"
    out = run(home, "monitor", "check", "churn", "--html", str(page))
    assert "drift share 67% — dataset drift" in out
    assert "FIRING drift_share > 0.3 (now 0.666667)" in out
    assert "RESOLVED rows < 1 no longer holds (now 200)" in out
    for text in ("age", "plan", "income", "prediction", "ks", "chi2", "estimated", "out_of_range"):
        assert text in out
    assert "Drift share over time" not in page.read_text()  # the first check had no drift

    shown = run(home, "monitor", "show", "churn")
    assert "reference: churn@1 (lineage; model version churn/1, 600 rows)" in shown
    assert "rules: drift_share > 0.3; rows < 1" in shown and "latest report" in shown
    listed = run(home, "monitor", "list")
    assert "churn@1" in listed and "200 rows" in listed
    reports = run(home, "monitor", "reports", "churn")
    assert "age, plan" in reports and str(first.id) in reports
    exported = tmp_path / "first.html"
    run(home, "monitor", "reports", "churn", "--html", str(first.id), "-o", str(exported))
    assert "No predictions in this window." in exported.read_text()

    firing = run(home, "alerts", "list")
    assert "drift_share > 0.3" in firing and "rows < 1" not in firing
    everything = run(home, "alerts", "list", "--all", "--monitor", "churn")
    assert "rows < 1" in everything and "resolved" in everything

    assert "removed monitor churn" in run(home, "monitor", "delete", "churn")
    assert "no monitors yet" in run(home, "monitor", "list")
    assert "no alerts" in run(home, "alerts", "list", "--all")


def test_cli_errors_are_loopml_errors(home: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="at position 5: expected an operator"):
        run(home, "monitor", "create", "m", "-d", "churn", "--alert", "rows 0.3")
    with pytest.raises(InvalidInput, match="at position 0: unknown metric 'drift'"):
        run(home, "monitor", "create", "m", "-d", "churn", "--alert", "drift > 0.3")
    with pytest.raises(NotFound, match="no monitor named 'm'"):
        run(home, "monitor", "check", "m")
    run(home, "monitor", "create", "m", "-d", "churn")
    with pytest.raises(InvalidInput, match="does not exist"):
        run(home, "monitor", "check", "m", "--html", str(tmp_path / "missing" / "x.html"))
    with pytest.raises(InvalidInput, match="--html ID needs --output"):
        run(home, "monitor", "reports", "m", "--html", "1")
    assert "no reports of 'm' yet" in run(home, "monitor", "reports", "m")
    assert "no firing alerts" in run(home, "alerts", "list")
