"""Versioned datasets: ingest a source into an immutable, content-addressed version.

A version is a Parquet (zstd) blob plus a row in ``dataset_versions`` holding its schema
(Arrow type and semantic kind per column), row count, profile, source description and a
hash of the canonical Arrow data — ingesting identical data again returns the existing
version. Lineage edges record the files or query it came from and the versions it was
derived from. On a remote workspace the same functions go through the loopml server
(:mod:`loopml.data._remote`); the Parquet travels through its blob store.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from loopml.data import _remote
from loopml.data._profile import profile_table
from loopml.data._records import ColumnInfo as ColumnInfo
from loopml.data._records import DatasetVersion as DatasetVersion
from loopml.data._records import cache_dir, version_from_row
from loopml.data._refs import check_dataset_name, parse_dataset_ref
from loopml.data._sources import CsvOptions, Format, Loaded, Progress, read_source
from loopml.data._sources import normalize_names as _normalize
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.store import Node, Workspace, add_edge, default_workspace, now_ms
from loopml.store.schema import dataset_aliases, dataset_versions, datasets

_ATTEMPTS = 5


def _canonical_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _canonical_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    return t


def canonical(table: pa.Table) -> pa.Table:
    """``table`` with one spelling per logical type (string, not large_string or a
    dictionary of strings) and no schema metadata, so equal data hashes equally whether it
    came from CSV, Parquet or pandas."""
    schema = pa.schema([pa.field(f.name, _canonical_type(f.type)) for f in table.schema])
    if schema.equals(table.schema.remove_metadata()):
        return table.replace_schema_metadata(None)
    return table.cast(schema)


def content_hash(table: pa.Table) -> str:
    """sha256 of the canonical Arrow data (see :func:`canonical`), whatever its chunking."""
    canonical_table = canonical(table).combine_chunks()
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, canonical_table.schema) as writer:
        writer.write_table(canonical_table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


@dataclass(frozen=True)
class ReadOptions:
    """The reading options ``ingest`` and ``append`` share."""

    format: Format | None
    delimiter: str | None
    encoding: str
    header: bool
    on_bad_lines: str
    normalize_columns: bool

    def read(self, source: Any, progress: Progress | None = None) -> Loaded:
        """Read ``source``, normalising column names if asked."""
        if self.on_bad_lines not in ("error", "skip"):
            raise InvalidInput(f"on_bad_lines must be 'error' or 'skip', got {self.on_bad_lines!r}")
        csv = CsvOptions(
            self.delimiter,
            self.encoding,
            self.header,
            "skip" if self.on_bad_lines == "skip" else "error",
        )
        loaded = read_source(source, format=self.format, csv=csv, progress=progress)
        if loaded.table.num_columns == 0:
            raise InvalidInput("the source has no columns")
        if self.normalize_columns:
            names = _normalize(loaded.table.column_names)
            loaded.table = loaded.table.rename_columns(names)
        return loaded


def ingest(
    source: Any,
    name: str,
    *,
    format: Format | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    header: bool = True,
    on_bad_lines: str = "error",
    normalize_columns: bool = True,
    derived_from: Sequence[DatasetVersion | str] = (),
    description: str = "",
    progress: Progress | None = None,
    workspace: Workspace | None = None,
) -> DatasetVersion:
    """Ingest ``source`` as the next version of dataset ``name``.

    Parameters
    ----------
    source : a file path or glob (CSV, Parquet, JSON Lines), ``loopml.data.SQL(query, url)``,
        or a pandas / Arrow / Polars frame.
    name : the dataset's name; versions count up from 1 per name.
    format, delimiter, encoding, header : how to read files (format from the suffix).
    on_bad_lines : ``"error"`` (default) or ``"skip"`` malformed CSV lines; skipped lines
        are recorded in the version's ``source``.
    normalize_columns : snake_case the column names (a collision is an error).
    derived_from : versions this data was made from (recorded as lineage).
    progress : called with ``(bytes read, total bytes)`` while files are read.

    Returns
    -------
    DatasetVersion
        The new version, or the existing one if identical data was ingested before.

    Examples
    --------
    >>> churn = ingest("data/customers.csv", name="churn")      # doctest: +SKIP
    >>> churn.ref, churn.num_rows                                # doctest: +SKIP
    ('churn@1', 7043)
    """
    ws = workspace or default_workspace()
    check_dataset_name(name)
    parents = [resolve(p, workspace=ws) if isinstance(p, str) else p for p in derived_from]
    options = ReadOptions(format, delimiter, encoding, header, on_bad_lines, normalize_columns)
    loaded = options.read(source, progress)
    origins = [Node("source", o) for o in loaded.origins]
    return store_version(ws, name, loaded.table, loaded.description, origins, parents, description)


def store_version(
    ws: Workspace,
    name: str,
    table: pa.Table,
    source: dict[str, Any],
    origins: Sequence[Node],
    parents: Sequence[DatasetVersion],
    description: str = "",
) -> DatasetVersion:
    """Write ``table`` as the next version of ``name`` (or return the identical one).

    On a remote workspace the Parquet is uploaded to the server, which records the row.
    """
    table = canonical(table)
    digest_of_data = content_hash(table)
    if ws.remote is not None:
        blob, _ = _write_parquet(ws, table)
        return _remote.create_version(
            ws,
            name,
            blob,
            source=source,
            origins=origins,
            parents=parents,
            description=description,
            content_hash=digest_of_data,
            num_rows=table.num_rows,
        )
    existing = _by_hash(ws, name, digest_of_data)
    if existing is not None:
        return existing
    blob, size = _write_parquet(ws, table)
    return _insert(
        ws, name, table, digest_of_data, blob, size, source, origins, parents, description
    )


def store_parquet(
    ws: Workspace,
    name: str,
    digest: str,
    source: dict[str, Any],
    origins: Sequence[Node],
    parents: Sequence[DatasetVersion],
    description: str = "",
    *,
    expect_hash: str | None = None,
    expect_rows: int | None = None,
) -> DatasetVersion:
    """Record Parquet blob ``digest``, already in the blob store, as the next version of
    ``name`` (or return the identical one): what a server does for a remote ingest.

    The schema, row count, content hash and profile are computed from the Parquet itself;
    ``expect_hash`` and ``expect_rows`` (the client's figures) must agree with them.

    Raises
    ------
    NotFound
        No blob ``digest`` is stored.
    InvalidInput
        The blob is not Parquet, or it does not hold the data the client described.
    """
    check_dataset_name(name)
    path = ws.blobs.local_path(digest, cache_dir(ws))
    try:
        table = canonical(pq.read_table(path))
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"blob {digest} is not a readable Parquet file: {exc}") from None
    if table.num_columns == 0:
        raise InvalidInput(f"Parquet blob {digest} has no columns")
    digest_of_data = content_hash(table)
    if expect_rows is not None and expect_rows != table.num_rows:
        raise InvalidInput(f"blob {digest} holds {table.num_rows} rows, not {expect_rows}")
    if expect_hash is not None and expect_hash != digest_of_data:
        raise InvalidInput(
            f"blob {digest} holds data hashing to {digest_of_data}, not to {expect_hash}: "
            "its Parquet does not read back as the table that was written"
        )
    existing = _by_hash(ws, name, digest_of_data)
    if existing is not None:
        return existing
    size = path.stat().st_size
    return _insert(
        ws, name, table, digest_of_data, digest, size, source, origins, parents, description
    )


def _insert(
    ws: Workspace,
    name: str,
    table: pa.Table,
    digest_of_data: str,
    blob: str,
    size: int,
    source: dict[str, Any],
    origins: Sequence[Node],
    parents: Sequence[DatasetVersion],
    description: str,
) -> DatasetVersion:
    """Insert the row of a version whose Parquet is stored, with its lineage edges."""
    profile = profile_table(table)
    columns = [
        {
            "name": c,
            "arrow_type": str(table.schema.field(c).type),
            "kind": profile["columns"][c]["kind"],
        }
        for c in table.column_names
    ]
    for _ in range(_ATTEMPTS):
        try:
            with ws.db.write() as conn:
                found = conn.execute(sa.select(datasets.c.name).where(datasets.c.name == name))
                if found.first() is None:
                    conn.execute(
                        datasets.insert().values(
                            name=name, description=description, created_at=now_ms()
                        )
                    )
                latest = conn.execute(
                    sa.select(sa.func.max(dataset_versions.c.version)).where(
                        dataset_versions.c.name == name
                    )
                ).scalar()
                version = (latest or 0) + 1
                conn.execute(
                    dataset_versions.insert().values(
                        name=name,
                        version=version,
                        content_hash=digest_of_data,
                        digest=blob,
                        num_rows=table.num_rows,
                        size_bytes=size,
                        schema=columns,
                        profile=profile,
                        source=source,
                        created_at=now_ms(),
                    )
                )
                node = Node("dataset_version", f"{name}@{version}")
                for origin in origins:
                    add_edge(ws.db, conn, origin, node, "ingested_from")
                for parent in parents:
                    add_edge(ws.db, conn, parent.lineage_node, node, "derived_from")
            return get_version(ws, name, version)
        except IntegrityError:
            existing = _by_hash(ws, name, digest_of_data)
            if existing is not None:  # the same data was stored concurrently
                return existing
    raise Conflict(f"could not allocate a version of dataset {name!r} after {_ATTEMPTS} tries")


def _write_parquet(ws: Workspace, table: pa.Table) -> tuple[str, int]:
    fd, tmp = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        return ws.blobs.put_file(tmp), os.path.getsize(tmp)
    finally:
        os.unlink(tmp)


def _by_hash(ws: Workspace, name: str, digest: str) -> DatasetVersion | None:
    with ws.db.read() as conn:
        row = conn.execute(
            sa.select(dataset_versions).where(
                dataset_versions.c.name == name, dataset_versions.c.content_hash == digest
            )
        ).first()
    return None if row is None else version_from_row(ws, row)


def get_version(
    ws: Workspace, name: str, version: int | None = None, alias: str | None = None
) -> DatasetVersion:
    """A version by number, alias, or (neither) the latest; NotFound says what exists."""
    if ws.remote is not None:
        return _remote.get_version(ws, name, version, alias)
    dv = dataset_versions
    with ws.db.read() as conn:
        if alias is not None:
            version = conn.execute(
                sa.select(dataset_aliases.c.version).where(
                    dataset_aliases.c.name == name, dataset_aliases.c.alias == alias
                )
            ).scalar()
            if version is None:
                known = (
                    conn.execute(
                        sa.select(dataset_aliases.c.alias).where(dataset_aliases.c.name == name)
                    )
                    .scalars()
                    .all()
                )
                raise NotFound(
                    f"dataset {name!r} has no alias {alias!r} "
                    f"(aliases: {', '.join(known) or 'none'})"
                )
        query = sa.select(dv).where(dv.c.name == name)
        query = (
            query.where(dv.c.version == version)
            if version
            else query.order_by(dv.c.version.desc()).limit(1)
        )
        row = conn.execute(query).first()
        if row is None:
            versions = (
                conn.execute(
                    sa.select(dv.c.version).where(dv.c.name == name).order_by(dv.c.version)
                )
                .scalars()
                .all()
            )
            if not versions:
                raise NotFound(f"no dataset named {name!r}")
            raise NotFound(
                f"dataset {name!r} has no version {version} "
                f"(versions: {', '.join(map(str, versions))})"
            )
    return version_from_row(ws, row)


def resolve(ref: str | DatasetVersion, *, workspace: Workspace | None = None) -> DatasetVersion:
    """The version a reference names: ``churn@3``, ``churn@latest``, ``churn@alias``."""
    if isinstance(ref, DatasetVersion):
        return ref
    name, version, alias = parse_dataset_ref(ref)
    return get_version(workspace or default_workspace(), name, version, alias)


def list_datasets(*, workspace: Workspace | None = None) -> pd.DataFrame:
    """Every dataset with its latest version, row count and creation time."""
    ws = workspace or default_workspace()
    if ws.remote is not None:
        return _remote.list_datasets(ws)
    dv = dataset_versions
    latest = (
        sa.select(dv.c.name, sa.func.max(dv.c.version).label("v")).group_by(dv.c.name).subquery()
    )
    query = (
        sa.select(dv.c.name, dv.c.version, dv.c.num_rows, dv.c.size_bytes, dv.c.created_at)
        .join(latest, sa.and_(latest.c.name == dv.c.name, latest.c.v == dv.c.version))
        .order_by(dv.c.name)
    )
    with ws.db.read() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(
        rows, columns=["name", "latest_version", "num_rows", "size_bytes", "created_at"]
    )
    frame["created_at"] = pd.to_datetime(frame["created_at"], unit="ms", utc=True)
    return frame


def list_versions(name: str, *, workspace: Workspace | None = None) -> list[DatasetVersion]:
    """Every version of dataset ``name``, oldest first."""
    ws = workspace or default_workspace()
    if ws.remote is not None:
        return _remote.list_versions(ws, name)
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(dataset_versions)
            .where(dataset_versions.c.name == name)
            .order_by(dataset_versions.c.version)
        ).all()
    if not rows:
        raise NotFound(f"no dataset named {name!r}")
    return [version_from_row(ws, r) for r in rows]


def set_alias(
    name: str, alias: str, version: int, *, workspace: Workspace | None = None
) -> DatasetVersion:
    """Point ``name@alias`` at ``version``."""
    ws = workspace or default_workspace()
    check_dataset_name(alias)
    if alias == "latest" or alias.isdigit():
        raise InvalidInput(f"{alias!r} cannot be an alias: it reads as a version")
    if ws.remote is not None:
        return _remote.set_alias(ws, name, alias, version)
    target = get_version(ws, name, version)
    with ws.db.write() as conn:
        ws.db.upsert(
            conn,
            dataset_aliases,
            [{"name": name, "alias": alias, "version": version, "updated_at": now_ms()}],
            keys=["name", "alias"],
            update=["version", "updated_at"],
        )
    return target


def append(
    ref: str | DatasetVersion,
    source: Any,
    *,
    format: Format | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    header: bool = True,
    on_bad_lines: str = "error",
    normalize_columns: bool = True,
    workspace: Workspace | None = None,
) -> DatasetVersion:
    """A new version of ``ref``'s dataset: its rows plus ``source``'s (read as by ingest).

    Columns must match; types may widen losslessly (int → float). Anything else raises
    InvalidInput naming each incompatible column and both types.
    """
    ws = workspace or default_workspace()
    base = resolve(ref, workspace=ws)
    options = ReadOptions(format, delimiter, encoding, header, on_bad_lines, normalize_columns)
    loaded = options.read(source)
    new = canonical(loaded.table)
    old = base.to_arrow()
    problems = _incompatibilities(old.schema, new.schema)
    if problems:
        raise InvalidInput(f"cannot append to {base.ref}: " + "; ".join(problems))
    combined = pa.concat_tables([old, new.select(old.column_names)], promote_options="permissive")
    source_info = {"type": "append", "base": base.ref, "appended": loaded.description}
    origins = [Node("source", o) for o in loaded.origins]
    return store_version(ws, base.name, combined, source_info, origins, [base])


def _incompatibilities(old: pa.Schema, new: pa.Schema) -> list[str]:
    problems = []
    missing = [n for n in old.names if n not in new.names]
    extra = [n for n in new.names if n not in old.names]
    if missing:
        problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(map(repr, extra))}")
    for name in old.names:
        if name in new.names:
            a, b = old.field(name).type, new.field(name).type
            if a != b and not _widens(b, a) and not pa.types.is_null(b):
                problems.append(f"column {name!r} is {b}, expected {a}")
    return problems


def _widens(new: pa.DataType, old: pa.DataType) -> bool:
    if pa.types.is_integer(new) and pa.types.is_floating(old):
        return True
    if pa.types.is_integer(new) and pa.types.is_integer(old):
        return bool(new.bit_width <= old.bit_width)
    return bool(
        pa.types.is_floating(new) and pa.types.is_floating(old) and new.bit_width <= old.bit_width
    )
