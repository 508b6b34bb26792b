"""The feature registry: ``apply`` versions definitions; lookups read them back.

Each definition is stored as a JSON spec, one row per version in ``feature_definitions``.
Applying a definition whose spec is unchanged keeps its version; a changed spec becomes the
next version, and ``apply`` reports field by field what changed. Views and on-demand views
share one namespace (a feature is ``"view:feature"`` either way).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.features._definitions import (
    Definition,
    from_spec,
    kind_of,
    parse_feature_ref,
    spec_of,
)
from loopml.features._source import check_view_columns, connect, resolve_source, source_schema
from loopml.store import Workspace, default_workspace, now_ms
from loopml.store.schema import feature_definitions as defs

VIEW_KINDS = ("feature_view", "on_demand_feature_view")
_ORDER = ("entity", "feature_view", "on_demand_feature_view", "feature_service")


@dataclass(frozen=True)
class Registered:
    """One stored version of a definition."""

    kind: str
    name: str
    version: int
    spec: dict[str, Any] = field(repr=False)
    created_at: datetime = field(repr=False)

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def definition(self) -> Definition:
        """The definition object."""
        return from_spec(self.kind, self.name, self.spec)

    @property
    def feature_names(self) -> list[str]:
        """The features of a view (empty for entities and services)."""
        return [f["name"] for f in self.spec.get("features", []) if isinstance(f, dict)]


@dataclass(frozen=True)
class Change:
    """What ``apply`` did to one definition: ``create``, ``update`` or ``unchanged``."""

    kind: str
    name: str
    action: str
    version: int
    diff: tuple[str, ...] = ()

    def __str__(self) -> str:
        head = f"{self.action:9} {self.kind} {self.name}@{self.version}"
        return "\n".join([head, *(f"    {line}" for line in self.diff)])


def _hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _row(r: Any) -> Registered:
    created = datetime.fromtimestamp(r.created_at / 1000, tz=UTC)
    return Registered(r.kind, r.name, r.version, dict(r.spec), created)


def get(
    ws: Workspace, kinds: str | Sequence[str], name: str, version: int | None = None
) -> Registered:
    """The latest (or given) version of ``name`` among ``kinds``; NotFound says what exists."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    query = sa.select(defs).where(defs.c.kind.in_(kinds), defs.c.name == name)
    if version is not None:
        query = query.where(defs.c.version == version)
    with ws.db.read() as conn:
        row = conn.execute(query.order_by(defs.c.version.desc()).limit(1)).first()
    if row is None:
        what = " or ".join(k.replace("_", " ") for k in kinds)
        known = [r.name for r in latest(ws, kinds)]
        if version is not None and any(n == name for n in known):
            raise NotFound(f"{what} {name!r} has no version {version}")
        raise NotFound(f"no {what} named {name!r} (known: {', '.join(known) or 'none'})")
    return _row(row)


def latest(ws: Workspace, kinds: Iterable[str] | None = None) -> list[Registered]:
    """The newest version of every definition (of ``kinds`` if given)."""
    latest = (
        sa.select(defs.c.kind, defs.c.name, sa.func.max(defs.c.version).label("v"))
        .group_by(defs.c.kind, defs.c.name)
        .subquery()
    )
    query = sa.select(defs).join(
        latest,
        sa.and_(
            latest.c.kind == defs.c.kind,
            latest.c.name == defs.c.name,
            latest.c.v == defs.c.version,
        ),
    )
    if kinds is not None:
        query = query.where(defs.c.kind.in_(list(kinds)))
    with ws.db.read() as conn:
        rows = conn.execute(query.order_by(defs.c.kind, defs.c.name)).all()
    return [_row(r) for r in rows]


def versions(ws: Workspace, kind: str, name: str) -> list[Registered]:
    """Every version of one definition, oldest first."""
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(defs).where(defs.c.kind == kind, defs.c.name == name).order_by(defs.c.version)
        ).all()
    return [_row(r) for r in rows]


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "features" and isinstance(a, list) and isinstance(b, list):
            na = {json.dumps(x, sort_keys=True): x for x in a}
            nb = {json.dumps(x, sort_keys=True): x for x in b}
            lines += [f"- feature {_show(na[k])}" for k in na if k not in nb]
            lines += [f"+ feature {_show(nb[k])}" for k in nb if k not in na]
        elif key == "function_source":
            lines.append("~ function changed")
        else:
            lines.append(f"~ {key}: {json.dumps(a)} -> {json.dumps(b)}")
    return tuple(lines)


def _show(feature: Any) -> str:
    if isinstance(feature, dict):
        return (
            f"{feature['name']} ({feature['dtype']})" if feature.get("dtype") else feature["name"]
        )
    return str(feature)


class _Catalog:
    """The definitions being applied, over the registered ones."""

    def __init__(self, ws: Workspace, pending: Mapping[tuple[str, str], dict[str, Any]]) -> None:
        self.ws = ws
        self.pending = pending

    def spec(self, kinds: Sequence[str], name: str, where: str) -> tuple[str, dict[str, Any]]:
        for kind in kinds:
            if (kind, name) in self.pending:
                return kind, self.pending[(kind, name)]
        try:
            found = get(self.ws, kinds, name)
        except NotFound as exc:
            raise InvalidInput(f"{where}: {exc}") from None
        return found.kind, found.spec

    def features_of(self, view: str, where: str) -> list[str]:
        _, spec = self.spec(VIEW_KINDS, view, where)
        return [f["name"] for f in spec["features"]]


def _check(catalog: _Catalog, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    where = f"{kind.replace('_', ' ')} {name!r}"
    if kind == "feature_view":
        keys: list[str] = []
        for entity in spec["entities"]:
            keys += catalog.spec(("entity",), entity, where)[1]["join_keys"]
        src = resolve_source(catalog.ws, spec["source"], where)
        with connect() as con:
            schema = source_schema(con, src, where)
        return check_view_columns(spec, keys, schema, where)
    if kind == "on_demand_feature_view":
        for ref in spec["sources"]:
            view, feat = parse_feature_ref(ref, where)
            if feat not in catalog.features_of(view, where):
                raise InvalidInput(f"{where}: view {view!r} has no feature {feat!r}")
        return spec
    if kind == "feature_service":
        for ref in spec["features"]:
            view, _, feat = ref.partition(":")
            if feat and feat not in catalog.features_of(view, where):
                raise InvalidInput(f"{where}: view {view!r} has no feature {feat!r}")
            if not feat:
                catalog.features_of(view, where)
    return spec


def apply(
    definitions: Iterable[Definition],
    *,
    dry_run: bool = False,
    workspace: Workspace | None = None,
) -> list[Change]:
    """Register ``definitions``, each as a new version if its spec changed.

    Everything is checked before anything is written: entity names a view uses, the
    source's columns (join keys, timestamp, features and their declared dtypes), the
    features on-demand views and services reference.

    Returns
    -------
    list[Change]
        Per definition: ``create``, ``update`` (with a diff) or ``unchanged``.
    """
    ws = workspace or default_workspace()
    items = list(definitions)
    pending: dict[tuple[str, str], dict[str, Any]] = {}
    for d in items:
        kind, spec = kind_of(d), spec_of(d)
        if (kind, d.name) in pending:
            raise InvalidInput(f"{kind.replace('_', ' ')} {d.name!r} is defined twice")
        pending[(kind, d.name)] = spec
    names = [n for k, n in pending if k in VIEW_KINDS]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise InvalidInput(f"a feature view and an on-demand view share the name(s) {clash}")
    ordered = sorted(pending, key=lambda kn: (_ORDER.index(kn[0]), kn[1]))
    for kind, name in ordered:
        other = [k for k in VIEW_KINDS if k != kind] if kind in VIEW_KINDS else []
        for k in other:
            if _exists(ws, k, name):
                raise Conflict(f"{name!r} is already registered as a {k.replace('_', ' ')}")
    catalog = _Catalog(ws, pending)
    for kind, name in ordered:
        pending[(kind, name)] = _check(catalog, kind, name, pending[(kind, name)])
    return [_store(ws, kind, name, pending[(kind, name)], dry_run) for kind, name in ordered]


def _exists(ws: Workspace, kind: str, name: str) -> bool:
    with ws.db.read() as conn:
        query = sa.select(defs.c.name).where(defs.c.kind == kind, defs.c.name == name).limit(1)
        return conn.execute(query).first() is not None


def _store(ws: Workspace, kind: str, name: str, spec: dict[str, Any], dry_run: bool) -> Change:
    digest = _hash(spec)
    for _ in range(5):
        try:
            with ws.db.write() as conn:
                row = conn.execute(
                    sa.select(defs)
                    .where(defs.c.kind == kind, defs.c.name == name)
                    .order_by(defs.c.version.desc())
                    .limit(1)
                ).first()
                if row is not None and row.spec_hash == digest:
                    return Change(kind, name, "unchanged", row.version)
                version = 1 if row is None else row.version + 1
                action = "create" if row is None else "update"
                diff = () if row is None else _diff(row.spec, spec)
                if not dry_run:
                    conn.execute(
                        defs.insert().values(
                            kind=kind,
                            name=name,
                            version=version,
                            spec=spec,
                            spec_hash=digest,
                            created_at=now_ms(),
                        )
                    )
                return Change(kind, name, action, version, diff)
        except IntegrityError:
            continue
    raise Conflict(f"could not allocate a version of {kind} {name!r}")


def list_definitions(
    kind: str | None = None, *, workspace: Workspace | None = None
) -> pd.DataFrame:
    """The latest version of every definition (of one ``kind`` if given)."""
    ws = workspace or default_workspace()
    if kind is not None and kind not in _ORDER:
        raise InvalidInput(f"unknown kind {kind!r} (one of {', '.join(_ORDER)})")
    rows = latest(ws, None if kind is None else [kind])
    return pd.DataFrame(
        [
            {
                "kind": r.kind,
                "name": r.name,
                "version": r.version,
                "features": len(r.spec.get("features", [])),
                "owner": r.spec.get("owner", ""),
                "created_at": r.created_at,
            }
            for r in rows
        ],
        columns=["kind", "name", "version", "features", "owner", "created_at"],
    )


def get_definition(
    name: str,
    kind: str | None = None,
    *,
    version: int | None = None,
    workspace: Workspace | None = None,
) -> Registered:
    """The latest (or given) version of a registered definition, of any kind unless given."""
    ws = workspace or default_workspace()
    if kind is not None and kind not in _ORDER:
        raise InvalidInput(f"unknown kind {kind!r} (one of {', '.join(_ORDER)})")
    return get(ws, _ORDER if kind is None else kind, name, version)
