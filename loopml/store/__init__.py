"""Storage that knows nothing of ML: the metadata DB (SQLAlchemy + Alembic migrations), the
content-addressed blob store (fsspec), the generic lineage edge table, and the
``Workspace`` that bundles them with the settings."""

from loopml.store.blobs import BlobStore
from loopml.store.db import MetadataDB, now_ms
from loopml.store.lineage import Edge, Node, add_edge, upstream
from loopml.store.workspace import Workspace, default_workspace, use_workspace

__all__ = [
    "BlobStore",
    "Edge",
    "MetadataDB",
    "Node",
    "Workspace",
    "add_edge",
    "default_workspace",
    "now_ms",
    "upstream",
    "use_workspace",
]
