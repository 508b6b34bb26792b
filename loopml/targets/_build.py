"""``loopml build``: a reproducible image build context for one registered model version.

The context folder holds

- ``Dockerfile``: ``python:<recorded version>-slim``, the pinned requirements installed,
  a non-root user, ``HEALTHCHECK`` on ``/readyz`` and ``loopml serve`` as the entry point;
- ``requirements.txt``: every library pinned (see :mod:`loopml.targets._requirements`),
  and the loopml wheel in ``wheels/`` (see :mod:`loopml.targets._wheel`);
- ``workspace/``: a loopml workspace (SQLite and blob store) holding just this model's
  package, registered as version 1 of the same name, tagged with the source URI;
- ``loopml-build.json``: what was built from what.

Nothing in it depends on the time it was written except ``loopml-build.json``'s and the
workspace's timestamps, so the image's layers below the workspace are cached across builds.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml._version import __version__
from loopml.errors import InvalidInput
from loopml.registry import RUNTIMES, ModelVersion, get_model_version
from loopml.registry._package import materialise, read_metadata
from loopml.registry._registry import register_package
from loopml.store import Workspace
from loopml.targets._requirements import requirements
from loopml.targets._wheel import wheel_name, write_wheel

APP_DIR = "/srv"
USER_ID = 10001
PORT = 8080
BUILD_FILE = "loopml-build.json"


@dataclass(frozen=True)
class BuildContext:
    """What :func:`build_context` wrote.

    Attributes
    ----------
    path : the context folder.
    model_version : the version that was packaged.
    served_ref : the reference the image serves (``NAME/1`` in its own workspace).
    requirements : the pinned ``{distribution: version}``.
    python : the Python version of the base image.
    """

    path: Path
    model_version: ModelVersion
    served_ref: str
    requirements: dict[str, str]
    python: str


def serve_command(ref: str, runtime: str, port: int, log_predictions: bool) -> list[str]:
    """The image's entry point: ``loopml serve`` of ``ref`` from the bundled workspace."""
    cmd = ["loopml", "--workspace", f"{APP_DIR}/workspace", "serve", ref]
    cmd += ["--host", "0.0.0.0", "--port", str(port)]
    if runtime != "native":
        cmd += ["--runtime", runtime]
    if not log_predictions:
        cmd.append("--no-log")
    return cmd


def dockerfile(python: str, command: list[str], port: int, source: str, digest: str) -> str:
    """The Dockerfile text (base image pinned to ``python``)."""
    url = f"http://127.0.0.1:{port}/readyz"
    probe = (
        "import sys, urllib.request; "
        f"sys.exit(urllib.request.urlopen({url!r}, timeout=2).status != 200)"
    )
    return "\n".join(
        [
            "# syntax=docker/dockerfile:1",
            f"# loopml build {__version__}: {source} (package {digest})",
            f"FROM python:{python}-slim",
            "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \\",
            "    PIP_DISABLE_PIP_VERSION_CHECK=1",
            f"RUN groupadd --system --gid {USER_ID} loopml \\",
            f"    && useradd --system --uid {USER_ID} --gid loopml --home-dir {APP_DIR} "
            "--no-create-home loopml",
            f"WORKDIR {APP_DIR}",
            "COPY requirements.txt ./",
            "COPY wheels/ ./wheels/",
            "RUN pip install --no-cache-dir --no-deps -r requirements.txt",
            f"COPY --chown={USER_ID}:{USER_ID} workspace/ ./workspace/",
            f"USER {USER_ID}:{USER_ID}",
            f"EXPOSE {port}",
            "HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\",
            f"    CMD {json.dumps(['python', '-c', probe])}",
            f"ENTRYPOINT {json.dumps(command)}",
            "",
        ]
    )


def _requirements_text(pins: dict[str, str], source: str) -> str:
    lines = [f"# pinned by loopml build for {source}; install with --no-deps"]
    lines += [f"{name}=={version}" for name, version in pins.items() if name != "loopml"]
    lines.append(f"./wheels/{wheel_name()}")
    return "\n".join(lines) + "\n"


def _bundle_workspace(ws: Workspace, mv: ModelVersion, package: Path, folder: Path) -> str:
    """A fresh workspace in ``folder`` holding only ``mv``'s package, as ``NAME/1``."""
    with Workspace.init(folder) as bundled:
        manifest = bundled.blobs.put_tree(package)
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        digest = bundled.blobs.put_bytes(body)
        if digest != mv.package_digest:
            raise InvalidInput(
                f"{mv.uri}: the copied package hashes to {digest}, not {mv.package_digest}"
            )
        copied = register_package(
            bundled,
            mv.name,
            digest,
            flavor=mv.flavor,
            signature=mv.signature,
            description=mv.description,
            tags={"loopml.source_uri": mv.uri},
        )
    return f"{copied.name}/{copied.version}"


def build_context(
    ws: Workspace,
    uri: str,
    out: str | Path,
    *,
    runtime: str = "native",
    port: int = PORT,
    log_predictions: bool = False,
    force: bool = False,
) -> BuildContext:
    """Write the image build context of model version ``uri`` into folder ``out``.

    Parameters
    ----------
    ws : the workspace.
    uri : ``models:/churn/3``, ``churn@production``...
    out : the folder to write; it must not exist (or be empty) unless ``force``.
    runtime : ``native`` or ``onnx`` (the version must then have an ONNX export).
    port : the port the container listens on.
    log_predictions : log predictions into the container's workspace (off: its disk is
        usually ephemeral).
    force : replace an existing ``out``.

    Returns
    -------
    BuildContext

    Raises
    ------
    InvalidInput
        A bad runtime or port, ``out`` exists, or ``runtime="onnx"`` for a version
        without an ONNX export.
    NotFound
        The model version does not exist.
    """
    if runtime not in RUNTIMES:
        raise InvalidInput(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InvalidInput(f"port must be an integer in 1-65535, not {port!r}")
    target = Path(out)
    if target.exists() and not (target.is_dir() and not any(target.iterdir())) and not force:
        raise InvalidInput(f"{target} exists and is not empty; pass force=True (--force)")
    mv = get_model_version(ws, uri)
    if mv.flavor == "mlflow":
        raise InvalidInput(f"{mv.uri} was registered through MLflow's API; loopml cannot serve it")
    package = materialise(ws, mv.package_digest)
    metadata = read_metadata(package)
    if runtime == "onnx" and "onnx" not in metadata:
        raise InvalidInput(f"{mv.uri} has no ONNX export; register it with onnx=True")
    recorded: dict[str, str] = dict(metadata.get("library_versions", {}))
    python = recorded.get("python") or ".".join(map(str, sys.version_info[:3]))
    pins = requirements(recorded, runtime)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (tmp / "wheels").mkdir()
        write_wheel(tmp / "wheels")
        ref = _bundle_workspace(ws, mv, package, tmp / "workspace")
        command = serve_command(ref, runtime, port, log_predictions)
        (tmp / "Dockerfile").write_text(
            dockerfile(python, command, port, mv.uri, mv.package_digest), encoding="utf-8"
        )
        (tmp / "requirements.txt").write_text(_requirements_text(pins, mv.uri), encoding="utf-8")
        info: dict[str, Any] = {
            "source_uri": mv.uri,
            "package_digest": mv.package_digest,
            "served_ref": ref,
            "runtime": runtime,
            "port": port,
            "python": python,
            "recorded_library_versions": recorded,
            "loopml": __version__,
        }
        (tmp / BUILD_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        tmp.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildContext(target, mv, ref, pins, python)


__all__ = ["BuildContext", "build_context", "dockerfile", "serve_command"]
