"""MLflow's artifact proxy over loopml's blob store.

The proxy's paths are ``<experiment id>/<run id>/artifacts/<path>`` for a run's artifacts
(what ``mlflow-artifacts:/`` run URIs point at) and ``packages/<digest>/<path>`` for the
files of a registered version's package. An upload is stored as a loopml run artifact (a
sha256-addressed blob plus an ``artifacts`` row); a download is the verified blob's bytes.
These functions do the blocking work; the routes in :mod:`loopml.server._mlflow` stream
the bodies in and out.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import sqlalchemy as sa

from loopml.errors import InvalidInput, NotFound, StoreError, WorkspaceNotFound
from loopml.registry._package import METADATA_FILE
from loopml.server._mlflow_protocol import Fields, Handler, natural, run_handle
from loopml.store import Workspace
from loopml.store.schema import artifacts, model_versions, runs
from loopml.tracking import Run

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def artifact_uri(experiment_id: int, run_id: str) -> str:
    """Where the MLflow client finds a run's artifacts: this server's artifact proxy."""
    return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"


@dataclass(frozen=True)
class Location:
    """A proxy path: a run's artifact (``run_id``) or a package's file (``package``), and
    the path ``rel`` inside it ("" for its root)."""

    rel: str
    run_id: str | None = None
    experiment_id: int | None = None
    package: str | None = None


def clean_path(path: str, what: str = "artifact path") -> str:
    """``path`` without surrounding slashes, if it is a safe relative path."""
    text = path.strip("/")
    parts = text.split("/") if text else []
    if "\\" in text or "\x00" in text or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"invalid {what} {path!r:.200}: use a relative path without '..'")
    return text


def parse_location(path: str) -> Location:
    """The :class:`Location` of proxy path ``path``."""
    parts = clean_path(path).split("/")
    if parts[0] == "packages" and len(parts) >= 2 and _DIGEST.fullmatch(parts[1]):
        return Location("/".join(parts[2:]), package=parts[1])
    experiment = natural(parts[0], 18)
    if (
        len(parts) >= 3
        and experiment is not None
        and _RUN_ID.fullmatch(parts[1])
        and parts[2] == "artifacts"
    ):
        return Location("/".join(parts[3:]), run_id=parts[1], experiment_id=experiment)
    raise InvalidInput(
        f"invalid artifact path {path!r:.200}: expected <experiment id>/<run id>/artifacts/<path> "
        "(the run's artifact_uri) or packages/<digest>/<path>"
    )


def _run_files(ws: Workspace, loc: Location) -> dict[str, tuple[str, int]]:
    with ws.db.read() as conn:
        experiment = conn.execute(
            sa.select(runs.c.experiment_id).where(runs.c.id == loc.run_id)
        ).scalar()
        if experiment is None or experiment != loc.experiment_id:
            raise NotFound(f"no run {loc.run_id} in experiment {loc.experiment_id}")
        rows = conn.execute(
            sa.select(artifacts.c.path, artifacts.c.digest, artifacts.c.size).where(
                artifacts.c.run_id == loc.run_id
            )
        ).all()
    return {path: (digest, size) for path, digest, size in rows}


def _package_files(ws: Workspace, digest: str) -> dict[str, tuple[str, int]]:
    with ws.db.read() as conn:
        known = conn.execute(
            sa.select(model_versions.c.model).where(model_versions.c.package_digest == digest)
        ).first()
    if known is None:
        raise NotFound(f"no registered model version has package {digest}")
    try:
        manifest = json.loads(ws.blobs.get_bytes(digest))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"model package {digest} has an unreadable manifest: {exc}") from exc
    return {
        str(rel): (str(blob), int(ws.blobs.fs.size(ws.blobs.path(str(blob)))))
        for rel, blob in manifest.items()
    }


def _files(ws: Workspace, loc: Location) -> dict[str, tuple[str, int]]:
    """Every file of the run or package ``loc`` is in: ``{path: (digest, size)}``."""
    return _package_files(ws, loc.package) if loc.package else _run_files(ws, loc)


def _children(files: dict[str, tuple[str, int]], folder: str) -> list[dict[str, Any]]:
    """The entries right under ``folder`` ("" for the root), as MLflow FileInfos whose path
    is relative to the root."""
    prefix = folder + "/" if folder else ""
    found: dict[str, dict[str, Any]] = {}
    for path, (_, size) in files.items():
        if not path.startswith(prefix) or path == folder:
            continue
        head, _, rest = path[len(prefix) :].partition("/")
        entry = prefix + head
        found[entry] = (
            {"path": entry, "is_dir": True}
            if rest
            else {"path": entry, "is_dir": False, "file_size": size}
        )
    return [found[k] for k in sorted(found)]


def list_folder(ws: Workspace, path: str) -> list[dict[str, Any]]:
    """mlflow-artifacts listing of ``path``: the entries right under it, named by their
    base name; empty for a file (as MLflow's own proxy answers)."""
    loc = parse_location(path)
    entries = _children(_files(ws, loc), loc.rel)
    return [e | {"path": e["path"].rsplit("/", 1)[-1]} for e in entries]


def _cache_dir(ws: Workspace) -> Path:
    try:
        return ws.settings.state_dir / "cache" / "blobs"
    except WorkspaceNotFound:  # a workspace given by URIs alone: no folder of its own
        return Path(tempfile.gettempdir()) / "loopml-blob-cache"


def open_download(ws: Workspace, path: str) -> Path:
    """The local file holding artifact ``path``'s verified bytes."""
    loc = parse_location(path)
    files = _files(ws, loc)
    if loc.rel not in files:
        what = f"package {loc.package}" if loc.package else f"run {loc.run_id}"
        raise NotFound(f"{what} has no artifact file {loc.rel!r}")
    return ws.blobs.local_path(files[loc.rel][0], _cache_dir(ws))


def upload_target(ws: Workspace, path: str) -> tuple[Run, str | None, str]:
    """Where an upload to ``path`` goes: (the run, its folder or None, the file name).

    Checked before the body is read, so a bad path is refused at once.
    """
    loc = parse_location(path)
    if loc.package or not loc.rel:
        raise InvalidInput(f"cannot upload to {path!r:.200}: name a file under a run's artifacts")
    files = _run_files(ws, loc)  # NotFound for an unknown run
    parts = loc.rel.split("/")
    clash = next(
        (p for p in ("/".join(parts[:i]) for i in range(1, len(parts))) if p in files), None
    )
    if clash is not None or any(p.startswith(loc.rel + "/") for p in files):
        what = f"{clash!r} is a file" if clash else f"{loc.rel!r} is a folder"
        raise InvalidInput(f"cannot upload to {loc.rel!r} in run {loc.run_id}: {what}")
    folder, _, name = loc.rel.rpartition("/")
    assert loc.run_id is not None
    return run_handle(ws, loc.run_id), folder or None, name


def store_upload(run: Run, folder: str | None, file: Path) -> None:
    """Record the uploaded ``file`` (named as the artifact) as an artifact of ``run``."""
    run.log_artifact(file, folder)


def source_location(source: str) -> tuple[str, str]:
    """The (run id, artifact folder) an MLflow source URI of a run's artifacts names."""
    parsed = urlparse(source)
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.scheme == "runs" and parts:
        return parts[0], clean_path("/".join(parts[1:]), "source path")
    if parsed.scheme == "mlflow-artifacts" and len(parts) >= 3 and parts[2] == "artifacts":
        return parts[1], clean_path("/".join(parts[3:]), "source path")
    raise InvalidInput(
        f"model version source {source!r:.200} is not a run's artifacts: use "
        "runs:/<run_id>/<path> or the mlflow-artifacts:/<experiment>/<run_id>/artifacts/<path> "
        "this server gave"
    )


def package_from_run(ws: Workspace, source: str, metadata: dict[str, Any]) -> tuple[str, str]:
    """Store the run's artifacts under MLflow URI ``source`` (a folder, or one file) as a
    model package whose ``loopml-model.json`` holds ``metadata``.

    Returns
    -------
    (run id, the package's digest)
    """
    run_id, folder = source_location(source)
    with ws.db.read() as conn:
        if conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is None:
            raise NotFound(f"no run with id {run_id!r}")
        rows = conn.execute(
            sa.select(artifacts.c.path, artifacts.c.digest).where(artifacts.c.run_id == run_id)
        ).all()
    files = {folder.rsplit("/", 1)[-1]: d for p, d in rows if p == folder and folder} or {
        p.removeprefix(folder + "/") if folder else p: d
        for p, d in rows
        if not folder or p.startswith(folder + "/")
    }
    if not files:
        raise InvalidInput(f"run {run_id} has no artifacts under {folder or '/'!r} to register")
    if METADATA_FILE in files:
        raise InvalidInput(f"the model folder holds {METADATA_FILE}, a name loopml reserves")
    files[METADATA_FILE] = ws.blobs.put_bytes(json.dumps(metadata, indent=2).encode())
    manifest = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    return run_id, ws.blobs.put_bytes(manifest)


def list_artifacts_handler(ws: Workspace, f: Fields) -> dict[str, Any]:
    """artifacts/list (the tracking API's listing): paths relative to the run's root."""
    run_id = f.need("run_id", "run_uuid")
    with ws.db.read() as conn:
        experiment = conn.execute(
            sa.select(runs.c.experiment_id).where(runs.c.id == run_id)
        ).scalar()
    if experiment is None:
        raise NotFound(f"no run with id {run_id!r}")
    root = artifact_uri(int(experiment), run_id)
    folder = clean_path(f.text("path") or "")
    files = _run_files(ws, Location(folder, run_id=run_id, experiment_id=int(experiment)))
    return {"root_uri": root, "files": _children(files, folder)}


HANDLERS: list[tuple[str, str, Handler]] = [("/artifacts/list", "GET", list_artifacts_handler)]
"""The tracking API's artifact endpoint (``/api/2.0/mlflow/artifacts/list``)."""
