"""The registry's SQL reads: model rows, versions with their aliases and tags, and what a
(version, alias) pair resolves to. Callers hold the connection (one transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.errors import NotFound
from loopml.registry._records import ModelVersion, RegisteredModel, from_ms
from loopml.registry._signature import Signature
from loopml.store.schema import model_aliases, model_tags, model_versions, models

MODEL_LEVEL = 0  # model_tags.version of a tag on the model itself
_SHOWN_NAMES = 10


def model_row(conn: Connection, name: str) -> sa.Row[Any]:
    """The ``models`` row of ``name``; NotFound lists some models that exist."""
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


def alias_map(conn: Connection, name: str) -> dict[str, int]:
    """``{alias: version}`` of model ``name``."""
    rows = conn.execute(
        sa.select(model_aliases.c.alias, model_aliases.c.version)
        .where(model_aliases.c.model == name)
        .order_by(model_aliases.c.alias)
    )
    return {r.alias: r.version for r in rows}


def version_tags(conn: Connection, name: str, numbers: Sequence[int]) -> dict[int, dict[str, str]]:
    """``{version: {key: value}}`` of the given versions of model ``name``."""
    rows = conn.execute(
        sa.select(model_tags)
        .where(model_tags.c.model == name, model_tags.c.version.in_(numbers))
        .order_by(model_tags.c.key)
    )
    found: dict[int, dict[str, str]] = {v: {} for v in numbers}
    for r in rows:
        found[r.version][r.key] = r.value
    return found


def versions(conn: Connection, name: str, version: int | None = None) -> list[ModelVersion]:
    """The versions of model ``name`` (only ``version``, if given), oldest first."""
    query = sa.select(model_versions).where(model_versions.c.model == name)
    if version is not None:
        query = query.where(model_versions.c.version == version)
    rows = conn.execute(query.order_by(model_versions.c.version)).all()
    aliases = alias_map(conn, name)
    tags = version_tags(conn, name, [r.version for r in rows])
    return [
        ModelVersion(
            name=r.model,
            version=r.version,
            flavor=r.flavor,
            signature=Signature.from_dict(r.signature),
            run_id=r.run_id,
            status=r.status,
            description=r.description,
            created_at=from_ms(r.created_at),
            package_digest=r.package_digest,
            aliases=tuple(a for a, v in aliases.items() if v == r.version),
            tags=tags[r.version],
        )
        for r in rows
    ]


def resolve(conn: Connection, name: str, version: int | None, alias: str | None) -> int:
    """The version number that (version, alias) means for model ``name``."""
    model_row(conn, name)
    if alias is not None:
        aliases = alias_map(conn, name)
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


def model_records(conn: Connection, name: str | None = None) -> list[RegisteredModel]:
    """Every registered model (only ``name``, if given), by name."""
    latest = (
        sa.select(model_versions.c.model, sa.func.max(model_versions.c.version).label("latest"))
        .group_by(model_versions.c.model)
        .subquery()
    )
    query = sa.select(models, latest.c.latest).join(
        latest, latest.c.model == models.c.name, isouter=True
    )
    aliases_q = sa.select(model_aliases).order_by(model_aliases.c.alias)
    tags_q = sa.select(model_tags).where(model_tags.c.version == MODEL_LEVEL)
    if name is not None:
        query = query.where(models.c.name == name)
        aliases_q = aliases_q.where(model_aliases.c.model == name)
        tags_q = tags_q.where(model_tags.c.model == name)
    rows = conn.execute(query.order_by(models.c.name)).all()
    aliases: dict[str, dict[str, int]] = {r.name: {} for r in rows}
    for a in conn.execute(aliases_q):
        aliases.setdefault(a.model, {})[a.alias] = a.version
    tags: dict[str, dict[str, str]] = {r.name: {} for r in rows}
    for t in conn.execute(tags_q.order_by(model_tags.c.key)):
        tags.setdefault(t.model, {})[t.key] = t.value
    return [
        RegisteredModel(
            name=r.name,
            description=r.description,
            latest_version=r.latest,
            aliases=aliases[r.name],
            tags=tags[r.name],
            created_at=from_ms(r.created_at),
            updated_at=from_ms(r.updated_at),
        )
        for r in rows
    ]
