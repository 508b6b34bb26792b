"""Content-addressed blob store over fsspec.

A blob lives at ``<root>/<sha256[:2]>/<sha256[2:]>``. Writes go to a temporary name beside
the target and are renamed into place, so a crash never leaves a half-written blob under
a real address. Every read checks the bytes against their address.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from loopml.errors import CorruptBlob, InvalidInput, NotFound, StoreError

_CHUNK = 1 << 20
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a local file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_digest(digest: object) -> str:
    """``digest`` if it is a sha256 hex digest, else InvalidInput."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidInput(f"{digest!r} is not a sha256 digest (64 lowercase hex characters)")
    return digest


class BlobStore:
    """Blobs addressed by their sha256, under any fsspec URL (default: a local folder)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        try:
            self.fs, root = fsspec.core.url_to_fs(uri)
        except (ValueError, ImportError) as exc:
            raise InvalidInput(f"artifact_uri {uri!r} is not usable: {exc}") from exc
        self.root = root.rstrip("/")
        self._verified: set[str] = set()
        self.fs.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"BlobStore({self.uri!r})"

    def path(self, digest: str) -> str:
        """Where the blob with this digest lives."""
        check_digest(digest)
        return f"{self.root}/{digest[:2]}/{digest[2:]}"

    def exists(self, digest: str) -> bool:
        """Whether a blob with this digest is stored."""
        return bool(self.fs.exists(self.path(digest)))

    # -- writing ----------------------------------------------------------------------
    def _commit(self, digest: str, write: Any) -> str:
        target = self.path(digest)
        if self.fs.exists(target):
            return digest
        folder = target.rsplit("/", 1)[0]
        self.fs.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/.tmp-{uuid.uuid4().hex}"
        try:
            write(tmp)
            self.fs.mv(tmp, target)
        except OSError as exc:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise StoreError(f"cannot write blob {digest} to {self.uri}: {exc}") from exc
        return digest

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its sha256 digest (storing it again is a no-op)."""

        def write(tmp: str) -> None:
            with self.fs.open(tmp, "wb") as f:
                f.write(data)

        return self._commit(sha256_bytes(data), write)

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store a local file; return its sha256 digest."""
        if not Path(path).is_file():
            raise NotFound(f"no such file: {path}")
        return self._commit(sha256_file(path), lambda tmp: self.fs.put_file(str(path), tmp))

    def delete(self, digest: str) -> bool:
        """Remove a blob (whoever still references it must not need it); False if absent."""
        target = self.path(digest)
        self._verified.discard(digest)
        try:
            self.fs.rm(target)
        except FileNotFoundError:
            return False
        return True

    # -- reading ----------------------------------------------------------------------
    def _open(self, digest: str) -> IO[bytes]:
        try:
            f: IO[bytes] = self.fs.open(self.path(digest), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} is not in {self.uri}") from exc
        return f

    def _chunks(self, digest: str) -> Iterator[bytes]:
        """The blob's bytes in chunks; raises CorruptBlob after the last chunk on a mismatch."""
        h = hashlib.sha256()
        with self._open(digest) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                yield chunk
        if h.hexdigest() != digest:
            raise CorruptBlob(
                f"blob {digest} in {self.uri} is corrupt: its bytes hash to {h.hexdigest()}; "
                "the artifact was tampered with or damaged"
            )

    def get_bytes(self, digest: str) -> bytes:
        """The blob's bytes, verified against the digest."""
        return b"".join(self._chunks(digest))

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Copy the blob to local path ``dest`` atomically, verified against the digest."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as out:
                for chunk in self._chunks(digest):
                    out.write(chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def local_path(self, digest: str, cache: str | os.PathLike[str]) -> Path:
        """A local file with the blob's verified bytes, for readers that need a path
        (Parquet, DuckDB): the blob itself when the store is a local folder (checked once
        per process), else a copy kept under folder ``cache``."""
        if isinstance(self.fs, LocalFileSystem):
            if digest not in self._verified:
                for _ in self._chunks(digest):
                    pass
                self._verified.add(digest)
            return Path(self.path(digest))
        copy = Path(cache) / digest
        return copy if copy.is_file() else self.get_file(digest, copy)

    def copy_tree_into(self, files: dict[str, str], dest: str | os.PathLike[str]) -> Path:
        """Materialise ``{relative path: digest}`` under folder ``dest``."""
        dest = Path(dest)
        for rel, digest in files.items():
            self.get_file(digest, dest / rel)
        return dest

    def put_tree(self, folder: str | os.PathLike[str]) -> dict[str, str]:
        """Store every file under ``folder``; return ``{relative posix path: digest}``."""
        root = Path(folder)
        return {
            p.relative_to(root).as_posix(): self.put_file(p)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }
