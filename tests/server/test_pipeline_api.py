"""``/api/v1/pipelines/runs``: pipeline runs and their steps through a real server (SQLite
and PostgreSQL), paged and filtered, with the one error shape and project roles."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

import loopml
from loopml.server import create_app
from loopml.server._users import add_user
from loopml.store import Workspace
from loopml.store.schema import experiments
from tests.conftest import LiveServer
from tests.pipelines import steps

with warnings.catch_warnings():  # starlette >= 1.x asks for httpx2; httpx still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


def _error(response: httpx.Response, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"} and error["field"] == field
    message: str = error["message"]
    return message


@pytest.fixture
def runs(ws: Workspace, tmp_path: Path) -> Iterator[tuple[Workspace, list[str]]]:
    """Three pipeline runs in ``ws``: two of ``arithmetic`` (the second from the cache) and
    one ``resumable`` that failed."""
    loopml.use_workspace(ws)
    first = steps.arithmetic.run({"n": 4}, workspace=ws)
    second = steps.arithmetic.run({"n": 4}, workspace=ws)
    (tmp_path / "flag").touch()
    failed = steps.resumable.run(
        {"flag": str(tmp_path / "flag"), "counter": str(tmp_path / "c")},
        workspace=ws,
        raise_on_failure=False,
    )
    assert failed.status == "FAILED"
    yield ws, [first.id, second.id, failed.id]


def test_runs_are_listed_paged_filtered_and_shown_with_their_steps(
    runs: tuple[Workspace, list[str]],
) -> None:
    ws, (first, second, failed) = runs
    with LiveServer(create_app(ws)) as server, httpx.Client(base_url=server.url) as api:
        listed = api.get("/api/v1/pipelines/runs").json()
        assert [r["id"] for r in listed["runs"]] == [failed, second, first]
        assert listed["next_page_token"] is None
        assert listed["runs"][0]["status"] == "FAILED" and listed["runs"][0]["project"]
        one = api.get("/api/v1/pipelines/runs", params={"max_results": 2}).json()
        assert [r["id"] for r in one["runs"]] == [failed, second]
        rest = api.get(
            "/api/v1/pipelines/runs",
            params={"max_results": 2, "page_token": one["next_page_token"]},
        ).json()
        assert [r["id"] for r in rest["runs"]] == [first] and rest["next_page_token"] is None
        by_name = api.get("/api/v1/pipelines/runs", params={"pipeline": "arithmetic"}).json()
        assert [r["id"] for r in by_name["runs"]] == [second, first]
        by_status = api.get("/api/v1/pipelines/runs", params={"status": "failed"}).json()
        assert [r["id"] for r in by_status["runs"]] == [failed]

        shown = api.get(f"/api/v1/pipelines/runs/{second}").json()["run"]
        assert shown["pipeline"] == "arithmetic" and shown["params"] == {"n": 4, "offset": 0.5}
        assert isinstance(shown["created_at"], int) and shown["status"] == "FINISHED"
        by_node = {s["node"]: s for s in shown["steps"]}
        assert set(by_node) == {"numbers", "double", "total", "total-2"}
        assert all(s["cache_hit"] for s in by_node.values())  # the second run hit the cache
        numbers = by_node["numbers"]
        assert numbers["output_kind"] == "parquet" and ws.blobs.exists(numbers["output_digest"])
        assert numbers["attempts"] == 0  # not run: taken from the cache
        fresh = {
            s["node"]: s for s in api.get(f"/api/v1/pipelines/runs/{first}").json()["run"]["steps"]
        }
        assert not any(s["cache_hit"] for s in fresh.values())
        assert all(s["attempts"] == 1 for s in fresh.values())
        assert all(s["ended_at"] >= s["started_at"] for s in fresh.values())
        assert all(loopml.tracking.get_run(ws, s["run_id"]) for s in fresh.values())
        broken = api.get(f"/api/v1/pipelines/runs/{failed}").json()["run"]
        assert broken["status"] == "FAILED" and "fails_if_flag" in broken["error"]
        statuses = {s["node"]: s for s in broken["steps"]}
        failing = statuses["fails_if_flag"]
        assert failing["status"] == "FAILED" and "the flag file says fail" in failing["error"]
        assert statuses["count_calls-2"]["status"] == "SKIPPED"


def test_bad_requests_get_the_one_error_shape(runs: tuple[Workspace, list[str]]) -> None:
    ws, _ = runs
    with TestClient(create_app(ws)) as api:
        assert "status must be one of" in _error(
            api.get("/api/v1/pipelines/runs?status=done"), 422, "status"
        )
        _error(api.get("/api/v1/pipelines/runs?max_results=0"), 422, "max_results")
        _error(api.get("/api/v1/pipelines/runs?max_results=x"), 422, "max_results")
        _error(api.get("/api/v1/pipelines/runs?page_token=%%%"), 422, "page_token")
        _error(api.get("/api/v1/pipelines/runs?pipeline="), 422, "pipeline")
        assert "no pipeline run" in _error(api.get("/api/v1/pipelines/runs/nope"), 404)
        assert "no pipeline run" in _error(api.get(f"/api/v1/pipelines/runs/{'x' * 100}"), 404)


def test_a_viewer_of_the_project_may_read_and_an_outsider_may_not(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    loopml.use_workspace(sqlite_ws)
    run = steps.arithmetic.run({"n": 2}, workspace=sqlite_ws)
    with sqlite_ws.db.write() as conn:  # the pipeline's experiment belongs to project vision
        conn.execute(sa.update(experiments).values(project="vision"))
    tokens = {
        "viewer": add_user(sqlite_ws, "vi", roles={"vision": "viewer"}),
        "outsider": add_user(sqlite_ws, "out", roles={"nlp": "editor"}),
    }
    with TestClient(create_app(sqlite_ws, auth=True)) as api:

        def get(who: str | None, path: str) -> httpx.Response:
            headers = {"authorization": f"Bearer {tokens[who]}"} if who else {}
            response: httpx.Response = api.get(path, headers=headers)
            return response

        path = f"/api/v1/pipelines/runs/{run.id}"
        _error(get(None, "/api/v1/pipelines/runs"), 401)
        seen = get("viewer", "/api/v1/pipelines/runs").json()["runs"]
        assert [(r["id"], r["project"]) for r in seen] == [(run.id, "vision")]
        assert get("viewer", path).json()["run"]["project"] == "vision"
        assert get("outsider", "/api/v1/pipelines/runs").json()["runs"] == []
        assert "in project 'vision'" in _error(get("outsider", path), 403)
