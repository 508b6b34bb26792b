"""MLflow's model registry API over loopml's: registered models, versions, aliases and tags.

A version made through MLflow is a loopml version of flavor ``mlflow``: its package is the
run's artifact folder at the source path, taken as it stands (the artifacts' blobs plus a
``loopml-model.json``, in a manifest as :func:`loopml.registry._package.store_package`
writes), with an empty signature; the MLflow source URI is kept in the version tag
``mlflow.source``. MLflow clients download it through the artifact proxy; loopml lists it
(with an undeclared signature) but does not load it (``load_model`` says so). Stages do
not exist in loopml (every version is in stage ``None``): use aliases. Versions are never
deleted, and a model can be deleted only while it has no versions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.registry import delete_alias, set_description, set_model_tag
from loopml.registry._package import FORMAT_VERSION
from loopml.registry._registry import READY, _write_version
from loopml.registry._uri import check_alias, check_name
from loopml.server._mlflow_artifacts import package_from_run
from loopml.server._mlflow_protocol import Fields, Handler, natural, not_implemented
from loopml.server._mlflow_search import Clause, Searched, clause_condition, search_page
from loopml.store import Workspace, now_ms
from loopml.store.schema import deployments, model_aliases, model_tags, model_versions, models

FLAVOR = "mlflow"
SOURCE_TAG = "mlflow.source"  # a version's MLflow source URI
EMPTY_SIGNATURE: dict[str, Any] = {"inputs": [], "outputs": [], "input_type": "dataframe"}
MODEL_LEVEL = 0  # model_tags.version of a tag of the model itself (see store.schema)
MAX_TAG_KEY = 250


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    for key in tags:
        if not 0 < len(key) <= MAX_TAG_KEY:
            raise InvalidInput(f"tag key must be 1-{MAX_TAG_KEY} characters, got {key[:40]!r}")
    return tags


def package_uri(digest: str) -> str:
    """The artifact-proxy URI of a version's package (what MLflow downloads)."""
    return f"mlflow-artifacts:/packages/{digest}"


# -- reading ------------------------------------------------------------------------------------
def _versions_json(conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    names = sorted({r.model for r in rows})
    tags: dict[tuple[str, int], dict[str, str]] = {}
    aliases: dict[tuple[str, int], list[str]] = {}
    if names:
        query = sa.select(model_tags).where(model_tags.c.model.in_(names))
        for t in conn.execute(query.where(model_tags.c.version != MODEL_LEVEL)):
            tags.setdefault((t.model, t.version), {})[t.key] = t.value
        query = sa.select(model_aliases).where(model_aliases.c.model.in_(names))
        for a in conn.execute(query.order_by(model_aliases.c.alias)):
            aliases.setdefault((a.model, a.version), []).append(a.alias)
    views = []
    for r in rows:
        own = tags.get((r.model, r.version), {})
        view = {
            "name": r.model,
            "version": str(r.version),
            "creation_timestamp": r.created_at,
            "last_updated_timestamp": r.created_at,
            "current_stage": "None",
            "description": r.description,
            "source": own.get(SOURCE_TAG, package_uri(r.package_digest)),
            "status": r.status,
            "tags": [{"key": k, "value": v} for k, v in sorted(own.items()) if k != SOURCE_TAG],
            "aliases": aliases.get((r.model, r.version), []),
        }
        if r.run_id is not None:
            view["run_id"] = r.run_id
        views.append(view)
    return views


def _version_row(conn: Connection, name: str, version: int) -> Any:
    _model_row(conn, name)
    row = conn.execute(
        sa.select(model_versions).where(
            model_versions.c.model == name, model_versions.c.version == version
        )
    ).first()
    if row is None:
        raise NotFound(f"model {name!r} has no version {version}")
    return row


def _model_row(conn: Connection, name: str) -> Any:
    row = conn.execute(sa.select(models).where(models.c.name == name)).first()
    if row is None:
        raise NotFound(f"no registered model named {name!r}")
    return row


def _models_json(conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    names = [r.name for r in rows]
    latest = (
        sa.select(model_versions.c.model, sa.func.max(model_versions.c.version).label("v"))
        .where(model_versions.c.model.in_(names))
        .group_by(model_versions.c.model)
        .subquery()
    )
    newest = conn.execute(
        sa.select(model_versions).join(
            latest,
            sa.and_(
                latest.c.model == model_versions.c.model, latest.c.v == model_versions.c.version
            ),
        )
    ).all()
    versions = {v["name"]: v for v in _versions_json(conn, newest)}
    tags: dict[str, list[dict[str, str]]] = {}
    query = sa.select(model_tags).where(model_tags.c.model.in_(names))
    for t in conn.execute(
        query.where(model_tags.c.version == MODEL_LEVEL).order_by(model_tags.c.key)
    ):
        tags.setdefault(t.model, []).append({"key": t.key, "value": t.value})
    aliases: dict[str, list[dict[str, str]]] = {}
    query = sa.select(model_aliases).where(model_aliases.c.model.in_(names))
    for a in conn.execute(query.order_by(model_aliases.c.alias)):
        aliases.setdefault(a.model, []).append({"alias": a.alias, "version": str(a.version)})
    return [
        {
            "name": r.name,
            "creation_timestamp": r.created_at,
            "last_updated_timestamp": r.updated_at,
            "description": r.description,
            "latest_versions": [versions[r.name]] if r.name in versions else [],
            "tags": tags.get(r.name, []),
            "aliases": aliases.get(r.name, []),
        }
        for r in rows
    ]


def _model_json(ws: Workspace, name: str) -> dict[str, Any]:
    with ws.db.read() as conn:
        return _models_json(conn, [_model_row(conn, name)])[0]


def _version_json(ws: Workspace, name: str, version: int) -> dict[str, Any]:
    with ws.db.read() as conn:
        return _versions_json(conn, [_version_row(conn, name, version)])[0]


def _version(f: Fields) -> int:
    return _number(f.need("version"))


def _number(text: str) -> int:
    version = natural(text, 10)
    if version is None or not 0 < version < 2**31:
        raise InvalidInput(f"version must be a positive integer, got {text!r:.80}")
    return version


# -- registered models ------------------------------------------------------------------------
def create_model(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/create; RESOURCE_ALREADY_EXISTS if the name is taken."""
    name = check_name(f.need("name"))
    tags = _check_tags(f.pairs("tags"))
    now = now_ms()
    try:
        with ws.db.write() as conn:
            conn.execute(
                models.insert().values(
                    name=name,
                    description=f.text("description") or "",
                    created_at=now,
                    updated_at=now,
                )
            )
            rows = [
                {"model": name, "version": MODEL_LEVEL, "key": k, "value": v}
                for k, v in tags.items()
            ]
            if rows:
                conn.execute(model_tags.insert(), rows)
    except IntegrityError:
        raise AlreadyExists(f"registered model {name!r} already exists") from None
    return {"registered_model": _model_json(ws, name)}


def get_model(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/get."""
    return {"registered_model": _model_json(ws, f.need("name"))}


def update_model(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/update: the description."""
    name = f.need("name")
    description = f.text("description")
    if description is not None:
        set_description(ws, name, description)
    return {"registered_model": _model_json(ws, name)}


def rename_model(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/rename: refused (model URIs and lineage name the model)."""
    _model_json(ws, f.need("name"))
    raise not_implemented("loopml registered models cannot be renamed: models:/ URIs name them")


def delete_model(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/delete: only a model that has no versions yet."""
    name = f.need("name")
    with ws.db.write() as conn:
        _model_row(conn, name)
        count = conn.execute(
            sa.select(sa.func.count()).where(model_versions.c.model == name)
        ).scalar_one()
        deployed = conn.execute(
            sa.select(deployments.c.name).where(deployments.c.model == name)
        ).first()
        if count or deployed:
            raise not_implemented(
                f"model {name!r} has {count} version(s) or a deployment; loopml keeps "
                "registered versions (deployments and lineage point at them): a model can "
                "be deleted only while it has no versions"
            )
        conn.execute(model_tags.delete().where(model_tags.c.model == name))
        conn.execute(models.delete().where(models.c.name == name))
    return {}


def _tag_condition(
    clause: Clause, owner: Any, version: Any, dialect: str, what: str
) -> sa.ColumnElement[bool]:
    """A test on tag ``clause.key`` of the model (or version) ``owner``/``version``.

    As in MLflow's registry, ``!=`` holds for a model without the tag too: the client's
    own ``tags.`mlflow.prompt.is_prompt` != 'true'`` keeps every model that is no prompt.
    """
    t = model_tags.c
    having = sa.select(t.model).where(t.model == owner, t.version == version, t.key == clause.key)
    if clause.op in ("IS NULL", "IS NOT NULL"):
        return sa.exists(having) if clause.op == "IS NOT NULL" else ~sa.exists(having)
    if clause.op == "!=":
        equal = Clause(clause.key, clause.tag, "=", clause.value)
        return ~sa.exists(having.where(clause_condition(equal, t.value, "string", dialect, what)))
    return sa.exists(having.where(clause_condition(clause, t.value, "string", dialect, what)))


def search_models(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/search: filter on name and tags, order_by, pages."""
    return search_page(ws, f, _MODELS, 100, 1000)


def get_latest_versions(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/get-latest-versions: the latest version, in stage ``None``."""
    stages = {s.lower() for s in f.texts("stages")}
    latest = _model_json(ws, f.need("name"))["latest_versions"]
    return {"model_versions": latest if not stages or "none" in stages else []}


def set_model_tag_handler(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/set-tag."""
    set_model_tag(ws, f.need("name"), f.need("key"), f.text("value") or "")
    return {}


def _delete_tag(ws: Workspace, name: str, version: int, key: str) -> None:
    with ws.db.write() as conn:
        if version == MODEL_LEVEL:
            _model_row(conn, name)
        else:
            _version_row(conn, name, version)
        deleted = conn.execute(
            model_tags.delete().where(
                model_tags.c.model == name, model_tags.c.version == version, model_tags.c.key == key
            )
        ).rowcount
    if not deleted:
        owner = f"model {name!r}" + (f" version {version}" if version else "")
        raise NotFound(f"{owner} has no tag {key!r}")


def delete_model_tag(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/delete-tag."""
    _delete_tag(ws, f.need("name"), MODEL_LEVEL, f.need("key"))
    return {}


# -- aliases ------------------------------------------------------------------------------------
def set_alias_handler(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/alias (POST): point an alias at a version (written here rather
    than by :func:`loopml.registry.set_alias`, which reads back a loopml signature)."""
    name, alias, version = f.need("name"), check_alias(f.need("alias")), _version(f)
    now = now_ms()
    with ws.db.write() as conn:
        _version_row(conn, name, version)
        row = {"model": name, "alias": alias, "version": version, "updated_at": now}
        ws.db.upsert(
            conn, model_aliases, [row], keys=["model", "alias"], update=["version", "updated_at"]
        )
        conn.execute(models.update().where(models.c.name == name).values(updated_at=now))
    return {}


def delete_alias_handler(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/alias (DELETE)."""
    delete_alias(ws, f.need("name"), f.need("alias"))
    return {}


def get_by_alias(ws: Workspace, f: Fields) -> dict[str, Any]:
    """registered-models/alias (GET): the version an alias points at."""
    name, alias = f.need("name"), f.need("alias")
    with ws.db.read() as conn:
        _model_row(conn, name)
        version = conn.execute(
            sa.select(model_aliases.c.version).where(
                model_aliases.c.model == name, model_aliases.c.alias == alias
            )
        ).scalar()
    if version is None:
        raise NotFound(f"model {name!r} has no alias {alias!r}")
    return {"model_version": _version_json(ws, name, int(version))}


# -- model versions -----------------------------------------------------------------------------
def _package_metadata(source: str) -> dict[str, Any]:
    """The ``loopml-model.json`` of a package made from MLflow source ``source``."""
    return {
        "format_version": FORMAT_VERSION,
        "flavor": FLAVOR,
        "signature": EMPTY_SIGNATURE,
        "library_versions": {},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "predict_proba": False,
        "source": source,
    }


def _copy_of(ws: Workspace, source: str) -> tuple[str | None, str, dict[str, Any]]:
    """The (run id, package digest, flavor and signature) of version ``models:/<name>/<n>``."""
    name, _, number = source.removeprefix("models:/").rpartition("/")
    if not name:
        raise InvalidInput(f"source {source!r:.200}: expected models:/<name>/<version>")
    with ws.db.read() as conn:
        row = _version_row(conn, name, _number(number))
    return row.run_id, row.package_digest, {"flavor": row.flavor, "signature": row.signature}


def create_version(ws: Workspace, f: Fields) -> dict[str, Any]:
    """model-versions/create from a run's artifacts (or ``models:/<name>/<version>``)."""
    name, source = f.need("name"), f.need("source")
    tags = _check_tags(f.pairs("tags"))
    if SOURCE_TAG in tags:
        raise InvalidInput(f"tag {SOURCE_TAG!r} is reserved: it holds the version's source")
    if f.text("model_id"):
        raise not_implemented("loopml has no MLflow logged models: register runs:/<run_id>/<path>")
    with ws.db.read() as conn:
        _model_row(conn, name)
    run_id: str | None
    if source.startswith("models:/"):
        run_id, digest, row = _copy_of(ws, source)
    else:
        run_id, digest = package_from_run(ws, source, _package_metadata(source))
        row = {"flavor": FLAVOR, "signature": EMPTY_SIGNATURE}
    given = f.text("run_id")
    if given and run_id and given != run_id:
        raise InvalidInput(f"run_id {given!r} is not the run of source {source!r}")
    row |= {
        "package_digest": digest,
        "run_id": run_id or given,
        "status": READY,
        "description": f.text("description") or "",
        "created_at": now_ms(),
    }
    version = _write_version(ws, name, row, tags | {SOURCE_TAG: source})
    return {"model_version": _version_json(ws, name, version)}


def get_version(ws: Workspace, f: Fields) -> dict[str, Any]:
    """model-versions/get."""
    return {"model_version": _version_json(ws, f.need("name"), _version(f))}


def update_version(ws: Workspace, f: Fields) -> dict[str, Any]:
    """model-versions/update: the description."""
    name, version = f.need("name"), _version(f)
    description = f.text("description")
    if description is not None:
        set_description(ws, name, description, version)
    return {"model_version": _version_json(ws, name, version)}


def refuse_version_change(ws: Workspace, f: Fields) -> dict[str, Any]:
    """model-versions/delete and transition-stage: refused."""
    _version_json(ws, f.need("name"), _version(f))
    raise not_implemented(
        "loopml keeps every registered version and has no stages: point an alias "
        "(e.g. production) at a version instead"
    )


def download_uri(ws: Workspace, f: Fields) -> dict[str, Any]:
    """model-versions/get-download-uri: the version's package in the artifact proxy."""
    name, version = f.need("name"), _version(f)
    with ws.db.read() as conn:
        row = _version_row(conn, name, version)
    return {"artifact_uri": package_uri(row.package_digest)}


def set_version_tag(ws: Workspace, f: Fields) -> dict[str, Any]:
    """model-versions/set-tag."""
    key = f.need("key")
    if key == SOURCE_TAG:
        raise InvalidInput(f"tag {SOURCE_TAG!r} is reserved: it holds the version's source")
    set_model_tag(ws, f.need("name"), key, f.text("value") or "", _version(f))
    return {}


def delete_version_tag(ws: Workspace, f: Fields) -> dict[str, Any]:
    """model-versions/delete-tag."""
    key = f.need("key")
    if key == SOURCE_TAG:
        raise InvalidInput(f"tag {SOURCE_TAG!r} is reserved: it holds the version's source")
    _delete_tag(ws, f.need("name"), _version(f), key)
    return {}


def search_versions(ws: Workspace, f: Fields) -> dict[str, Any]:
    """model-versions/search: filter on name, version_number, run_id and tags."""
    return search_page(ws, f, _VERSIONS, 10_000, 200_000)


# -- searching -----------------------------------------------------------------------------------
def _model_tag(clause: Clause, dialect: str) -> sa.ColumnElement[bool]:
    return _tag_condition(clause, models.c.name, MODEL_LEVEL, dialect, "registered model filter")


def _version_tag(clause: Clause, dialect: str) -> sa.ColumnElement[bool]:
    v = model_versions.c
    return _tag_condition(clause, v.model, v.version, dialect, "model version filter")


_ORDER_NAMES = {"name": "name", "timestamp": "last_updated_timestamp"} | {
    k: k for k in ("version_number", "run_id", "creation_timestamp", "last_updated_timestamp")
}
_MODELS = Searched(
    "registered model",
    models,
    {
        "name": (models.c.name, "string"),
        "creation_timestamp": (models.c.created_at, "number"),
        "last_updated_timestamp": (models.c.updated_at, "number"),
    },
    {k: v for k, v in _ORDER_NAMES.items() if k not in ("version_number", "run_id")},
    _model_tag,
    (),
    (models.c.name.asc(),),
    "registered_models",
    _models_json,
)
_VERSIONS = Searched(
    "model version",
    model_versions,
    {
        "name": (model_versions.c.model, "string"),
        "version_number": (model_versions.c.version, "number"),
        "run_id": (model_versions.c.run_id, "string"),
        "creation_timestamp": (model_versions.c.created_at, "number"),
        "last_updated_timestamp": (model_versions.c.created_at, "number"),
    },
    _ORDER_NAMES,
    _version_tag,
    (),
    (model_versions.c.model.asc(), model_versions.c.version.desc()),
    "model_versions",
    _versions_json,
)


HANDLERS: list[tuple[str, str, Handler]] = [
    ("/registered-models/create", "POST", create_model),
    ("/registered-models/get", "GET", get_model),
    ("/registered-models/update", "PATCH", update_model),
    ("/registered-models/rename", "POST", rename_model),
    ("/registered-models/delete", "DELETE", delete_model),
    ("/registered-models/search", "GET", search_models),
    ("/registered-models/get-latest-versions", "POST", get_latest_versions),
    ("/registered-models/get-latest-versions", "GET", get_latest_versions),
    ("/registered-models/set-tag", "POST", set_model_tag_handler),
    ("/registered-models/delete-tag", "DELETE", delete_model_tag),
    ("/registered-models/alias", "POST", set_alias_handler),
    ("/registered-models/alias", "DELETE", delete_alias_handler),
    ("/registered-models/alias", "GET", get_by_alias),
    ("/model-versions/create", "POST", create_version),
    ("/model-versions/get", "GET", get_version),
    ("/model-versions/update", "PATCH", update_version),
    ("/model-versions/delete", "DELETE", refuse_version_change),
    ("/model-versions/transition-stage", "POST", refuse_version_change),
    ("/model-versions/get-download-uri", "GET", download_uri),
    ("/model-versions/set-tag", "POST", set_version_tag),
    ("/model-versions/delete-tag", "DELETE", delete_version_tag),
    ("/model-versions/search", "GET", search_versions),
]
"""``(path under /api/2.0/mlflow, method, handler)`` of every registry endpoint."""

__all__ = ["FLAVOR", "HANDLERS", "SOURCE_TAG", "package_uri"]
