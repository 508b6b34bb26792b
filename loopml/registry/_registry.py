"""Registered models and their versions: register, look up, alias, tag and describe.

Every write is one transaction. A new version number is the model's highest plus one,
taken while holding the model row's lock (PostgreSQL) or the database write lock (SQLite);
a clash with a concurrent writer is retried.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.registry._flavors import Flavor, flavor_for, get_flavor
from loopml.registry._package import store_package
from loopml.registry._signature import Signature
from loopml.registry._uri import SCHEME, check_alias, check_name, parse_model_uri
from loopml.store import Node, Workspace, add_edge, now_ms
from loopml.store.schema import model_aliases, model_tags, model_versions, models, runs

READY = "READY"
MODEL_LEVEL = 0  # model_tags.version of a tag on the model itself
MAX_TAG_KEY = 250
_ATTEMPTS = 8
_SHOWN_NAMES = 10


@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered version of a model; ``uri`` points at it."""

    name: str
    version: int
    flavor: str
    signature: Signature
    run_id: str | None
    status: str
    description: str
    created_at: dt.datetime
    package_digest: str
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"{SCHEME}{self.name}/{self.version}"


@dataclass(frozen=True)
class RegisteredModel:
    """A model name with its versions' summary: latest version, aliases and model tags."""

    name: str
    description: str
    latest_version: int | None
    aliases: dict[str, int]
    tags: dict[str, str]
    created_at: dt.datetime
    updated_at: dt.datetime


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


# -- reading -------------------------------------------------------------------------------
def _model_row(conn: Connection, name: str) -> sa.Row[Any]:
    row = conn.execute(sa.select(models).where(models.c.name == name)).first()
    if row is None:
        known = conn.execute(
            sa.select(models.c.name).order_by(models.c.name).limit(_SHOWN_NAMES + 1)
        ).scalars()
        names = list(known)
        listed = ", ".join(map(repr, names[:_SHOWN_NAMES])) + (
            ", ..." if len(names) > _SHOWN_NAMES else ""
        )
        hint = f"registered models: {listed}" if names else "no models are registered yet"
        raise NotFound(f"no registered model named {name!r}; {hint}")
    return row


def _aliases(conn: Connection, name: str) -> dict[str, int]:
    rows = conn.execute(
        sa.select(model_aliases.c.alias, model_aliases.c.version)
        .where(model_aliases.c.model == name)
        .order_by(model_aliases.c.alias)
    )
    return {r.alias: r.version for r in rows}


def _tags(conn: Connection, name: str, versions: Sequence[int]) -> dict[int, dict[str, str]]:
    rows = conn.execute(
        sa.select(model_tags)
        .where(model_tags.c.model == name, model_tags.c.version.in_(versions))
        .order_by(model_tags.c.key)
    )
    found: dict[int, dict[str, str]] = {v: {} for v in versions}
    for r in rows:
        found[r.version][r.key] = r.value
    return found


def _versions(conn: Connection, name: str, version: int | None = None) -> list[ModelVersion]:
    query = sa.select(model_versions).where(model_versions.c.model == name)
    if version is not None:
        query = query.where(model_versions.c.version == version)
    rows = conn.execute(query.order_by(model_versions.c.version)).all()
    aliases = _aliases(conn, name)
    tags = _tags(conn, name, [r.version for r in rows])
    return [
        ModelVersion(
            name=r.model,
            version=r.version,
            flavor=r.flavor,
            signature=Signature.from_dict(r.signature),
            run_id=r.run_id,
            status=r.status,
            description=r.description,
            created_at=_time(r.created_at),
            package_digest=r.package_digest,
            aliases=tuple(a for a, v in aliases.items() if v == r.version),
            tags=tags[r.version],
        )
        for r in rows
    ]


def _resolve(conn: Connection, name: str, version: int | None, alias: str | None) -> int:
    """The version number that (version, alias) means for model ``name``."""
    _model_row(conn, name)
    if alias is not None:
        aliases = _aliases(conn, name)
        if alias not in aliases:
            have = ", ".join(map(repr, aliases)) if aliases else "none"
            raise NotFound(f"model {name!r} has no alias {alias!r}; its aliases: {have}")
        return aliases[alias]
    latest = conn.execute(
        sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.model == name)
    ).scalar()
    if latest is None:
        raise NotFound(f"model {name!r} has no versions")
    if version is None:
        return int(latest)
    exists = conn.execute(
        sa.select(model_versions.c.version).where(
            model_versions.c.model == name, model_versions.c.version == version
        )
    ).first()
    if exists is None:
        raise NotFound(f"model {name!r} has no version {version} (latest is {latest})")
    return version


def _parse(uri_or_name: str, version: int | None) -> tuple[str, int | None, str | None]:
    name, in_uri, alias = parse_model_uri(uri_or_name)
    if version is None:
        return name, in_uri, alias
    if in_uri is not None or alias is not None:
        raise InvalidInput(
            f"{uri_or_name!r} already names a version; pass version= only with a bare name"
        )
    return name, _check_version(version), None


def _check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(f"version must be a positive integer, not {version!r}")
    return version


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
    with ws.db.read() as conn:
        resolved = _resolve(conn, name, number, alias)
        return _versions(conn, name, resolved)[0]


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
    with ws.db.read() as conn:
        _model_row(conn, name)
        return _versions(conn, name)


def list_models(ws: Workspace) -> list[RegisteredModel]:
    """Every registered model, by name.

    Returns
    -------
    list of RegisteredModel
        With each model's latest version (None if it has none), aliases and model-level tags.
    """
    latest = (
        sa.select(model_versions.c.model, sa.func.max(model_versions.c.version).label("latest"))
        .group_by(model_versions.c.model)
        .subquery()
    )
    query = (
        sa.select(models, latest.c.latest)
        .join(latest, latest.c.model == models.c.name, isouter=True)
        .order_by(models.c.name)
    )
    with ws.db.read() as conn:
        rows = conn.execute(query).all()
        aliases: dict[str, dict[str, int]] = {r.name: {} for r in rows}
        for a in conn.execute(sa.select(model_aliases).order_by(model_aliases.c.alias)):
            aliases.setdefault(a.model, {})[a.alias] = a.version
        tags: dict[str, dict[str, str]] = {r.name: {} for r in rows}
        model_level = sa.select(model_tags).where(model_tags.c.version == MODEL_LEVEL)
        for t in conn.execute(model_level.order_by(model_tags.c.key)):
            tags.setdefault(t.model, {})[t.key] = t.value
    return [
        RegisteredModel(
            name=r.name,
            description=r.description,
            latest_version=r.latest,
            aliases=aliases[r.name],
            tags=tags[r.name],
            created_at=_time(r.created_at),
            updated_at=_time(r.updated_at),
        )
        for r in rows
    ]


# -- writing -------------------------------------------------------------------------------
def _touch(conn: Connection, name: str, **values: Any) -> None:
    conn.execute(
        sa.update(models).where(models.c.name == name).values(updated_at=now_ms(), **values)
    )


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not key or len(key) > MAX_TAG_KEY:
            raise InvalidInput(f"tag key must be a string of 1-{MAX_TAG_KEY} chars, not {key!r}")
        if not isinstance(value, str):
            raise InvalidInput(f"tag {key!r} value must be a string, not {type(value).__name__}")
        checked[key] = value
    return checked


def _signature_for(model: object, input_example: Any, signature: Signature | None) -> Signature:
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

    Returns
    -------
    ModelVersion
        The new version, ``READY`` to load.

    Raises
    ------
    InvalidInput
        A bad name or tag, no signature source, or a model no flavor can save.
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
    checked_tags = _check_tags(tags)
    chosen = _resolve_flavor(model, flavor)
    sig = _signature_for(model, input_example, signature)
    digest, _ = store_package(ws, model, chosen, sig)
    row = {
        "flavor": chosen.name,
        "package_digest": digest,
        "signature": sig.to_dict(),
        "run_id": run_id,
        "status": READY,
        "description": description,
        "created_at": now_ms(),
    }
    return get_model_version(ws, name, _write_version(ws, name, row, checked_tags))


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
    number = _check_version(version)
    with ws.db.write() as conn:
        _resolve(conn, name, number, None)
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
    with ws.db.write() as conn:
        _resolve(conn, name, None, alias)
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
    tag = _check_tags({key: value})
    with ws.db.write() as conn:
        number = MODEL_LEVEL
        if version is None:
            _model_row(conn, name)
        else:
            number = _resolve(conn, name, _check_version(version), None)
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
    with ws.db.write() as conn:
        if version is None:
            _model_row(conn, name)
            _touch(conn, name, description=description)
            return
        number = _resolve(conn, name, _check_version(version), None)
        conn.execute(
            sa.update(model_versions)
            .where(model_versions.c.model == name, model_versions.c.version == number)
            .values(description=description)
        )
        _touch(conn, name)
