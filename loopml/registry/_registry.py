"""Registered models and their versions: register, look up, alias, tag and describe.

Every write is one transaction. A new version number is the model's highest plus one,
taken while holding the model row's lock (PostgreSQL) or the database write lock (SQLite);
a clash with a concurrent writer is retried. On a remote workspace each function goes
through the loopml server instead (:mod:`loopml.registry._remote`); a package's files are
uploaded to the server's blob store before its version row is posted.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.registry import _queries as queries
from loopml.registry import _remote
from loopml.registry._flavors import Flavor, flavor_for, get_flavor
from loopml.registry._package import check_package, store_package
from loopml.registry._queries import MODEL_LEVEL
from loopml.registry._records import (
    ModelVersion,
    RegisteredModel,
    check_tags,
    check_version,
)
from loopml.registry._signature import Signature
from loopml.registry._uri import check_alias, check_name, parse_model_uri
from loopml.store import Node, Workspace, add_edge, now_ms
from loopml.store.schema import model_aliases, model_tags, model_versions, models, runs

READY = "READY"
_ATTEMPTS = 8


# -- reading -------------------------------------------------------------------------------
def _parse(uri_or_name: str, version: int | None) -> tuple[str, int | None, str | None]:
    name, in_uri, alias = parse_model_uri(uri_or_name)
    if version is None:
        return name, in_uri, alias
    if in_uri is not None or alias is not None:
        raise InvalidInput(
            f"{uri_or_name!r} already names a version; pass version= only with a bare name"
        )
    return name, check_version(version), None


def get_model_version(ws: Workspace, uri_or_name: str, version: int | None = None) -> ModelVersion:
    """The model version a URI (or a name and ``version``) points at.

    Parameters
    ----------
    ws : the workspace.
    uri_or_name : ``models:/churn/3``, ``models:/churn@production``, ``models:/churn``
        (latest), the same without ``models:/``, or a bare name with ``version``.
    version : a version number, when ``uri_or_name`` is a bare name.

    Returns
    -------
    ModelVersion

    Raises
    ------
    InvalidInput
        A malformed URI, or a version given twice.
    NotFound
        The model, version or alias does not exist; the message says what does.

    Examples
    --------
    >>> get_model_version(ws, "models:/churn@production").version  # doctest: +SKIP
    3
    """
    name, number, alias = _parse(uri_or_name, version)
    if ws.remote is not None:
        return _remote.get_version(ws.remote, name, number, alias)
    with ws.db.read() as conn:
        resolved = queries.resolve(conn, name, number, alias)
        return queries.versions(conn, name, resolved)[0]


def list_versions(ws: Workspace, name: str) -> list[ModelVersion]:
    """Every version of model ``name``, oldest first.

    Returns
    -------
    list of ModelVersion

    Raises
    ------
    NotFound
        No model has that name.
    """
    check_name(name)
    if ws.remote is not None:
        return _remote.list_versions(ws.remote, name)
    with ws.db.read() as conn:
        queries.model_row(conn, name)
        return queries.versions(conn, name)


def list_models(ws: Workspace) -> list[RegisteredModel]:
    """Every registered model, by name.

    Returns
    -------
    list of RegisteredModel
        With each model's latest version (None if it has none), aliases and model-level tags.
    """
    if ws.remote is not None:
        return _remote.list_models(ws.remote)
    with ws.db.read() as conn:
        return queries.model_records(conn)


def get_model(ws: Workspace, name: str) -> RegisteredModel:
    """Registered model ``name`` with its latest version, aliases and model-level tags.

    Raises
    ------
    NotFound
        No model has that name; the message lists some that exist.
    """
    check_name(name)
    if ws.remote is not None:
        return _remote.get_model(ws.remote, name)
    with ws.db.read() as conn:
        queries.model_row(conn, name)
        return queries.model_records(conn, name)[0]


# -- writing -------------------------------------------------------------------------------
def _touch(conn: Connection, name: str, **values: Any) -> None:
    conn.execute(
        sa.update(models).where(models.c.name == name).values(updated_at=now_ms(), **values)
    )


def _signature_for(
    model: object, input_example: Any, signature: Signature | None, flavor: Flavor | None = None
) -> Signature:
    if input_example is None:
        if signature is None:
            raise InvalidInput(
                "register_model needs input_example= or signature=: serving checks every "
                "request against the model's signature"
            )
        return signature
    if signature is not None:
        signature.validate(input_example)  # the example must fit the declared signature
        return signature
    method = "predict" if callable(getattr(model, "predict", None)) else "transform"
    predict = getattr(model, method, None)  # a reducer (PCA...) answers with transform
    example_output = getattr(flavor, "example_output", None)  # e.g. keras: no progress bar
    if callable(example_output):
        predict = lambda X: example_output(model, X)  # noqa: E731
    if not callable(predict):
        raise InvalidInput(
            f"{type(model).__name__} has no predict() or transform(); pass signature= instead"
        )
    try:
        output = predict(input_example)
    except Exception as exc:  # any failure of user code: report it as bad input
        raise InvalidInput(
            f"cannot infer the signature: {type(model).__name__}.{method}(input_example) "
            f"failed with {type(exc).__name__}: {exc}"
        ) from exc
    return Signature.infer(input_example, output)


def _resolve_flavor(model: object, flavor: str | Flavor | None) -> Flavor:
    if flavor is None:
        return flavor_for(model)
    chosen = get_flavor(flavor) if isinstance(flavor, str) else flavor
    if not chosen.can_save(model):
        raise InvalidInput(f"flavor {chosen.name!r} cannot save a {type(model).__name__}")
    return chosen


def _insert_version(
    ws: Workspace, conn: Connection, name: str, row: dict[str, Any], tags: dict[str, str]
) -> int:
    run_id = row["run_id"]
    if (
        run_id is not None
        and conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is None
    ):
        raise NotFound(f"run {run_id!r} does not exist")
    now = now_ms()
    ws.db.upsert(
        conn,
        models,
        [{"name": name, "description": "", "created_at": now, "updated_at": now}],
        keys=["name"],
    )
    # Lock the model row so concurrent registrations of one model take turns (PostgreSQL;
    # SQLite's write transaction already holds the database lock).
    conn.execute(sa.select(models.c.name).where(models.c.name == name).with_for_update())
    latest = conn.execute(
        sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.model == name)
    ).scalar()
    version = (latest or 0) + 1
    conn.execute(sa.insert(model_versions).values(model=name, version=version, **row))
    if tags:
        conn.execute(
            sa.insert(model_tags),
            [{"model": name, "version": version, "key": k, "value": v} for k, v in tags.items()],
        )
    _touch(conn, name)
    if run_id is not None:
        dst = Node("model_version", f"{name}/{version}")
        add_edge(ws.db, conn, Node("run", run_id), dst, "produced")
    return version


def _write_version(ws: Workspace, name: str, row: dict[str, Any], tags: dict[str, str]) -> int:
    """Insert the version in one transaction, retrying when a concurrent writer clashes."""
    attempt = 0
    while True:
        attempt += 1
        try:
            with ws.db.write() as conn:
                return _insert_version(ws, conn, name, row, tags)
        except IntegrityError as exc:
            if attempt == _ATTEMPTS:
                raise Conflict(
                    f"could not register a version of {name!r}: {_ATTEMPTS} attempts clashed "
                    f"with concurrent writes ({exc.orig})"
                ) from exc
            time.sleep(random.uniform(0.005, 0.05) * attempt)


def register_model(
    ws: Workspace,
    model: object,
    name: str,
    *,
    run_id: str | None = None,
    input_example: Any = None,
    signature: Signature | None = None,
    flavor: str | Flavor | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    onnx: bool = False,
) -> ModelVersion:
    """Store ``model`` as the next version of registered model ``name``.

    Parameters
    ----------
    ws : the workspace.
    model : a fitted model some flavor can save (any scikit-learn estimator or Pipeline).
    name : the model's name: 1-256 characters, without ``/``, ``@`` or ``:``.
    run_id : the run that produced the model; recorded as a lineage edge.
    input_example : a few rows of input; the signature is inferred from them and from the
        model's predictions on them.
    signature : the signature, when there is no ``input_example`` (if both are given, the
        example must fit the signature).
    flavor : a flavor or its name; by default the one that can save ``model``.
    description : text about this version.
    tags : string tags of this version.
    onnx : also export the model to ONNX (scikit-learn, XGBoost, LightGBM, Pipelines of
        them, loopml torch estimators), stored beside the native files and checked against
        the model on ``input_example`` (required then); load it with
        ``load_model(..., runtime="onnx")``.

    Returns
    -------
    ModelVersion
        The new version, ``READY`` to load.

    Raises
    ------
    InvalidInput
        A bad name or tag, no signature source, a model no flavor can save, or (with
        ``onnx=True``) no input example, a model that does not convert or an export whose
        answers differ from the model's on the example.
    MissingDependency
        ``onnx=True`` without the ``onnx`` extra installed.
    NotFound
        ``run_id`` is not a run of this workspace.
    Conflict
        Concurrent writers kept taking the version number.

    Examples
    --------
    >>> mv = register_model(ws, clf, "churn", input_example=X[:5])  # doctest: +SKIP
    >>> mv.uri  # doctest: +SKIP
    'models:/churn/1'
    """
    check_name(name)
    if not isinstance(description, str):
        raise InvalidInput(f"description must be a string, not {type(description).__name__}")
    checked_tags = check_tags(tags)
    if not isinstance(onnx, bool):
        raise InvalidInput(f"onnx must be True or False, not {onnx!r}")
    if onnx and input_example is None:
        raise InvalidInput(
            "onnx=True needs input_example=: the ONNX export is checked against the model on it"
        )
    chosen = _resolve_flavor(model, flavor)
    sig = _signature_for(model, input_example, signature, chosen)
    digest, _ = store_package(ws, model, chosen, sig, input_example if onnx else None)
    return _new_version(ws, name, digest, chosen.name, sig, run_id, description, checked_tags)


def register_package(
    ws: Workspace,
    name: str,
    package_digest: str,
    *,
    flavor: str,
    signature: Signature,
    run_id: str | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Record a package already in the blob store as the next version of model ``name``.

    What the server does for a remote :func:`register_model`, whose client uploads the
    package's blobs first: the manifest and every file must be stored, and the package's
    ``loopml-model.json`` must name ``flavor`` and ``signature``.

    Raises
    ------
    InvalidInput
        A bad name or tag, or a package that is not whole or says something else.
    NotFound
        A blob of the package, or ``run_id``, does not exist.
    """
    check_name(name)
    if not isinstance(description, str):
        raise InvalidInput(f"description must be a string, not {type(description).__name__}")
    checked_tags = check_tags(tags)
    if ws.remote is None:
        check_package(ws, package_digest, flavor, signature)
    return _new_version(
        ws, name, package_digest, flavor, signature, run_id, description, checked_tags
    )


def _new_version(
    ws: Workspace,
    name: str,
    digest: str,
    flavor: str,
    signature: Signature,
    run_id: str | None,
    description: str,
    tags: dict[str, str],
) -> ModelVersion:
    row: dict[str, Any] = {
        "flavor": flavor,
        "package_digest": digest,
        "signature": signature.to_dict(),
        "run_id": run_id,
        "description": description,
    }
    if ws.remote is not None:
        return _remote.create_version(ws.remote, name, {**row, "tags": tags})
    row |= {"status": READY, "created_at": now_ms()}
    return get_model_version(ws, name, _write_version(ws, name, row, tags))


def set_alias(ws: Workspace, name: str, alias: str, version: int) -> ModelVersion:
    """Point ``alias`` of model ``name`` at ``version`` (creating or moving the alias).

    Returns
    -------
    ModelVersion
        The version the alias now points at.

    Raises
    ------
    InvalidInput
        ``alias`` is not a valid name, is a number, or is ``latest``.
    NotFound
        The model or version does not exist.
    """
    check_name(name)
    check_alias(alias)
    number = check_version(version)
    if ws.remote is not None:
        return _remote.set_alias(ws.remote, name, alias, number)
    with ws.db.write() as conn:
        queries.resolve(conn, name, number, None)
        row = {"model": name, "alias": alias, "version": number, "updated_at": now_ms()}
        ws.db.upsert(
            conn,
            model_aliases,
            [row],
            keys=["model", "alias"],
            update=["version", "updated_at"],
        )
        _touch(conn, name)
    return get_model_version(ws, name, version)


def delete_alias(ws: Workspace, name: str, alias: str) -> None:
    """Remove ``alias`` from model ``name``.

    Raises
    ------
    NotFound
        The model or the alias does not exist.
    """
    check_name(name)
    if ws.remote is not None:
        return _remote.delete_alias(ws.remote, name, alias)
    with ws.db.write() as conn:
        queries.resolve(conn, name, None, alias)
        conn.execute(
            sa.delete(model_aliases).where(
                model_aliases.c.model == name, model_aliases.c.alias == alias
            )
        )
        _touch(conn, name)


def set_model_tag(
    ws: Workspace, name: str, key: str, value: str, version: int | None = None
) -> None:
    """Set tag ``key`` of model ``name`` (or of one of its versions) to ``value``.

    Raises
    ------
    InvalidInput
        A bad key or a non-string value.
    NotFound
        The model or version does not exist.
    """
    check_name(name)
    tag = check_tags({key: value})
    if ws.remote is not None:
        number = None if version is None else check_version(version)
        return _remote.set_tag(ws.remote, name, key, tag[key], number)
    with ws.db.write() as conn:
        number = MODEL_LEVEL
        if version is None:
            queries.model_row(conn, name)
        else:
            number = queries.resolve(conn, name, check_version(version), None)
        rows = [{"model": name, "version": number, "key": key, "value": tag[key]}]
        ws.db.upsert(conn, model_tags, rows, keys=["model", "version", "key"], update=["value"])
        _touch(conn, name)


def set_description(ws: Workspace, name: str, description: str, version: int | None = None) -> None:
    """Set the description of model ``name`` (or of one of its versions).

    Raises
    ------
    NotFound
        The model or version does not exist.
    """
    check_name(name)
    if not isinstance(description, str):
        raise InvalidInput(f"description must be a string, not {type(description).__name__}")
    if ws.remote is not None:
        number = None if version is None else check_version(version)
        return _remote.set_description(ws.remote, name, description, number)
    with ws.db.write() as conn:
        if version is None:
            queries.model_row(conn, name)
            _touch(conn, name, description=description)
            return
        number = queries.resolve(conn, name, check_version(version), None)
        conn.execute(
            sa.update(model_versions)
            .where(model_versions.c.model == name, model_versions.c.version == number)
            .values(description=description)
        )
        _touch(conn, name)


__all__ = [
    "MODEL_LEVEL",
    "READY",
    "ModelVersion",
    "RegisteredModel",
    "delete_alias",
    "get_model",
    "get_model_version",
    "list_models",
    "list_versions",
    "register_model",
    "register_package",
    "set_alias",
    "set_description",
    "set_model_tag",
]
