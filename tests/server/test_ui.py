"""The web UI end to end: headless Chromium (Debian's, driven by Playwright) against a live
``loopml server`` with auth on. Screenshots of each main page land in the test's folder
and in /tmp/loopml-ui-shots/. Under CI=true a missing Chromium fails instead of skipping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from loopml.registry._registry import get_model
from loopml.server import create_app
from tests.conftest import LiveServer
from tests.server.browser import logged_in, shot
from tests.server.ui_workspace import UiData, populate


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiData]:
    made = populate(tmp_path_factory.mktemp("ui") / "ws")
    yield made
    made.ws.close()


@pytest.fixture(scope="module")
def server(ui: UiData) -> Iterator[LiveServer]:
    with LiveServer(create_app(ui.ws, auth=True)) as live:
        yield live


@pytest.fixture
def editor(browser: Browser, server: LiveServer, ui: UiData) -> Iterator[Page]:
    yield from logged_in(browser, server, ui.editor)


@pytest.fixture
def viewer(browser: Browser, server: LiveServer, ui: UiData) -> Iterator[Page]:
    yield from logged_in(browser, server, ui.viewer)


def test_runs_table_filter_run_page_and_curves(
    editor: Page, server: LiveServer, ui: UiData, tmp_path: Path
) -> None:
    rows = editor.locator("table.runs-table tbody tr")
    expect(rows).to_have_count(31)  # 30 trials and the tuning parent
    editor.click("button.nest")  # its 3 children, loaded under it
    expect(editor.locator("table.runs-table tbody tr.child")).to_have_count(3)
    expect(rows).to_have_count(34)
    expect(editor.locator("button.nest")).to_be_hidden()
    shot(editor, tmp_path, "runs-table")
    editor.fill("input.filter", "metrics.auc > 0.8")
    editor.press("input.filter", "Enter")
    high = sum(1 for auc in ui.auc.values() if auc > 0.8)
    expect(rows).to_have_count(high)  # swapped by htmx, the URL follows
    expect(editor).to_have_url(re.compile(r"/experiments/churn\?filter=metrics\.auc(%20|\+)%3E"))
    assert editor.locator("header.top").count() == 1  # the table was swapped, not the page
    shot(editor, tmp_path, "runs-filtered")

    editor.fill("input.filter", "metrics.auc >>")
    editor.press("input.filter", "Enter")
    expect(editor.locator("p.error")).to_contain_text("invalid filter")

    editor.goto(f"{server.url}/experiments/churn")
    editor.click("th >> text=auc")  # sort by auc, highest first
    best = max(ui.auc, key=ui.auc.__getitem__)
    expect(rows.first.locator("a")).to_have_attribute("href", f"/runs/{best}")
    rows.first.locator("a").click()
    expect(editor).to_have_url(f"{server.url}/runs/{best}")
    canvas = editor.locator("figure.chart[data-key=loss] canvas")
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    editor.check("#logy")  # redrawn on a log scale
    expect(editor.locator("figure.chart[data-key=loss] canvas")).to_have_count(1)
    editor.locator("#smooth").fill("0.6")
    expect(editor.locator("figure.chart[data-key=loss] .u-legend")).to_contain_text("smoothed")
    shot(editor, tmp_path, "run")

    editor.goto(f"{server.url}/runs/{ui.parent_run}")
    expect(editor.locator(".gallery img")).to_have_js_property("complete", True)
    width: Any = editor.locator(".gallery img").evaluate("img => img.naturalWidth")
    assert width > 0
    editor.click("tr:has-text('best.json') >> text=View")
    expect(editor.locator("#viewer pre")).to_contain_text('"lr": 0.05')
    expect(editor.locator("#children table.runs-table tbody tr")).to_have_count(3)
    shot(editor, tmp_path, "run-parent")


def test_column_chooser_loads_every_key_when_opened(editor: Page, server: LiveServer) -> None:
    editor.goto(f"{server.url}/experiments/churn")
    editor.click("details.cols summary")
    leaves = editor.locator("details.cols input[value='params.num_leaves']")
    expect(leaves).to_be_visible()  # a key only child runs have, fetched on opening
    leaves.check()
    editor.click("details.cols button[type=submit]")
    expect(editor.locator("th[title='params.num_leaves']")).to_be_visible()


def test_editor_moves_an_alias_with_confirmation(
    editor: Page, server: LiveServer, ui: UiData, tmp_path: Path
) -> None:
    editor.goto(f"{server.url}/models")
    shot(editor, tmp_path, "models")
    editor.click("a[href='/models/churn']")
    form = editor.locator("form.move")
    expect(form).to_be_visible()
    shot(editor, tmp_path, "model")
    form.locator("input[name=alias]").fill("production")
    form.locator("select[name=version]").select_option("2")
    form.locator("button").click()
    expect(editor.locator("form.confirm")).to_contain_text("from v1 to v2")
    assert get_model(ui.ws, "churn").aliases["production"] == 1  # not before confirming
    shot(editor, tmp_path, "alias-confirm")
    editor.click("form.confirm button.primary")
    expect(editor).to_have_url(f"{server.url}/models/churn")
    expect(editor.locator("tr#v2 .alias")).to_contain_text("production")
    assert get_model(ui.ws, "churn").aliases["production"] == 2


def test_viewer_sees_no_alias_controls(viewer: Page, server: LiveServer, tmp_path: Path) -> None:
    viewer.goto(f"{server.url}/models/churn")
    expect(viewer.locator("table.grid tbody tr")).to_have_count(2)
    expect(viewer.locator("form.move")).to_have_count(0)
    expect(viewer.locator("header .who")).to_contain_text("vic")
    shot(viewer, tmp_path, "model-viewer")
    viewer.click("header .who button")
    expect(viewer).to_have_url(f"{server.url}/login")
