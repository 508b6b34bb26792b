"""Model packages: a folder holding ``loopml-model.json`` and the flavor's files.

In the blob store a package is its files (each a blob) plus a manifest
``{relative path: digest}`` stored as one more JSON blob; the manifest's digest names the
package. Loading materialises it once into ``.loopml/cache/packages/<digest>``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import joblib
import numpy as np
import pandas as pd

from loopml._version import __version__
from loopml.errors import InvalidInput, NotFound, StoreError
from loopml.registry._flavors import Flavor
from loopml.registry._onnx import ONNX_DIR
from loopml.registry._signature import Signature
from loopml.store import Workspace

METADATA_FILE = "loopml-model.json"
FORMAT_VERSION = 1


def _model_modules(model: object) -> list[str]:
    """Top-level modules of the model's classes: its own, its Pipeline steps', and torch
    for loopml's torch estimators (whose class lives in loopml)."""
    parts = [model, *(step for _, step in getattr(model, "steps", None) or [])]
    tops = [type(part).__module__.partition(".")[0] for part in parts]
    if any(getattr(type(part), "_loopml_torch", False) is True for part in parts):
        tops.append("torch")
    if "keras" in tops:
        tops.append("torch")  # keras's backend here
    return tops


def library_versions(model: object) -> dict[str, str]:
    """Versions of Python, loopml, the core libraries and the model's own libraries
    (e.g. ``sklearn`` for a scikit-learn estimator, ``xgboost`` for a Pipeline ending in
    an XGBoost model, ``torch`` for a torch estimator)."""
    versions = {
        "python": platform.python_version(),
        "loopml": __version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
    }
    for top in _model_modules(model):
        own = getattr(sys.modules.get(top), "__version__", None)
        if top not in versions and top != "builtins" and isinstance(own, str):
            versions[top] = own
    return versions


def write_package(
    model: object,
    flavor: Flavor,
    signature: Signature,
    folder: Path,
    onnx_example: Any = None,
) -> dict[str, Any]:
    """Write the package of ``model`` into empty folder ``folder``; return its metadata.

    With ``onnx_example`` (input rows), the model is also exported to ``onnx/model.onnx``
    and checked on those rows (see :mod:`loopml.registry._onnx_export`).
    """
    flavor.save(model, folder)
    for reserved in (METADATA_FILE, ONNX_DIR):
        if (folder / reserved).exists():
            raise InvalidInput(f"flavor {flavor.name!r} wrote {reserved}, a name loopml reserves")
    onnx = None
    if onnx_example is not None:
        from loopml.registry._onnx_export import export_onnx  # imports the onnx extra

        onnx = export_onnx(model, flavor.name, signature, onnx_example, folder)
    versions = library_versions(model)
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "flavor": flavor.name,
        "signature": signature.to_dict(),
        "library_versions": versions,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "predict_proba": callable(getattr(model, "predict_proba", None)),
    }
    if onnx is not None:
        metadata["onnx"] = onnx
        versions |= {"onnx": onnx["onnx_version"], "onnxruntime": onnx["onnxruntime_version"]}
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return metadata


def store_package(
    ws: Workspace,
    model: object,
    flavor: Flavor,
    signature: Signature,
    onnx_example: Any = None,
) -> tuple[str, dict[str, Any]]:
    """Write the package of ``model`` (with its ONNX export when ``onnx_example`` is given)
    into the blob store; return (digest, metadata)."""
    with tempfile.TemporaryDirectory(prefix="loopml-package-") as tmp:
        metadata = write_package(model, flavor, signature, Path(tmp), onnx_example)
        manifest = ws.blobs.put_tree(tmp)
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return ws.blobs.put_bytes(body), metadata


def _read_manifest(ws: Workspace, digest: str) -> dict[str, str]:
    try:
        manifest = json.loads(ws.blobs.get_bytes(digest))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"model package {digest} has an unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or METADATA_FILE not in manifest:
        raise StoreError(f"model package {digest} has no {METADATA_FILE}")
    for rel, blob in manifest.items():
        path = PurePosixPath(rel)
        if path.is_absolute() or ".." in path.parts:
            raise StoreError(f"model package {digest} names a file outside itself: {rel!r}")
        if not isinstance(blob, str):
            raise StoreError(f"model package {digest} gives {rel!r} no digest")
    return {str(k): str(v) for k, v in manifest.items()}


def package_info(ws: Workspace, digest: str) -> dict[str, Any]:
    """Package ``digest`` as the API shows it: its files ``{path: digest}`` and metadata."""
    files = _read_manifest(ws, digest)
    try:
        metadata = json.loads(ws.blobs.get_bytes(files[METADATA_FILE]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"model package {digest} has an unreadable {METADATA_FILE}") from exc
    return {"digest": digest, "files": files, "metadata": metadata}


def check_package(ws: Workspace, digest: str, flavor: str, signature: Signature) -> None:
    """Check that package ``digest`` is stored whole and holds a ``flavor`` model with
    ``signature`` (what a remote client claims when it posts a version row).

    Raises
    ------
    NotFound
        The manifest or one of the package's files is not in the blob store.
    InvalidInput
        The blob is not a package manifest, or its metadata names another flavor, another
        signature or a format this loopml cannot read.
    """
    try:
        info = package_info(ws, digest)
    except StoreError as exc:
        raise InvalidInput(f"package_digest: {exc}") from None
    missing = sorted(rel for rel, blob in info["files"].items() if not ws.blobs.exists(blob))
    if missing:
        raise NotFound(
            f"model package {digest} lacks the blobs of {', '.join(map(repr, missing[:5]))}: "
            "upload every file of the package before posting the version"
        )
    metadata = info["metadata"]
    problem = None
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        problem = f"has no {METADATA_FILE} of format {FORMAT_VERSION}"
    elif metadata.get("flavor") != flavor:
        problem = f"holds a {metadata.get('flavor')!r} model, not a {flavor!r} one"
    elif Signature.from_dict(metadata.get("signature") or {}) != signature:
        problem = "has another signature than the one given"
    if problem is not None:
        raise InvalidInput(f"model package {digest} {problem}")


def cache_dir(ws: Workspace) -> Path:
    """Where packages are materialised: the workspace's ``.loopml/cache/packages``, or for
    a remote workspace without a folder, ``loopml/packages`` in the user's cache folder."""
    if ws.home is None and ws.remote is not None:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loopml/packages"
    return ws.settings.state_dir / "cache" / "packages"


def materialise(ws: Workspace, digest: str) -> Path:
    """The local folder of package ``digest``, downloaded into the cache on first use.

    Files are fetched into a temporary sibling folder and renamed into place, so the cache
    never holds a partial package. Blob reads are verified; a damaged blob raises
    :class:`~loopml.errors.CorruptBlob`.
    """
    cache = cache_dir(ws)
    target = cache / digest
    if target.is_dir():
        return target
    manifest = _read_manifest(ws, digest)
    tmp = cache / f".{digest}.tmp-{uuid.uuid4().hex}"
    try:
        ws.blobs.copy_tree_into(manifest, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not a concurrent loader that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_metadata(folder: Path) -> dict[str, Any]:
    """The ``loopml-model.json`` of a materialised package, checked for a known format.

    Raises
    ------
    InvalidInput
        The package was written by a newer loopml in a format this one cannot read.
    """
    metadata: dict[str, Any] = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise InvalidInput(
            f"model package {folder.name} has format_version {version!r}; this loopml "
            f"({__version__}) reads format {FORMAT_VERSION}: upgrade loopml to load it"
        )
    return metadata
