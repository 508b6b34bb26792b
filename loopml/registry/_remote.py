"""The registry's remote half: the same reads and writes, sent to a loopml server.

Each function takes the workspace's :class:`~loopml.store.remote.RemoteClient` and
returns the records the local functions return, built from the server's JSON (see
:mod:`loopml.registry._records`). Package files travel through the workspace's
HTTP blob store before a version row is posted.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from loopml.registry._records import (
    ModelVersion,
    RegisteredModel,
    model_from_json,
    version_from_json,
)
from loopml.store.remote import RemoteClient


def model_path(name: str) -> str:
    """``/api/v1/models/<name>`` with ``name`` quoted."""
    return f"/api/v1/models/{quote(name, safe='')}"


def version_path(name: str, version: int | None, alias: str | None = None) -> str:
    """The path of a version by number, alias, or (neither) the latest."""
    ref = alias if alias is not None else "latest" if version is None else str(version)
    return f"{model_path(name)}/versions/{quote(ref, safe='')}"


def get_version(
    client: RemoteClient, name: str, version: int | None, alias: str | None
) -> ModelVersion:
    """The version that (version, alias) means for model ``name``."""
    return version_from_json(client.get(version_path(name, version, alias)))


def list_versions(client: RemoteClient, name: str) -> list[ModelVersion]:
    """Every version of model ``name``, oldest first."""
    return [version_from_json(v) for v in client.pages(f"{model_path(name)}/versions", "versions")]


def list_models(client: RemoteClient) -> list[RegisteredModel]:
    """Every registered model, by name."""
    return [model_from_json(m) for m in client.pages("/api/v1/models", "models")]


def get_model(client: RemoteClient, name: str) -> RegisteredModel:
    """Registered model ``name``."""
    return model_from_json(client.get(model_path(name)))


def create_version(client: RemoteClient, name: str, body: dict[str, Any]) -> ModelVersion:
    """Post the row of a new version whose package blobs the server holds already."""
    return version_from_json(client.post(f"{model_path(name)}/versions", body))


def set_alias(client: RemoteClient, name: str, alias: str, version: int) -> ModelVersion:
    """Point ``alias`` at ``version``."""
    path = f"{model_path(name)}/aliases/{quote(alias, safe='')}"
    return version_from_json(client.request("PUT", path, json={"version": version}).json())


def delete_alias(client: RemoteClient, name: str, alias: str) -> None:
    """Remove ``alias``."""
    client.request("DELETE", f"{model_path(name)}/aliases/{quote(alias, safe='')}")


def set_tag(client: RemoteClient, name: str, key: str, value: str, version: int | None) -> None:
    """Set a tag of the model, or of one version."""
    where = model_path(name) if version is None else version_path(name, version)
    client.post(f"{where}/tags", {"tags": {key: value}})


def set_description(client: RemoteClient, name: str, text: str, version: int | None) -> None:
    """Set the description of the model, or of one version."""
    where = model_path(name) if version is None else version_path(name, version)
    client.request("PATCH", where, json={"description": text})


__all__ = [
    "create_version",
    "delete_alias",
    "get_model",
    "get_version",
    "list_models",
    "list_versions",
    "model_path",
    "set_alias",
    "set_description",
    "set_tag",
    "version_path",
]
