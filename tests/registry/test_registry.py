"""Registering versions, looking them up, aliases, tags, descriptions, lineage, atomicity."""

from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy.exc import IntegrityError

from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.registry import (
    ColumnSpec,
    ModelVersion,
    Signature,
    _registry,
    delete_alias,
    get_model_version,
    list_models,
    list_versions,
    register_model,
    set_alias,
    set_description,
    set_model_tag,
)
from loopml.store import Edge, Node, Workspace, upstream

FEATURES = ["age", "income"]


def _register(ws: Workspace, model: Any, data: pd.DataFrame, **kwargs: Any) -> ModelVersion:
    return register_model(ws, model, "churn", input_example=data[FEATURES].head(3), **kwargs)


def test_register_records_a_ready_version(
    ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame
) -> None:
    mv = _register(ws, clf, churn, description="first try", tags={"team": "risk"})
    assert (mv.name, mv.version, mv.uri) == ("churn", 1, "models:/churn/1")
    assert (mv.flavor, mv.status, mv.run_id) == ("sklearn", "READY", None)
    assert mv.description == "first try" and mv.tags == {"team": "risk"}
    assert [c.name for c in mv.signature.inputs] == FEATURES
    assert mv.signature.outputs == (ColumnSpec("prediction", "int64"),)
    assert mv.created_at.tzinfo is not None and len(mv.package_digest) == 64
    assert get_model_version(ws, "models:/churn/1") == mv


def test_versions_increment_and_latest_resolves(
    ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame
) -> None:
    versions = [_register(ws, clf, churn).version for _ in range(3)]
    assert versions == [1, 2, 3]
    assert get_model_version(ws, "churn").version == 3
    assert get_model_version(ws, "models:/churn@latest").version == 3
    assert get_model_version(ws, "churn", 2).version == 2
    assert [v.version for v in list_versions(ws, "churn")] == [1, 2, 3]


def test_racing_registrations_get_distinct_versions(
    ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame
) -> None:
    threads = 4
    barrier = threading.Barrier(threads)
    got: list[int] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            barrier.wait()
            got.append(_register(ws, clf, churn).version)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=register) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert sorted(got) == [1, 2, 3, 4]


def test_a_clashing_write_is_retried_then_reported(
    ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _registry._insert_version
    clashes = iter([True])

    def flaky(*args: Any) -> int:
        if next(clashes, False):
            raise IntegrityError("INSERT", {}, Exception("duplicate key"))
        return real(*args)

    monkeypatch.setattr(_registry, "_insert_version", flaky)
    assert _register(ws, clf, churn).version == 1

    def always(*args: Any) -> int:
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    monkeypatch.setattr(_registry, "_insert_version", always)
    monkeypatch.setattr(time, "sleep", lambda _: None)
    with pytest.raises(Conflict, match="8 attempts"):
        _register(ws, clf, churn)


def test_run_lineage_is_recorded(
    ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame, run_id: str
) -> None:
    mv = _register(ws, clf, churn, run_id=run_id)
    assert mv.run_id == run_id
    edge = Edge(Node("run", run_id), Node("model_version", "churn/1"), "produced")
    assert upstream(ws.db, Node("model_version", "churn/1")) == [edge]


def test_an_unknown_run_is_not_found_and_leaves_nothing(
    ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame
) -> None:
    with pytest.raises(NotFound, match="run 'no-such-run' does not exist"):
        _register(ws, clf, churn, run_id="no-such-run")
    assert list_models(ws) == []


def test_a_failure_mid_register_leaves_no_version(
    ws: Workspace,
    clf: LogisticRegression,
    churn: pd.DataFrame,
    run_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register(ws, clf, churn)

    def broken_edge(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(_registry, "add_edge", broken_edge)
    with pytest.raises(OSError, match="disk full"):
        _register(ws, clf, churn, run_id=run_id, tags={"k": "v"})
    assert [v.version for v in list_versions(ws, "churn")] == [1]
    assert upstream(ws.db, Node("model_version", "churn/2")) == []


def test_a_signature_is_required(ws: Workspace, clf: LogisticRegression) -> None:
    with pytest.raises(InvalidInput, match="input_example= or signature="):
        register_model(ws, clf, "churn")
    sig = Signature((ColumnSpec("age", "int64"), ColumnSpec("income", "float64")))
    assert register_model(ws, clf, "churn", signature=sig).signature == sig
    with pytest.raises(InvalidInput, match="missing column 'income'"):
        register_model(ws, clf, "churn", signature=sig, input_example={"age": [3]})


def test_an_unfitted_model_cannot_infer_a_signature(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"predict\(input_example\) failed with NotFitted"):
        register_model(ws, LogisticRegression(), "churn", input_example={"a": [1.0]})
    assert list_models(ws) == []


def test_models_no_flavor_can_save_are_refused(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"no model flavor can save a builtins\.str"):
        register_model(ws, "not a model", "churn", input_example={"a": [1]})


@pytest.mark.parametrize("name", ["", "a/b", "a@b", "a:b", "x" * 257])
def test_bad_names_are_refused(ws: Workspace, clf: LogisticRegression, name: str) -> None:
    with pytest.raises(InvalidInput, match="model name"):
        register_model(ws, clf, name, input_example={"age": [1], "income": [2.0]})


def test_aliases_set_move_and_delete(
    ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame
) -> None:
    for _ in range(2):
        _register(ws, clf, churn)
    assert set_alias(ws, "churn", "production", 1).aliases == ("production",)
    set_alias(ws, "churn", "staging", 2)
    assert get_model_version(ws, "models:/churn@production").version == 1
    set_alias(ws, "churn", "production", 2)  # move
    assert get_model_version(ws, "churn@production").version == 2
    assert get_model_version(ws, "churn", 2).aliases == ("production", "staging")
    assert get_model_version(ws, "churn", 1).aliases == ()
    assert list_models(ws)[0].aliases == {"production": 2, "staging": 2}
    delete_alias(ws, "churn", "staging")
    with pytest.raises(NotFound, match="no alias 'staging'; its aliases: 'production'"):
        get_model_version(ws, "churn@staging")
    with pytest.raises(NotFound, match="no alias 'staging'"):
        delete_alias(ws, "churn", "staging")


def test_alias_rules(ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame) -> None:
    _register(ws, clf, churn)
    with pytest.raises(InvalidInput, match="is a number"):
        set_alias(ws, "churn", "2", 1)
    with pytest.raises(InvalidInput, match="reserved"):
        set_alias(ws, "churn", "latest", 1)
    with pytest.raises(NotFound, match="no version 5 \\(latest is 1\\)"):
        set_alias(ws, "churn", "production", 5)
    with pytest.raises(NotFound, match="no registered model named 'fraud'"):
        set_alias(ws, "fraud", "production", 1)


def test_unknown_names_say_what_exists(
    ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame
) -> None:
    with pytest.raises(NotFound, match="no models are registered yet"):
        get_model_version(ws, "churn")
    _register(ws, clf, churn)
    with pytest.raises(NotFound, match="no registered model named 'fraud'; registered models: "):
        get_model_version(ws, "models:/fraud/1")
    with pytest.raises(NotFound, match="model 'churn' has no version 4 \\(latest is 1\\)"):
        get_model_version(ws, "models:/churn/4")
    with pytest.raises(NotFound, match="no alias 'production'; its aliases: none"):
        get_model_version(ws, "churn@production")
    with pytest.raises(NotFound):
        list_versions(ws, "fraud")
    with pytest.raises(InvalidInput, match="already names a version"):
        get_model_version(ws, "churn/1", 1)


def test_tags_and_descriptions(ws: Workspace, clf: LogisticRegression, churn: pd.DataFrame) -> None:
    _register(ws, clf, churn, tags={"stage": "dev"})
    set_model_tag(ws, "churn", "owner", "risk-team")
    set_model_tag(ws, "churn", "stage", "prod", version=1)
    set_description(ws, "churn", "predicts churn")
    set_description(ws, "churn", "retrained weekly", version=1)
    [model] = list_models(ws)
    assert (model.name, model.latest_version) == ("churn", 1)
    assert model.tags == {"owner": "risk-team"} and model.description == "predicts churn"
    assert model.updated_at >= model.created_at
    mv = get_model_version(ws, "churn/1")
    assert mv.tags == {"stage": "prod"} and mv.description == "retrained weekly"
    with pytest.raises(NotFound, match="no version 2"):
        set_model_tag(ws, "churn", "k", "v", version=2)
    with pytest.raises(NotFound, match="no version 2"):
        set_description(ws, "churn", "x", version=2)
    with pytest.raises(NotFound, match="'fraud'"):
        set_model_tag(ws, "fraud", "k", "v")
    with pytest.raises(InvalidInput, match="must be a string"):
        set_model_tag(ws, "churn", "k", 3)  # type: ignore[arg-type]
