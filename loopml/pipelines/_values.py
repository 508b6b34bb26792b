"""Step values on the wire and in the blob store.

loopml objects travel by reference (:class:`Ref`): a DatasetVersion as ``churn@3``, a
ModelVersion as ``models:/churn/1``, a Run as its id, resolved again where they are used.
Stored outputs are content-addressed blobs: DataFrames as Parquet, JSON-able values as
JSON, references as JSON, anything else pickled.
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from loopml import data, registry, tracking
from loopml.errors import InvalidInput
from loopml.store import Node, Workspace

Kind = Literal["parquet", "json", "pickle", "ref"]


@dataclass(frozen=True)
class Ref:
    """A loopml object by reference: ``kind`` is dataset_version, model_version or run."""

    kind: str
    id: str

    @property
    def lineage_node(self) -> Node:
        """The object as a lineage node."""
        if self.kind == "model_version":
            return Node("model_version", self.id.removeprefix("models:/"))
        return Node(self.kind, self.id)


def to_wire(value: Any) -> Any:
    """``value`` ready to cross a process boundary (loopml objects become references)."""
    if isinstance(value, data.DatasetVersion):
        return Ref("dataset_version", value.ref)
    if isinstance(value, registry.ModelVersion):
        return Ref("model_version", value.uri)
    if isinstance(value, tracking.Run):
        return Ref("run", value.id)
    if isinstance(value, list | tuple):
        return type(value)(to_wire(v) for v in value)
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


def from_wire(ws: Workspace, value: Any) -> Any:
    """A wire value with its references resolved in workspace ``ws``."""
    if isinstance(value, Ref):
        if value.kind == "dataset_version":
            return data.resolve(value.id, workspace=ws)
        if value.kind == "model_version":
            return registry.get_model_version(ws, value.id)
        return tracking.open_run(ws, value.id)
    if isinstance(value, list | tuple):
        return type(value)(from_wire(ws, v) for v in value)
    if isinstance(value, dict):
        return {k: from_wire(ws, v) for k, v in value.items()}
    return value


def refs_in(value: Any) -> list[Ref]:
    """Every reference inside a wire value."""
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, list | tuple):
        return [r for v in value for r in refs_in(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in refs_in(v)]
    return []


def _jsonable(value: Any) -> bytes | None:
    if not isinstance(value, dict | list | str | int | float | bool | type(None)):
        return None
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return text.encode() if json.loads(text) == value else None


def encode(value: Any) -> tuple[Kind, bytes]:
    """The stored form of a wire value: (kind, bytes)."""
    if isinstance(value, Ref):
        return "ref", json.dumps({"kind": value.kind, "id": value.id}).encode()
    if isinstance(value, pd.DataFrame):
        buf = io.BytesIO()
        try:
            value.to_parquet(buf)
            return "parquet", buf.getvalue()
        except (ValueError, TypeError, NotImplementedError):  # Arrow's errors subclass these
            pass  # e.g. mixed-type object columns: pickled instead
    text = _jsonable(value)
    if text is not None:
        return "json", text
    return "pickle", pickle.dumps(value, protocol=5)


def decode(kind: str, blob: bytes) -> Any:
    """The wire value back from its stored form."""
    if kind == "ref":
        body = json.loads(blob)
        return Ref(body["kind"], body["id"])
    if kind == "parquet":
        return pd.read_parquet(io.BytesIO(blob))
    if kind == "json":
        return json.loads(blob)
    if kind == "pickle":
        return pickle.loads(blob)
    raise InvalidInput(f"unknown stored output kind {kind!r}")


def store(ws: Workspace, node: str, value: Any) -> tuple[Kind, str]:
    """Store a step's wire value; return (kind, digest)."""
    try:
        kind, blob = encode(value)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidInput(
            f"step {node!r}: its output of type {type(value).__name__} cannot be stored: {exc}"
        ) from exc
    return kind, ws.blobs.put_bytes(blob)


def load(ws: Workspace, kind: str, digest: str) -> Any:
    """A stored wire value."""
    return decode(kind, ws.blobs.get_bytes(digest))
