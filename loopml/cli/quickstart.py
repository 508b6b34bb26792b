"""``loopml quickstart``: the whole loop on a generated churn dataset, in about a minute.

Generates customers of a first half-year and of a later quarter that drifts; ingests and
validates the first, tunes and registers a model, deploys it, starts ``loopml serve``,
sends the later customers as traffic (with their true labels as feedback), lets a monitor
find the drift, retrains a challenger from the champion's recipe, compares both on fresh
rows, shadows it, promotes it — the server switches version without a failed request —
and prints where everything is. The model server is shut down at the end; with ``--ui``
the platform server (web UI and API) then stays up on the demo workspace until Ctrl-C.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import typer

from loopml.cli._common import console
from loopml.cli._demo_server import DemoServer, wait_for
from loopml.errors import InvalidInput
from loopml.store import Workspace

MARKER = ".loopml-quickstart"  # a folder the quickstart made, and may make again
DEPLOYMENT = MONITOR = "churn"
DROP = ["customer_id", "event_time"]  # not features: an id and a timestamp


def _fresh_workspace(directory: Path) -> Workspace:
    if (directory / MARKER).is_file():
        shutil.rmtree(directory)
    elif directory.exists() and any(directory.iterdir()):
        raise InvalidInput(f"{directory} exists and was not made by the quickstart; use --dir")
    ws = Workspace.init(directory)
    (directory / MARKER).touch()
    return ws


def quickstart(
    directory: Path = typer.Option(Path("loopml-demo"), "--dir", help="Workspace folder."),
    traffic: int = typer.Option(1000, help="Requests from the drifted period."),
    ui: bool = typer.Option(
        False, "--ui", help="Afterwards, leave the web UI running on the demo (Ctrl-C stops it)."
    ),
    ui_port: int = typer.Option(5000, "--ui-port", help="Port of the web UI with --ui."),
) -> None:
    """Run the whole loop in a demo workspace: data → model → server → drift → retrain → promote."""
    # scikit-learn and friends load here, not at the top, so other commands start fast
    from loopml import data, loop, monitoring, registry, serving
    from loopml.training import tune

    if traffic < 200:
        raise InvalidInput("--traffic must be at least 200 requests")
    if ui:
        _check_port_free(ui_port)
    started = time.perf_counter()
    step = iter(range(1, 20))

    def say(text: str) -> None:
        console.print(f"[bold]{next(step)}.[/] {text}", highlight=False)

    with _fresh_workspace(directory) as ws:
        home = ws.home
        assert home is not None
        say(f"workspace {home}")

        before = data.demo_churn(4000, period="before")
        later = data.demo_churn(traffic + 300, period="after")
        csv = home / "data" / "churn-2026H1.csv"
        csv.parent.mkdir()
        before.to_csv(csv, index=False)
        dv = data.ingest(csv, name="churn", workspace=ws)
        suite = data.suggest_suite(dv.profile, name="churn")
        checked = data.validate(dv, suite, on_fail="raise", workspace=ws)
        say(
            f"data: generated {len(before):,} customers (Jan-Jun 2026) → {csv.name} → "
            f"ingested {dv.ref}; validated by {len(suite.checks)} checks: "
            f"{'passed' if checked.passed else 'FAILED'}"
        )

        search = tune(
            dv,
            "churned",
            model="linear",
            search_space={"C": {"type": "float", "low": 0.01, "high": 10.0, "log": True}},
            n_trials=6,
            split="stratified",
            drop=DROP,
            experiment="churn",
            workspace=ws,
        )
        champion = search.register("churn", alias="production")
        say(
            f"tuned a logistic regression (6 trials, 5-fold ROC AUC "
            f"{search.best_score:.3f}) → registered {champion.uri} as churn@production"
        )

        serving.deploy(ws, DEPLOYMENT, model="churn", primary="@production")
        monitoring.create_monitor(ws, MONITOR, DEPLOYMENT, rules=["drift_share > 0.3"])
        say("deployed churn (primary @production) with a monitor: alert when drift_share > 0.3")

        with DemoServer(home, DEPLOYMENT) as server:
            say(f"server up: {server.url} (OpenAPI at {server.url}/openapi.json)")

            rows = later.iloc[:traffic]
            ids = rows["customer_id"].tolist()
            features = rows.drop(columns=[*DROP, "churned"])
            server.predict(DEPLOYMENT, features, ids)
            server.feedback(DEPLOYMENT, ids, rows["churned"].tolist())
            wait_for(
                "the prediction log",
                lambda: (
                    len(serving.labelled_predictions(ws, DEPLOYMENT, only_labelled=True)) >= traffic
                ),
            )
            say(
                f"sent {traffic:,} requests from Jul-Sep 2026 (fees up, support calls up, "
                "PayPal and the west growing) and their true labels as feedback"
            )

            check = monitoring.check_monitor(ws, MONITOR)
            html = home / "reports" / f"drift-{check.report_id}.html"
            html.parent.mkdir(exist_ok=True)
            html.write_text(monitoring.report_html(ws, check.report_id), "utf-8")
            drifted = check.drift.drifted_columns if check.drift else []
            alerts = ", ".join(a.rule for a in check.fired) or "none"
            say(
                f"monitor: drift share {check.metrics.get('drift_share', 0):.2f} "
                f"({', '.join(drifted)}); accuracy on labelled traffic "
                f"{check.metrics.get('accuracy', float('nan')):.3f}; alert firing: {alerts}"
            )

            policy = loop.Policy(DEPLOYMENT, monitor=MONITOR, shadow_requests=200)
            decision = loop.run_once(ws, policy)
            comparison = decision.evidence.get("comparison", {})
            say(f"loop: {decision.decision} — {decision.reason}")
            if decision.decision != "shadowing":
                raise InvalidInput(f"quickstart: expected a challenger to shadow: {decision}")

            wait_for(
                "the server to pick up the shadow",
                lambda: server.get(f"/v1/models/{DEPLOYMENT}")[1].get("policy") == "shadow",
            )
            shadow_rows = later.iloc[traffic:]
            server.predict(
                DEPLOYMENT,
                shadow_rows.drop(columns=[*DROP, "churned"]),
                shadow_rows["customer_id"].tolist(),
            )
            wait_for(
                "the shadow's predictions in the log",
                lambda: len(serving.read_predictions(ws, DEPLOYMENT, role="shadow")) >= 200,
            )
            final = loop.run_once(ws, policy)
            say(f"loop: {final.decision} — {final.reason}")

            production = registry.get_model_version(ws, "models:/churn@production")
            sample = later.drop(columns=[*DROP, "churned"]).head(1)
            wait_for(
                "the server to switch version",
                lambda: server.predict(DEPLOYMENT, sample, ["check"])[0] == production.version,
            )
            say(
                f"production is now {production.uri}; the server switched to it without "
                "a restart (and without a failed request)"
            )

    console.print(f"\nDone in {time.perf_counter() - started:.0f} s; the server is stopped.")
    if comparison:
        console.print(
            f"Champion vs challenger on {comparison['rows']} fresh rows: "
            f"{comparison['metric']} {comparison['champion']:.3f} → "
            f"{comparison['challenger']:.3f}"
        )
    console.print(f"Drift report: {html}")
    for cmd in (
        "loopml models show churn@production",
        "loopml loop history churn --evidence",
        "loopml monitor reports churn",
        "loopml predictions tail churn",
        "loopml runs list",
    ):
        console.print(f"  cd {directory} && {cmd}")
    if not ui:
        console.print(
            f"Web UI: cd {directory} && loopml server, then open http://127.0.0.1:5000/ "
            "(or rerun with --ui)"
        )
        return
    from loopml.server import run_server

    console.print(f"\nWeb UI: http://127.0.0.1:{ui_port}/ (Ctrl-C stops it)", highlight=False)
    with Workspace.open(directory) as ws:
        run_server(ws, host="127.0.0.1", port=ui_port)


def _check_port_free(port: int) -> None:
    """Refuse ``--ui-port`` before the long run if the port is bad or taken."""
    if not 1 <= port <= 65535:
        raise InvalidInput(f"--ui-port must be in 1-65535, not {port}")
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise InvalidInput(f"--ui-port {port} is taken: choose another") from None
