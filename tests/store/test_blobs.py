"""The content-addressed blob store: atomic writes, verified reads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from loopml.errors import CorruptBlob, InvalidInput, NotFound
from loopml.store import BlobStore


def test_round_trip_and_dedup(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    digest = store.put_bytes(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert store.put_bytes(b"hello") == digest
    assert store.get_bytes(digest) == b"hello"
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1 and not files[0].name.startswith(".tmp")


def test_files_and_trees(tmp_path: Path) -> None:
    store = BlobStore(f"file://{tmp_path / 'blobs'}")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.bin").write_bytes(b"\x00" * 3_000_000)
    tree = store.put_tree(src)
    assert set(tree) == {"a.txt", "sub/b.bin"}
    out = store.copy_tree_into(tree, tmp_path / "out")
    assert (out / "sub" / "b.bin").read_bytes() == b"\x00" * 3_000_000


def test_tampered_blob_is_detected(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    digest = store.put_bytes(b"model weights")
    Path(store.path(digest)).write_bytes(b"model weightz")
    with pytest.raises(CorruptBlob, match="tampered"):
        store.get_bytes(digest)
    with pytest.raises(CorruptBlob):
        store.get_file(digest, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()  # no half-verified file left behind


def test_missing_and_malformed_digests(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    with pytest.raises(NotFound):
        store.get_bytes("0" * 64)
    with pytest.raises(InvalidInput, match="sha256"):
        store.get_bytes("../../etc/passwd")
    with pytest.raises(NotFound):
        store.put_file(tmp_path / "nope.txt")


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(str(tmp_path / "blobs"))

    def broken_mv(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store.fs, "mv", broken_mv)
    with pytest.raises(Exception, match="disk full"):
        store.put_bytes(b"data")
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


def test_local_path_is_verified(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    digest = store.put_bytes(b"parquet bytes")
    assert store.local_path(digest, tmp_path / "cache").read_bytes() == b"parquet bytes"
    other = store.put_bytes(b"other")
    Path(store.path(other)).write_bytes(b"tampered")
    with pytest.raises(CorruptBlob):
        store.local_path(other, tmp_path / "cache")
