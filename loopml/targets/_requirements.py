"""The pinned requirements of a model's image: the versions the model package recorded, and
every other library loopml's serving needs at the version installed here.

The pins cover the whole dependency closure (each requirement's own requirements, with the
extras asked for), so an image built twice installs the same versions.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Mapping

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from loopml.errors import InvalidInput

# module names (as the model package records them) -> distribution names
DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "pandas": "pandas",
    "joblib": "joblib",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "torch": "torch",
    "keras": "keras",
    "onnxruntime": "onnxruntime",
}


def public_version(version: str) -> str:
    """``version`` without a local label (``2.13.0+cpu`` → ``2.13.0``), as indexes name it."""
    return Version(version).public


def _installed(name: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _wanted(requirement: Requirement, extras: Iterable[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": e}) for e in ("", *extras))


def closure(roots: Mapping[str, set[str]]) -> dict[str, str]:
    """Every distribution that ``roots`` ({name: extras}) need, with its installed version.

    Raises
    ------
    InvalidInput
        A needed distribution is not installed here, so its version is unknown.
    """
    pins: dict[str, str] = {}
    todo = [(name, set(extras)) for name, extras in roots.items()]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if (key, frozenset(extras)) in seen:
            continue
        seen.add((key, frozenset(extras)))
        dist = _installed(name)
        if dist is None:
            raise InvalidInput(
                f"{name} is not installed here, so the image cannot pin it; install it first"
            )
        pins[str(key)] = public_version(dist.version)
        for text in dist.requires or []:
            req = Requirement(text)
            if _wanted(req, extras):
                todo.append((req.name, set(req.extras)))
    return pins


def requirements(recorded: Mapping[str, str], runtime: str) -> dict[str, str]:
    """``{distribution: version}`` for a model package whose ``library_versions`` are
    ``recorded``, served with ``runtime``: loopml's own dependencies and the model's
    libraries (at the recorded versions, which win over the installed ones)."""
    dist = importlib.metadata.distribution("loopml")
    roots: dict[str, set[str]] = {}
    for text in dist.requires or []:
        req = Requirement(text)
        if _wanted(req, ()):
            roots[req.name] = set(req.extras)
    recorded = {m: v for m, v in recorded.items() if m in DISTRIBUTIONS}
    if runtime != "onnx":  # recorded for an ONNX export, needed only to serve it
        recorded.pop("onnxruntime", None)
    used = {DISTRIBUTIONS[m] for m in recorded}
    if runtime == "onnx":
        used.add("onnxruntime")
    for name in used:
        roots.setdefault(name, set())
    pins = closure(roots)
    for module, version in recorded.items():
        pins[str(canonicalize_name(DISTRIBUTIONS[module]))] = public_version(version)
    return dict(sorted(pins.items()))


__all__ = ["DISTRIBUTIONS", "closure", "public_version", "requirements"]
