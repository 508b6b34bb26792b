"""The datasets and deployments pages in headless Chromium (Debian's, driven by Playwright)
against a live ``loopml server``: a version's histograms and a deployment's drift chart are
drawn. Screenshots land in the test's folder and in /tmp/loopml-ui-shots/. Under CI=true a
missing Chromium fails instead of skipping."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.server import create_app
from tests.conftest import LiveServer
from tests.server.ops_workspace import OpsData, populate

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = Path("/tmp/loopml-ui-shots")

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        pytest.fail(f"no Chromium at {CHROMIUM} under CI (apt-get install chromium)", pytrace=False)
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


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
def page() -> Iterator[Page]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        opened = chromium.new_context(viewport={"width": 1360, "height": 900}).new_page()
        errors: list[str] = []
        opened.on("pageerror", lambda exc: errors.append(str(exc)))
        yield opened
        chromium.close()
        assert not errors, errors  # no JavaScript error on any page


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SHOTS / f"{name}.png")


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
    _shot(page, tmp_path, "dataset")
    page.click("a[href='/datasets/churn/1']")
    expect(page.locator("details.report[open] tbody tr")).to_have_count(2)  # its two checks
    _shot(page, tmp_path, "dataset-validated")
    page.goto(f"{server.url}/datasets/churn/2")
    _drawn(page, "figure.hist[data-column=age]")
    _drawn(page, "figure.hist[data-column=income]")
    expect(page.locator("figure.top[data-column=plan] .bar").first).to_be_visible()
    _shot(page, tmp_path, "dataset-version")
    page.select_option("form.against select", "1")  # the same pair, chosen again
    expect(page.locator("section >> text=From churn@1 to churn@2")).to_be_visible()

    page.goto(f"{server.url}/deployments")
    _shot(page, tmp_path, "deployments")
    page.click("a[href='/deployments/churn']")
    _drawn(page, "figure.drift[data-monitor=churn-drift]")
    expect(page.locator("figure.drift[data-monitor=churn-drift] .u-legend")).to_contain_text(
        "drift share"
    )
    page.click("table.decisions summary")
    expect(page.locator("pre.evidence")).to_contain_text('"monitor"')
    _shot(page, tmp_path, "deployment")
