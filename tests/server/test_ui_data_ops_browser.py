"""The datasets and deployments pages in headless Chromium (Debian's, driven by Playwright)
against a live ``loopml server``: a version's histograms and a deployment's drift chart are
drawn. Screenshots land in the test's folder and in /tmp/loopml-ui-shots/. Under CI=true a
missing Chromium fails instead of skipping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from loopml.server import create_app
from tests.conftest import LiveServer
from tests.server.browser import shot, watched_page
from tests.server.ops_workspace import OpsData, populate


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsData]:
    made = populate(tmp_path_factory.mktemp("ui-ops") / "ws")
    yield made
    made.ws.close()


@pytest.fixture(scope="module")
def server(ops: OpsData) -> Iterator[LiveServer]:
    with LiveServer(create_app(ops.ws, auth=False)) as live:
        yield live


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from watched_page(browser)


def _drawn(page: Page, selector: str) -> None:
    canvas = page.locator(f"{selector} canvas")
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 150 and box["height"] > 100


def test_version_histograms_and_deployment_drift_chart(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    page.goto(f"{server.url}/datasets")
    page.click("a[href='/datasets/churn']")
    expect(page.locator("table.grid tbody tr")).to_have_count(2)
    shot(page, tmp_path, "dataset")
    page.click("a[href='/datasets/churn/1']")
    expect(page.locator("details.report[open] tbody tr")).to_have_count(2)  # its two checks
    shot(page, tmp_path, "dataset-validated")
    page.goto(f"{server.url}/datasets/churn/2")
    _drawn(page, "figure.hist[data-column=age]")
    _drawn(page, "figure.hist[data-column=income]")
    expect(page.locator("figure.top[data-column=plan] .bar").first).to_be_visible()
    shot(page, tmp_path, "dataset-version")
    page.select_option("form.against select", "1")  # the same pair, chosen again
    expect(page.locator("section >> text=From churn@1 to churn@2")).to_be_visible()

    page.goto(f"{server.url}/deployments")
    shot(page, tmp_path, "deployments")
    page.click("a[href='/deployments/churn']")
    for chart in ("rate", "latency", "errors"):
        _drawn(page, f"figure.traffic[data-chart={chart}]")
    expect(page.locator("section.requests .totals")).to_contain_text("450 requests")
    page.select_option("section.requests select.window", "15m")
    expect(page.locator("section.requests .totals")).to_contain_text("in the last 15m")
    _drawn(page, "figure.drift[data-monitor=churn-drift]")
    expect(page.locator("figure.drift[data-monitor=churn-drift] .u-legend")).to_contain_text(
        "drift share"
    )
    page.click("table.decisions summary")
    expect(page.locator("pre.evidence")).to_contain_text('"monitor"')
    shot(page, tmp_path, "deployment")
