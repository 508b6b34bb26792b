"""The compare page and the model lineage graph through Starlette's test client."""

from __future__ import annotations

import html
import json
import re
import warnings
from collections.abc import Iterator

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette >= 1.x asks for httpx2; httpx still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from loopml import serving
from loopml.server import create_app
from loopml.server.ui._lineage import lineage_graph
from loopml.tracking import search_runs
from tests.server.ui_workspace import UiData, populate

ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiData]:
    made = populate(tmp_path_factory.mktemp("ui-compare") / "ws")
    serving.deploy(
        made.ws, "churn-api", model="churn", primary="@production", canary=2, traffic=0.1
    )
    yield made
    made.ws.close()


@pytest.fixture(scope="module")
def client(ui: UiData) -> TestClient:
    return TestClient(create_app(ui.ws, auth=False), follow_redirects=False)


def _data(page: str) -> dict[str, object]:
    found = re.search(
        r'<script type="application/json" id="compare-data">(.*?)</script>', page, re.S
    )
    assert found is not None
    loaded: dict[str, object] = json.loads(html.unescape(found.group(1)))
    return loaded


def test_compare_diffs_params_and_overlays_shared_curves(ui: UiData, client: TestClient) -> None:
    first, second = list(ui.auc)[:2]  # model xgb vs rf, lr 0.01 vs 0.02
    page = client.get("/compare", params={"runs": [first, second]})
    assert page.status_code == 200
    rows = re.findall(r'<tr class="(differs)?"><th>([^<]+)</th>', page.text)
    assert ("differs", "lr") in rows and ("differs", "model") in rows
    data = _data(page.text)
    assert data["ids"] == [first, second]
    curves = data["curves"]
    assert isinstance(curves, dict) and list(curves) == ["loss"]  # auc has one point a run
    assert [len(steps) for steps, _ in curves["loss"]] == [40, 40]
    parallel = data["parallel"]
    assert isinstance(parallel, dict) and parallel["axes"] == ["lr", "auc"]  # model is a word
    assert parallel["runs"] == [[0.0, 0.0], [1.0, 1.0]]


def test_compare_marks_equal_params_and_missing_ones(ui: UiData, client: TestClient) -> None:
    runs = [next(iter(ui.auc)), list(ui.auc)[3], ui.children[0]]  # two xgb runs and a child
    page = client.get("/compare", params={"runs": runs, "metric": "auc"}).text
    assert '<tr class=""><th>team</th>' not in page  # tags are not params
    assert re.search(
        r'<tr class="differs"><th>num_leaves</th><td>—</td><td>—</td><td>16</td>', page
    )
    assert re.search(r'<tr class="differs"><th>model</th><td>xgb</td><td>xgb</td><td>—</td>', page)


@pytest.mark.parametrize(
    ("count", "fragment"), [(1, "got 1"), (11, "got 11")], ids=["one", "eleven"]
)
def test_compare_wants_two_to_ten_runs(
    ui: UiData, client: TestClient, count: int, fragment: str
) -> None:
    ids = list(ui.auc)[:count]
    page = client.get("/compare", params={"runs": ids})
    assert page.status_code == 422
    assert "compare takes 2 to 10 runs" in page.text and fragment in page.text


def test_compare_refuses_an_unknown_run(ui: UiData, client: TestClient) -> None:
    page = client.get("/compare", params={"runs": [next(iter(ui.auc)), "0" * 32]})
    assert page.status_code == 404 and "0" * 32 in page.text


def test_compare_needs_the_viewer_role_on_every_run(ui: UiData) -> None:
    client = TestClient(create_app(ui.ws, auth=True), follow_redirects=False)
    done = client.post("/login", data={"token": ui.viewer, "next": "/"}, headers=ORIGIN)
    assert done.status_code == 303
    hidden = str(search_runs(ui.ws, "hidden")["run_id"].iloc[0])  # a project vic lacks
    assert client.get("/compare", params={"runs": list(ui.auc)[:2]}).status_code == 200
    refused = client.get("/compare", params={"runs": [next(iter(ui.auc)), hidden]})
    assert refused.status_code == 403


def test_runs_table_submits_ticked_runs_to_compare(client: TestClient) -> None:
    page = client.get("/experiments/churn").text
    assert '<form id="compare" action="/compare" method="get">' in page
    ticks = re.findall(
        r'<input type="checkbox" name="runs" value="([0-9a-f]+)" form="compare"', page
    )
    assert len(ticks) == 31  # 30 trials and the tuning parent (its 3 children nest under it)


def test_lineage_graph_links_dataset_run_version_and_deployment(
    ui: UiData, client: TestClient
) -> None:
    columns = dict(lineage_graph(ui.ws, "churn"))
    assert list(columns) == ["Datasets", "Runs", "Versions", "Deployments"]
    assert [n.id for n in columns["Datasets"]] == ["customers@1"]
    assert {n.id for n in columns["Runs"]} == {ui.parent_run, ui.children[0]}
    assert [n.id for n in columns["Versions"]] == ["churn/2", "churn/1"]
    (api,) = columns["Deployments"]
    assert api.inputs == [
        ("model_version:churn/1", "primary"),
        ("model_version:churn/2", "candidate"),
    ]
    parent = next(n for n in columns["Runs"] if n.id == ui.parent_run)
    assert parent.label == "tune-lgbm" and parent.inputs == [
        ("dataset_version:customers@1", "training")
    ]
    page = client.get("/models/churn/lineage")
    assert page.status_code == 200
    for href in (
        "/datasets/customers/1",
        f"/runs/{ui.parent_run}",
        "/models/churn#v2",
        "/deployments/churn-api",
    ):
        assert f'<a href="{href}">' in page.text
    assert 'href="/models/churn/lineage"' in client.get("/models/churn").text


def test_lineage_of_an_unknown_model_is_404(client: TestClient) -> None:
    assert client.get("/models/nope/lineage").status_code == 404
