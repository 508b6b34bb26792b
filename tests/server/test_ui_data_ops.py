"""The datasets and deployments pages of the web UI through Starlette's test client, over
the workspace of ``ops_workspace.py``: status codes, what each page shows, bad versions,
escaping and roles (the browser check of their charts is in test_ui_data_ops_browser.py)."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette >= 1.x asks for httpx2; httpx still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from loopml import data
from loopml.server import create_app
from tests.server.ops_workspace import EVIL, OpsData, populate

ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsData]:
    made = populate(tmp_path_factory.mktemp("ui-ops") / "ws")
    yield made
    made.ws.close()


@pytest.fixture(scope="module")
def open_ui(ops: OpsData) -> TestClient:
    return TestClient(create_app(ops.ws, auth=False), follow_redirects=False)


def _logged_in(ops: OpsData, token: str) -> TestClient:
    client = TestClient(create_app(ops.ws, auth=True), follow_redirects=False)
    done = client.post("/login", data={"token": token, "next": "/datasets"}, headers=ORIGIN)
    assert done.status_code == 303
    return client


def _json(page: str, element_id: str) -> dict[str, object]:
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page)
    assert found is not None, element_id
    loaded: dict[str, object] = json.loads(found.group(1))
    return loaded


def test_every_page_answers(open_ui: TestClient) -> None:
    for path in [
        "/datasets",
        "/datasets/churn",
        "/datasets/churn/1",
        "/datasets/churn/2",
        "/datasets/churn/latest",
        "/datasets/churn/stable",
        "/deployments",
        "/deployments/churn",
        "/ui/static/data_ops.js",
        "/ui/static/data_ops.css",
    ]:
        assert open_ui.get(path).status_code == 200, path
    nav = open_ui.get("/datasets").text
    assert '<a href="/datasets" class="on">Datasets</a>' in nav and 'href="/deployments"' in nav


def test_dataset_lists_and_versions(open_ui: TestClient, ops: OpsData) -> None:
    listed = open_ui.get("/datasets").text
    assert 'href="/datasets/churn"' in listed and "v2" in listed and "400" in listed
    versions = open_ui.get("/datasets/churn").text
    assert versions.index('id="v2"') < versions.index('id="v1"')  # newest first
    v1 = data.resolve("churn@1", workspace=ops.ws)
    assert v1.content_hash[:12] in versions and "600" in versions
    row = versions[versions.index('id="v1"') :]
    assert '<span class="alias">stable</span>' in row[: row.index("</tr>")]


def test_version_page_shows_schema_profile_reports_and_diff(open_ui: TestClient) -> None:
    page = open_ui.get("/datasets/churn/2").text
    assert "<th>income</th><td><code>double</code></td><td>numeric</td>" in page
    charts = _json(page, "histograms")
    assert {"age", "income"} <= set(charts) and "plan" not in charts  # plan: top values
    age = charts["age"]
    assert isinstance(age, dict) and sum(age["y"]) == 400 and len(age["edges"]) == len(age["x"]) + 1
    assert 'figure class="chart top" data-column="plan"' in page and "team" in page
    assert "No validation reports for this version." in page
    assert "From <strong>churn@1</strong> to <strong>churn@2</strong>" in page  # the previous
    assert "rows 600 → 400" in page and "(-200)" in page and "Same schema." in page
    assert '<option value="1" selected>v1</option>' in page

    v1 = open_ui.get("/datasets/churn/1").text
    assert "churn-checks" in v1 and "failed" in v1 and "in_range" in v1  # ages over 60
    assert "From <strong>churn@2</strong> to <strong>churn@1</strong>" in v1  # the only other


def test_bad_versions_get_a_clear_message_not_a_500(open_ui: TestClient) -> None:
    missing = open_ui.get("/datasets/churn/9")
    assert missing.status_code == 404 and "has no version 9 (versions: 1, 2)" in missing.text
    assert open_ui.get("/datasets/churn/0").status_code == 422
    assert "versions start at 1" in open_ui.get("/datasets/churn/0").text
    assert open_ui.get("/datasets/churn/nope").status_code == 404  # read as an alias
    assert "no alias" in open_ui.get("/datasets/churn/nope").text
    assert open_ui.get("/datasets/nope").status_code == 404
    assert open_ui.get("/datasets/nope/1").status_code == 404
    assert open_ui.get("/datasets/%3Cb%3E").status_code == 422  # not a dataset name
    against = open_ui.get("/datasets/churn/2", params={"against": "7"})
    assert against.status_code == 200 and "has no version 7" in against.text
    assert open_ui.get("/deployments/nope").status_code == 404


def test_user_data_is_escaped(open_ui: TestClient) -> None:
    page = open_ui.get("/datasets/churn/2").text
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    bad = open_ui.get("/datasets/churn/%3Cscript%3E")
    assert bad.status_code == 422 and "<script>" not in bad.text


def test_deployments_list_and_page(open_ui: TestClient) -> None:
    listed = open_ui.get("/deployments").text
    assert 'href="/deployments/churn"' in listed and "<code>@production</code>" in listed
    assert "single" in listed
    page = open_ui.get("/deployments/churn").text
    assert "churn-drift" in page and "churn-quiet" in page
    drift = _json(page, "drift")
    series = drift["series"]
    assert isinstance(series, dict) and set(series) == {"churn-drift", "churn-quiet"}
    shares = series["churn-drift"]["drift_share"]
    assert len(shares) == 3 and shares[0] < 0.3 < shares[-1]  # calm, then drifted
    ts = series["churn-drift"]["t"]
    assert ts == sorted(ts)
    assert drift["thresholds"] == {"churn-drift": 0.5, "churn-quiet": 0.5}
    assert '<span class="st failed">1 firing</span>' in page  # drift_share > 0.3
    assert "<code>drift_share &gt; 0.3</code>" in page
    assert '<span class="st decision skipped">skipped</span>' in page
    assert "no alert firing" in page and "&#34;monitor&#34;" in page  # the evidence, as JSON
    assert 'section class="requests" data-deployment="churn"' in page
    assert page.count('class="chart traffic"') == 3  # rate, latency, errors


def test_request_stats_feed_the_live_charts(open_ui: TestClient) -> None:
    got = open_ui.get("/api/v1/deployments/churn/requests?since=1h&bucket=1m")
    assert got.status_code == 200
    buckets = got.json()["buckets"]
    assert set(buckets) == {"t", "requests", "rows", "errors", "error_rate", "p50_ms", "p99_ms"}
    assert len(buckets["t"]) in (60, 61) and buckets["t"] == sorted(buckets["t"])
    assert sum(buckets["requests"]) == 450 and sum(buckets["errors"]) == 0  # 3 x 150 logged
    assert {v for v, n in zip(buckets["p50_ms"], buckets["requests"], strict=True) if n} == {2.0}
    assert None in buckets["p50_ms"]  # idle minutes are gaps, not zeros
    bad = open_ui.get("/api/v1/deployments/churn/requests?bucket=sometimes")
    assert bad.status_code == 422 and "bucket must be a positive duration" in bad.text


def test_roles(ops: OpsData) -> None:
    viewer = _logged_in(ops, ops.viewer)
    for path in ["/datasets/churn", "/datasets/churn/2", "/deployments/churn"]:
        assert viewer.get(path).status_code == 200, path
    outsider = _logged_in(ops, ops.outsider)
    assert "churn" not in outsider.get("/datasets").text.split("<main>")[1]
    assert "No deployments yet" in outsider.get("/deployments").text
    for path in [
        "/datasets/churn",
        "/datasets/churn/2",
        "/datasets/churn/9",
        "/deployments/churn",
        "/api/v1/deployments/churn/requests",
    ]:
        refused = outsider.get(path)
        assert refused.status_code == 403, path
        assert "viewer is needed" in refused.text or "role" in refused.text
