"""The compare page and the lineage graph in headless Chromium (as test_ui.py drives it):
the overlaid curves and parallel coordinates draw, the lineage graph shows its nodes and
edges. Screenshots land in the test's folder and in /tmp/loopml-ui-shots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from loopml import serving
from loopml.server import create_app
from tests.conftest import LiveServer
from tests.server.browser import logged_in, shot
from tests.server.ui_workspace import UiData, populate


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiData]:
    made = populate(tmp_path_factory.mktemp("ui-compare-browser") / "ws")
    serving.deploy(
        made.ws, "churn-api", model="churn", primary="@production", canary=2, traffic=0.1
    )
    yield made
    made.ws.close()


@pytest.fixture(scope="module")
def server(ui: UiData) -> Iterator[LiveServer]:
    with LiveServer(create_app(ui.ws, auth=True)) as live:
        yield live


@pytest.fixture
def viewer(browser: Browser, server: LiveServer, ui: UiData) -> Iterator[Page]:
    yield from logged_in(browser, server, ui.viewer)


def test_compare_from_the_runs_table_and_the_lineage_graph(
    viewer: Page, server: LiveServer, ui: UiData, tmp_path: Path
) -> None:
    picked = list(ui.auc)[:4]
    for run_id in picked:
        viewer.check(f"input[name=runs][value='{run_id}']")
    viewer.click("text=Compare selected")
    expect(viewer.locator("h1")).to_contain_text("Compare 4 runs")
    assert viewer.url.count("runs=") == 4
    canvas = viewer.locator("figure.overlay[data-key=loss] canvas")
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    legend = viewer.locator("figure.overlay[data-key=loss] .u-legend .u-series")
    expect(legend).to_have_count(5)
    viewer.locator("#smooth").fill("0.8")  # every run's curve smoothed, redrawn
    expect(viewer.locator("#smooth-value")).to_have_text("0.8")
    expect(viewer.locator("figure.overlay[data-key=loss] canvas")).to_have_count(1)
    legend.nth(1).click()  # hide the first run
    expect(legend.nth(1)).to_have_class(re.compile(r"\bu-off\b"))
    expect(viewer.locator("#parallel canvas")).to_be_visible()
    expect(viewer.locator("table.params tr.differs")).to_have_count(2)  # lr and model
    shot(viewer, tmp_path, "compare")

    viewer.goto(f"{server.url}/models/churn")
    viewer.click("text=Lineage graph")
    nodes = viewer.locator("#lineage .node")
    expect(nodes).to_have_count(6)  # a dataset, 2 runs, 2 versions, a deployment
    expect(viewer.locator("#lineage svg.edges path")).to_have_count(
        5
    )  # customers → tune-lgbm, runs → v1, v2, v1 and v2 → churn-api
    expect(viewer.locator("#lineage .node.deployment")).to_contain_text("churn-api")
    viewer.click("#lineage .node.dataset_version a")
    expect(viewer).to_have_url(f"{server.url}/datasets/customers/1")
    viewer.go_back()
    shot(viewer, tmp_path, "lineage")
