"""The record of a dataset version — :class:`DatasetVersion` — and its JSON form, the one
the platform API answers with and a remote workspace reads back.

A version read from a server is the same object as a local one: its data is the Parquet
blob, fetched through the workspace's (HTTP) blob store on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.data._profile import Profile
from loopml.errors import InvalidInput
from loopml.store import Node, Workspace


def cache_dir(ws: Workspace) -> Path:
    """Where local copies of remote blobs are kept: the workspace's ``.loopml/cache/blobs``,
    or for a remote workspace without a folder, ``loopml/blobs`` in the user's cache."""
    if ws.home is None and ws.remote is not None:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loopml/blobs"
    return ws.settings.state_dir / "cache" / "blobs"


@dataclass(frozen=True)
class ColumnInfo:
    """One column of a dataset version: its Arrow type and semantic kind."""

    name: str
    arrow_type: str
    kind: str


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a dataset, e.g. ``churn@3``."""

    ws: Workspace = field(repr=False, compare=False)
    name: str
    version: int
    num_rows: int
    columns: tuple[ColumnInfo, ...]
    profile: Profile = field(repr=False)
    source: dict[str, Any] = field(repr=False)
    content_hash: str = field(repr=False)
    digest: str = field(repr=False)
    size_bytes: int = field(repr=False)
    created_at: datetime = field(repr=False)

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def lineage_node(self) -> Node:
        """This version as a lineage node (what ``run.log_input`` records)."""
        return Node("dataset_version", self.ref)

    @property
    def column_names(self) -> list[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]

    def __str__(self) -> str:
        return self.ref

    def path(self) -> Path:
        """A local Parquet file with this version's verified data."""
        return self.ws.blobs.local_path(self.digest, cache_dir(self.ws))

    def to_arrow(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The data as an Arrow table (optionally only ``columns``)."""
        self._check_columns(columns)
        return pq.read_table(self.path(), columns=list(columns) if columns else None)

    def to_pandas(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The data as a pandas DataFrame (optionally only ``columns``)."""
        return self.to_arrow(columns).to_pandas()

    def iter_batches(
        self, batch_size: int = 65_536, columns: Sequence[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Stream the data in record batches, for data that does not fit in memory."""
        self._check_columns(columns)
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, got {batch_size}")
        parquet = pq.ParquetFile(self.path())
        yield from parquet.iter_batches(
            batch_size=batch_size, columns=list(columns) if columns else None
        )

    def _check_columns(self, columns: Sequence[str] | None) -> None:
        missing = [c for c in columns or () if c not in self.column_names]
        if missing:
            raise InvalidInput(
                f"{self.ref} has no column(s) {', '.join(map(repr, missing))}; "
                f"its columns: {', '.join(self.column_names)}"
            )


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def version_from_row(ws: Workspace, row: Any) -> DatasetVersion:
    """The version a ``dataset_versions`` row holds."""
    return DatasetVersion(
        ws=ws,
        name=row.name,
        version=row.version,
        num_rows=row.num_rows,
        columns=tuple(ColumnInfo(**c) for c in row.schema),
        profile=row.profile,
        source=row.source,
        content_hash=row.content_hash,
        digest=row.digest,
        size_bytes=row.size_bytes,
        created_at=from_ms(row.created_at),
    )


def version_json(dv: DatasetVersion) -> dict[str, Any]:
    """A dataset version as the API shows it (time in epoch ms)."""
    return {
        "name": dv.name,
        "version": dv.version,
        "ref": dv.ref,
        "num_rows": dv.num_rows,
        "columns": [
            {"name": c.name, "arrow_type": c.arrow_type, "kind": c.kind} for c in dv.columns
        ],
        "content_hash": dv.content_hash,
        "digest": dv.digest,
        "size_bytes": dv.size_bytes,
        "created_at": round(dv.created_at.timestamp() * 1000),
        "source": dv.source,
        "profile": dv.profile,
    }


def version_from_json(ws: Workspace, body: Mapping[str, Any]) -> DatasetVersion:
    """The :class:`DatasetVersion` that :func:`version_json` wrote, bound to ``ws``."""
    return DatasetVersion(
        ws=ws,
        name=body["name"],
        version=int(body["version"]),
        num_rows=int(body["num_rows"]),
        columns=tuple(ColumnInfo(**c) for c in body["columns"]),
        profile=body["profile"],
        source=dict(body["source"]),
        content_hash=body["content_hash"],
        digest=body["digest"],
        size_bytes=int(body["size_bytes"]),
        created_at=from_ms(body["created_at"]),
    )


__all__ = [
    "ColumnInfo",
    "DatasetVersion",
    "cache_dir",
    "from_ms",
    "version_from_json",
    "version_from_row",
    "version_json",
]
