"""The registry's records — :class:`ModelVersion` and :class:`RegisteredModel` — and their
JSON form, the one the platform API answers with and a remote workspace reads back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import InvalidInput
from loopml.registry._signature import Signature
from loopml.registry._uri import SCHEME

MAX_TAG_KEY = 250


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


def from_ms(ms: int) -> dt.datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def to_ms(when: dt.datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return round(when.timestamp() * 1000)


def check_version(version: int) -> int:
    """``version`` if it is a positive integer, else InvalidInput."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(f"version must be a positive integer, not {version!r}")
    return version


def check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """``tags`` as a dict if every key and value is a usable string, else InvalidInput."""
    checked: dict[str, str] = {}
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not key or len(key) > MAX_TAG_KEY:
            raise InvalidInput(f"tag key must be a string of 1-{MAX_TAG_KEY} chars, not {key!r}")
        if not isinstance(value, str):
            raise InvalidInput(f"tag {key!r} value must be a string, not {type(value).__name__}")
        checked[key] = value
    return checked


def version_json(mv: ModelVersion) -> dict[str, Any]:
    """A model version as the API shows it (times in epoch ms)."""
    return {
        "name": mv.name,
        "version": mv.version,
        "uri": mv.uri,
        "flavor": mv.flavor,
        "signature": mv.signature.to_dict(),
        "run_id": mv.run_id,
        "status": mv.status,
        "description": mv.description,
        "created_at": to_ms(mv.created_at),
        "package_digest": mv.package_digest,
        "aliases": list(mv.aliases),
        "tags": mv.tags,
    }


def version_from_json(body: Mapping[str, Any]) -> ModelVersion:
    """The :class:`ModelVersion` that :func:`version_json` wrote."""
    return ModelVersion(
        name=body["name"],
        version=int(body["version"]),
        flavor=body["flavor"],
        signature=Signature.from_dict(body["signature"]),
        run_id=body["run_id"],
        status=body["status"],
        description=body["description"],
        created_at=from_ms(body["created_at"]),
        package_digest=body["package_digest"],
        aliases=tuple(body["aliases"]),
        tags=dict(body["tags"]),
    )


def model_json(model: RegisteredModel) -> dict[str, Any]:
    """A registered model as the API shows it (times in epoch ms)."""
    return {
        "name": model.name,
        "description": model.description,
        "latest_version": model.latest_version,
        "aliases": model.aliases,
        "tags": model.tags,
        "created_at": to_ms(model.created_at),
        "updated_at": to_ms(model.updated_at),
    }


def model_from_json(body: Mapping[str, Any]) -> RegisteredModel:
    """The :class:`RegisteredModel` that :func:`model_json` wrote."""
    return RegisteredModel(
        name=body["name"],
        description=body["description"],
        latest_version=body["latest_version"],
        aliases={str(k): int(v) for k, v in body["aliases"].items()},
        tags=dict(body["tags"]),
        created_at=from_ms(body["created_at"]),
        updated_at=from_ms(body["updated_at"]),
    )


__all__ = [
    "MAX_TAG_KEY",
    "ModelVersion",
    "RegisteredModel",
    "check_tags",
    "check_version",
    "from_ms",
    "model_from_json",
    "model_json",
    "to_ms",
    "version_from_json",
    "version_json",
]
