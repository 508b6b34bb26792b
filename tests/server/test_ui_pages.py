"""The web UI's pages through Starlette's test client: status codes, escaping of user data,
filter errors, roles, login and the CSRF check (the browser tests are in test_ui.py)."""

from __future__ import annotations

import html
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette >= 1.x asks for httpx2; httpx still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from loopml.registry._registry import get_model
from loopml.server import create_app
from loopml.server._auth import COOKIE
from loopml.server.ui import STATIC
from tests.server.ui_workspace import EVIL, UiData, populate

HTML = {"Accept": "text/html"}
ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiData]:
    made = populate(tmp_path_factory.mktemp("ui") / "ws")
    yield made
    made.ws.close()


def _client(ui: UiData, *, auth: bool) -> TestClient:
    return TestClient(create_app(ui.ws, auth=auth), follow_redirects=False)


@pytest.fixture(scope="module")
def open_ui(ui: UiData) -> TestClient:
    return _client(ui, auth=False)


def _logged_in(ui: UiData, token: str) -> TestClient:
    client = _client(ui, auth=True)
    done = client.post("/login", data={"token": token, "next": "/models"}, headers=ORIGIN)
    assert done.status_code == 303 and done.headers["location"] == "/models"
    return client


def _aliases(ui: UiData) -> dict[str, int]:
    return get_model(ui.ws, "churn").aliases


def _run_links(html: str) -> list[str]:
    return re.findall(r'<a href="/runs/([0-9a-f]+)">', html)


def test_every_page_answers(open_ui: TestClient, ui: UiData) -> None:
    assert open_ui.get("/").headers["location"] == "/experiments"
    for path in [
        "/experiments",
        "/experiments/churn",
        f"/runs/{ui.parent_run}",
        f"/runs/{ui.parent_run}/children",
        "/models",
        "/models/churn",
    ]:
        page = open_ui.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html"), path
    assert open_ui.get("/runs/0123456789abcdef").status_code == 404
    assert "no registered model" in open_ui.get("/models/nope").text
    assert open_ui.get("/experiments/nope").status_code == 404
    for asset in ["vendor/htmx.min.js", "vendor/uPlot.iife.min.js", "ui.css", "run.js"]:
        assert open_ui.get(f"/ui/static/{asset}").status_code == 200, asset


def test_user_data_is_escaped(open_ui: TestClient, ui: UiData) -> None:
    table = open_ui.get("/experiments/churn").text
    run = open_ui.get(f"/runs/{ui.evil_run}").text
    for page in (table, run):
        assert EVIL not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    viewed = open_ui.get(f"/runs/{ui.parent_run}/view/best.json").text
    assert "</pre><b>" not in viewed and "&lt;/pre&gt;&lt;b&gt;" in viewed


def test_runs_table_filters_sorts_and_pages(open_ui: TestClient, ui: UiData) -> None:
    best = open_ui.get("/experiments/churn", params={"filter": "metrics.auc > 0.8"}).text
    expected = {r for r, auc in ui.auc.items() if auc > 0.8}
    shown = set(_run_links(best))
    assert expected <= shown and not shown & {r for r, a in ui.auc.items() if a <= 0.8}

    ordered = open_ui.get("/experiments/churn", params={"order": "metrics.auc ASC", "n": "25"})
    first_page = _run_links(ordered.text)
    assert len(first_page) == 25 and first_page[0] == min(ui.auc, key=ui.auc.__getitem__)
    assert "Next →" in ordered.text and "page=2" in ordered.text
    second = open_ui.get(
        "/experiments/churn", params={"order": "metrics.auc ASC", "n": "25", "page": "2"}
    )
    assert not set(_run_links(second.text)) & set(first_page)
    assert "← Previous" in second.text and "Next →" not in second.text

    fragment = open_ui.get("/experiments/churn", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "runs-table" in fragment.text
    assert fragment.headers["vary"] == "HX-Request"


def test_child_runs_nest_under_their_parent(open_ui: TestClient, ui: UiData) -> None:
    page = open_ui.get("/experiments/churn").text
    top = _run_links(page)
    assert len(top) == 31 and ui.parent_run in top and not set(ui.children) & set(top)
    toggle = re.search(r'<button type="button" class="nest"[^>]*hx-get="([^"]+)"[^>]*>▸ 3<', page)
    assert toggle is not None, "the tuning parent's toggle"
    rows = open_ui.get(html.unescape(toggle.group(1))).text
    assert "<table" not in rows and rows.count('<tr class="child depth-1">') == 3
    assert set(_run_links(rows)) == set(ui.children)
    assert 'title="metrics.auc"' not in rows  # cells only, under the parent's columns

    def widths(html: str, row: str) -> set[int]:
        return {r.count("<td") for r in re.findall(rf"{row}(.*?)</tr>", html, re.S)} - {0}

    assert len(widths(page, "<tr>")) == 1  # every top-level row has one cell per column
    assert widths(rows, "<tr class[^>]*>") == widths(page, "<tr>")
    flat = open_ui.get("/experiments/churn", params={"flat": "1"}).text
    assert len(_run_links(flat)) == 34 and "Nest child runs" in flat
    assert "Flat list" in page


def test_a_bad_filter_is_shown_not_a_500(open_ui: TestClient) -> None:
    for query in ({"filter": "metrics.auc >> 1"}, {"order": "metrics.auc SIDEWAYS"}):
        page = open_ui.get("/experiments/churn", params=query)
        assert page.status_code == 200
        assert re.search(r'class="error" role="alert">[^<]*(filter|order)', page.text), query


def test_column_chooser(open_ui: TestClient) -> None:
    default = open_ui.get("/experiments/churn").text
    assert 'title="metrics.auc"' in default and 'title="tags.team"' not in default
    chosen = open_ui.get("/experiments/churn", params=[("chosen", "1"), ("col", "tags.team")]).text
    assert 'title="tags.team"' in chosen and 'title="metrics.auc"' not in chosen
    assert "growth" in chosen


def test_column_chooser_offers_every_key_of_the_experiment(open_ui: TestClient) -> None:
    page = open_ui.get("/experiments/churn").text
    assert 'hx-get="/experiments/churn/columns?col=metrics.auc' in page  # loaded when opened
    assert 'value="params.num_leaves"' not in page  # only the nested children have it
    got = open_ui.get(
        "/experiments/churn/columns", params=[("col", "metrics.auc"), ("col", "params.model")]
    )
    offered = re.findall(r'<input type="checkbox" name="col" value="([^"]+)" (checked)?', got.text)
    assert dict(offered) == {
        "metrics.auc": "checked",
        "metrics.loss": "",
        "params.lr": "",
        "params.model": "checked",
        "params.num_leaves": "",
        "tags.team": "",
    }
    assert open_ui.get("/experiments/nope/columns").status_code == 404


def test_run_page(open_ui: TestClient, ui: UiData) -> None:
    trial = open_ui.get(f"/runs/{ui.evil_run}").text
    found = re.search(r'<script type="application/json" id="curves">(.*?)</script>', trial)
    assert found is not None
    curves = json.loads(found.group(1))
    assert set(curves) == {"loss"} and curves["loss"]["step"] == list(range(40))  # auc: 1 point
    page = open_ui.get(f"/runs/{ui.parent_run}").text
    assert 'id="curves"' not in page and "<th>auc</th>" in page  # a latest value, no curve
    assert "customers@1" in page and "training" in page  # the input dataset
    assert all(child in page for child in ui.children)  # the child runs' table
    assert f'src="/runs/{ui.parent_run}/artifacts/curve.png"' in page
    image = open_ui.get(f"/runs/{ui.parent_run}/artifacts/curve.png")
    assert image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"
    assert image.headers["content-security-policy"].startswith("sandbox")
    assert image.headers["x-content-type-options"] == "nosniff"
    viewed = open_ui.get(f"/runs/{ui.parent_run}/view/best.json").text
    assert '{\n  "best": {\n    "lr": 0.05' in html.unescape(viewed)  # pretty-printed
    assert open_ui.get(f"/runs/{ui.parent_run}/artifacts/nope.txt").status_code == 404


def test_pages_send_a_browser_to_login(ui: UiData) -> None:
    client = _client(ui, auth=True)
    page = client.get("/experiments/churn", headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fexperiments%2Fchurn"
    htmx = client.get("/experiments/churn", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"].startswith("/login")
    assert client.get("/api/v1/experiments", headers=HTML).status_code == 401  # API: JSON 401
    assert client.get("/login").status_code == 200
    assert client.get("/ui/static/ui.css").status_code == 200
    bad = client.post("/login", data={"token": "lml_wrong"}, headers=ORIGIN)
    assert bad.status_code == 401 and "unknown API token" in bad.text
    assert COOKIE not in bad.cookies


def test_login_sets_a_strict_httponly_cookie_and_logout_clears_it(ui: UiData) -> None:
    client = _client(ui, auth=True)
    done = client.post(
        "/login", data={"token": ui.viewer, "next": "//evil.example"}, headers=ORIGIN
    )
    assert done.headers["location"] == "/experiments"  # never off-site
    cookie = done.headers["set-cookie"]
    assert f"{COOKIE}={ui.viewer}" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/experiments").status_code == 200
    assert client.get("/api/v1/whoami").json()["user"] == "vic"  # the API takes it too
    out = client.post("/logout")
    assert out.status_code == 303 and 'loopml_token=""' in out.headers["set-cookie"]
    assert client.get("/experiments", headers=HTML).status_code == 303


def test_viewer_sees_no_alias_controls_and_is_refused(ui: UiData) -> None:
    client = _logged_in(ui, ui.viewer)
    experiments = client.get("/experiments").text
    assert "churn" in experiments and "hidden" not in experiments
    assert client.get("/experiments/hidden").status_code == 403
    model = client.get("/models/churn").text
    assert (
        "production" in model and "Move an alias" not in model and '<form class="move"' not in model
    )
    move = {"alias": "production", "version": "2", "confirm": "yes"}
    refused = client.post("/models/churn/aliases", data=move, headers=ORIGIN)
    assert refused.status_code == 403 and "editor is needed" in refused.text
    assert _aliases(ui)["production"] == 1


def test_editor_moves_an_alias_after_confirming(ui: UiData) -> None:
    client = _logged_in(ui, ui.editor)
    assert "Move an alias" in client.get("/models/churn").text
    ask = client.post(
        "/models/churn/aliases", data={"alias": "staging", "version": "2"}, headers=ORIGIN
    )
    assert ask.status_code == 200 and "Create alias" in ask.text and 'value="yes"' in ask.text
    assert "staging" not in _aliases(ui)  # nothing moved yet
    done = client.post(
        "/models/churn/aliases",
        data={"alias": "staging", "version": "2", "confirm": "yes"},
        headers=ORIGIN,
    )
    assert done.status_code == 303 and done.headers["location"] == "/models/churn"
    assert _aliases(ui)["staging"] == 2
    bad = client.post("/models/churn/aliases", data={"alias": "x", "version": "9"}, headers=ORIGIN)
    assert bad.status_code == 404


def test_cookie_writes_need_this_servers_origin(ui: UiData) -> None:
    client = _logged_in(ui, ui.editor)
    move = {"alias": "csrf", "version": "1", "confirm": "yes"}
    for headers in ({}, {"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"}):
        refused = client.post("/models/churn/aliases", data=move, headers=headers)
        assert refused.status_code == 403, headers
    api = client.put("/api/v1/models/churn/aliases/csrf", json={"version": 1})
    assert api.status_code == 403  # the API refuses a cookie write without Origin as well
    assert "csrf" not in _aliases(ui)
    by_referer = client.post(
        "/models/churn/aliases", data=move, headers={"Referer": "http://testserver/models/churn"}
    )
    assert by_referer.status_code == 303
    assert _aliases(ui)["csrf"] == 1


def test_open_server_ui_still_checks_origin(open_ui: TestClient) -> None:
    move = {"alias": "x", "version": "1", "confirm": "yes"}
    assert open_ui.post("/models/churn/aliases", data=move).status_code == 403
    assert open_ui.get("/login").headers["location"] == "/experiments"


def test_assets_ship_in_the_package() -> None:
    vendor = STATIC / "vendor"
    for name in [
        "htmx.min.js",
        "htmx.LICENSE",
        "uPlot.iife.min.js",
        "uPlot.min.css",
        "uPlot.LICENSE",
    ]:
        assert (vendor / name).stat().st_size > 500, name
    assert (Path(STATIC).parent / "templates" / "base.html").exists()
