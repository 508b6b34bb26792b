"""Datasets' remote half: the same reads and writes, sent to a loopml server.

A new version's Parquet goes to the server's blob store first (the workspace's HTTP blob
store); then its row is posted and the server reads the Parquet back to compute what the
row records (schema, row count, content hash, profile), checking the client's figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import pandas as pd

from loopml.data._records import DatasetVersion, version_from_json
from loopml.errors import InvalidInput
from loopml.store import Node, Workspace
from loopml.store.remote import RemoteClient


def _client(ws: Workspace) -> RemoteClient:
    assert ws.remote is not None
    return ws.remote


def dataset_path(name: str) -> str:
    """``/api/v1/datasets/<name>`` with ``name`` quoted."""
    return f"/api/v1/datasets/{quote(name, safe='')}"


def get_version(ws: Workspace, name: str, version: int | None, alias: str | None) -> DatasetVersion:
    """A version by number, alias, or (neither) the latest."""
    ref = alias if alias is not None else str(version) if version else "latest"
    path = f"{dataset_path(name)}/versions/{quote(ref, safe='')}"
    return version_from_json(ws, _client(ws).get(path))


def list_versions(ws: Workspace, name: str) -> list[DatasetVersion]:
    """Every version of dataset ``name``, oldest first."""
    found = _client(ws).pages(f"{dataset_path(name)}/versions", "versions")
    return [version_from_json(ws, v) for v in found]


def list_datasets(ws: Workspace) -> pd.DataFrame:
    """Every dataset with its latest version, as :func:`~loopml.data.list_datasets` gives."""
    found = _client(ws).pages("/api/v1/datasets", "datasets")
    columns = ["name", "latest_version", "num_rows", "size_bytes", "created_at"]
    frame = pd.DataFrame([[d[c] for c in columns] for d in found], columns=columns)
    frame["created_at"] = pd.to_datetime(frame["created_at"], unit="ms", utc=True)
    return frame


def set_alias(ws: Workspace, name: str, alias: str, version: int) -> DatasetVersion:
    """Point ``name@alias`` at ``version``."""
    path = f"{dataset_path(name)}/aliases/{quote(alias, safe='')}"
    return version_from_json(ws, _client(ws).request("PUT", path, json={"version": version}).json())


def create_version(
    ws: Workspace,
    name: str,
    digest: str,
    *,
    source: dict[str, Any],
    origins: Sequence[Node],
    parents: Sequence[DatasetVersion],
    description: str,
    content_hash: str,
    num_rows: int,
) -> DatasetVersion:
    """Post the row of a new version whose Parquet blob ``digest`` the server holds."""
    others = [str(o) for o in origins if o.kind != "source"]
    if others:
        raise InvalidInput(f"a loopml server records only 'source' origins, not {others}")
    body = {
        "digest": digest,
        "source": source,
        "origins": [o.id for o in origins],
        "derived_from": [p.ref for p in parents],
        "description": description,
        "content_hash": content_hash,
        "num_rows": num_rows,
    }
    return version_from_json(ws, _client(ws).post(f"{dataset_path(name)}/versions", body))


__all__ = [
    "create_version",
    "dataset_path",
    "get_version",
    "list_datasets",
    "list_versions",
    "set_alias",
]
