"""Cache keys: sha256 of a step's source, arguments, input hashes, declared dependencies
and library versions. Two calls with the same key compute the same output."""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import json
import pickle
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml._version import __version__
from loopml.errors import InvalidInput
from loopml.pipelines._graph import Output
from loopml.pipelines._step import Step
from loopml.store.blobs import sha256_bytes, sha256_file

BASE_PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn")


@functools.cache
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Python's, loopml's and the main libraries' versions (plus ``extra`` distributions)."""
    found: dict[str, str | None] = {
        "python": ".".join(map(str, sys.version_info[:3])),
        "loopml": __version__,
    }
    found.update({d: _version(d) for d in (*BASE_PACKAGES, *extra)})
    return found


def _canonical(value: Any, digests: Mapping[str, str]) -> Any:
    """A JSON-able stand-in for an argument: inputs by their output digest, other values as
    themselves when JSON-able, else by the sha256 of their pickle."""
    if isinstance(value, Output):
        return {"$input": digests[value.node]}
    if isinstance(value, list | tuple):
        return [_canonical(v, digests) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v, digests) for k, v in value.items()}
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    try:
        return {"$pickle": sha256_bytes(pickle.dumps(value, protocol=5))}
    except (pickle.PicklingError, TypeError, AttributeError):
        return {"$repr": repr(value)}


def _dep_hash(step: Step[Any, Any], dep: Any) -> tuple[str, str]:
    if callable(dep):
        try:
            return repr(dep), sha256_bytes(inspect.getsource(dep).encode())
        except (OSError, TypeError):
            return repr(dep), sha256_bytes(dep.__code__.co_code)
    path = Path(dep)
    if path.is_file():
        return str(path), sha256_file(path)
    if path.is_dir():
        files = (p for p in sorted(path.rglob("*")) if p.is_file())
        parts = [f"{p.relative_to(path).as_posix()}:{sha256_file(p)}" for p in files]
        return str(path), sha256_bytes("\n".join(parts).encode())
    raise InvalidInput(f"step {step.name!r}: declared dependency {str(dep)!r} does not exist")


def cache_key(
    step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], digests: Mapping[str, str]
) -> str:
    """The cache key of one call, given the output digest of each upstream node."""
    bound = step.bind(args, kwargs)
    body = {
        "step": f"{step.module}:{step.qualname}",
        "source": step.source_hash,
        "arguments": {k: _canonical(v, digests) for k, v in bound.arguments.items()},
        "deps": dict(_dep_hash(step, d) for d in step.options.deps),
        "versions": library_versions(step.options.packages),
    }
    return sha256_bytes(json.dumps(body, sort_keys=True, default=repr).encode())
