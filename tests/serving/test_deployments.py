"""Deployments: records, validation, lineage and the routing of each traffic policy."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import replace

import pytest

from loopml.errors import InvalidInput, NotFound
from loopml.serving._deployments import (
    Deployment,
    Policy,
    delete_deployment,
    deploy,
    get_deployment,
    list_deployments,
    resolve_version,
)
from loopml.store import Node, Workspace, upstream
from tests.serving._churn import register_churn


@pytest.fixture
def models(ws: Workspace) -> Workspace:
    register_churn(ws, versions=2)
    return ws


def test_single_deployment_defaults_to_production_of_the_model_named_like_it(
    models: Workspace,
) -> None:
    d = deploy(models, "churn")
    assert (d.name, d.model, d.primary, d.policy, d.candidate) == (
        "churn",
        "churn",
        "@production",
        "single",
        None,
    )
    assert d.traffic is None and d.sticky_key is None
    assert get_deployment(models, "churn") == d
    assert [x.name for x in list_deployments(models)] == ["churn"]
    assert {d.route(None), d.route("k1")} == {"primary"}


def test_update_replaces_the_policy_and_keeps_created_at(models: Workspace) -> None:
    first = deploy(models, "churn", primary="1")
    second = deploy(models, "churn", primary="@production", shadow="@challenger")
    assert second.policy == "shadow" and second.candidate == "@challenger"
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    third = deploy(models, "churn", canary="v2", traffic=0.25, sticky_key="user_id")
    assert (third.policy, third.candidate, third.traffic, third.sticky_key) == (
        "canary",
        "2",
        0.25,
        "user_id",
    )
    assert len(list_deployments(models)) == 1


def test_a_deployment_can_serve_another_model_under_its_own_name(models: Workspace) -> None:
    register_churn(models, versions=1, name="fraud")
    d = deploy(models, "fraud-api", model="fraud", primary=1)
    assert d.model == "fraud" and d.primary == "1"
    # an update without model= keeps the deployment's model
    assert deploy(models, "fraud-api", primary="@production").model == "fraud"


def test_lineage_links_the_deployment_to_its_versions(models: Workspace) -> None:
    deploy(models, "churn", primary="@production", ab="@challenger", sticky_key="user_id")
    edges = {(str(e.src), e.role) for e in upstream(models.db, Node("deployment", "churn"))}
    assert ("model_version:churn/1", "primary") in edges
    assert ("model_version:churn/2", "candidate") in edges


def test_resolve_version_reads_every_reference_form(models: Workspace) -> None:
    assert resolve_version(models, "churn", "@production") == 1
    assert resolve_version(models, "churn", "challenger") == 2
    assert resolve_version(models, "churn", "2") == 2
    assert resolve_version(models, "churn", "v2") == 2
    assert resolve_version(models, "churn", 1) == 1
    with pytest.raises(NotFound, match="no version 9"):
        resolve_version(models, "churn", "9")
    with pytest.raises(NotFound, match="no alias 'staging'"):
        resolve_version(models, "churn", "@staging")
    with pytest.raises(InvalidInput, match="'a/b'"):
        resolve_version(models, "churn", "a/b")


def test_delete(models: Workspace) -> None:
    deploy(models, "churn")
    deploy(models, "churn-b", model="churn")
    delete_deployment(models, "churn")
    assert [d.name for d in list_deployments(models)] == ["churn-b"]
    with pytest.raises(NotFound, match="no deployment named 'churn'; deployments: 'churn-b'"):
        get_deployment(models, "churn")
    with pytest.raises(NotFound, match="no deployment named 'churn'"):
        delete_deployment(models, "churn")


BAD: list[tuple[dict[str, object], type[Exception], str]] = [
    ({"name": "bad name"}, InvalidInput, "deployment name 'bad name' is not valid"),
    ({"name": "x", "model": "nope"}, NotFound, "no registered model named 'nope'"),
    ({"name": "ghost"}, NotFound, "no registered model named 'ghost'"),
    ({"shadow": "@challenger", "canary": "2"}, InvalidInput, "shadow and canary"),
    ({"canary": "2"}, InvalidInput, "canary deployment needs traffic="),
    ({"canary": "2", "traffic": 1.0}, InvalidInput, r"traffic must be in \(0, 1\)"),
    ({"canary": "2", "traffic": 0}, InvalidInput, r"traffic must be in \(0, 1\)"),
    ({"ab": "2", "traffic": -0.5}, InvalidInput, r"traffic must be in \(0, 1\)"),
    ({"ab": "2", "traffic": "half"}, InvalidInput, "traffic must be a number"),
    ({"shadow": "2", "traffic": 0.5}, InvalidInput, "traffic= applies to canary and ab"),
    ({"sticky_key": "user_id"}, InvalidInput, "sticky_key= applies to canary and ab"),
    ({"primary": ""}, InvalidInput, "primary must be"),
    ({"shadow": "x:y"}, InvalidInput, "shadow 'x:y' is not"),
    ({"shadow": "@staging"}, NotFound, "shadow '@staging'.*no alias 'staging'"),
    ({"primary": "7"}, NotFound, "primary '7'.*no version 7"),
]


def test_bad_deployments_are_refused_with_the_reason(models: Workspace) -> None:
    for case, error, message in BAD:
        kwargs = dict(case)
        name = str(kwargs.pop("name", "churn"))
        with pytest.raises(error, match=message):
            deploy(models, name, **kwargs)  # type: ignore[arg-type]
    assert list_deployments(models) == []


def _deployment(policy: Policy, traffic: float | None) -> Deployment:
    now = dt.datetime.now(dt.UTC)
    return Deployment("churn", "churn", "@production", policy, "2", traffic, None, now, now)


def test_shadow_always_answers_from_the_primary() -> None:
    d = _deployment("shadow", None)
    assert {d.route(f"k{i}") for i in range(200)} | {d.route(None)} == {"primary"}


@pytest.mark.parametrize("policy", ["canary", "ab"])
def test_keyed_routing_is_sticky_and_splits_by_traffic(policy: Policy) -> None:
    d = _deployment(policy, 0.2)
    keys = [f"user-{i}" for i in range(10_000)]
    routes = [d.route(k) for k in keys]
    assert routes == [d.route(k) for k in keys]  # the same key lands on the same side
    share = routes.count("candidate") / len(keys)
    assert 0.18 < share < 0.22
    # more traffic moves keys to the candidate; keys already there stay there
    wider = replace(d, traffic=0.5)
    assert all(
        wider.route(k) == "candidate" for k, r in zip(keys, routes, strict=True) if r == "candidate"
    )


def test_unkeyed_canary_requests_are_split_at_random() -> None:
    d = _deployment("canary", 0.3)
    share = sum(d.route(None) == "candidate" for _ in range(20_000)) / 20_000
    assert 0.27 < share < 0.33


def test_sticky_assignment_does_not_depend_on_the_process() -> None:
    """Python's hash() is salted per process; the routing hash must not be."""
    d = _deployment("ab", 0.5)
    keys = [f"user-{i}" for i in range(50)]
    script = (
        "import datetime as dt\n"
        "from loopml.serving._deployments import Deployment\n"
        "now = dt.datetime.now(dt.UTC)\n"
        "d = Deployment('churn', 'churn', '@production', 'ab', '2', 0.5, None, now, now)\n"
        f"print(','.join(d.route(k) for k in {keys!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert out.stdout.strip().split(",") == [d.route(k) for k in keys]
