"""What the web UI's browser tests share: Debian's Chromium driven by Playwright (no
browser download), a logged-in page that fails on any JavaScript error, and screenshots
kept in the test's folder and in /tmp/loopml-ui-shots/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import LiveServer

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = Path("/tmp/loopml-ui-shots")
VIEWPORT = {"width": 1360, "height": 900}


def launch() -> Iterator[Browser]:
    """A headless Chromium; fails under CI=true when it is missing, else skips."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Chromium at {CHROMIUM} under CI (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


def watched_page(browser: Browser) -> Iterator[Page]:
    """A fresh page; the test fails if any page it opened raised a JavaScript error."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def logged_in(browser: Browser, server: LiveServer, token: str) -> Iterator[Page]:
    """A page logged in with ``token`` through /login (from a page that needs it)."""
    for page in watched_page(browser):
        page.goto(f"{server.url}/experiments/churn")
        expect(page).to_have_url(f"{server.url}/login?next=%2Fexperiments%2Fchurn")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{server.url}/experiments/churn")
        yield page


def shot(page: Page, tmp_path: Path, name: str) -> None:
    """Save a full-page screenshot ``name``.png in the test's folder and in SHOTS."""
    folder = tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(folder / f"{name}.png", SHOTS / f"{name}.png")
